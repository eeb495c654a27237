//! A stateful turn on `/v1/responses` (contract §4.6, store-backed §8.4).
//!
//! 1. The conversation: an explicit `conversation` wins (404 if unknown);
//!    else `previous_response_id` names one (404 if unknown) — a chain, not
//!    a fork; else `key` creates or attaches; else a new one. Naming both
//!    `conversation` and `previous_response_id` is a 400.
//! 2. Its backend: the one it has, or the one its first turn's model gets —
//!    `claude-resume` for `claude-code/<model>` (`resume`), `store-backed`
//!    for any other model when `mcp.json` configures a `conversationStore`,
//!    `managed-agents` for `claude-agent/<model>` (`agents`); none → 501. A turn whose model the
//!    conversation's backend cannot run is refused.
//! 3. One writer per conversation: a second turn waits for the first.
//! 4. The store's thread (created on the first turn) gives the earlier
//!    messages; the turn runs on them plus the new input (`instructions`
//!    apply to this turn only and are not stored); the new input and the
//!    answer are appended; the response id is recorded so a later
//!    `previous_response_id` finds the conversation.
//!
//! A streamed turn stores its answer when the stream ends, before
//! `response.completed` (a store that fails then fails the response).

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::input::Translated;
use super::output::Head;
use crate::conversations::Handle;
use crate::http::AppState;
use crate::http::error::{ApiError, RequestError};

const STORE_BACKED: &str = "store-backed";
pub(in crate::http) const CLAUDE_RESUME: &str = "claude-resume";
pub(in crate::http) const MANAGED_AGENTS: &str = "managed-agents";

fn id_field(body: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // `conversation` may also be `{"id": …}`, as OpenAI's SDK sends it.
        Some(Value::Object(o)) if o.get("id").is_some_and(Value::is_string) => {
            Ok(o.get("id").and_then(Value::as_str).map(str::to_string))
        }
        Some(_) => Err(RequestError::FieldType {
            field,
            expected: "a string id",
        }
        .into()),
    }
}

/// Runs a table call on the blocking pool.
async fn table<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&crate::conversations::Table) -> Result<T, crate::conversations::Error>
    + Send
    + 'static,
) -> Result<T, ApiError> {
    super::super::conversations::table(state, call).await
}

/// Which conversation this turn belongs to. A new one gets `backend`, and a
/// store-backed one its store thread at once (one write of the table, not
/// two).
async fn resolve(
    state: &AppState,
    body: &Map<String, Value>,
    backend: &'static str,
    model: &str,
) -> Result<Handle, ApiError> {
    let conversation = id_field(body, "conversation")?;
    let previous = id_field(body, "previous_response_id")?;
    let key = id_field(body, "key")?;
    match (conversation, previous) {
        (Some(_), Some(_)) => Err(RequestError::FieldType {
            field: "conversation",
            expected: "given without `previous_response_id` (name one or the other)",
        }
        .into()),
        (Some(id), None) => table(state, move |t| t.get(&id)).await,
        (None, Some(resp)) => table(state, move |t| t.conversation_of(&resp)).await,
        (None, None) => {
            let mut h = Handle::new(Some(model.to_string()), Some(backend.to_string()));
            if let (STORE_BACKED, Some(store)) = (backend, &state.conversation_store) {
                h.native_id = Some(store.create().await?);
            }
            h.key = key;
            let (h, created) = table(state, move |t| t.create(h)).await?;
            if created {
                state.metrics.conversation(backend);
            }
            Ok(h)
        }
    }
}

/// The backend that runs turns on `model`, checked before any conversation
/// or thread is made for it.
pub(in crate::http) fn backend_for(
    state: &AppState,
    model: &str,
) -> Result<&'static str, ApiError> {
    use crate::routing::Route;
    match crate::routing::route(model, |p| state.inference.contains(p)) {
        Route::ClaudeCode(_) => return Ok(CLAUDE_RESUME),
        Route::ClaudeAgent(_) => {
            state
                .inference
                .agents()
                .ready()
                .map_err(crate::inference::Error::from)?;
            return Ok(MANAGED_AGENTS);
        }
        Route::Recipe(name) => {
            crate::orchestrate::recipe(&state.config, name)?;
        }
        _ => {
            crate::http::passthrough::resolve(state, model, crate::inference::Endpoint::Chat)?;
        }
    }
    if state.conversation_store.is_none() {
        return Err(RequestError::NoStatefulBackend(model.to_string()).into());
    }
    Ok(STORE_BACKED)
}

/// One stateful turn, streamed or not.
pub(super) async fn turn(
    state: &AppState,
    body: &Map<String, Value>,
    model: &str,
    request: Translated,
    mut head: Head,
) -> Result<Response, ApiError> {
    let backend = backend_for(state, model)?;
    let handle = resolve(state, body, backend, model).await?;
    // Held until the answer is stored (for a stream: until its end).
    let one_at_a_time = state.conversations.lock(&handle.id).await?;
    let id = handle.id.clone();
    let handle = table(state, move |t| t.get(&id)).await?;
    // A conversation made without a model takes this turn's backend.
    let theirs = handle.backend.as_deref().unwrap_or(backend);
    if theirs != backend {
        return Err(RequestError::NoStatefulBackend(format!(
            "{model}' (conversation {} belongs to backend '{theirs}'",
            handle.id
        ))
        .into());
    }
    if handle.backend.is_none() {
        // A conversation made without a model belongs to this turn's
        // backend from now on (its items and its DELETE go there).
        let (id, m) = (handle.id.clone(), model.to_string());
        table(state, move |t| {
            t.update(&id, |h| {
                h.backend = Some(backend.to_string());
                h.model.get_or_insert(m);
            })
        })
        .await?;
    }
    head.conversation = Some(handle.id.clone());
    head.previous_response_id = id_field(body, "previous_response_id")?;
    if backend == CLAUDE_RESUME {
        return super::resume::turn(state, handle, model, request, head, one_at_a_time).await;
    }
    if backend == MANAGED_AGENTS {
        return super::agents::turn(state, handle, model, request, head, one_at_a_time).await;
    }
    store_backed(state, handle, model, request, head, one_at_a_time).await
}

/// A store-backed turn: the earlier messages from the store, the new ones
/// and the answer appended to it.
async fn store_backed(
    state: &AppState,
    handle: Handle,
    model: &str,
    mut request: Translated,
    head: Head,
    one_at_a_time: crate::conversations::Writer,
) -> Result<Response, ApiError> {
    let store = match &state.conversation_store {
        Some(s) => s.clone(),
        None => return Err(RequestError::NoStatefulBackend(model.to_string()).into()),
    };
    let thread = match &handle.native_id {
        Some(t) => t.clone(),
        None => {
            let thread = store.create().await?;
            let (id, t, m) = (handle.id.clone(), thread.clone(), model.to_string());
            table(state, move |tab| {
                tab.update(&id, |h| {
                    h.native_id = Some(t);
                    h.backend = Some(STORE_BACKED.to_string());
                    h.model.get_or_insert(m);
                })
            })
            .await?;
            thread
        }
    };
    let prior = store.get(&thread).await?;
    let (system, new): (Vec<Value>, Vec<Value>) = match request.chat.remove("messages") {
        Some(Value::Array(m)) => m.into_iter().partition(|m| m["role"] == "system"),
        _ => (Vec::new(), Vec::new()),
    };
    let mut messages = system;
    messages.extend(prior);
    messages.extend(new.iter().cloned());
    request
        .chat
        .insert("messages".into(), Value::Array(messages));

    // What happens to the answer: appended with the new input, and the
    // response id recorded; then the writer lock is released.
    let (st, response, conversation) = (state.clone(), head.id.clone(), handle.id.clone());
    let persist =
        move |answer: Value| -> futures_util::future::BoxFuture<'static, Result<(), ApiError>> {
            Box::pin(async move {
                let _held = one_at_a_time;
                let mut appended = new;
                appended.push(stored(answer));
                store.append(&thread, appended).await?;
                table(&st, move |t| t.record_turn(&response, &conversation)).await?;
                Ok(())
            })
        };
    if request.stream {
        return super::streamed(state, model, request, head, Some(Box::new(persist))).await;
    }
    let mut completion = super::whole(state, model, &request).await?;
    // A call the upstream gave no id gets one here, so the stored turn and
    // the response show the same id (the next turn's output refers to it).
    if let Some(Value::Array(calls)) = completion.pointer_mut("/choices/0/message/tool_calls") {
        for call in calls {
            if call
                .get("id")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                call["id"] = json!(format!("call_{}", uuid::Uuid::new_v4().simple()));
            }
        }
    }
    let answer = completion
        .pointer("/choices/0/message")
        .cloned()
        .unwrap_or_else(|| json!({"role": "assistant", "content": ""}));
    persist(answer).await?;
    Ok(Json(head.completed(&completion)).into_response())
}

/// The answer as the store keeps it: role, content and tool calls.
fn stored(mut answer: Value) -> Value {
    if let Value::Object(m) = &mut answer {
        m.retain(|k, _| matches!(k.as_str(), "role" | "content" | "tool_calls"));
    }
    answer
}
