//! `POST /v1/responses`, stateless (contract §4.6; DESIGN decision 8).
//!
//! Routed like chat, from the full registry: `<provider>/<model>` (config-
//! defined inferencers too; Ollama's `options.num_ctx` through the native
//! route when not streaming) and `woollama/<recipe>` with the hidden tool
//! loop. The request becomes a chat request (`input`), the chat answer a
//! `response` object or the Responses event sequence (`output`).
//!
//! - Client function tools work over any chat backend: the model's tool
//!   calls come back as `function_call` items, and the next request's
//!   `function_call` / `function_call_output` items become the assistant's
//!   tool calls and the tool messages. A recipe keeps its own MCP tools
//!   hidden and refuses client tools.
//! - Streaming: setup errors (unknown model, missing key, an upstream that
//!   refuses) are JSON statuses before any byte; once the stream started, a
//!   failure is `event: error` and `response.failed`, never a
//!   `response.completed` that would pass a cut-off answer as whole.
//! - Requests that name conversation state (`store: true`, `conversation`,
//!   `previous_response_id`, `key`) are refused with 501 until the
//!   conversation layer lands.

mod agents;
mod input;
mod output;
mod resume;
pub(super) mod stateful;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, RequestError};
use super::json::{JsonObject, model_of};
use super::passthrough::{Target, resolve, sse_response};
use crate::inference::{ChatEvent, Endpoint};
use crate::orchestrate::{self, Event};
use crate::routing::{Route, route};
use input::Translated;
use output::{Events, Head};

/// `POST /v1/responses`.
pub async fn create(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let model = model_of(&body)?.to_string();
    let served = super::access::Served::new(&state, &model, "composed");
    let result = respond(&state, &body, &model).await;
    Ok(served.answer(result, IntoResponse::into_response))
}

async fn respond(
    state: &AppState,
    body: &serde_json::Map<String, Value>,
    model: &str,
) -> Result<Response, ApiError> {
    let request = input::translate(body)?;
    let head = Head::new(model, request.echo.clone(), request.names.clone());
    if input::is_stateful(body) {
        return stateful::turn(state, body, model, request, head).await;
    }
    if !request.stream {
        let completion = whole(state, model, &request).await?;
        return Ok(Json(head.completed(&completion)).into_response());
    }
    streamed(state, model, request, head, None).await
}

/// What a stateful turn does with the answer before the stream says
/// `response.completed`: store it (an error fails the response instead).
type Persist =
    Box<dyn FnOnce(Value) -> futures_util::future::BoxFuture<'static, Result<(), ApiError>> + Send>;

/// One turn's answer, streamed.
async fn streamed(
    state: &AppState,
    model: &str,
    request: Translated,
    head: Head,
    persist: Option<Persist>,
) -> Result<Response, ApiError> {
    match route(model, |p| state.inference.contains(p)) {
        Route::Recipe(name) => recipe_stream(state, name, request, head, persist).await,
        Route::ClaudeAgent(_) => Err(RequestError::AgentNeedsState(model.to_string()).into()),
        _ => {
            let target = resolve(state, model, Endpoint::Chat)?;
            provider_stream(state, &target, request, head, persist).await
        }
    }
}

/// One turn's whole answer, not streamed: the final `chat.completion` of a
/// provider model, or of a recipe's hidden loop.
async fn whole(state: &AppState, model: &str, request: &Translated) -> Result<Value, ApiError> {
    match route(model, |p| state.inference.contains(p)) {
        Route::Recipe(name) => {
            let mut run = start_recipe(state, name, request, false).await?;
            while let Some(event) = run.next().await {
                if let Event::Final(completion) = event? {
                    return Ok(completion);
                }
            }
            Err(orchestrate::Error::NoAnswer(name.to_string()).into())
        }
        // Hosted agents own their state: only stateful turns reach them.
        Route::ClaudeAgent(_) => Err(RequestError::AgentNeedsState(model.to_string()).into()),
        _ => {
            let target = resolve(state, model, Endpoint::Chat)?;
            let mut body = request.chat.clone();
            body.insert("model".into(), json!(target.model));
            body.insert("stream".into(), json!(false));
            Ok(state
                .inference
                .answer(&target.inf, &Value::Object(body))
                .await?)
        }
    }
}

/// A provider model's streamed turn.
async fn provider_stream(
    state: &AppState,
    target: &Target,
    request: Translated,
    head: Head,
    persist: Option<Persist>,
) -> Result<Response, ApiError> {
    let mut body = request.chat;
    body.insert("model".into(), json!(target.model));
    body.insert("stream".into(), json!(true));
    // `usage` comes on the last chunk only when asked for.
    body.insert("stream_options".into(), json!({"include_usage": true}));
    let events = state
        .inference
        .stream(&target.inf, &Value::Object(body))
        .await?;
    Ok(stream_loop(
        head,
        events.map(|e| e.map(Loop::Event).map_err(ApiError::from)),
        persist,
    ))
}

/// A recipe's loop, set up (client tools refused: a recipe runs its own).
async fn start_recipe(
    state: &AppState,
    name: &str,
    request: &Translated,
    stream: bool,
) -> Result<std::pin::Pin<Box<orchestrate::Events>>, ApiError> {
    if request.client_tools {
        return Err(RequestError::ClientToolsWithRecipe(name.to_string()).into());
    }
    let recipe = orchestrate::recipe(&state.config, name)?;
    let messages = match request.chat.get("messages") {
        Some(Value::Array(m)) => m.clone(),
        _ => Vec::new(),
    };
    let prepared =
        orchestrate::prepare(recipe, &state.inference, &state.tools, messages, stream).await?;
    Ok(Box::pin(orchestrate::run(
        prepared,
        state.inference.clone(),
        state.tools.clone(),
    )))
}

/// A recipe's streamed answer: its text, tool turns hidden.
async fn recipe_stream(
    state: &AppState,
    name: &str,
    request: Translated,
    head: Head,
    persist: Option<Persist>,
) -> Result<Response, ApiError> {
    let mut run = start_recipe(state, name, &request, true).await?;
    // Prime: a setup or first-turn error is a JSON status, not a stream.
    let first = match run.next().await {
        None => return Err(orchestrate::Error::NoAnswer(name.to_string()).into()),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(e)) => e,
    };
    let events = futures_util::stream::once(async move { Ok(first) })
        .chain(run)
        .filter_map(|e| async move {
            match e {
                Ok(Event::Delta(text)) => Some(Ok(Loop::Event(ChatEvent::Delta(text)))),
                Ok(Event::Final(completion)) => Some(Ok(Loop::Final(completion))),
                Ok(Event::ToolCall { .. } | Event::ToolResult { .. }) => None,
                Err(e) => Some(Err(ApiError::from(e))),
            }
        });
    Ok(stream_loop(head, events, persist))
}

/// Runs a stateful turn's `persist` (if any) on the answer.
async fn store(persist: Option<Persist>, answer: Value) -> Result<(), ApiError> {
    match persist {
        Some(p) => p(answer).await,
        None => Ok(()),
    }
}

#[cfg(test)]
pub(in crate::http) fn translate_for_tests(body: &serde_json::Map<String, Value>) -> bool {
    input::translate(body).is_ok()
}

/// What the recipe loop contributes to a streamed answer.
enum Loop {
    Event(ChatEvent),
    /// The final turn's `chat.completion` (its `usage`).
    Final(Value),
}

/// The Responses event sequence for a stream of chat events: `created` and
/// `in_progress` first, the items as they come, then `completed` — or,
/// when the stream fails, `error` and `failed`.
fn stream_loop(
    head: Head,
    events: impl Stream<Item = Result<Loop, ApiError>> + Send + 'static,
    persist: Option<Persist>,
) -> Response {
    let mut builder = Events::new(head);
    let start = builder.start();
    let events = Box::pin(events);
    let state = (events, builder, persist);
    let rest = futures_util::stream::unfold(Some(state), |state| async move {
        let (mut events, mut builder, mut persist) = state?;
        loop {
            let (bytes, done) = match events.next().await {
                Some(Ok(Loop::Event(e))) => (builder.push(e), false),
                Some(Ok(Loop::Final(completion))) => {
                    let answer = completion.pointer("/choices/0/message").cloned();
                    let answer = answer.unwrap_or_else(|| builder.message());
                    match store(persist.take(), answer).await {
                        Ok(()) => (builder.finish(completion.get("usage")), true),
                        Err(e) => (builder.fail(e.code(), &e.to_string()), true),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a streamed response failed");
                    (builder.fail(e.code(), &e.to_string()), true)
                }
                None => match store(persist.take(), builder.message()).await {
                    Ok(()) => (builder.finish(None), true),
                    Err(e) => (builder.fail(e.code(), &e.to_string()), true),
                },
            };
            if done {
                return Some((Ok::<_, std::convert::Infallible>(Bytes::from(bytes)), None));
            }
            if !bytes.is_empty() {
                return Some((Ok(Bytes::from(bytes)), Some((events, builder, persist))));
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(Bytes::from(start)) }).chain(rest);
    sse_response(Body::from_stream(body))
}
