//! Anthropic's managed agents: hosted agent sessions behind
//! `claude-agent/<model>` (contract §8.3).
//!
//! Raw REST against `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com`)
//! with `x-api-key: $ANTHROPIC_API_KEY`, `anthropic-version: 2023-06-01` and
//! `anthropic-beta: managed-agents-2026-04-01`, through the process's one
//! HTTP client; 330 s per call.
//!
//! - One **environment** and one **agent per model** (with the `ask_user`
//!   custom tool) serve every conversation. They are created once and their
//!   ids kept in `<state dir>/managed-agents.json` (0600) across restarts,
//!   each verified with a `GET` on its first use in a process — one deleted
//!   in the console is made again, not failed on.
//! - A **session** per conversation, made on its first turn.
//! - A **turn** opens the session's event stream (it does not replay what
//!   came before it opened), posts the user's latest text (Anthropic holds
//!   the history) — or, when the agent asked the user something, the
//!   answer as the `user.custom_tool_result` of that `ask_user` call — and
//!   reads the stream until `session.status_idle`: the agent's text,
//!   and whether it stopped to ask (`requires_action`, naming the pending
//!   custom tool use). `session.error` fails the turn.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::sse::DataLines;
use crate::config::{Env, Secret};

/// The beta the managed-agents API is under.
pub const BETA: &str = "managed-agents-2026-04-01";
const VERSION: &str = "2023-06-01";
const TIMEOUT: Duration = Duration::from_secs(330);

/// Why a managed-agents call failed (shown after "managed-agents backend: ").
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "ANTHROPIC_API_KEY is not set: claude-agent/<model> runs on Anthropic's managed agents, which need an Anthropic API key in woollama's environment"
    )]
    NoKey,
    #[error("{call} failed: {detail}")]
    Transport { call: String, detail: String },
    #[error("{call} answered {status}: {body}")]
    Status {
        call: String,
        status: u16,
        body: String,
    },
    #[error("{call} answered something woollama could not read: {detail}")]
    BadResponse { call: String, detail: String },
    #[error("the session reported an error: {0}")]
    Session(String),
    #[error("the session's event stream ended before the agent finished its turn")]
    Cut,
    #[error("the turn took longer than {}s", TIMEOUT.as_secs())]
    Timeout,
}

/// The most of one JSON answer of the API woollama reads (a session's
/// event list is the longest).
const ANSWER_LIMIT: usize = 32 * 1024 * 1024;

/// The model id an alias names (contract §8.3).
pub fn model_id(alias: &str) -> &str {
    match alias {
        "" | "opus" => "claude-opus-4-8",
        "sonnet" => "claude-sonnet-4-6",
        "haiku" => "claude-haiku-4-5",
        other => other,
    }
}

/// What the user sends in a turn.
#[derive(Debug, Clone)]
pub enum Input {
    /// The user's latest text.
    Message(String),
    /// The answer to the agent's pending `ask_user` call.
    Answer { tool_use_id: String, text: String },
}

/// A finished turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The agent's text, its messages joined.
    pub text: String,
    /// The agent stopped to ask the user: the custom tool use's id and its
    /// input (`{question, options}`).
    pub asks: Option<(String, Value)>,
}

/// The environment and agent ids kept across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    base_url: String,
    environment: Option<String>,
    agents: BTreeMap<String, String>,
}

/// The managed-agents client.
#[derive(Debug)]
pub struct Agents {
    client: reqwest::Client,
    base: String,
    key: Option<Secret>,
    cache_file: PathBuf,
    /// The cache, and which of its ids this process has verified.
    state: tokio::sync::Mutex<(Cache, HashSet<String>)>,
}

impl Agents {
    pub fn new(env: &Env, state_dir: &std::path::Path, client: reqwest::Client) -> Self {
        let base = env
            .non_empty("ANTHROPIC_BASE_URL")
            .unwrap_or("https://api.anthropic.com")
            .trim()
            .trim_end_matches('/')
            .to_string();
        let cache_file = state_dir.join("managed-agents.json");
        let cache = std::fs::read(&cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
            .filter(|c| c.base_url == base)
            .unwrap_or_else(|| Cache {
                base_url: base.clone(),
                ..Cache::default()
            });
        Self {
            client,
            base,
            key: env.non_empty("ANTHROPIC_API_KEY").map(Secret::new),
            cache_file,
            state: tokio::sync::Mutex::new((cache, HashSet::new())),
        }
    }

    /// Fails fast, before any conversation is made, without a key.
    pub fn ready(&self) -> Result<(), Error> {
        self.key.as_ref().map(|_| ()).ok_or(Error::NoKey)
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let key = self.key.as_ref().ok_or(Error::NoKey)?;
        let mut value =
            reqwest::header::HeaderValue::from_str(key.expose()).map_err(|_| Error::NoKey)?;
        value.set_sensitive(true);
        Ok(self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", value)
            .header("anthropic-version", VERSION)
            .header("anthropic-beta", BETA)
            .timeout(TIMEOUT))
    }

    /// Sends a JSON call; the body of a 2xx answer (`Value::Null` if empty),
    /// or `None` for a 404 when `missing_ok`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        missing_ok: bool,
    ) -> Result<Option<Value>, Error> {
        let name = format!("{method} {path}");
        let mut req = self.request(method, path)?;
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| transport(&name, &e))?;
        let status = resp.status();
        if missing_ok && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = crate::bounded::whole(resp, ANSWER_LIMIT)
            .await
            .map_err(|e| match e {
                crate::bounded::Read::TooLarge => Error::BadResponse {
                    call: name.clone(),
                    detail: format!("it is longer than {} MiB", ANSWER_LIMIT >> 20),
                },
                crate::bounded::Read::Transport(e) => transport(&name, &e),
            })?;
        if !status.is_success() {
            let body: String = String::from_utf8_lossy(&bytes).chars().take(500).collect();
            return Err(Error::Status {
                call: name,
                status: status.as_u16(),
                body,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::BadResponse {
                call: name,
                detail: e.to_string(),
            })
    }

    async fn create(&self, path: &str, body: Value) -> Result<String, Error> {
        let v = self
            .call(reqwest::Method::POST, path, Some(body), false)
            .await?
            .unwrap_or_default();
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::BadResponse {
                call: format!("POST {path}"),
                detail: "no `id` in the answer".into(),
            })
    }

    /// Whether `path` (a cached id's resource) still exists; verified once
    /// per process.
    async fn exists(&self, verified: &mut HashSet<String>, path: String) -> Result<bool, Error> {
        if verified.contains(&path) {
            return Ok(true);
        }
        let found = self
            .call(reqwest::Method::GET, &path, None, true)
            .await?
            .is_some();
        if found {
            verified.insert(path);
        }
        Ok(found)
    }

    /// The environment and the agent for `model`: cached, verified, or made.
    async fn agent(&self, model: &str) -> Result<(String, String), Error> {
        let mut guard = self.state.lock().await;
        let (cache, verified) = &mut *guard;
        let mut changed = false;
        let environment = match cache.environment.clone() {
            Some(id)
                if self
                    .exists(verified, format!("/v1/environments/{id}"))
                    .await? =>
            {
                id
            }
            _ => {
                let id = self
                    .create(
                        "/v1/environments",
                        json!({"name": "woollama-agents",
                               "config": {"type": "cloud", "networking": {"type": "unrestricted"}}}),
                    )
                    .await?;
                verified.insert(format!("/v1/environments/{id}"));
                cache.environment = Some(id.clone());
                changed = true;
                id
            }
        };
        let agent = match cache.agents.get(model).cloned() {
            Some(id) if self.exists(verified, format!("/v1/agents/{id}")).await? => id,
            _ => {
                let id = self
                    .create(
                        "/v1/agents",
                        json!({"name": format!("woollama:{model}"), "model": model,
                               "tools": [ask_user_tool()]}),
                    )
                    .await?;
                verified.insert(format!("/v1/agents/{id}"));
                cache.agents.insert(model.to_string(), id.clone());
                changed = true;
                id
            }
        };
        if changed {
            self.save(cache);
        }
        Ok((environment, agent))
    }

    /// Keeps the ids for the next start (best effort: without the file, the
    /// next process makes new ones).
    fn save(&self, cache: &Cache) {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = self.cache_file.with_extension("json.tmp");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(&serde_json::to_vec(cache).unwrap_or_default())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.cache_file));
        if let Err(e) = written {
            tracing::warn!(file = %self.cache_file.display(), "cannot keep the managed-agents ids: {e}");
        }
    }

    /// A new session on the agent for `model` (an alias or an id).
    pub async fn session(&self, model: &str) -> Result<String, Error> {
        let (environment, agent) = self.agent(model_id(model)).await?;
        self.create(
            "/v1/sessions",
            json!({"agent": agent, "environment_id": environment}),
        )
        .await
    }

    /// One turn: posts `input`, then reads the session's events until it is
    /// idle again.
    pub async fn turn(&self, session: &str, input: Input) -> Result<Turn, Error> {
        tokio::time::timeout(TIMEOUT, self.run_turn(session, input))
            .await
            .map_err(|_| Error::Timeout)?
    }

    async fn run_turn(&self, session: &str, input: Input) -> Result<Turn, Error> {
        let event = match input {
            Input::Message(text) => {
                json!({"type": "user.message", "content": [{"type": "text", "text": text}]})
            }
            Input::Answer { tool_use_id, text } => json!({
                "type": "user.custom_tool_result",
                "custom_tool_use_id": tool_use_id,
                "content": [{"type": "text", "text": text}],
            }),
        };
        // The stream first: it does not replay what was sent before it
        // opened, so an agent quick to answer (or to go idle) would be missed.
        let path = format!("/v1/sessions/{session}/events/stream?beta=true");
        let name = format!("GET {path}");
        let resp = self
            .request(reqwest::Method::GET, &path)?
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| transport(&name, &e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = crate::bounded::text_head(resp, 4096).await;
            return Err(Error::Status {
                call: name,
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
            });
        }
        let posted = format!("/v1/sessions/{session}/events?beta=true");
        self.call(
            reqwest::Method::POST,
            &posted,
            Some(json!({"events": [event]})),
            false,
        )
        .await?;
        let mut bytes = resp.bytes_stream();
        let mut lines = DataLines::default();
        let mut reader = TurnReader::default();
        loop {
            let (payloads, end) = match bytes.next().await {
                Some(Ok(chunk)) => (lines.push(&chunk), false),
                Some(Err(e)) => return Err(transport(&name, &e)),
                None => (lines.finish().into_iter().collect(), true),
            };
            for data in &payloads {
                let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                if let Some(turn) = reader.push(&event)? {
                    return Ok(turn);
                }
            }
            if end {
                return Err(Error::Cut);
            }
        }
    }

    /// A session's messages: `user.message` as the user's, `agent.message`
    /// as the assistant's.
    pub async fn history(&self, session: &str) -> Result<Vec<Value>, Error> {
        let path = format!("/v1/sessions/{session}/events?beta=true");
        let v = self
            .call(reqwest::Method::GET, &path, None, false)
            .await?
            .unwrap_or_default();
        let events = v["data"].as_array().cloned().unwrap_or_default();
        Ok(events
            .iter()
            .filter_map(|e| {
                let role = match e["type"].as_str() {
                    Some("user.message") => "user",
                    Some("agent.message") => "assistant",
                    _ => return None,
                };
                Some(json!({"role": role, "content": text_of(e)}))
            })
            .collect())
    }

    /// Deletes a session (a session already gone is fine).
    pub async fn delete(&self, session: &str) -> Result<(), Error> {
        let path = format!("/v1/sessions/{session}?beta=true");
        self.call(reqwest::Method::DELETE, &path, None, true)
            .await
            .map(|_| ())
    }
}

fn transport(call: &str, e: &reqwest::Error) -> Error {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Transport {
        call: call.to_string(),
        detail,
    }
}

/// The custom tool an agent asks the user with.
fn ask_user_tool() -> Value {
    json!({
        "type": "custom",
        "name": "ask_user",
        "description": "Ask the user a question and wait for the answer.",
        "input_schema": {
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "options": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["question"],
        },
    })
}

/// The text blocks of an event's `content`, joined.
fn text_of(event: &Value) -> String {
    event["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("")
}

/// Reads one turn's events off the session stream.
#[derive(Default)]
struct TurnReader {
    text: Vec<String>,
    /// Custom tool uses seen: id → input.
    asked: BTreeMap<String, Value>,
}

impl TurnReader {
    /// Takes one event; the turn once the session is idle.
    fn push(&mut self, event: &Value) -> Result<Option<Turn>, Error> {
        match event["type"].as_str() {
            Some("agent.message") => {
                let t = text_of(event);
                if !t.is_empty() {
                    self.text.push(t);
                }
            }
            Some("agent.custom_tool_use") => {
                if let Some(id) = event["id"].as_str() {
                    self.asked.insert(id.to_string(), event["input"].clone());
                }
            }
            Some("session.error") => {
                let e = &event["error"];
                let message = e["message"]
                    .as_str()
                    .map_or_else(|| e.to_string(), str::to_string);
                return Err(Error::Session(message));
            }
            Some("session.status_idle") => {
                let stop = &event["stop_reason"];
                let asks = if stop["type"] == "requires_action" {
                    stop["event_ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .find_map(|id| {
                            self.asked
                                .get(id)
                                .map(|input| (id.to_string(), input.clone()))
                        })
                } else {
                    None
                };
                return Ok(Some(Turn {
                    text: self.text.join("\n\n"),
                    asks,
                }));
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(model_id(""), "claude-opus-4-8");
        assert_eq!(model_id("opus"), "claude-opus-4-8");
        assert_eq!(model_id("sonnet"), "claude-sonnet-4-6");
        assert_eq!(model_id("haiku"), "claude-haiku-4-5");
        assert_eq!(model_id("claude-x-1"), "claude-x-1");
    }

    #[test]
    fn a_turn_ends_at_idle_and_knows_what_it_asks() {
        let mut r = TurnReader::default();
        let msg =
            json!({"type": "agent.message", "content": [{"type": "text", "text": "Let me ask."}]});
        assert_eq!(r.push(&msg).expect("ok"), None);
        let ask = json!({"type": "agent.custom_tool_use", "id": "sevt_1", "name": "ask_user",
                         "input": {"question": "Which city?"}});
        assert_eq!(r.push(&ask).expect("ok"), None);
        let idle = json!({"type": "session.status_idle",
                          "stop_reason": {"type": "requires_action", "event_ids": ["sevt_1"]}});
        let turn = r.push(&idle).expect("ok").expect("idle ends the turn");
        assert_eq!(turn.text, "Let me ask.");
        assert_eq!(
            turn.asks,
            Some(("sevt_1".into(), json!({"question": "Which city?"})))
        );

        let mut r = TurnReader::default();
        let err = json!({"type": "session.error", "error": {"message": "overloaded"}});
        assert_eq!(
            r.push(&err).expect_err("fails").to_string(),
            "the session reported an error: overloaded"
        );
    }
}
