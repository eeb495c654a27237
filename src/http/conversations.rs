//! `/v1/conversations` (contract §4.7; DESIGN decision 8): the handles of
//! conversations whose state lives in a backend.
//!
//! - `POST /v1/conversations` — create (201), or attach by `key` (200);
//!   `model` is optional, as in OpenAI's API, so the SDK's bare
//!   `conversations.create()` works: such a conversation takes its backend
//!   from its first turn.
//! - `GET /v1/conversations` — oldest first by default; `order`, `limit`
//!   (1–100, default 20) and `after` page it.
//! - `GET|POST|DELETE /v1/conversations/{id}` — read, update `metadata` /
//!   `title`, delete.
//! - `GET /v1/conversations/{id}/items` — the conversation's items, from its
//!   backend.
//!
//! A conversation's backend is the one its model gets (`claude-resume` for
//! `claude-code/<model>`, `managed-agents` for `claude-agent/<model>`,
//! `store-backed` for others when a store is configured), or an explicit
//! `backend` that can run; none → 501. Initial `items` are refused (501): no backend takes a
//! history it did not make. `/items` comes from the backend: the store's
//! thread, Claude's session transcript, or the hosted session's history. The table calls are blocking
//! file I/O, so they run on the blocking pool.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, RequestError};
use super::json::{JsonObject, PathId};
use crate::conversations::{self, Handle, Order, Table};

/// Runs a table call on the blocking pool.
pub(super) async fn table<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Table) -> Result<T, conversations::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let t = state.conversations.clone();
    tokio::task::spawn_blocking(move || call(&t))
        .await
        .map_err(|e| ApiError::from(conversations::Error::Unavailable(e.to_string())))?
        .map_err(ApiError::from)
}

fn string(body: &Map<String, Value>, field: &'static str) -> Result<Option<String>, RequestError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RequestError::FieldType {
            field,
            expected: "a string",
        }),
    }
}

fn metadata(body: &Map<String, Value>) -> Result<Option<Map<String, Value>>, RequestError> {
    match body.get("metadata") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) if m.len() <= 16 => Ok(Some(m.clone())),
        Some(_) => Err(RequestError::FieldType {
            field: "metadata",
            expected: "an object of at most 16 keys",
        }),
    }
}

/// `POST /v1/conversations`.
pub async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The SDK's bare `conversations.create()` may send no body at all.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        super::json::object_of(&body)?
    };
    let model = string(&body, "model")?;
    let derived = match &model {
        Some(m) => Some(backend_for(&state, m)?),
        None => None,
    };
    let backend = match (string(&body, "backend")?, derived) {
        (None, d) => d.map(str::to_string),
        (Some(b), Some(d)) if b == d => Some(b),
        (Some(b), None) if b == STORE_BACKED && state.conversation_store.is_some() => Some(b),
        (Some(b), _) => {
            let shown = format!("{}' (backend '{b}'", model.clone().unwrap_or_default());
            return Err(RequestError::NoStatefulBackend(shown).into());
        }
    };
    if body
        .get("items")
        .is_some_and(|i| i.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(RequestError::NoStatefulBackend("(initial items)".into()).into());
    }
    let mut handle = Handle::new(model, backend);
    handle.key = string(&body, "key")?;
    handle.title = string(&body, "title")?;
    handle.metadata = metadata(&body)?.unwrap_or_default();
    let (handle, created) = table(&state, move |t| t.create(handle)).await?;
    if created {
        state
            .metrics
            .conversation(handle.backend.as_deref().unwrap_or("none"));
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(handle.object())).into_response())
}

/// `order`, `limit` and `after` from a query string.
fn paging(query: Option<&str>) -> Result<(Order, usize, Option<String>), RequestError> {
    let (mut order, mut limit, mut after) = (Order::Asc, 20, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "order" => {
                order = match v.as_ref() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => {
                        return Err(RequestError::FieldType {
                            field: "order",
                            expected: "`asc` or `desc`",
                        });
                    }
                }
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or(RequestError::FieldType {
                        field: "limit",
                        expected: "a number from 1 to 100",
                    })?;
            }
            "after" => after = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok((order, limit, after))
}

fn list_of(data: Vec<Value>, has_more: bool) -> Value {
    let first = data.first().and_then(|v| v.get("id")).cloned();
    let last = data.last().and_then(|v| v.get("id")).cloned();
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

/// `GET /v1/conversations`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (order, limit, after) = paging(query.as_deref())?;
    let page = table(&state, move |t| t.list(order, after.as_deref(), limit)).await?;
    let data = page.data.iter().map(Handle::object).collect();
    Ok(Json(list_of(data, page.has_more)))
}

/// `GET /v1/conversations/{id}`.
pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let h = table(&state, move |t| t.get(&id)).await?;
    Ok(Json(h.object()))
}

/// `POST /v1/conversations/{id}`: `metadata` (replaced whole, as OpenAI
/// does) and `title`.
pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let metadata = metadata(&body)?;
    let title = string(&body, "title")?;
    // Only a conversation that exists gets a writer lock (each id seen would
    // otherwise keep one).
    let known = id.clone();
    table(&state, move |t| t.get(&known)).await?;
    // Not in the middle of a turn (which updates the handle too).
    let _one_at_a_time = state.conversations.lock(&id).await?;
    let h = table(&state, move |t| {
        t.update(&id, |h| {
            if let Some(m) = metadata {
                h.metadata = m;
            }
            if title.is_some() {
                h.title = title;
            }
        })
    })
    .await?;
    Ok(Json(h.object()))
}

/// `DELETE /v1/conversations/{id}`: the backend's teardown (the store's
/// thread), then the handle.
pub async fn delete(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let known = id.clone();
    let h = table(&state, move |t| t.get(&known)).await?;
    // Not in the middle of a turn, which would append to a deleted thread.
    let _one_at_a_time = state.conversations.lock(&h.id).await?;
    match (
        h.backend.as_deref(),
        &state.conversation_store,
        &h.native_id,
    ) {
        (Some(CLAUDE_RESUME), _, _) => {
            // Claude's session files are the user's own; the directory is ours.
            let dir = state.inference.claude().conversation_dir(&h.id);
            let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    tracing::warn!(dir = %dir.display(), "cannot remove the conversation's directory: {e}");
                }
                _ => {}
            })
            .await;
        }
        (Some(MANAGED_AGENTS), _, Some(session)) => {
            state
                .inference
                .agents()
                .delete(session)
                .await
                .map_err(crate::inference::Error::from)?;
        }
        (Some(MANAGED_AGENTS), _, None) => {}
        (_, Some(store), Some(thread)) => store.delete(thread).await?,
        _ => {}
    }
    let h = table(&state, move |t| t.delete(&id)).await?;
    Ok(Json(
        json!({"id": h.id, "object": "conversation.deleted", "deleted": true}),
    ))
}

/// `GET /v1/conversations/{id}/items`: from the backend; a conversation
/// without one (all of them, until a backend is built in) has none.
pub async fn items(
    State(state): State<AppState>,
    PathId(id): PathId,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (order, limit, after) = paging(query.as_deref())?;
    let h = table(&state, move |t| t.get(&id)).await?;
    let messages = match (
        h.backend.as_deref(),
        &state.conversation_store,
        &h.native_id,
    ) {
        (Some(CLAUDE_RESUME), _, Some(session)) => {
            let (cli, session) = (state.inference.claude().clone(), session.clone());
            tokio::task::spawn_blocking(move || cli.transcript(&session))
                .await
                .map_err(|e| ApiError::from(conversations::Error::Unavailable(e.to_string())))?
                .map_err(|source| crate::inference::Error::Claude {
                    backend: "claude-resume",
                    source,
                })?
        }
        (Some(CLAUDE_RESUME | MANAGED_AGENTS), _, None) => Vec::new(),
        (Some(MANAGED_AGENTS), _, Some(session)) => state
            .inference
            .agents()
            .history(session)
            .await
            .map_err(crate::inference::Error::from)?,
        (_, Some(store), Some(thread)) => store.get(thread).await?,
        _ => Vec::new(),
    };
    // Ids stable across reads: the conversation's and the item's position.
    let mut items: Vec<Value> = messages
        .iter()
        .enumerate()
        .flat_map(|(i, m)| items_of(&h.id, i, m))
        .collect();
    if order == Order::Desc {
        items.reverse();
    }
    let start = match after {
        Some(a) => {
            items
                .iter()
                .position(|i| i["id"] == a.as_str())
                .ok_or(conversations::Error::UnknownCursor(a))?
                + 1
        }
        None => 0,
    };
    let rest: Vec<Value> = items.into_iter().skip(start).collect();
    let has_more = rest.len() > limit;
    Ok(Json(list_of(
        rest.into_iter().take(limit).collect(),
        has_more,
    )))
}

const STORE_BACKED: &str = "store-backed";
use super::responses::stateful::{CLAUDE_RESUME, MANAGED_AGENTS, backend_for};

/// A stored chat message as conversation items: a message, a tool result as
/// a `function_call_output`, an assistant's tool calls as `function_call`s
/// (after its text, if any).
fn items_of(conversation: &str, index: usize, m: &Value) -> Vec<Value> {
    let suffix = conversation.trim_start_matches("conv_");
    let role = m["role"].as_str().unwrap_or("user");
    if role == "tool" {
        return vec![
            json!({"id": format!("fco_{suffix}_{index}"), "type": "function_call_output",
            "call_id": m["tool_call_id"], "output": m["content"], "status": "completed"}),
        ];
    }
    let mut out = Vec::new();
    let has_text = m["content"].as_str().is_some_and(|t| !t.is_empty()) || m["content"].is_array();
    let calls = m["tool_calls"].as_array().cloned().unwrap_or_default();
    if has_text || calls.is_empty() {
        out.push(item(conversation, index, m));
    }
    for (n, call) in calls.iter().enumerate() {
        out.push(
            json!({"id": format!("fc_{suffix}_{index}_{n}"), "type": "function_call",
            "call_id": call["id"], "name": call["function"]["name"],
            "arguments": call["function"]["arguments"], "status": "completed"}),
        );
    }
    out
}

/// A stored chat message as a message item.
fn item(conversation: &str, index: usize, m: &Value) -> Value {
    let role = m["role"].as_str().unwrap_or("user");
    let text = match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    };
    let part = if role == "assistant" {
        json!({"type": "output_text", "text": text, "annotations": []})
    } else {
        json!({"type": "input_text", "text": text})
    };
    let suffix = conversation.trim_start_matches("conv_");
    json!({"id": format!("msg_{suffix}_{index}"), "type": "message", "status": "completed", "role": role, "content": [part]})
}
