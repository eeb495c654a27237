//! `woollama/<recipe>` on `POST /v1/chat/completions` (contract §4.2, §4.3).
//!
//! Non-streaming: the final turn's `chat.completion`, as the upstream sent
//! it. Streaming: the first event is awaited *before* the 200, so a setup or
//! first-turn error is a JSON status, never an empty stream; then a role
//! chunk, one chunk per content delta from every turn (narration before a
//! tool call included), exactly one stop chunk and `[DONE]`. Tool calls and
//! results are never shown. A mid-stream error becomes one `data:` frame
//! with the error, then the stop chunk and `[DONE]`.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, RequestError};
use super::passthrough::sse_response;
use crate::orchestrate::{self, Event};
use crate::wire::ChunkHead;

pub(super) async fn chat(
    state: &AppState,
    name: &str,
    model: &str,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let recipe = orchestrate::recipe(&state.config, name)?;
    let messages = match body.get("messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(m)) => m.clone(),
        Some(_) => return Err(RequestError::MessagesNotAnArray.into()),
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let prepared =
        orchestrate::prepare(recipe, &state.inference, &state.tools, messages, stream).await?;
    let mut events = Box::pin(orchestrate::run(
        prepared,
        state.inference.clone(),
        state.tools.clone(),
    ));

    if !stream {
        while let Some(event) = events.next().await {
            if let Event::Final(v) = event? {
                return Ok(Json(v).into_response());
            }
        }
        return Err(orchestrate::Error::NoAnswer(name.to_string()).into());
    }

    // Prime: the first event decides between a JSON error and a stream.
    let first = match events.next().await {
        None => return Err(orchestrate::Error::NoAnswer(name.to_string()).into()),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(e)) => e,
    };
    let frames = Frames(ChunkHead::new(model));
    let mut head = frames.0.frame(&json!({"role": "assistant"}), None);
    let (first_bytes, done) = frames.event(first);
    head.extend(first_bytes);
    let rest = futures_util::stream::unfold(
        (events, frames, done),
        |(mut events, frames, done)| async move {
            if done {
                return None;
            }
            let (bytes, end) = match events.next().await {
                None => (frames.end(), true),
                Some(Ok(e)) => frames.event(e),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "recipe failed mid-stream");
                    let mut b = ApiError::from(e).stream_frame().to_vec();
                    b.extend(frames.end());
                    (b, true)
                }
            };
            Some((bytes, (events, frames, end)))
        },
    )
    .filter(|b| std::future::ready(!b.is_empty()))
    .map(|b| Ok::<_, std::convert::Infallible>(Bytes::from(b)));
    let body = futures_util::stream::once(async move { Ok(Bytes::from(head)) }).chain(rest);
    Ok(sse_response(Body::from_stream(body)))
}

/// The orchestration SSE frames: one id, one `created`, the model as
/// requested.
struct Frames(ChunkHead);

impl Frames {
    /// The stop chunk and `[DONE]`.
    fn end(&self) -> Vec<u8> {
        self.0.end("stop")
    }

    /// The bytes for one event, and whether the stream is over.
    fn event(&self, e: Event) -> (Vec<u8>, bool) {
        match e {
            Event::Delta(text) => (self.0.frame(&json!({"content": text}), None), false),
            Event::Final(_) => (self.end(), true),
            Event::ToolCall { .. } | Event::ToolResult { .. } => (Vec::new(), false),
        }
    }
}
