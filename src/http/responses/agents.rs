//! A `managed-agents` turn (contract §8.3): a `claude-agent/<model>`
//! conversation is a session of Anthropic's hosted agents, which holds the
//! history — so a turn sends only the user's latest text.
//!
//! - The session is made on the first turn and kept as the handle's native
//!   id.
//! - A turn that ends with the agent asking the user (its `ask_user` tool)
//!   answers `status: "requires_action"` with
//!   `required_action: {type: "ask_user", question: <the tool's input>}` (a
//!   superset of OpenAI's response), and the conversation is
//!   `awaiting_input` with the pending call remembered; the next turn's text
//!   is sent as that call's result.
//! - Answered whole: a hosted turn is not streamed (`stream: true` is a
//!   400 that says so). Client tools are refused: the agent has its own.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::input::Translated;
use super::output::Head;
use crate::conversations::{Handle, Status, Writer};
use crate::http::AppState;
use crate::http::error::{ApiError, RequestError};
use crate::inference::{self, agents};
use crate::routing::{Route, route};

/// The text of the last user message of this turn's input.
fn latest_user_text(request: &Translated) -> String {
    let messages = request
        .chat
        .get("messages")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(inference::claude::message_text)
        .unwrap_or_default()
}

pub(super) async fn turn(
    state: &AppState,
    handle: Handle,
    model: &str,
    request: Translated,
    head: Head,
    writer: Writer,
) -> Result<Response, ApiError> {
    if request.stream {
        return Err(RequestError::AgentNotStreamed(model.to_string()).into());
    }
    if request.client_tools {
        return Err(inference::Error::Refused(format!(
            "'{model}' is a hosted agent with its own tools; drop `tools`"
        ))
        .into());
    }
    let bare = match route(model, |p| state.inference.contains(p)) {
        Route::ClaudeAgent(m) => m.to_string(),
        _ => String::new(),
    };
    let text = latest_user_text(&request);
    let client = state.inference.agents();
    let session = match &handle.native_id {
        Some(s) => s.clone(),
        None => {
            let s = client
                .session(&bare)
                .await
                .map_err(inference::Error::from)?;
            let (id, sid) = (handle.id.clone(), s.clone());
            super::super::conversations::table(state, move |t| {
                t.update(&id, |h| {
                    h.native_id = Some(sid);
                })
            })
            .await?;
            s
        }
    };
    let input = match (handle.status, &handle.pending) {
        (Status::AwaitingInput, Some(pending)) => agents::Input::Answer {
            tool_use_id: pending.clone(),
            text,
        },
        _ => agents::Input::Message(text),
    };
    let turn = client
        .turn(&session, input)
        .await
        .map_err(inference::Error::from)?;

    let (id, response) = (handle.id.clone(), head.id.clone());
    let pending = turn.asks.as_ref().map(|(id, _)| id.clone());
    super::super::conversations::table(state, move |t| {
        t.update(&id, |h| {
            h.status = if pending.is_some() {
                Status::AwaitingInput
            } else {
                Status::Idle
            };
            h.pending = pending;
        })?;
        t.record_turn(&response, &id)
    })
    .await?;
    drop(writer);

    let completion = json!({
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": turn.text}}],
    });
    let mut body = head.completed(&completion);
    if let Some((_, question)) = turn.asks {
        body["status"] = json!("requires_action");
        body["required_action"] = json!({"type": "ask_user", "question": question});
    }
    Ok(Json(body).into_response())
}
