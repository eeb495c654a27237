//! What every request leaves behind: a line in the access log and its
//! metrics (`crate::metrics`), taken in one place — a middleware around both
//! listeners' routes — when the answer's body ends (a stream's last byte),
//! or is dropped by a client that went away.
//!
//! The access log is one line on stderr per request, on by default
//! (`WOOLLAMA_ACCESS_LOG=0` turns it off), under the `woollama::access`
//! target:
//!
//! ```text
//! POST /v1/chat/completions 200 12.3ms model=ollama/qwen3 origin=relayed upstream=200
//! ```
//!
//! and the same fields as JSON with `--log-format json`. It never carries a
//! header, a key, a query string or body content other than the model name a
//! handler reports ([`Served`]).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};

use super::AppState;
use crate::metrics::{Held, Metrics, RequestLabels};
use crate::routing::{Route, route};

/// Whether logs are JSON lines (`--log-format json`): the access log then
/// carries its fields as fields, not as one text line.
static JSON: AtomicBool = AtomicBool::new(false);

/// Sets whether logs are JSON lines.
pub fn json_logs(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// What a handler reports about the answer it gave, for the access log and
/// the metrics: attached to the response's extensions.
#[derive(Debug, Clone)]
pub struct Served {
    /// The model as the client named it (the access log only).
    pub model: String,
    /// Its namespace (the metrics' bounded label).
    pub namespace: std::borrow::Cow<'static, str>,
    /// `relayed` (an upstream's answer passed on), `recipe`, `composed`
    /// (woollama translated or built it).
    pub origin: &'static str,
    /// The upstream's status, when relayed.
    pub upstream: Option<u16>,
}

impl Served {
    pub fn new(state: &AppState, model: &str, origin: &'static str) -> Self {
        let namespace = match route(model, |p| state.inference.contains(p)) {
            Route::Provider { provider, .. } if state.inference.contains(provider) => {
                provider.to_string().into()
            }
            Route::Recipe(_) => "woollama".into(),
            Route::ClaudeCode(_) => "claude-code".into(),
            Route::ClaudeAgent(_) => "claude-agent".into(),
            _ => "unknown".into(),
        };
        Self {
            model: model.to_string(),
            namespace,
            origin,
            upstream: None,
        }
    }

    /// The same, with the upstream's status.
    #[must_use]
    pub fn upstream(mut self, status: u16) -> Self {
        self.upstream = Some(status);
        self
    }

    /// Attaches this to `r`.
    pub fn on(self, mut r: Response) -> Response {
        r.extensions_mut().insert(self);
        r
    }

    /// A handler's outcome as the response, with this attached: an error
    /// is `origin=error` (with the upstream's status when it is relayed).
    pub fn answer(
        self,
        result: Result<Response, super::error::ApiError>,
        shape: fn(super::error::ApiError) -> Response,
    ) -> Response {
        match result {
            Ok(r) => {
                let upstream = (self.origin == "relayed").then(|| r.status().as_u16());
                let mut s = self;
                s.upstream = upstream;
                s.on(r)
            }
            Err(e) => {
                let relayed = e.relayed();
                let r = shape(e);
                let mut s = self;
                s.origin = "error";
                s.upstream = relayed.then(|| r.status().as_u16());
                s.on(r)
            }
        }
    }
}

/// A method as a bounded label.
fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A request path as a bounded route label: the router's own pattern.
fn route_label(path: &str) -> &'static str {
    const EXACT: &[&str] = &[
        "/v1/models",
        "/v1/tools",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/conversations",
        "/v1/embeddings",
        "/v1/images/generations",
        "/mcp",
        "/metrics",
        "/status",
    ];
    if let Some(r) = EXACT.iter().find(|r| **r == path) {
        return r;
    }
    match path.strip_prefix("/v1/conversations/") {
        Some(rest) if rest.ends_with("/items") && rest.matches('/').count() == 1 => {
            "/v1/conversations/{id}/items"
        }
        Some(rest) if !rest.contains('/') => "/v1/conversations/{id}",
        _ => "other",
    }
}

/// The middleware: times the request, and when its answer ends, counts it
/// and logs it.
/// A request being watched, from when the gate let it in.
pub struct Watch {
    started: Instant,
    method: &'static str,
    path: String,
    in_flight: Held,
}

impl Watch {
    /// Starts the clock and counts the request in flight.
    pub fn start(state: &AppState, req: &Request) -> Watch {
        Watch {
            started: Instant::now(),
            method: method_label(req.method()),
            path: req.uri().path().to_string(),
            in_flight: state.metrics.in_flight(),
        }
    }

    /// The answer, with a body that logs and counts the request when it
    /// ends (or is dropped).
    pub fn finish(self, state: &AppState, response: Response) -> Response {
        let head = self.started.elapsed();
        let served = response.extensions().get::<Served>().cloned();
        let stream = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let record = Record {
            metrics: state.metrics.clone(),
            log: state.config.settings.access_log,
            method: self.method,
            route: route_label(&self.path),
            path: self.path,
            status: response.status().as_u16(),
            served,
            started: self.started,
            head,
            first_byte: None,
            _in_flight: self.in_flight,
            _stream: stream.then(|| state.metrics.stream()),
        };
        let (parts, body) = response.into_parts();
        Response::from_parts(
            parts,
            Body::new(Observed {
                body,
                record: Some(record),
            }),
        )
    }
}

/// What is known about a request until its answer ends.
struct Record {
    metrics: Metrics,
    log: bool,
    method: &'static str,
    route: &'static str,
    path: String,
    status: u16,
    served: Option<Served>,
    started: Instant,
    /// Time to the response head.
    head: Duration,
    first_byte: Option<Duration>,
    _in_flight: Held,
    _stream: Option<Held>,
}

impl Record {
    /// The answer ended (`complete`), or was dropped before its end.
    fn done(self, complete: bool) {
        let took = self.started.elapsed();
        let class = match self.status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        let namespace = self
            .served
            .as_ref()
            .map_or(std::borrow::Cow::Borrowed("none"), |s| s.namespace.clone());
        self.metrics.request(
            RequestLabels {
                route: self.route,
                method: self.method,
                status: class,
                namespace,
            },
            took,
        );
        if !self.log {
            return;
        }
        let ms = took.as_secs_f64() * 1000.0;
        let head_ms = self.head.as_secs_f64() * 1000.0;
        let (model, origin, upstream) = match &self.served {
            Some(s) => (shown(&s.model), s.origin, s.upstream),
            None => (Cow::Borrowed(""), "woollama", None),
        };
        if !JSON.load(Ordering::Relaxed) {
            use std::fmt::Write as _;
            let mut line = String::with_capacity(96 + model.len());
            let _ = write!(
                line,
                "{} {} {} {ms:.1}ms",
                self.method,
                shown(&self.path),
                self.status
            );
            if !model.is_empty() {
                line.push_str(" model=");
                line.push_str(&model);
            }
            line.push_str(" origin=");
            line.push_str(origin);
            if let Some(u) = upstream {
                let _ = write!(line, " upstream={u}");
            }
            if !complete {
                line.push_str(" client_gone=true");
            }
            if !crate::logging::access(&line) {
                tracing::info!(target: "woollama::access", "{line}");
            }
            return;
        }
        tracing::info!(
            target: "woollama::access",
            method = %self.method,
            path = %shown(&self.path),
            status = self.status,
            ms = (ms * 10.0).round() / 10.0,
            head_ms = (head_ms * 10.0).round() / 10.0,
            model = %model,
            origin,
            upstream = %upstream.map(|u| u.to_string()).unwrap_or_default(),
            complete,
            "request"
        );
    }
}

/// A value as it may appear in a log line: at most 200 characters, no
/// control characters or spaces (which could forge a field or a line).
fn shown(s: &str) -> Cow<'_, str> {
    let plain = |c: char| !(c.is_control() || c.is_whitespace());
    if s.len() <= 200 && s.chars().all(plain) {
        return Cow::Borrowed(s);
    }
    s.chars()
        .take(200)
        .map(|c| if plain(c) { c } else { '_' })
        .collect::<String>()
        .into()
}

/// A body that reports its first frame and its end.
struct Observed {
    body: Body,
    record: Option<Record>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                if let Some(r) = self.record.as_mut()
                    && r.first_byte.is_none()
                {
                    let t = r.started.elapsed();
                    r.first_byte = Some(t);
                    r.metrics.first_byte(r.route, t);
                }
                if self.body.is_end_stream()
                    && let Some(r) = self.record.take()
                {
                    r.done(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(r) = self.record.take() {
                    r.done(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(r) = self.record.take() {
                    r.done(false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(r) = self.record.take() {
            // Never polled to its end: an empty body (a 204, a HEAD) ends
            // here whole; anything else, the client went away.
            let complete = self.body.is_end_stream();
            r.done(complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_bounded() {
        assert_eq!(route_label("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(
            route_label("/v1/conversations/conv_1"),
            "/v1/conversations/{id}"
        );
        assert_eq!(
            route_label("/v1/conversations/conv_1/items"),
            "/v1/conversations/{id}/items"
        );
        assert_eq!(route_label("/v1/conversations/a/b/items"), "other");
        assert_eq!(route_label("/wp-admin/../x"), "other");
    }

    #[test]
    fn logged_values_cannot_forge_fields() {
        assert_eq!(shown("a b\nc=d"), "a_b_c=d");
        assert_eq!(shown(&"x".repeat(500)).len(), 200);
    }
}
