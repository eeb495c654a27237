//! An inferencer's answer, whichever HTTP client fetched it.
//!
//! Calls to a **plain-http** upstream — a local Ollama, llama.cpp or vLLM,
//! the case a router on your machine exists for — go through hyper-util's
//! pooled client directly ([`Fast`]): reqwest parses the URL again twice per
//! request (for its redirect policy and for the response's URL) and adds
//! its own layers, together about a fifth of a pass-through's instructions.
//! Everything else goes through reqwest: TLS upstreams, and any call at all
//! when a proxy variable (`HTTP_PROXY`, `ALL_PROXY`, either case) is set,
//! since reqwest is what honours those, and a URL with credentials in it.
//! The fast client follows no redirect (an inference API answers a POST
//! where it is asked). Either way the caller gets an [`Answer`]: the status,
//! the headers, and the body chunk by chunk.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The client for plain-http upstreams.
#[derive(Clone, Debug)]
pub struct Fast {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The proxy variables reqwest honours for plain-http calls.
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

impl Fast {
    /// The client, unless a proxy variable is set (reqwest then takes every
    /// call, as it routes them through the proxy).
    pub fn unless_proxied() -> Option<Self> {
        if PROXY_VARS
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        {
            return None;
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        // The timer is what makes the idle timeout close idle connections.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Some(Self { client })
    }

    /// Sends `req`: the answer's head, or why there is none (the innermost
    /// cause, e.g. "Connection refused (os error 111)").
    pub async fn send(&self, req: http::Request<Full<Bytes>>) -> Result<Answer, String> {
        let url = Sent::Uri(req.uri().clone());
        let resp = self.client.request(req).await.map_err(|e| root_cause(&e))?;
        let (parts, body) = resp.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            url,
            body: Body::Hyper(body),
            deadline: None,
        })
    }
}

/// The innermost cause of an error, without the outer layers' words.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

enum Body {
    Reqwest(reqwest::Response),
    Hyper(hyper::body::Incoming),
}

/// Why the body stopped.
#[derive(Debug)]
pub enum BodyError {
    /// The exchange's deadline passed.
    Timeout,
    /// The connection failed or the body broke off: the innermost cause.
    Broken(String),
}

/// Where a call went: written out only for a message.
enum Sent {
    Url(reqwest::Url),
    Uri(Uri),
}

/// An upstream's answer: head, and the body still to read.
pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    url: Sent,
    body: Body,
    /// When the whole exchange must be over (a non-streamed call).
    deadline: Option<tokio::time::Instant>,
}

impl Answer {
    /// An answer reqwest fetched.
    pub fn from_reqwest(mut resp: reqwest::Response) -> Self {
        Self {
            status: resp.status(),
            headers: std::mem::take(resp.headers_mut()),
            url: Sent::Url(resp.url().clone()),
            body: Body::Reqwest(resp),
            deadline: None,
        }
    }

    /// The body must have arrived by `deadline`.
    #[must_use]
    pub fn by(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn header(&self, name: http::header::HeaderName) -> Option<&HeaderValue> {
        self.headers.get(name)
    }

    /// Where the call went (made for a message; not on the happy path).
    pub fn url(&self) -> String {
        match &self.url {
            Sent::Url(u) => u.to_string(),
            Sent::Uri(u) => u.to_string(),
        }
    }

    /// The length the upstream declared.
    pub fn content_length(&self) -> Option<u64> {
        match &self.body {
            Body::Reqwest(r) => r.content_length(),
            Body::Hyper(b) => http_body::Body::size_hint(b).exact(),
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        let next = async {
            match &mut self.body {
                Body::Reqwest(r) => r.chunk().await.map_err(|e| {
                    if e.is_timeout() {
                        BodyError::Timeout
                    } else {
                        BodyError::Broken(root_cause(&e))
                    }
                }),
                Body::Hyper(b) => loop {
                    match b.frame().await {
                        None => break Ok(None),
                        Some(Err(e)) => break Err(BodyError::Broken(root_cause(&e))),
                        Some(Ok(f)) => {
                            if let Ok(data) = f.into_data() {
                                break Ok(Some(data));
                            }
                            // Trailers: nothing to relay.
                        }
                    }
                },
            }
        };
        match self.deadline {
            None => next.await,
            Some(at) => tokio::time::timeout_at(at, next)
                .await
                .unwrap_or(Err(BodyError::Timeout)),
        }
    }
}

impl crate::bounded::Source for Answer {
    type Error = BodyError;
    fn declared_length(&self) -> Option<u64> {
        self.content_length()
    }
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, BodyError>> + Send {
        self.chunk()
    }
}

/// An `http::Uri` for a parsed URL, when the fast client can take it: a
/// plain-http URL without credentials in it (reqwest turns `user:pass@`
/// into Basic auth; hyper would drop it).
pub fn fast_uri(url: &reqwest::Url) -> Option<Uri> {
    (url.scheme() == "http" && url.username().is_empty() && url.password().is_none())
        .then(|| url.as_str().parse().ok())
        .flatten()
}
