//! The `chat` tool (contract §6.3): `{messages, recipe?, model?}` → the
//! recipe's final answer, as text and as `structuredContent {"result": …}`.
//!
//! While the loop runs it reports what it does: a `notifications/progress`
//! per tool call and per tool result when the caller sent a progress token,
//! and a log message (`→ tool(args)`, `← tool: ok|error`) at level info.
//! Failures are tool-level `isError` results, never protocol errors.
//! Cancelling the call drops the loop, and with it the upstream request and
//! any tool call in flight.

use std::sync::Arc;

use futures_util::StreamExt;
use rmcp::model::{
    CallToolResult, ContentBlock, JsonObject, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};

use super::{Surface, errors};
use crate::orchestrate::{self, Event};

pub const NAME: &str = crate::tools::CHAT_TOOL;

fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// The `chat` tool's definition.
pub fn tool() -> Tool {
    let input = json!({
        "type": "object",
        "properties": {
            "messages": {
                "type": "array",
                "description": "The conversation, as OpenAI chat messages: [{\"role\": \"user\", \"content\": \"…\"}].",
                "items": {"type": "object"}
            },
            "recipe": {"type": "string", "description": "The recipe to run (a name from prompts/list)."},
            "model": {"type": "string", "description": "Alternatively, the model as an OpenAI client names it: \"woollama/<recipe>\"."}
        },
        "required": ["messages"]
    });
    let output = json!({
        "type": "object",
        "properties": {"result": {"type": "string"}},
        "required": ["result"],
        "x-fastmcp-wrap-result": true
    });
    let mut t = Tool::new(
        NAME,
        "Run a woollama recipe (a system prompt, a model and a tool allow-list) on a conversation and return \
         its final answer. The recipe's tools run inside; progress is reported as they do.",
        object(input),
    );
    t.output_schema = Some(object(output));
    t
}

/// An orchestration error as a sentence: an upstream's own error message
/// when it sent one.
struct Reporter {
    peer: Peer<RoleServer>,
    token: Option<rmcp::model::ProgressToken>,
    log: bool,
    step: u32,
}

impl Reporter {
    async fn report(&mut self, message: String) {
        self.step += 1;
        if let Some(token) = &self.token {
            let p = ProgressNotificationParam::new(token.clone(), f64::from(self.step))
                .with_message(message.clone());
            let _ = self.peer.notify_progress(p).await;
        }
        if self.log {
            let m = LoggingMessageNotificationParam::new(LoggingLevel::Info, json!(message))
                .with_logger("woollama");
            let _ = self.peer.notify_logging_message(m).await;
        }
    }
}

fn truncated(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

pub async fn run(
    surface: &Surface,
    arguments: Option<JsonObject>,
    ctx: RequestContext<RoleServer>,
) -> CallToolResult {
    let args = arguments.unwrap_or_default();
    let recipe_name = match (args.get("recipe"), args.get("model")) {
        (Some(Value::String(r)), _) if !r.is_empty() => r.clone(),
        (_, Some(Value::String(m))) if !m.is_empty() => {
            m.strip_prefix("woollama/").unwrap_or(m).to_string()
        }
        _ => {
            return errors::failure(
                "chat needs `recipe` (a recipe name) or `model` (\"woollama/<recipe>\")",
            );
        }
    };
    let messages = match args.get("messages") {
        Some(Value::Array(m)) => m.clone(),
        _ => {
            return errors::failure(
                "`messages` must be an array of messages like [{\"role\": \"user\", \"content\": \"hi\"}]",
            );
        }
    };
    let state = &surface.state();
    let recipe = match orchestrate::recipe(&state.config, &recipe_name) {
        Ok(r) => r,
        Err(e) => return errors::recipe(&e),
    };
    let prepared =
        match orchestrate::prepare(recipe, &state.inference, &state.tools, messages, false).await {
            Ok(p) => p,
            Err(e) => return errors::recipe(&e),
        };
    let mut events = Box::pin(orchestrate::run(
        prepared,
        state.inference.clone(),
        state.tools.clone(),
    ));
    let mut reporter = Reporter {
        peer: ctx.peer.clone(),
        token: ctx.meta.get_progress_token(),
        log: surface.logs_info(&ctx),
        step: 0,
    };
    loop {
        let next = tokio::select! {
            e = events.next() => e,
            () = ctx.ct.cancelled() => return errors::failure("cancelled"),
            () = surface.gone.cancelled() => return errors::failure("the client went away"),
        };
        match next {
            Some(Ok(Event::ToolCall {
                name, arguments, ..
            })) => {
                reporter
                    .report(format!("→ {name}({})", truncated(&arguments, 120)))
                    .await;
            }
            Some(Ok(Event::ToolResult { name, ok, .. })) => {
                reporter
                    .report(format!("← {name}: {}", if ok { "ok" } else { "error" }))
                    .await;
            }
            Some(Ok(Event::Final(v))) => {
                let text = v
                    .pointer("/choices/0/message/content")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let mut r = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
                r.structured_content = Some(json!({"result": text}));
                return r;
            }
            Some(Ok(Event::Delta(_))) => {}
            Some(Err(e)) => return errors::recipe(&e),
            None => return errors::recipe(&orchestrate::Error::NoAnswer(recipe_name)),
        }
    }
}
