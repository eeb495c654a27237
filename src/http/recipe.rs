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
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, error_body};
use super::passthrough::sse_response;
use crate::inference::{self, ollama};
use crate::orchestrate::{self, Event};

impl From<orchestrate::Error> for ApiError {
    fn from(e: orchestrate::Error) -> Self {
        use orchestrate::Error as E;
        match e {
            E::Unsupported { .. } | E::NotImplemented(_) => ApiError::NotImplemented(e.to_string()),
            E::Inference(i) => i.into(),
            E::NoChoices { body } => ApiError::Upstream {
                status: axum::http::StatusCode::BAD_GATEWAY,
                content_type: Some("application/json".into()),
                body: Bytes::from(body.to_string()),
            },
            E::MaxTurns(_) => ApiError::Server(e.to_string()),
        }
    }
}

/// The body of a mid-stream error frame: an upstream's own JSON error, or
/// ours.
fn error_payload(e: &orchestrate::Error) -> Vec<u8> {
    if let orchestrate::Error::Inference(inference::Error::Upstream { body, .. }) = e
        && serde_json::from_slice::<Value>(body).is_ok()
    {
        return body.to_vec();
    }
    let kind = match e {
        orchestrate::Error::MaxTurns(_) => "server_error",
        _ => "upstream_error",
    };
    error_body(&e.to_string(), kind)
}

pub(super) async fn chat(
    state: &AppState,
    name: &str,
    model: &str,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let recipe = state
        .config
        .recipes
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("unknown recipe '{name}'")))?;
    let messages = match body.get("messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::InvalidRequest(
                "`messages` must be an array of messages".into(),
            ));
        }
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
        return Err(ApiError::Server(format!(
            "recipe '{name}' ended without an answer"
        )));
    }

    // Prime: the first event decides between a JSON error and a stream.
    let first = match events.next().await {
        None => {
            return Err(ApiError::Server(format!(
                "recipe '{name}' ended without an answer"
            )));
        }
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(e)) => e,
    };
    let frames = Frames {
        id: ollama::completion_id(),
        created: ollama::now(),
        model: model.to_string(),
    };
    let mut head = frames.chunk(json!({"role": "assistant"}), None);
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
                    let mut b = b"data: ".to_vec();
                    b.extend(error_payload(&e));
                    b.extend_from_slice(b"\n\n");
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
    Ok(sse_response(
        HeaderValue::from_static("text/event-stream"),
        Body::from_stream(body),
    ))
}

/// Builds the orchestration SSE frames: one id, one `created`, the model
/// as requested.
struct Frames {
    id: String,
    created: u64,
    model: String,
}

impl Frames {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {c}\n\n").into_bytes()
    }

    /// The stop chunk and `[DONE]`.
    fn end(&self) -> Vec<u8> {
        let mut b = self.chunk(json!({}), Some("stop"));
        b.extend_from_slice(b"data: [DONE]\n\n");
        b
    }

    /// The bytes for one event, and whether the stream is over.
    fn event(&self, e: Event) -> (Vec<u8>, bool) {
        match e {
            Event::Delta(text) => (self.chunk(json!({"content": text}), None), false),
            Event::Final(_) => (self.end(), true),
            Event::ToolCall { .. } | Event::ToolResult { .. } => (Vec::new(), false),
        }
    }
}
