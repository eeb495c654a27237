//! A scripted OpenAI-compatible (and Ollama-native) upstream on loopback.
//!
//! Tests push [`Reply`]s onto its script; each request pops the next one (or
//! gets a default completion). Every request is recorded with its headers
//! and JSON body. Streams can hold at a gate until the test releases them,
//! and report when the client side dropped them — which is how tests prove
//! "relayed as it arrives" and "a disconnect cancels the upstream" without
//! any sleep.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// What the mock answers to one request.
pub enum Reply {
    /// A JSON body with a status.
    Json(StatusCode, Value),
    /// Any body with a status and content type.
    Raw(StatusCode, &'static str, String),
    /// Server-sent events: each string is sent as one chunk, as given.
    /// With a gate, the stream sends `hold_after` chunks and then waits.
    Stream {
        content_type: &'static str,
        chunks: Vec<String>,
        gate: Option<Gate>,
    },
    /// Never answer.
    Stall,
}

/// Holds a stream after some chunks until released; tells when the client
/// dropped the stream.
pub struct Gate {
    pub hold_after: usize,
    pub release: Arc<Notify>,
    pub dropped: Option<oneshot::Sender<()>>,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    models: Mutex<Vec<String>>,
    stall_models: Mutex<bool>,
    /// Notified whenever a request is recorded.
    arrived: Notify,
}

/// A running mock upstream.
#[derive(Clone)]
pub struct Mock {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Mock {
    pub async fn start() -> Mock {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .route("/v1/images/generations", post(answer))
            .route("/api/chat", post(answer))
            .route("/v1/messages", post(answer))
            .route("/v1/messages/count_tokens", post(answer))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Mock { addr, inner }
    }

    /// The OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.inner.script.lock().expect("lock").push_back(reply);
    }

    pub fn set_models(&self, ids: &[&str]) {
        *self.inner.models.lock().expect("lock") = ids.iter().map(|s| s.to_string()).collect();
    }

    pub fn stall_models(&self) {
        *self.inner.stall_models.lock().expect("lock") = true;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        loop {
            let notified = self.inner.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.requests().len() >= n {
                return;
            }
            notified.await;
        }
    }

    /// The one request received; panics if there were more or none.
    pub fn only_request(&self) -> Recorded {
        let r = self.requests();
        assert_eq!(
            r.len(),
            1,
            "expected exactly one upstream request, got {r:#?}"
        );
        r.into_iter().next().expect("one")
    }
}

/// A standard non-streaming completion.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

/// A completion whose message asks for tool calls: `(id, name, arguments)`.
pub fn tool_calls(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}]
    })
}

/// A streamed turn: optional narration, then each tool call split into
/// fragments (id and name first, the arguments in three pieces), then
/// `finish_reason: tool_calls` and `[DONE]`.
pub fn sse_tool_calls(narration: &str, calls: &[(&str, &str, Value)]) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                       "model": "mock-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": narration}),
        Value::Null,
    )];
    for (i, (id, name, args)) in calls.iter().enumerate() {
        let a = args.to_string();
        let (x, rest) = a.split_at(a.len() / 3);
        let (y, z) = rest.split_at(rest.len() / 2);
        out.push(chunk(json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": x}}]}), Value::Null));
        for piece in [y, z] {
            out.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    out.push(chunk(json!({}), json!("tool_calls")));
    out.push("data: [DONE]\n\n".to_string());
    Reply::Stream {
        content_type: "text/event-stream",
        chunks: out,
        gate: None,
    }
}

/// SSE chunks for a streamed completion of `pieces`, ending in `[DONE]`.
pub fn sse_chunks(pieces: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let delta = if i == 0 {
            json!({"role": "assistant", "content": p})
        } else {
            json!({"content": p})
        };
        let chunk = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "mock-model", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]
        });
        out.push(format!("data: {chunk}\n\n"));
    }
    let stop = json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "mock-model", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    });
    out.push(format!("data: {stop}\n\n"));
    out.push("data: [DONE]\n\n".to_string());
    out
}

pub fn sse(pieces: &[&str]) -> Reply {
    Reply::Stream {
        content_type: "text/event-stream",
        chunks: sse_chunks(pieces),
        gate: None,
    }
}

async fn models(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    inner.requests.lock().expect("lock").push(Recorded {
        method: "GET".into(),
        path: "/v1/models".into(),
        headers,
        body: Value::Null,
    });
    if *inner.stall_models.lock().expect("lock") {
        std::future::pending::<()>().await;
    }
    let ids = inner.models.lock().expect("lock").clone();
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "owned_by": "mock"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Sends `chunks`, pausing at the gate; fires `dropped` if the stream is
/// dropped before it finished.
struct StreamState {
    chunks: VecDeque<String>,
    sent: usize,
    gate: Option<Gate>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if !self.chunks.is_empty()
            && let Some(tx) = self.gate.as_mut().and_then(|g| g.dropped.take())
        {
            let _ = tx.send(());
        }
    }
}

async fn answer(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    inner.requests.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts.headers.clone(),
        body: json,
    });
    inner.arrived.notify_waiters();
    let reply = inner.script.lock().expect("lock").pop_front();
    match reply.unwrap_or_else(|| Reply::Json(StatusCode::OK, completion("default answer"))) {
        Reply::Json(status, v) => (status, axum::Json(v)).into_response(),
        Reply::Raw(status, ct, text) => {
            let mut r = (status, text).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r
        }
        Reply::Stall => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Reply::Stream {
            content_type,
            chunks,
            gate,
        } => {
            let state = StreamState {
                chunks: chunks.into(),
                sent: 0,
                gate,
            };
            let stream = futures_util::stream::unfold(state, |mut st| async move {
                let held = st
                    .gate
                    .as_ref()
                    .filter(|g| g.hold_after == st.sent)
                    .map(|g| Arc::clone(&g.release));
                if let Some(release) = held {
                    release.notified().await;
                }
                let next = st.chunks.pop_front()?;
                st.sent += 1;
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(next)), st))
            });
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
    }
}
