//! The recipe loop, written once as a stream of [`Event`]s that every surface
//! consumes (HTTP chat, and later MCP `chat` and Responses).
//!
//! Setup happens eagerly in [`prepare`], so a recipe that cannot run (unknown
//! provider, missing key) fails before any I/O. Each turn sends the recipe's
//! system prompt and the conversation, with `tools` only when the allow-list
//! offers any, then `extra_body` and then the recipe's `params` merged in.
//! Tool calls are dispatched concurrently and their results appended in call
//! order. The allow-list is a hard boundary: a call to anything else is
//! never dispatched, and the model is told so.
//!
//! A recipe on `claude-code/<model>` runs on the `claude` CLI: without
//! tools as one tool-less call through the same seam as any inferencer;
//! with tools by **delegation** — Claude runs the loop itself, against
//! woollama's own `/mcp` through a grant of exactly the recipe's allowed
//! tools (`tools::grants`), and its tool uses and results come back as the
//! same events (always read as `stream-json`, so the MCP `chat` tool can
//! report them as progress).
//!
//! The stream is a channel fed by a driver future that lives inside the
//! stream itself (no spawned task): dropping the stream — a client that went
//! away — drops the driver and with it the upstream request and any tool
//! call in flight.

pub(crate) mod assemble;

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::config::Recipe;
use crate::inference::{self, Inferencer};
use crate::routing::{self, Route};
use crate::tools::{self, ToolRegistry};

/// What the loop reports as it runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// Assistant text, as it arrives (streaming) — from every turn.
    Delta(String),
    /// The model asked for a tool (wire name) with these arguments.
    ToolCall {
        turn: u32,
        name: String,
        arguments: Value,
    },
    /// A tool call finished (`ok` false for errors and refusals).
    ToolResult { turn: u32, name: String, ok: bool },
    /// The final turn's `chat.completion`.
    Final(Value),
}

/// Why a recipe could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recipe's provider is not a configured inferencer (501).
    #[error("unsupported inferencer '{inferencer}' (supported providers: {supported})")]
    Unsupported {
        inferencer: String,
        supported: String,
    },
    /// A backend that exists in the contract but not in this build (501).
    #[error("{0}")]
    NotImplemented(String),
    #[error(transparent)]
    Inference(#[from] inference::Error),
    /// The upstream answered 200 without `choices` (502, body relayed).
    #[error("inferencer '{inferencer}' answered without choices")]
    NoChoices { inferencer: String, body: Value },
    #[error("max turns ({0}) exceeded")]
    MaxTurns(u32),
    #[error("unknown recipe '{0}'")]
    UnknownRecipe(String),
    /// The loop ended without a final answer (the stream was dropped).
    #[error("recipe '{0}' ended without an answer")]
    NoAnswer(String),
    /// A delegating recipe in a process with no `/mcp` listener (501).
    #[error(
        "recipe '{0}' runs on claude-code with tools, which Claude reaches through woollama's own /mcp on loopback, and this process has no such listener (see the log for why)"
    )]
    NoDelegateEndpoint(String),
}

/// The recipe called `name`.
pub fn recipe<'a>(config: &'a crate::config::Config, name: &str) -> Result<&'a Recipe, Error> {
    config
        .recipes
        .get(name)
        .ok_or_else(|| Error::UnknownRecipe(name.to_string()))
}

/// A recipe ready to run: everything resolved before any I/O.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The recipe's name (its turns are counted under it).
    recipe: String,
    inf: Arc<Inferencer>,
    model: String,
    tools: Vec<Value>,
    /// Wire names the model may call, in recipe order.
    allowed: Vec<String>,
    messages: Vec<Value>,
    params: Map<String, Value>,
    max_turns: u32,
    stream: bool,
    /// Delegation to the `claude` CLI: where its tools are served.
    delegate: Option<String>,
}

fn unsupported(recipe: &Recipe, inference: &inference::Registry) -> Error {
    let mut supported: Vec<&str> = inference.names();
    supported.push("claude-code");
    Error::Unsupported {
        inferencer: recipe.inferencer.clone(),
        supported: supported.join(", "),
    }
}

/// Resolves a recipe against the inferencers and the tool snapshot. The
/// servers the allow-list names are given, bounded by the connect timeout,
/// the time to finish connecting if they are still at their first attempt.
pub async fn prepare(
    recipe: &Recipe,
    inference: &inference::Registry,
    tools: &ToolRegistry,
    conversation: Vec<Value>,
    stream: bool,
) -> Result<Prepared, Error> {
    let (inf, model) = match routing::route(&recipe.inferencer, |p| inference.contains(p)) {
        Route::Provider { provider, model } => match inference.get(provider) {
            Some(inf) => (inf, model),
            None => return Err(unsupported(recipe, inference)),
        },
        Route::ClaudeCode(model) => (inference.claude_code(), model),
        Route::ClaudeAgent(_) | Route::Recipe(_) | Route::Unknown => {
            return Err(unsupported(recipe, inference));
        }
    };
    inf.auth()?;

    let mut servers: Vec<&str> = recipe.tools.iter().map(|r| r.server.as_str()).collect();
    servers.sort_unstable();
    servers.dedup();
    let snap = tools.settled_for(&servers).await;
    let mut offered = Vec::new();
    let mut allowed = Vec::new();
    for r in &recipe.tools {
        match snap.find(&r.server, &r.tool) {
            Some(t) => {
                let mut function = json!({
                    "name": t.wire,
                    "parameters": Value::Object((*t.tool.input_schema).clone()),
                });
                if let Some(d) = &t.tool.description {
                    function["description"] = json!(d);
                }
                offered.push(json!({"type": "function", "function": function}));
                allowed.push(t.wire.clone());
            }
            None => {
                tracing::warn!(recipe = %recipe.name, tool = %r, "tool is not available now; the recipe runs without it")
            }
        }
    }

    let system = recipe.render_system(&Map::new());
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(conversation);

    let delegate = if inf.is_claude() && !allowed.is_empty() {
        match tools.grants().endpoint() {
            Some(url) => Some(url.to_string()),
            None => return Err(Error::NoDelegateEndpoint(recipe.name.clone())),
        }
    } else {
        None
    };

    let mut params = inf.spec.extra_body.clone();
    for (k, v) in &recipe.params {
        params.insert(k.clone(), v.clone());
    }
    Ok(Prepared {
        recipe: recipe.name.clone(),
        inf: Arc::clone(inf),
        model: model.to_string(),
        tools: offered,
        allowed,
        messages,
        params,
        max_turns: recipe.max_turns,
        stream,
        delegate,
    })
}

impl Prepared {
    /// The wire names this run may call.
    pub fn allowed(&self) -> &[String] {
        &self.allowed
    }
}

/// The loop's events, as [`run`] yields them.
pub type Events = dyn Stream<Item = Result<Event, Error>> + Send;

/// Runs the loop; the stream ends after `Final` or an error.
pub fn run(
    prepared: Prepared,
    inference: inference::Registry,
    tools: ToolRegistry,
) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Result<Event, Error>>(64);
    let driver = async move {
        let outcome = drive(prepared, &inference, &tools, &tx).await;
        if let Err(e) = outcome {
            let _ = tx.send(Err(e)).await;
        }
    };
    let events =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let driver = futures_util::stream::once(driver).filter_map(|()| async { None });
    futures_util::stream::select(events, driver)
}

type Tx = mpsc::Sender<Result<Event, Error>>;

/// Sends an event; false if nobody is listening any more.
async fn emit(tx: &Tx, e: Event) -> bool {
    tx.send(Ok(e)).await.is_ok()
}

async fn drive(
    mut p: Prepared,
    inference: &inference::Registry,
    tools: &ToolRegistry,
    tx: &Tx,
) -> Result<(), Error> {
    if let Some(url) = p.delegate.take() {
        return delegate(p, &url, inference, tools, tx).await;
    }
    let allowed: HashSet<String> = p.allowed.iter().cloned().collect();
    for turn in 1..=p.max_turns {
        p.inf.metrics.recipe_turn(&p.recipe);
        let response = if p.stream {
            streamed_turn(&p, inference, tx).await?
        } else {
            inference.complete(&p.inf, &request_body(&p)).await?
        };
        let Some(message) = response.pointer("/choices/0/message").cloned() else {
            return Err(Error::NoChoices {
                inferencer: p.inf.name().to_string(),
                body: response,
            });
        };
        let calls: Vec<Value> = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .cloned()
            .unwrap_or_default();
        if calls.is_empty() {
            emit(tx, Event::Final(response)).await;
            return Ok(());
        }
        p.messages.push(json!({
            "role": "assistant",
            "content": message.get("content").cloned().unwrap_or(Value::Null),
            "tool_calls": calls,
        }));

        // Parse every call, refuse what the allow-list does not offer, and
        // dispatch the rest concurrently.
        let mut pending = Vec::with_capacity(calls.len());
        for call in &calls {
            let (id, name, arguments) = parse_call(call, turn);
            let shown = Event::ToolCall {
                turn,
                name: name.clone(),
                arguments: arguments.clone(),
            };
            if !emit(tx, shown).await {
                return Ok(());
            }
            pending.push((id, name, arguments));
        }
        let results =
            futures_util::future::join_all(pending.iter().map(|(_, name, arguments)| {
                dispatch(&p.allowed, &allowed, tools, name, arguments)
            }))
            .await;
        for ((id, name, _), (text, ok)) in pending.into_iter().zip(results) {
            if !emit(tx, Event::ToolResult { turn, name, ok }).await {
                return Ok(());
            }
            p.messages
                .push(json!({"role": "tool", "content": text, "tool_call_id": id}));
        }
    }
    Err(Error::MaxTurns(p.max_turns))
}

/// A tool call as the model sent it: its id (one is made up if missing),
/// wire name, and arguments (an object; unparseable arguments are `{}`).
fn parse_call(call: &Value, turn: u32) -> (String, String, Value) {
    let name = call
        .pointer("/function/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let arguments = match call.pointer("/function/arguments") {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or_else(|_| json!({})),
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("call_{turn}_{name}"), str::to_string);
    (id, name, arguments)
}

/// Runs one tool call if the allow-list offers it: the text the model gets
/// back, and whether the call succeeded. Anything else is refused here and
/// never reaches a server.
async fn dispatch(
    listed: &[String],
    allowed: &HashSet<String>,
    tools: &ToolRegistry,
    name: &str,
    arguments: &Value,
) -> (String, bool) {
    if !allowed.contains(name) {
        tracing::warn!(tool = %name, "refused a tool call outside the recipe's allow-list");
        return (
            format!(
                "ERROR: tool '{name}' is not permitted by this recipe (allowed: {})",
                serde_json::to_string(listed).unwrap_or_default()
            ),
            false,
        );
    }
    let args = match arguments {
        Value::Object(m) => Some(m.clone()),
        _ => None,
    };
    match tools.call(name, args).await {
        Ok(r) => (tools::render(&r), r.is_error != Some(true)),
        Err(e) => (format!("ERROR: {e}"), false),
    }
}

fn request_body(p: &Prepared) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(p.model));
    body.insert("messages".into(), Value::Array(p.messages.clone()));
    body.insert("stream".into(), json!(p.stream));
    if !p.tools.is_empty() {
        body.insert("tools".into(), Value::Array(p.tools.clone()));
    }
    for (k, v) in &p.params {
        body.insert(k.clone(), v.clone());
    }
    Value::Object(body)
}

/// A recipe with tools on the `claude` CLI: Claude runs the loop, reaching
/// the allowed tools (and nothing else) through a grant of woollama's own
/// `/mcp` that lives as long as the call.
async fn delegate(
    p: Prepared,
    url: &str,
    inference: &inference::Registry,
    tools: &ToolRegistry,
    tx: &Tx,
) -> Result<(), Error> {
    use inference::claude;
    p.inf.metrics.recipe_turn(&p.recipe);
    let grant = tools.grants().grant(p.allowed.iter().cloned());
    let (system, prompt) = claude::flatten(&p.messages);
    let call = claude::Call {
        model: p.model.clone(),
        system,
        prompt,
        delegate: Some(claude::Delegate {
            url: url.to_string(),
            token: grant.token().clone(),
            tools: p.allowed.clone(),
            max_turns: p.max_turns,
        }),
        ..claude::Call::default()
    };
    let prefix = format!("mcp__{}__", claude::DELEGATE_SERVER);
    let shown = |name: String| match name.strip_prefix(&prefix) {
        Some(wire) => wire.to_string(),
        None => name,
    };
    let mut events = std::pin::pin!(inference.claude().events(call, true));
    let mut turn = 1;
    while let Some(event) = events.next().await {
        let event = event.map_err(|source| inference::Error::Claude {
            backend: "claude-code",
            source,
        })?;
        let e = match event {
            claude::Event::Delta(text) if p.stream => Event::Delta(text),
            claude::Event::Delta(_) => continue,
            claude::Event::ToolUse { name, input } => Event::ToolCall {
                turn,
                name: shown(name),
                arguments: input,
            },
            claude::Event::ToolResult { name, ok } => {
                turn += 1;
                Event::ToolResult {
                    turn: turn - 1,
                    name: shown(name),
                    ok,
                }
            }
            claude::Event::Done(answer) => {
                let completion = inference::claude_completion(&p.model, &answer);
                emit(tx, Event::Final(completion)).await;
                return Ok(());
            }
        };
        if !emit(tx, e).await {
            return Ok(());
        }
    }
    drop(grant);
    Err(inference::Error::Claude {
        backend: "claude-code",
        source: claude::Error::NoResult,
    }
    .into())
}

/// A streamed turn: text deltas go out as they arrive; the turn comes back
/// whole (tool calls reassembled).
async fn streamed_turn(
    p: &Prepared,
    inference: &inference::Registry,
    tx: &Tx,
) -> Result<Value, Error> {
    let mut events = Box::pin(inference.stream(&p.inf, &request_body(p)).await?);
    let mut turn = assemble::Assembler::default();
    while let Some(event) = events.next().await {
        if let Some(text) = turn.push(event?)
            && !emit(tx, Event::Delta(text)).await
        {
            break;
        }
    }
    Ok(turn.finish(&p.model))
}
