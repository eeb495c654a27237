//! OpenAI-compatible HTTP upstreams: posting a body, relaying a stream,
//! listing models.
//!
//! Timeouts: a non-streaming call has one deadline for the whole exchange. A
//! streaming call has a deadline for the response headers and then the same
//! allowance *between* chunks, so a long answer that keeps flowing is never
//! cut, but an upstream that goes quiet is.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::{Error, Inferencer};
use crate::bounded;

/// The innermost cause of a reqwest error ("Connection refused (os error
/// 111)"), without the URL reqwest puts in its own message.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn transport_error(inf: &Inferencer, url: &str, e: &reqwest::Error, after: Duration) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            inferencer: inf.name().to_string(),
            url: url.to_string(),
            after,
        }
    } else {
        Error::Unreachable {
            inferencer: inf.name().to_string(),
            url: url.to_string(),
            cause: root_cause(e),
        }
    }
}

/// The most of an upstream error body we keep.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// POSTs a JSON body to `<base_url>/<path>`. Returns the response once its
/// status is known to be a success; an error status becomes
/// [`Error::Upstream`] carrying the upstream's body.
pub async fn post(
    client: &reqwest::Client,
    inf: &Inferencer,
    path: &str,
    url_override: Option<String>,
    body: Vec<u8>,
    timeout: Duration,
    streaming: bool,
) -> Result<reqwest::Response, Error> {
    let parsed = url_override
        .is_none()
        .then(|| inf.parsed_url(path))
        .flatten();
    let url = url_override.unwrap_or_else(|| inf.url(path));
    let mut req = match parsed {
        Some(u) => client.post(u.clone()),
        None => client.post(&url),
    }
    .header(CONTENT_TYPE, "application/json")
    .body(body);
    if streaming {
        req = req.header(ACCEPT, "text/event-stream");
    } else {
        req = req.timeout(timeout);
    }
    if let Some(key) = inf.auth()? {
        req = req.bearer_auth(key.expose());
    }
    send(req, inf, url, timeout).await
}

/// Sends a built request within `timeout` (for the headers); an error status
/// becomes [`Error::Upstream`] with the upstream's body.
pub async fn send(
    req: reqwest::RequestBuilder,
    inf: &Inferencer,
    url: String,
    timeout: Duration,
) -> Result<reqwest::Response, Error> {
    // The inferencer's own first-byte limit, when it has one.
    let timeout = inf.spec.first_byte_timeout.unwrap_or(timeout);
    let started = std::time::Instant::now();
    let sent = tokio::time::timeout(timeout, req.send()).await;
    let ok = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
    inf.metrics.upstream(inf.name(), started.elapsed(), ok);
    let resp = match sent {
        Err(_) => {
            return Err(Error::Timeout {
                inferencer: inf.name().to_string(),
                url,
                after: timeout,
            });
        }
        Ok(Err(e)) => return Err(transport_error(inf, &url, &e, timeout)),
        Ok(Ok(r)) => r,
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match tokio::time::timeout(timeout, bounded::head(resp, ERROR_BODY_LIMIT)).await {
        Ok(Ok(b)) => b,
        _ => Bytes::new(),
    };
    Err(Error::Upstream {
        inferencer: inf.name().to_string(),
        status,
        content_type,
        body,
    })
}

/// The most of a non-streaming answer woollama reads whole (to parse or
/// translate it): the order of the request-body limit. Beyond it the answer
/// is refused with [`Error::TooLarge`]; pass-through relays without reading
/// whole and has no such limit.
pub const RESPONSE_LIMIT: usize = 32 * 1024 * 1024;

/// Reads a whole (non-streaming) response body, at most [`RESPONSE_LIMIT`];
/// the deadline set by [`post`] still applies.
pub async fn read_body(
    inf: &Inferencer,
    url: &str,
    resp: reqwest::Response,
    timeout: Duration,
) -> Result<Bytes, Error> {
    read_body_limited(inf, url, resp, timeout, RESPONSE_LIMIT).await
}

async fn read_body_limited(
    inf: &Inferencer,
    url: &str,
    resp: reqwest::Response,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, Error> {
    bounded::whole(resp, limit).await.map_err(|e| match e {
        bounded::Read::TooLarge => Error::TooLarge {
            inferencer: inf.name().to_string(),
            url: url.to_string(),
            limit,
        },
        bounded::Read::Transport(e) => transport_error(inf, url, &e, timeout),
    })
}

/// The response body as a stream of chunks, each of which must arrive within
/// `idle` of the previous one. Dropping the stream drops the upstream
/// connection, which is how a client that goes away cancels the upstream.
pub fn relay(
    inf: &Inferencer,
    resp: reqwest::Response,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    let idle = inf.spec.idle_timeout.unwrap_or(idle);
    let name = inf.name().to_string();
    let url = resp.url().to_string();
    let metrics = inf.metrics.clone();
    let body = resp.bytes_stream();
    futures_util::stream::unfold(Some(Box::pin(body)), move |state| {
        let name = name.clone();
        let url = url.clone();
        let metrics = metrics.clone();
        async move {
            let mut body = state?;
            let next = tokio::time::timeout(idle, body.next()).await;
            if !matches!(next, Ok(None | Some(Ok(_)))) {
                metrics.upstream_error(&name);
            }
            match next {
                Err(_) => Some((
                    Err(Error::Timeout {
                        inferencer: name,
                        url,
                        after: idle,
                    }),
                    None,
                )),
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((
                    Err(Error::Unreachable {
                        inferencer: name,
                        url,
                        cause: format!("the stream broke off: {}", root_cause(&e)),
                    }),
                    None,
                )),
            }
        }
    })
}

/// The most of a model list woollama reads (OpenRouter's, the longest
/// known, is about 1 MiB).
const MODELS_LIMIT: usize = 16 * 1024 * 1024;

/// Lists a provider's models from `GET <base_url>/models` (`data[].id`).
pub async fn discover(
    client: &reqwest::Client,
    inf: &Inferencer,
    timeout: Duration,
) -> Result<Vec<String>, Error> {
    let url = inf.url("models");
    let mut req = client.get(&url).timeout(timeout);
    if let Some(key) = inf.auth()? {
        req = req.bearer_auth(key.expose());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport_error(inf, &url, &e, timeout))?;
    if !resp.status().is_success() {
        return Err(Error::BadResponse {
            inferencer: inf.name().to_string(),
            detail: format!("GET {url} answered {}", resp.status()),
        });
    }
    let body = read_body_limited(inf, &url, resp, timeout, MODELS_LIMIT).await?;
    let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| Error::BadResponse {
        inferencer: inf.name().to_string(),
        detail: format!("GET {url}: {e}"),
    })?;
    Ok(doc
        .get("data")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|m| m.get("id").and_then(serde_json::Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}
