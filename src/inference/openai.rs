//! OpenAI-compatible HTTP upstreams: posting a body, relaying a stream,
//! listing models.
//!
//! Timeouts: a non-streaming call has one deadline for the whole exchange. A
//! streaming call has a deadline for the response headers and then the same
//! allowance *between* chunks, so a long answer that keeps flowing is never
//! cut, but an upstream that goes quiet is.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderValue;
use http_body_util::Full;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use super::upstream::{Answer, BodyError, Fast, root_cause};
use super::{Error, Inferencer};
use crate::bounded;

fn transport_error(inf: &Inferencer, url: &str, e: &reqwest::Error, after: Duration) -> Error {
    if e.is_timeout() {
        timeout_error(inf, url, after)
    } else {
        unreachable_error(inf, url, root_cause(e))
    }
}

fn timeout_error(inf: &Inferencer, url: &str, after: Duration) -> Error {
    Error::Timeout {
        inferencer: inf.name().to_string(),
        url: url.to_string(),
        after,
    }
}

fn unreachable_error(inf: &Inferencer, url: &str, cause: String) -> Error {
    Error::Unreachable {
        inferencer: inf.name().to_string(),
        url: url.to_string(),
        cause,
    }
}

/// A body that stopped, as the inferencer's error.
fn body_error(inf: &Inferencer, url: &str, e: BodyError, after: Duration) -> Error {
    match e {
        BodyError::Timeout => timeout_error(inf, url, after),
        BodyError::Broken(cause) => unreachable_error(inf, url, cause),
    }
}

/// The most of an upstream error body we keep.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// POSTs a JSON body to `<base_url>/<path>`. Returns the answer once its
/// status is known to be a success; an error status becomes
/// [`Error::Upstream`] carrying the upstream's body. A plain-http upstream
/// is called through `fast` when there is one (`upstream`).
#[allow(clippy::too_many_arguments, reason = "one call's whole description")]
pub async fn post(
    client: &reqwest::Client,
    fast: Option<&Fast>,
    inf: &Inferencer,
    path: &str,
    url_override: Option<String>,
    body: Vec<u8>,
    timeout: Duration,
    streaming: bool,
) -> Result<Answer, Error> {
    let endpoint = url_override.is_none().then(|| inf.endpoint(path)).flatten();
    if let (Some(fast), Some(uri)) = (fast, endpoint.and_then(|e| e.fast.as_ref())) {
        // Made in place, from values made once: a request builder is moved
        // (copied) at every header, and each header parsed again.
        let mut req = http::Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri.clone();
        let headers = req.headers_mut();
        headers.reserve(4);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(super::USER_AGENT));
        if streaming {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        if let Some(key) = inf.auth()? {
            let value = match inf.bearer() {
                Some(v) => v.clone(),
                None => bearer(inf, key)?,
            };
            headers.insert(AUTHORIZATION, value);
        }
        return exchange(inf, || inf.url(path), timeout, streaming, fast.send(req)).await;
    }
    let url = url_override.unwrap_or_else(|| inf.url(path));
    let mut req = match endpoint {
        Some(e) => client.post(e.url.clone()),
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

/// `Bearer <key>`, marked sensitive (never in a debug print).
fn bearer(inf: &Inferencer, key: &crate::config::Secret) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        Error::BadResponse {
            inferencer: inf.name().to_string(),
            detail: "the API key is not a valid header value".into(),
        }
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Sends a built request within `timeout` (for the headers); an error status
/// becomes [`Error::Upstream`] with the upstream's body.
pub async fn send(
    req: reqwest::RequestBuilder,
    inf: &Inferencer,
    url: String,
    timeout: Duration,
) -> Result<Answer, Error> {
    let sent = async {
        match req.send().await {
            Ok(r) => Ok(Answer::from_reqwest(r)),
            Err(e) if e.is_timeout() => Err(None),
            Err(e) => Err(Some(root_cause(&e))),
        }
    };
    // reqwest keeps a non-streamed call's whole deadline itself.
    exchange(inf, || url.clone(), timeout, true, sent).await
}

/// Awaits an answer's head within the first-byte limit, times and counts
/// it, and turns an error status into [`Error::Upstream`]. A non-streamed
/// answer's body must then arrive within what is left of `timeout`.
async fn exchange<E: Into<Option<String>>>(
    inf: &Inferencer,
    url: impl Fn() -> String,
    timeout: Duration,
    streaming: bool,
    sent: impl std::future::Future<Output = Result<Answer, E>>,
) -> Result<Answer, Error> {
    // The inferencer's own first-byte limit, when it has one.
    // A non-streamed call's whole exchange, headers included, is bounded
    // by `timeout` too.
    let first_byte = inf.spec.first_byte_timeout.unwrap_or(timeout);
    let first_byte = if streaming {
        first_byte
    } else {
        first_byte.min(timeout)
    };
    let started = std::time::Instant::now();
    let deadline = (!streaming).then(|| tokio::time::Instant::now() + timeout);
    let sent = tokio::time::timeout(first_byte, sent).await;
    let ok = matches!(&sent, Ok(Ok(r)) if r.status().is_success());
    inf.answered(started.elapsed(), ok);
    let resp = match sent {
        Err(_) => return Err(timeout_error(inf, &url(), first_byte)),
        Ok(Err(e)) => {
            return Err(match e.into() {
                None => timeout_error(inf, &url(), first_byte),
                Some(cause) => unreachable_error(inf, &url(), cause),
            });
        }
        Ok(Ok(r)) => r.by(deadline),
    };
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let content_type = resp
        .header(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Boxed: an error's rare path should not enlarge every call's future
    // (it is moved whole into the boxes of the layers above).
    let read = Box::pin(tokio::time::timeout(
        timeout,
        bounded::head(resp, ERROR_BODY_LIMIT),
    ));
    let body = match read.await {
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
/// Where a call went, for an error message: written out only then.
pub trait Where {
    fn url(&self) -> String;
}

impl Where for str {
    fn url(&self) -> String {
        self.to_string()
    }
}

impl Where for String {
    fn url(&self) -> String {
        self.clone()
    }
}

/// An inferencer's endpoint, `<base_url>/<path>`.
pub struct Path<'a>(pub &'a Inferencer, pub &'a str);

impl Where for Path<'_> {
    fn url(&self) -> String {
        self.0.url(self.1)
    }
}

pub async fn read_body(
    inf: &Inferencer,
    url: &(impl Where + ?Sized),
    resp: Answer,
    timeout: Duration,
) -> Result<Bytes, Error> {
    read_body_limited(inf, url, resp, timeout, RESPONSE_LIMIT).await
}

async fn read_body_limited<S: bounded::Source<Error = BodyError>>(
    inf: &Inferencer,
    url: &(impl Where + ?Sized),
    resp: S,
    timeout: Duration,
    limit: usize,
) -> Result<Bytes, Error> {
    bounded::whole(resp, limit).await.map_err(|e| match e {
        bounded::Read::TooLarge => Error::TooLarge {
            inferencer: inf.name().to_string(),
            url: url.url(),
            limit,
        },
        bounded::Read::Transport(e) => body_error(inf, &url.url(), e, timeout),
    })
}

/// The response body as a stream of chunks, each of which must arrive within
/// `idle` of the previous one. Dropping the stream drops the upstream
/// connection, which is how a client that goes away cancels the upstream.
pub fn relay(
    inf: &Inferencer,
    resp: Answer,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
    let idle = inf.spec.idle_timeout.unwrap_or(idle);
    let name = inf.name().to_string();
    let url = resp.url();
    let metrics = inf.metrics.clone();
    futures_util::stream::unfold(Some(resp), move |state| {
        let name = name.clone();
        let url = url.clone();
        let metrics = metrics.clone();
        async move {
            let mut body = state?;
            let next = tokio::time::timeout(idle, body.chunk()).await;
            if !matches!(next, Ok(Ok(_))) {
                metrics.upstream_error(&name);
            }
            match next {
                Err(_) | Ok(Err(BodyError::Timeout)) => Some((
                    Err(Error::Timeout {
                        inferencer: name,
                        url,
                        after: idle,
                    }),
                    None,
                )),
                Ok(Ok(None)) => None,
                Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Err(BodyError::Broken(cause))) => Some((
                    Err(Error::Unreachable {
                        inferencer: name,
                        url,
                        cause: format!("the stream broke off: {cause}"),
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
    let resp = Answer::from_reqwest(resp);
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
