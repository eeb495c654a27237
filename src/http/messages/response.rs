//! OpenAI chat answers as Anthropic Messages answers: a `chat.completion` as
//! a `message`, and a stream of chat events as Anthropic's SSE —
//! `message_start`, per content block `content_block_start` / `_delta`
//! (`text_delta`, `input_json_delta`) / `_stop`, `message_delta` (stop
//! reason, usage) and `message_stop`; `ping` while the upstream is quiet;
//! `error` when it fails mid-way.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::inference::ChatEvent;

/// A fresh `msg_<hex>` id.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// A chat finish reason as Anthropic's stop reason.
fn stop_reason(finish: Option<&str>, called: bool) -> &'static str {
    match finish {
        _ if called => "tool_use",
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn usage(u: Option<&Value>) -> Value {
    let n = |k: &str| u.and_then(|u| u[k].as_u64()).unwrap_or(0);
    json!({"input_tokens": n("prompt_tokens"), "output_tokens": n("completion_tokens")})
}

/// A tool call's arguments as the `input` object (`{}` when they are not
/// JSON, which a client could not use anyway).
fn input_of(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) if s.trim().is_empty() => json!({}),
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!({})),
        v @ Value::Object(_) => v.clone(),
        _ => json!({}),
    }
}

/// A whole `chat.completion` as a `message`, under the model as requested.
/// When the backend says which stop string ended the answer (vLLM's
/// `stop_reason` on the choice) and it is one of the request's
/// `stop_sequences`, the stop reason is `stop_sequence` and names it.
pub fn from_completion(completion: &Value, model: &str, stops: &[Value]) -> Value {
    let message = completion.pointer("/choices/0/message");
    let mut content = Vec::new();
    if let Some(text) = message
        .and_then(|m| m["content"].as_str())
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m["tool_calls"].as_array())
        .cloned()
        .unwrap_or_default();
    for (n, call) in calls.iter().enumerate() {
        let id = call["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map_or_else(|| format!("toolu_{n}"), str::to_string);
        content.push(json!({
            "type": "tool_use",
            "id": id,
            "name": call["function"]["name"],
            "input": input_of(&call["function"]["arguments"]),
        }));
    }
    let finish = completion
        .pointer("/choices/0/finish_reason")
        .and_then(Value::as_str);
    let matched = completion
        .pointer("/choices/0/stop_reason")
        .filter(|s| s.is_string() && stops.contains(s))
        .filter(|_| finish == Some("stop") && calls.is_empty());
    let (reason, sequence) = match matched {
        Some(s) => ("stop_sequence", s.clone()),
        None => (stop_reason(finish, !calls.is_empty()), Value::Null),
    };
    json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(completion.get("usage")),
    })
}

/// One SSE event.
fn frame(kind: &str, data: &Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {data}\n\n").into_bytes()
}

/// What block is open.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Tool,
}

/// Builds a streamed answer's events from chat events.
#[derive(Debug)]
pub struct Events {
    id: String,
    model: String,
    /// The next block's index.
    next: usize,
    open: Option<(Open, usize)>,
    /// Chat tool-call index → block index.
    calls: BTreeMap<u64, usize>,
    finish: Option<String>,
    usage: Option<Value>,
}

impl Events {
    pub fn new(model: &str) -> Self {
        Self {
            id: message_id(),
            model: model.to_string(),
            next: 0,
            open: None,
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
        }
    }

    /// `message_start`.
    pub fn start(&self) -> Vec<u8> {
        frame(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        )
    }

    /// `ping`, for a quiet upstream.
    pub fn ping() -> Vec<u8> {
        frame("ping", &json!({"type": "ping"}))
    }

    fn close(&mut self) -> Vec<u8> {
        match self.open.take() {
            Some((_, index)) => frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ),
            None => Vec::new(),
        }
    }

    fn open(&mut self, kind: Open, block: Value) -> (Vec<u8>, usize) {
        let mut out = self.close();
        let index = self.next;
        self.next += 1;
        out.extend(frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        self.open = Some((kind, index));
        (out, index)
    }

    /// The events for one chat event.
    pub fn push(&mut self, e: ChatEvent) -> Vec<u8> {
        match e {
            ChatEvent::Delta(text) if !text.is_empty() => {
                let (mut out, index) = match self.open {
                    Some((Open::Text, index)) => (Vec::new(), index),
                    _ => self.open(Open::Text, json!({"type": "text", "text": ""})),
                };
                out.extend(frame(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": text}}),
                ));
                out
            }
            ChatEvent::ToolCall {
                index: call,
                id,
                name,
                arguments,
            } => {
                let (mut out, index) = match self.calls.get(&call) {
                    Some(&index) => (Vec::new(), index),
                    None => {
                        let id = id
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| format!("toolu_{}", uuid::Uuid::new_v4().simple()));
                        let block = json!({"type": "tool_use", "id": id,
                                           "name": name.unwrap_or_default(), "input": {}});
                        let (out, index) = self.open(Open::Tool, block);
                        self.calls.insert(call, index);
                        (out, index)
                    }
                };
                if !arguments.is_empty() {
                    out.extend(frame(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                    ));
                }
                out
            }
            ChatEvent::Usage(u) => {
                self.usage = Some(u);
                Vec::new()
            }
            ChatEvent::Finish(reason) => {
                self.finish = Some(reason);
                Vec::new()
            }
            ChatEvent::Delta(_) | ChatEvent::Id(_) => Vec::new(),
        }
    }

    /// The open block closed, `message_delta` and `message_stop`.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = self.close();
        let reason = stop_reason(self.finish.as_deref(), !self.calls.is_empty());
        out.extend(frame(
            "message_delta",
            &json!({"type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": usage(self.usage.as_ref())}),
        ));
        out.extend(frame("message_stop", &json!({"type": "message_stop"})));
        out
    }

    /// A failure after the stream started: an `error` event, and the end.
    pub fn fail(&mut self, kind: &str, message: &str) -> Vec<u8> {
        frame(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_message() {
        let completion = json!({"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5}});
        let mut m = from_completion(&completion, "ollama/qwen3", &[]);
        assert!(m["id"].as_str().is_some_and(|i| i.starts_with("msg_")));
        m["id"] = json!("msg_x");
        assert_eq!(
            m,
            json!({"id": "msg_x", "type": "message", "role": "assistant", "model": "ollama/qwen3",
                "content": [{"type": "text", "text": "Let me check."},
                            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 5}})
        );
        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
        assert_eq!(from_completion(&cut, "m", &[])["stop_reason"], "max_tokens");
        let stopped = json!({"choices": [{"finish_reason": "stop", "stop_reason": "END", "message": {"content": "abc"}}]});
        let m = from_completion(&stopped, "m", &[json!("END")]);
        assert_eq!(
            (&m["stop_reason"], &m["stop_sequence"]),
            (&json!("stop_sequence"), &json!("END"))
        );
        assert_eq!(
            from_completion(&stopped, "m", &[])["stop_reason"],
            "end_turn"
        );
    }

    #[test]
    fn golden_stream() {
        let mut e = Events::new("m");
        let mut out = String::new();
        for ev in [
            ChatEvent::Id("x".into()),
            ChatEvent::Delta("Hel".into()),
            ChatEvent::Delta("lo".into()),
            ChatEvent::ToolCall {
                index: 0,
                id: Some("call_1".into()),
                name: Some("f".into()),
                arguments: "{\"a\":".into(),
            },
            ChatEvent::ToolCall {
                index: 0,
                id: None,
                name: None,
                arguments: "1}".into(),
            },
            ChatEvent::Finish("tool_calls".into()),
            ChatEvent::Usage(json!({"prompt_tokens": 3, "completion_tokens": 4})),
        ] {
            out.push_str(&String::from_utf8(e.push(ev)).expect("utf8"));
        }
        out.push_str(&String::from_utf8(e.finish()).expect("utf8"));
        let events: Vec<Value> = out
            .split("\n\n")
            .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert_eq!(
            events,
            vec![
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "1}"}}),
                json!({"type": "content_block_stop", "index": 1}),
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"input_tokens": 3, "output_tokens": 4}}),
                json!({"type": "message_stop"}),
            ]
        );
        // Each frame names its event type.
        assert!(out.starts_with("event: content_block_start\n"));
    }
}
