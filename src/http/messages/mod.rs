//! The Anthropic Messages API in (DESIGN decision 10): `POST /v1/messages`
//! and `POST /v1/messages/count_tokens`, so Claude Code and the Anthropic
//! SDKs (`ANTHROPIC_BASE_URL=<woollama>`) reach every model woollama
//! routes to. Routed by `model` exactly like chat:
//!
//! - `anthropic/<model>` (the built-in provider): passed through natively to
//!   Anthropic's own `/v1/messages`, no round trip through OpenAI's shape;
//! - any other `<provider>/<model>`, and `claude-code/<model>`: translated
//!   to a chat request (`request`), the answer translated back (`response`),
//!   streamed as Anthropic's SSE when asked;
//! - `woollama/<recipe>`: the recipe's hidden tool loop; a client's own
//!   `tools` are refused (as on chat).
//!
//! Every error — a malformed body, an unknown model, an upstream failure —
//! is answered in Anthropic's shape (`{"type":"error","error":{…}}`), by
//! `ApiError::anthropic_response`; once a stream has started, as an `error`
//! event.

mod request;
mod response;

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};

use super::AppState;
use super::access::Served;
use super::error::{ApiError, RequestError};
use super::json::{JsonObject, model_of};
use super::passthrough::{resolve, sse_response};
use crate::inference::{ChatEvent, Endpoint, Inferencer};
use crate::orchestrate::{self, Event};
use crate::routing::{Route, route};

/// How long a quiet stream goes before a `ping`.
const PING_EVERY: Duration = Duration::from_secs(10);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The built-in `anthropic` provider, if `model` names it: native
/// pass-through.
fn native<'a>(state: &'a AppState, model: &'a str) -> Option<(&'a Inferencer, &'a str)> {
    match route(model, |p| state.inference.contains(p)) {
        Route::Provider { provider, model } if provider == "anthropic" => {
            let inf = state.inference.get(provider)?;
            inf.spec.builtin.then_some((inf.as_ref(), model))
        }
        _ => None,
    }
}

/// Native pass-through to Anthropic's `path` (`messages`,
/// `messages/count_tokens`), the client's version and beta headers passed on.
async fn pass_native(
    state: &AppState,
    headers: &HeaderMap,
    inf: &Inferencer,
    path: &str,
    model: &str,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    inf.auth()?;
    let relay = state
        .inference
        .anthropic(
            inf,
            path,
            model,
            body,
            header(headers, "anthropic-version"),
            header(headers, "anthropic-beta"),
        )
        .await?;
    Ok(super::passthrough::respond(relay))
}

/// `POST /v1/messages`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Response {
    let (served, result) = match body {
        Ok(JsonObject(body)) => {
            let model = body.get("model").and_then(Value::as_str).unwrap_or("");
            let origin = if native(&state, model).is_some() {
                "relayed"
            } else {
                "composed"
            };
            let served = Served::new(&state, model, origin);
            (served, messages(&state, &headers, body).await)
        }
        Err(e) => (Served::new(&state, "", "composed"), Err(e)),
    };
    served.answer(result, ApiError::anthropic_response)
}

async fn messages(
    state: &AppState,
    headers: &HeaderMap,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    let model = model_of(&body)?.to_string();
    if let Some((inf, bare)) = native(state, &model) {
        return pass_native(state, headers, inf, "messages", bare, body).await;
    }
    let request = request::translate(&body)?;
    let stops = match body.get("stop_sequences") {
        Some(Value::Array(s)) => s.clone(),
        _ => Vec::new(),
    };
    match route(&model, |p| state.inference.contains(p)) {
        Route::Recipe(name) => recipe(state, name, &model, request, &stops).await,
        Route::ClaudeAgent(_) => Err(RequestError::AgentNeedsState(model.clone()).into()),
        _ => {
            let target = resolve(state, &model, Endpoint::Chat)?;
            let mut chat = request.chat;
            chat.insert("model".into(), json!(target.model));
            // OpenAI's and Groq's APIs refuse a parameter they do not have.
            if target.inf.spec.builtin && matches!(target.inf.name(), "openai" | "groq") {
                chat.remove("top_k");
            }
            if !request.stream {
                let completion = state
                    .inference
                    .complete(&target.inf, &Value::Object(chat))
                    .await?;
                let message = response::from_completion(&completion, &model, &stops);
                return Ok(Json(message).into_response());
            }
            chat.insert("stream".into(), json!(true));
            chat.insert("stream_options".into(), json!({"include_usage": true}));
            // An upstream that refuses is a status, before any byte.
            let events = state
                .inference
                .stream(&target.inf, &Value::Object(chat))
                .await?;
            Ok(stream(&model, events.map(|e| e.map_err(ApiError::from))))
        }
    }
}

/// A recipe's hidden loop, answered whole or streamed.
async fn recipe(
    state: &AppState,
    name: &str,
    model: &str,
    request: request::Translated,
    stops: &[Value],
) -> Result<Response, ApiError> {
    if request.client_tools {
        return Err(RequestError::ClientToolsWithRecipe(name.to_string()).into());
    }
    let recipe = orchestrate::recipe(&state.config, name)?;
    let messages = match request.chat.get("messages") {
        Some(Value::Array(m)) => m.clone(),
        _ => Vec::new(),
    };
    let prepared = orchestrate::prepare(
        recipe,
        &state.inference,
        &state.tools,
        messages,
        request.stream,
    )
    .await?;
    let mut run = Box::pin(orchestrate::run(
        prepared,
        state.inference.clone(),
        state.tools.clone(),
    ));
    if !request.stream {
        while let Some(event) = run.next().await {
            if let Event::Final(completion) = event? {
                let message = response::from_completion(&completion, model, stops);
                return Ok(Json(message).into_response());
            }
        }
        return Err(orchestrate::Error::NoAnswer(name.to_string()).into());
    }
    // Prime: a setup or first-turn error is a status, not a stream.
    let first = match run.next().await {
        None => return Err(orchestrate::Error::NoAnswer(name.to_string()).into()),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(e)) => e,
    };
    let events = futures_util::stream::once(async move { Ok(first) })
        .chain(run)
        .flat_map(|e| {
            let out: Vec<Result<ChatEvent, ApiError>> = match e {
                Ok(Event::Delta(text)) => vec![Ok(ChatEvent::Delta(text))],
                Ok(Event::Final(completion)) => {
                    let mut v = Vec::new();
                    if let Some(u) = completion.get("usage").filter(|u| u.is_object()) {
                        v.push(Ok(ChatEvent::Usage(u.clone())));
                    }
                    v.push(Ok(ChatEvent::Finish("stop".into())));
                    v
                }
                Ok(Event::ToolCall { .. } | Event::ToolResult { .. }) => Vec::new(),
                Err(e) => vec![Err(ApiError::from(e))],
            };
            futures_util::stream::iter(out)
        });
    Ok(stream(model, events))
}

/// Anthropic's SSE for a stream of chat events: `message_start` at once, a
/// `ping` whenever the upstream is quiet for [`PING_EVERY`], an `error`
/// event if it fails, and always the end.
fn stream(
    model: &str,
    events: impl Stream<Item = Result<ChatEvent, ApiError>> + Send + 'static,
) -> Response {
    let builder = response::Events::new(model);
    let start = builder.start();
    let state = (Box::pin(events), builder);
    let rest = futures_util::stream::unfold(Some(state), |state| async move {
        let (mut events, mut builder) = state?;
        loop {
            let next = tokio::time::timeout(PING_EVERY, events.next()).await;
            let (bytes, done) = match next {
                Err(_) => (response::Events::ping(), false),
                Ok(Some(Ok(e))) => (builder.push(e), false),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "a streamed message failed");
                    (builder.fail(e.anthropic_type(), &e.message()), true)
                }
                Ok(None) => (builder.finish(), true),
            };
            if done {
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(bytes)), None));
            }
            if !bytes.is_empty() {
                return Some((Ok(Bytes::from(bytes)), Some((events, builder))));
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(start)) }).chain(rest);
    sse_response(Body::from_stream(body))
}

/// `POST /v1/messages/count_tokens`: Anthropic's own count for
/// `anthropic/<model>`; elsewhere an **estimate** (a quarter of the
/// characters of the system prompt, messages and tools), since backends
/// have no such call.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Response {
    let (served, result) = match body {
        Ok(JsonObject(body)) => {
            let model = body.get("model").and_then(Value::as_str).unwrap_or("");
            let served = Served::new(&state, model, "composed");
            (served, count(&state, &headers, body).await)
        }
        Err(e) => (Served::new(&state, "", "composed"), Err(e)),
    };
    served.answer(result, ApiError::anthropic_response)
}

async fn count(
    state: &AppState,
    headers: &HeaderMap,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    let model = model_of(&body)?.to_string();
    if let Some((inf, bare)) = native(state, &model) {
        return pass_native(state, headers, inf, "messages/count_tokens", bare, body).await;
    }
    // The model must be one woollama can route, as for a message.
    match route(&model, |p| state.inference.contains(p)) {
        Route::Recipe(name) => {
            orchestrate::recipe(&state.config, name)?;
        }
        Route::ClaudeAgent(_) => return Err(RequestError::AgentNeedsState(model).into()),
        _ => {
            resolve(state, &model, Endpoint::Chat)?;
        }
    }
    let translated = request::translate(&body)?;
    Ok(Json(json!({"input_tokens": estimate(&translated.chat)})).into_response())
}

#[cfg(test)]
pub(super) fn translate_for_tests(body: &Map<String, Value>) -> bool {
    request::translate(body).is_ok()
}

/// About four characters a token.
fn estimate(chat: &Map<String, Value>) -> u64 {
    let chars: usize = ["messages", "tools"]
        .iter()
        .filter_map(|k| chat.get(*k))
        .map(|v| v.to_string().chars().count())
        .sum();
    (chars as u64).div_ceil(4)
}
