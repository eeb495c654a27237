//! A `claude-resume` turn (contract §8.2; DESIGN decision 9): a
//! `claude-code/<model>` conversation is Claude's own session.
//!
//! - Every turn runs in the conversation's working directory, stable and
//!   under the state dir (`<state>/claude/conversations/<id>`, 0700), since
//!   Claude scopes sessions by directory: it survives a restart of woollama,
//!   and the conversation resumes.
//! - The first turn starts a session (with `instructions` as the system
//!   prompt, if any) and its `session_id` is kept as the handle's native id;
//!   every later turn sends only its new input with `--resume <id>` and no
//!   system prompt — Claude holds the history.
//! - `/items` reads the session's transcript Claude keeps; DELETE removes
//!   the working directory (Claude's session files are the user's own).
//! - Streaming relays the text deltas as they come; the session id is
//!   recorded when the stream ends, before `response.completed`.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Json;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;

use super::input::Translated;
use super::output::Head;
use super::{Loop, Persist};
use crate::conversations::{Handle, Writer};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::inference::{self, ChatEvent, claude};
use crate::routing::{Route, route};

fn failed(source: claude::Error) -> ApiError {
    inference::Error::Claude {
        backend: "claude-resume",
        source,
    }
    .into()
}

/// Records what a finished turn changes: the session id (first turn), the
/// response id.
async fn record(
    state: &AppState,
    conversation: String,
    response: String,
    session: Option<String>,
) -> Result<(), ApiError> {
    super::super::conversations::table(state, move |t| {
        if let Some(sid) = session {
            t.update(&conversation, |h| {
                h.native_id.get_or_insert(sid);
            })?;
        }
        t.record_turn(&response, &conversation)
    })
    .await
}

pub(super) async fn turn(
    state: &AppState,
    handle: Handle,
    model: &str,
    request: Translated,
    head: Head,
    writer: Writer,
) -> Result<Response, ApiError> {
    let bare = match route(model, |p| state.inference.contains(p)) {
        Route::ClaudeCode(m) => m.to_string(),
        _ => String::new(),
    };
    if request.client_tools {
        return Err(inference::Error::Refused(inference::CLIENT_TOOLS.into()).into());
    }
    let messages = match request.chat.get("messages") {
        Some(Value::Array(m)) => m.clone(),
        _ => Vec::new(),
    };
    let (system, prompt) = claude::flatten(&messages);
    let cli = state.inference.claude();
    let call = claude::Call {
        model: bare.clone(),
        system,
        prompt,
        resume: handle.native_id.clone(),
        workdir: Some(cli.conversation_dir(&handle.id)),
        delegate: None,
    };
    let (conversation, response) = (handle.id.clone(), head.id.clone());

    if !request.stream {
        let answer = cli.run(call).await.map_err(failed)?;
        record(state, conversation, response, answer.session_id.clone()).await?;
        drop(writer);
        let completion = inference::claude_completion(&bare, &answer);
        return Ok(Json(head.completed(&completion)).into_response());
    }

    let session = Arc::new(Mutex::new(None::<String>));
    let seen = Arc::clone(&session);
    let events = cli.events(call, true).filter_map(move |e| {
        let out = match e {
            Ok(claude::Event::Delta(t)) => Some(Ok(Loop::Event(ChatEvent::Delta(t)))),
            Ok(claude::Event::Done(answer)) => {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone_from(&answer.session_id);
                Some(Ok(Loop::Final(inference::claude_completion(
                    &bare, &answer,
                ))))
            }
            Ok(_) => None,
            Err(e) => Some(Err(failed(e))),
        };
        std::future::ready(out)
    });
    let mut events = Box::pin(events);
    // Prime: a CLI that cannot start is a JSON status, not a stream.
    let first = match events.next().await {
        Some(Err(e)) => return Err(e),
        other => other,
    };
    let st = state.clone();
    let persist: Persist = Box::new(move |_answer| {
        Box::pin(async move {
            let _held = writer;
            let sid = session
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            record(&st, conversation, response, sid).await
        })
    });
    let events = futures_util::stream::iter(first).chain(events);
    Ok(super::stream_loop(head, events, Some(persist)))
}
