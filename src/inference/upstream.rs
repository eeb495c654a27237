//! An inferencer's answer, whichever HTTP client fetched it.
//!
//! Calls to a **plain-http** upstream — a local Ollama, llama.cpp or vLLM,
//! the case a router on your machine exists for — go through hyper's
//! HTTP/1.1 connections directly, pooled here ([`Fast`]): reqwest parses the
//! URL again twice per request (for its redirect policy and for the
//! response's URL) and adds its own layers, together about a fifth of a
//! pass-through's instructions.
//! Everything else goes through reqwest: TLS upstreams, and any call at all
//! when a proxy variable (`HTTP_PROXY`, `ALL_PROXY`, either case) is set,
//! since reqwest is what honours those, and a URL with credentials in it.
//! The fast client follows no redirect (an inference API answers a POST
//! where it is asked). Either way the caller gets an [`Answer`]: the status,
//! the headers, and the body chunk by chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The client for plain-http upstreams: HTTP/1.1 connections of its own,
/// kept open and reused. One list of idle connections for every upstream,
/// found by authority (a router talks to a handful): no hashed pool key and
/// no per-request layers, which in hyper-util's pooled client cost about a
/// tenth of a pass-through's instructions.
#[derive(Clone, Debug, Default)]
pub struct Fast {
    pool: Arc<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    authority: Authority,
    sender: SendRequest<Full<Bytes>>,
    since: std::time::Instant,
}

/// How long an idle connection is offered again (an upstream may close one
/// it has not used for a while; one that it closed is never offered).
const IDLE_FOR: Duration = Duration::from_secs(90);
/// The most idle connections kept (the oldest goes first).
const IDLE_MAX: usize = 256;
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used idle connection to `authority` that is still
    /// open; the closed and stale ones met on the way are let go.
    fn take(&self, authority: &Authority) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.lock();
        while let Some(at) = idle.iter().rposition(|i| i.authority == *authority) {
            let found = idle.remove(at);
            if !found.sender.is_closed() && found.since.elapsed() < IDLE_FOR {
                return Some(found.sender);
            }
        }
        None
    }

    fn put(&self, authority: Authority, sender: SendRequest<Full<Bytes>>) {
        let mut idle = self.lock();
        if idle.len() >= IDLE_MAX {
            idle.remove(0);
        }
        idle.push(Idle {
            authority,
            sender,
            since: std::time::Instant::now(),
        });
    }
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
        Some(Self::default())
    }

    /// Sends `req` (an absolute `http://` URI): the answer's head, or why
    /// there is none (the innermost cause, e.g. "Connection refused (os
    /// error 111)"). A pooled connection that the upstream closed before it
    /// took the request is passed over, and the request goes on another.
    pub async fn send(&self, req: http::Request<Full<Bytes>>) -> Result<Answer, String> {
        let uri = req.uri().clone();
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("{uri} names no host"))?;
        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
        if !parts.headers.contains_key(http::header::HOST) {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| format!("{authority} is not a valid Host"))?;
            parts.headers.insert(http::header::HOST, host);
        }
        let mut req = http::Request::from_parts(parts, body);
        while let Some(mut sender) = self.pool.take(&authority) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.answered(resp, sender, authority, uri)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(root_cause(e.error())),
                },
            }
        }
        // Boxed: a new connection is the rare path, and its future would
        // enlarge every call's (moved whole into the boxes above it).
        let mut sender = Box::pin(connect(&authority)).await?;
        let resp = sender.send_request(req).await.map_err(|e| root_cause(&e))?;
        Ok(self.answered(resp, sender, authority, uri))
    }

    /// The answer; its connection goes back to the pool once it can take
    /// another request (its answer's body read to the end), and is closed
    /// if the body is dropped before that.
    fn answered(
        &self,
        resp: http::Response<hyper::body::Incoming>,
        mut sender: SendRequest<Full<Bytes>>,
        authority: Authority,
        uri: Uri,
    ) -> Answer {
        let pool = Arc::clone(&self.pool);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(authority, sender);
            }
        });
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            url: Sent::Uri(uri),
            body: Body::Hyper(body),
            deadline: None,
        }
    }
}

/// A new HTTP/1.1 connection to `authority` (every address it resolves
/// to, in turn), its driver in a task of its own.
async fn connect(authority: &Authority) -> Result<SendRequest<Full<Bytes>>, String> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let mut why = format!("{host} resolved to no address");
    let mut stream = None;
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => why = e.to_string(),
            Err(_) => why = format!("no TCP connection within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    let stream = stream.ok_or(why)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| root_cause(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
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
