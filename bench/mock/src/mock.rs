//! `bench-mock`: a fast, fixed OpenAI-compatible upstream for `bench/run`.
//!
//! It answers as cheaply as it can, so that what a benchmark step measures is
//! the router in front of it and not the model:
//!
//! - `POST /v1/chat/completions`: a fixed small `chat.completion`. With
//!   `"stream": true`, an SSE stream of `--chunks` content chunks, `--gap-ms`
//!   apart (the first one at once), then the stop chunk and `[DONE]`.
//! - The tool cue, for the recipe step: a request that offers `tools` and whose
//!   last message is not a `tool` result gets a call of the **first offered
//!   tool** with `{"name": "bench"}`; the turn that carries the `tool` message
//!   gets the final answer ("…, after a tool call."). Streamed, both come
//!   without gaps: the recipe step subtracts model time, so the model should
//!   take as little as it can.
//! - `GET /v1/models`: one model, `bench`.
//!
//! It runs on one thread (a current-thread runtime) because `bench/run` pins
//! it, with the load generator, to the core the router does not use. It prints
//! `listening 127.0.0.1:PORT` on stdout once bound and runs until killed.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures_util::Stream;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Frames = Pin<Box<dyn Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
type Body = Either<Full<Bytes>, StreamBody<Frames>>;

#[derive(Parser)]
#[command(about = "A fast fixed OpenAI-compatible upstream for the woollama benchmark")]
struct Args {
    /// Address to bind; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// Content chunks in a streamed answer.
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    /// Milliseconds between two content chunks.
    #[arg(long, default_value_t = 2.0)]
    gap_ms: f64,
}

/// The parts of a chat request the mock looks at; everything else is skipped.
#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    function: Option<Function>,
}

#[derive(Deserialize)]
struct Function {
    name: String,
}

/// Every fixed answer, serialized once.
struct Canned {
    completion: Bytes,
    /// The final answer after a tool result: says so, so a check can tell
    /// that the recipe really went through its tool turn.
    after_tool: Bytes,
    models: Bytes,
    not_found: Bytes,
    /// Content chunks, then one frame with the stop chunk and `[DONE]`.
    stream: Arc<[Bytes]>,
    gap: Duration,
}

const ANSWER: &str = "Hello from the bench mock.";
const AFTER_TOOL: &str = "Hello from the bench mock, after a tool call.";

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "bench", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    format!("data: {c}\n\n")
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "bench",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 6, "total_tokens": 14}
    })
}

impl Canned {
    fn new(args: &Args) -> Canned {
        let mut stream: Vec<Bytes> = (0..args.chunks.max(1))
            .map(|i| {
                let delta = if i == 0 {
                    json!({"role": "assistant", "content": "w0 "})
                } else {
                    json!({"content": format!("w{i} ")})
                };
                Bytes::from(chunk(delta, Value::Null))
            })
            .collect();
        stream.push(Bytes::from(format!(
            "{}data: [DONE]\n\n",
            chunk(json!({}), json!("stop"))
        )));
        Canned {
            completion: Bytes::from(
                completion(json!({"role": "assistant", "content": ANSWER}), "stop").to_string(),
            ),
            after_tool: Bytes::from(
                completion(json!({"role": "assistant", "content": AFTER_TOOL}), "stop")
                    .to_string(),
            ),
            models: Bytes::from(
                json!({"object": "list", "data": [{"id": "bench", "object": "model", "created": 1_700_000_000, "owned_by": "bench-mock"}]})
                    .to_string(),
            ),
            not_found: error_body("no such route on the bench mock"),
            stream: stream.into(),
            gap: Duration::from_secs_f64(args.gap_ms.max(0.0) / 1000.0),
        }
    }
}

fn error_body(message: &str) -> Bytes {
    Bytes::from(json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string())
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// An SSE response of `frames`, `gap` apart between content chunks (none
/// before the first, none before the closing frame).
fn sse_response(frames: Arc<[Bytes]>, gap: Duration) -> Response<Body> {
    let last = frames.len().saturating_sub(1);
    let s = futures_util::stream::unfold(0usize, move |i| {
        let frames = Arc::clone(&frames);
        async move {
            let frame = frames.get(i)?.clone();
            if i > 0 && i < last && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            Some((Ok(Frame::data(frame)), i + 1))
        }
    });
    let frames: Frames = Box::pin(s);
    let mut r = Response::new(Either::Right(StreamBody::new(frames)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn tool_call(name: &str) -> Value {
    json!([{"id": "call_bench_1", "type": "function",
            "function": {"name": name, "arguments": "{\"name\":\"bench\"}"}}])
}

fn chat(c: &Canned, body: &[u8]) -> Response<Body> {
    let req: ChatRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                error_body(&format!("bench mock: unreadable chat request: {e}")),
            );
        }
    };
    let stream = req.stream == Some(true);
    let after_tool = req.messages.last().is_some_and(|m| m.role == "tool");
    let offered = req
        .tools
        .first()
        .and_then(|t| t.function.as_ref())
        .map(|f| f.name.as_str());
    match (offered, after_tool, stream) {
        // The tool cue: ask for the first offered tool.
        (Some(name), false, false) => json_response(
            StatusCode::OK,
            Bytes::from(
                completion(
                    json!({"role": "assistant", "content": null, "tool_calls": tool_call(name)}),
                    "tool_calls",
                )
                .to_string(),
            ),
        ),
        (Some(name), false, true) => {
            let frames: Arc<[Bytes]> = Arc::new([Bytes::from(format!(
                "{}{}data: [DONE]\n\n",
                chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": tool_call(name)}),
                    Value::Null
                ),
                chunk(json!({}), json!("tool_calls"))
            ))]);
            sse_response(frames, Duration::ZERO)
        }
        (Some(_), true, true) => sse_response(Arc::clone(&c.stream), Duration::ZERO),
        (None, _, true) => sse_response(Arc::clone(&c.stream), c.gap),
        (_, true, false) => json_response(StatusCode::OK, c.after_tool.clone()),
        (_, false, false) => json_response(StatusCode::OK, c.completion.clone()),
    }
}

enum Route {
    Chat,
    Models,
    Other,
}

async fn handle(c: Arc<Canned>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let route = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => Route::Chat,
        (&Method::GET, "/v1/models") => Route::Models,
        _ => Route::Other,
    };
    Ok(match route {
        Route::Chat => match req.into_body().collect().await {
            Ok(body) => chat(&c, &body.to_bytes()),
            Err(e) => json_response(
                StatusCode::BAD_REQUEST,
                error_body(&format!("bench mock: body: {e}")),
            ),
        },
        Route::Models => json_response(StatusCode::OK, c.models.clone()),
        Route::Other => json_response(StatusCode::NOT_FOUND, c.not_found.clone()),
    })
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    let canned = Arc::new(Canned::new(&args));
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {addr}")?;
        out.flush()?;
    }
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: say so, and do not spin.
                eprintln!("bench-mock: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Latency is what is measured: never wait to coalesce small writes.
        let _ = stream.set_nodelay(true);
        let canned = Arc::clone(&canned);
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&canned), req));
            // A client that goes away mid-request is not the mock's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}
