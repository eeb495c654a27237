//! The Responses answer: a `response` object built from a chat turn, and
//! the streamed event sequence (contract §4.6, plus `response.in_progress`
//! as OpenAI sends it, function-call items under the client's own tool
//! names, `usage`, `incomplete` when the answer was cut at the token limit,
//! and `response.failed` — never `response.completed` — when the stream
//! breaks off).

use serde_json::{Map, Value, json};

use super::input::{Echo, Names};
use crate::inference::ChatEvent;
use crate::wire;

/// What every response object of one request shares.
#[derive(Debug, Clone)]
pub struct Head {
    pub id: String,
    pub created_at: u64,
    /// The model as the client named it.
    pub model: String,
    pub echo: Echo,
    /// The client's names for the tools the model calls.
    pub names: Names,
    /// The conversation a stateful turn belongs to.
    pub conversation: Option<String>,
    /// The response a stateful turn followed.
    pub previous_response_id: Option<String>,
}

impl Head {
    pub fn new(model: &str, echo: Echo, names: Names) -> Self {
        Self {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            created_at: wire::now(),
            model: model.to_string(),
            echo,
            names,
            conversation: None,
            previous_response_id: None,
        }
    }

    /// The response object with `status`, `output` and `usage`.
    pub fn response(&self, status: &str, output: Vec<Value>, usage: Value, error: Value) -> Value {
        let e = &self.echo;
        let incomplete = match status {
            "incomplete" => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": e.instructions,
            "max_output_tokens": e.max_output_tokens,
            "metadata": e.metadata,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": e.parallel_tool_calls,
            "previous_response_id": self.previous_response_id,
            "conversation": self.conversation.as_ref().map(|id| json!({"id": id})),
            "reasoning": {"effort": null, "summary": null},
            "store": self.conversation.is_some(),
            "temperature": e.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": e.tool_choice,
            "tools": e.tools,
            "top_p": e.top_p,
            "truncation": "disabled",
            "usage": usage,
        })
    }

    /// A `function_call` item under the client's name for the tool (and its
    /// namespace, for a namespaced one).
    fn call_item(&self, call: &Call, status: &str) -> Value {
        let (namespace, name) = self.names.client(&call.name);
        let mut item = json!({
            "type": "function_call",
            "id": call.id,
            "call_id": call.call_id,
            "name": name,
            "arguments": call.arguments,
            "status": status,
        });
        if let Some(ns) = namespace {
            item["namespace"] = json!(ns);
        }
        item
    }

    /// A whole (non-streamed) answer from a `chat.completion`.
    pub fn completed(&self, completion: &Value) -> Value {
        let message = completion.pointer("/choices/0/message");
        let text = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let calls = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array);
        let mut output = Vec::new();
        if !text.is_empty() || calls.is_none_or(|c| c.is_empty()) {
            output.push(message_item(&item_id("msg"), text, "completed"));
        }
        for call in calls.into_iter().flatten() {
            let text = |p: &str| call.pointer(p).and_then(Value::as_str).unwrap_or("");
            let c = Call::new(Some(text("/id")), Some(text("/function/name")));
            let c = Call {
                arguments: call
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_string(),
                ..c
            };
            output.push(self.call_item(&c, "completed"));
        }
        let finish = completion
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str);
        self.response(
            status_of(finish),
            output,
            usage(completion.get("usage")),
            Value::Null,
        )
    }
}

/// A response's status from the chat turn's finish reason: an answer cut at
/// the token limit is `incomplete`, never passed off as whole.
fn status_of(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "incomplete",
        _ => "completed",
    }
}

fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([text_part(text)])
    };
    json!({"type": "message", "id": id, "status": status, "role": "assistant", "content": content})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// Chat `usage` in the Responses shape (null without one).
pub fn usage(chat: Option<&Value>) -> Value {
    let Some(u) = chat.filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("prompt_tokens"), n("completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.get("total_tokens").and_then(Value::as_u64).unwrap_or(input + output),
    })
}

/// One tool call of the answer.
#[derive(Debug, Clone)]
struct Call {
    /// The item's id (`fc_…`).
    id: String,
    /// The id the upstream minted, or one made up: unique, so a later turn's
    /// `function_call_output` finds its call.
    call_id: String,
    /// The name the model called (the chat name).
    name: String,
    arguments: String,
}

impl Call {
    fn new(call_id: Option<&str>, name: Option<&str>) -> Self {
        Self {
            id: item_id("fc"),
            call_id: call_id
                .filter(|i| !i.is_empty())
                .map_or_else(|| item_id("call"), str::to_string),
            name: name.unwrap_or("").to_string(),
            arguments: String::new(),
        }
    }
}

/// One output item being streamed.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        call: Call,
        index: u64,
        minted: bool,
    },
}

/// Turns a chat turn's events into the Responses event sequence, with
/// strictly increasing `sequence_number`s.
#[derive(Debug)]
pub struct Events {
    head: Head,
    seq: u64,
    items: Vec<Item>,
    usage: Value,
    finish: Option<String>,
}

fn object(pairs: Value) -> Map<String, Value> {
    match pairs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Events {
    pub fn new(head: Head) -> Self {
        Self {
            head,
            seq: 0,
            items: Vec::new(),
            usage: Value::Null,
            finish: None,
        }
    }

    fn frame(&mut self, kind: &str, mut payload: Map<String, Value>, out: &mut Vec<u8>) {
        payload.insert("type".into(), json!(kind));
        payload.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'\n');
        out.extend(wire::sse_data(&payload));
    }

    /// The answer so far as a chat assistant message (its text, and its
    /// tool calls under the chat names).
    pub fn message(&self) -> Value {
        let mut text = String::new();
        let mut calls = Vec::new();
        for item in &self.items {
            match item {
                Item::Message { text: t, .. } => text.push_str(t),
                Item::Call { call, .. } => calls.push(json!({
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })),
            }
        }
        let mut m = json!({"role": "assistant", "content": text});
        if !calls.is_empty() {
            m["tool_calls"] = Value::Array(calls);
        }
        m
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let r = self
            .head
            .response("in_progress", Vec::new(), Value::Null, Value::Null);
        self.frame("response.created", object(json!({"response": r})), &mut out);
        self.frame(
            "response.in_progress",
            object(json!({"response": r})),
            &mut out,
        );
        out
    }

    /// The frames for one event of the turn.
    pub fn push(&mut self, event: ChatEvent) -> Vec<u8> {
        let mut out = Vec::new();
        match event {
            ChatEvent::Delta(text) => self.delta(text, &mut out),
            ChatEvent::ToolCall {
                index,
                id,
                name,
                arguments,
            } => self.call_fragment(index, id, name, arguments, &mut out),
            ChatEvent::Usage(u) => self.usage = usage(Some(&u)),
            ChatEvent::Finish(f) => self.finish = Some(f),
            ChatEvent::Id(_) => {}
        }
        out
    }

    fn delta(&mut self, text: String, out: &mut Vec<u8>) {
        let index = match self
            .items
            .iter()
            .position(|i| matches!(i, Item::Message { .. }))
        {
            Some(i) => i,
            None => self.open_message(out),
        };
        if let Item::Message { id, text: all } = &mut self.items[index] {
            all.push_str(&text);
            let id = id.clone();
            self.frame(
                "response.output_text.delta",
                object(json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []})),
                out,
            );
        }
    }

    fn call_fragment(
        &mut self,
        index: u64,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
        out: &mut Vec<u8>,
    ) {
        let found = self
            .items
            .iter()
            .position(|i| matches!(i, Item::Call { index: n, .. } if *n == index));
        let pos = match found {
            Some(p) => p,
            None => self.open_call(index, id.as_deref(), name.as_deref(), out),
        };
        let Item::Call { call, minted, .. } = &mut self.items[pos] else {
            return;
        };
        // An id or a name that comes after the first fragment.
        if call.name.is_empty()
            && let Some(n) = name
        {
            call.name = n;
        }
        if *minted && let Some(i) = id.filter(|i| !i.is_empty()) {
            call.call_id = i;
            *minted = false;
        }
        if arguments.is_empty() {
            return;
        }
        call.arguments.push_str(&arguments);
        let item_id = call.id.clone();
        self.frame(
            "response.function_call_arguments.delta",
            object(json!({"item_id": item_id, "output_index": pos, "delta": arguments})),
            out,
        );
    }

    fn open_message(&mut self, out: &mut Vec<u8>) -> usize {
        let id = item_id("msg");
        let index = self.items.len();
        self.frame(
            "response.output_item.added",
            object(json!({"output_index": index, "item": message_item(&id, "", "in_progress")})),
            out,
        );
        self.frame(
            "response.content_part.added",
            object(json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part("")})),
            out,
        );
        self.items.push(Item::Message {
            id,
            text: String::new(),
        });
        index
    }

    fn open_call(
        &mut self,
        index: u64,
        id: Option<&str>,
        name: Option<&str>,
        out: &mut Vec<u8>,
    ) -> usize {
        let call = Call::new(id, name);
        let minted = id.is_none_or(str::is_empty);
        let pos = self.items.len();
        let item = self.head.call_item(&call, "in_progress");
        self.frame(
            "response.output_item.added",
            object(json!({"output_index": pos, "item": item})),
            out,
        );
        self.items.push(Item::Call {
            call,
            index,
            minted,
        });
        pos
    }

    /// Closes every item and sends `response.completed` (or
    /// `response.incomplete` for an answer cut at the token limit).
    /// `usage_from` (a chat `usage`), when given, wins over what the stream
    /// carried.
    pub fn finish(&mut self, usage_from: Option<&Value>) -> Vec<u8> {
        let mut out = Vec::new();
        if self.items.is_empty() {
            self.open_message(&mut out);
        }
        let items = std::mem::take(&mut self.items);
        let mut output = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let done = match item {
                Item::Message { id, text } => {
                    self.frame(
                        "response.output_text.done",
                        object(json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []})),
                        &mut out,
                    );
                    self.frame(
                        "response.content_part.done",
                        object(json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part(text)})),
                        &mut out,
                    );
                    message_item(id, text, "completed")
                }
                Item::Call { call, .. } => {
                    let item = self.head.call_item(call, "completed");
                    self.frame(
                        "response.function_call_arguments.done",
                        object(json!({"item_id": call.id, "output_index": index, "name": item["name"], "arguments": call.arguments})),
                        &mut out,
                    );
                    item
                }
            };
            self.frame(
                "response.output_item.done",
                object(json!({"output_index": index, "item": done})),
                &mut out,
            );
            output.push(done);
        }
        if let Some(u) = usage_from.filter(|u| u.is_object()) {
            self.usage = usage(Some(u));
        }
        let status = status_of(self.finish.as_deref());
        let r = self
            .head
            .response(status, output, self.usage.clone(), Value::Null);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.frame(kind, object(json!({"response": r})), &mut out);
        out
    }

    /// A failure after the stream started: `error`, then `response.failed`
    /// with what was produced so far.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.frame(
            "error",
            object(json!({"code": code, "message": message, "param": null})),
            &mut out,
        );
        let output: Vec<Value> = self
            .items
            .iter()
            .map(|i| match i {
                Item::Message { id, text } => message_item(id, text, "incomplete"),
                Item::Call { call, .. } => self.head.call_item(call, "incomplete"),
            })
            .collect();
        let r = self.head.response(
            "failed",
            output,
            self.usage.clone(),
            json!({"code": code, "message": message}),
        );
        self.frame("response.failed", object(json!({"response": r})), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Events {
        /// The call id a fresh call without an upstream id gets.
        fn open_call_id(mut self) -> String {
            let mut out = Vec::new();
            self.open_call(0, None, None, &mut out);
            match &self.items[0] {
                Item::Call { call, .. } => call.call_id.clone(),
                Item::Message { .. } => String::new(),
            }
        }
    }

    fn kinds(bytes: &[u8]) -> Vec<(String, u64)> {
        String::from_utf8_lossy(bytes)
            .split("\n\n")
            .filter_map(|frame| {
                let data = frame.lines().find_map(|l| l.strip_prefix("data: "))?;
                let v: Value = serde_json::from_str(data).ok()?;
                Some((
                    v["type"].as_str()?.to_string(),
                    v["sequence_number"].as_u64()?,
                ))
            })
            .collect()
    }

    #[test]
    fn a_streamed_turn_with_text_and_a_call() {
        let mut e = Events::new(Head::new("mock/m", Echo::default(), Names::default()));
        let mut out = e.start();
        out.extend(e.push(ChatEvent::Delta("Let me ".into())));
        out.extend(e.push(ChatEvent::Delta("add.".into())));
        out.extend(e.push(ChatEvent::ToolCall {
            index: 0,
            id: Some("call_1".into()),
            name: Some("add".into()),
            arguments: "{\"a\"".into(),
        }));
        out.extend(e.push(ChatEvent::ToolCall {
            index: 0,
            id: None,
            name: None,
            arguments: ":1}".into(),
        }));
        out.extend(e.finish(Some(&json!({"prompt_tokens": 3, "completion_tokens": 2}))));
        let k = kinds(&out);
        let names: Vec<&str> = k.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert!(k.iter().enumerate().all(|(i, (_, s))| *s == i as u64));
        let text = String::from_utf8_lossy(&out);
        let last = text.rsplit("data: ").next().unwrap_or("");
        let done: Value = serde_json::from_str(last.trim()).expect("json");
        let r = &done["response"];
        assert_eq!(r["status"], "completed");
        assert_eq!(r["output"][0]["content"][0]["text"], "Let me add.");
        assert_eq!(r["output"][1]["call_id"], "call_1");
        assert_eq!(r["output"][1]["arguments"], "{\"a\":1}");
        assert_eq!(r["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_broken_stream_ends_failed_never_completed() {
        let mut e = Events::new(Head::new("m", Echo::default(), Names::default()));
        let mut out = e.start();
        out.extend(e.push(ChatEvent::Delta("half".into())));
        out.extend(e.fail("upstream_error", "the stream broke off"));
        let names: Vec<String> = kinds(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.last().map(String::as_str), Some("response.failed"));
        assert!(names.contains(&"error".to_string()));
        assert!(!names.contains(&"response.completed".to_string()));
    }

    #[test]
    fn a_cut_answer_is_incomplete_and_calls_keep_the_clients_names() {
        let t = super::super::input::translate(
            &serde_json::from_value(json!({"tools": [
                {"type": "namespace", "name": "fs", "tools": [{"type": "function", "name": "read.file"}]}
            ]}))
            .expect("object"),
        )
        .expect("translates");
        let head = Head::new("m", Echo::default(), t.names);
        let r = head.completed(&json!({"choices": [{"finish_reason": "length", "message": {"content": "Once upon",
            "tool_calls": [{"type": "function", "function": {"name": "fs__read_file", "arguments": "{}"}}]}}]}));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        let call = &r["output"][1];
        assert_eq!(
            (&call["name"], &call["namespace"]),
            (&json!("read.file"), &json!("fs"))
        );
        assert!(
            call["call_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("call_") && c.len() > 10),
            "{call}"
        );
        // Streamed: the same, and made-up call ids never repeat.
        let mut e = Events::new(head.clone());
        let mut out = e.start();
        out.extend(e.push(ChatEvent::ToolCall {
            index: 0,
            id: None,
            name: None,
            arguments: "{".into(),
        }));
        out.extend(e.push(ChatEvent::ToolCall {
            index: 0,
            id: None,
            name: Some("fs__read_file".into()),
            arguments: "}".into(),
        }));
        out.extend(e.push(ChatEvent::Finish("length".into())));
        out.extend(e.finish(None));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("event: response.incomplete"), "{text}");
        assert!(!text.contains("response.completed"), "{text}");
        let last: Value =
            serde_json::from_str(text.rsplit("data: ").next().unwrap_or("").trim()).expect("json");
        let item = &last["response"]["output"][0];
        assert_eq!(item["name"], "read.file");
        let again = Events::new(head).open_call_id();
        assert_ne!(item["call_id"], json!(again));
    }

    #[test]
    fn a_whole_answer_with_calls() {
        let head = Head::new("woollama/r", Echo::default(), Names::default());
        let r = head.completed(&json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}));
        assert_eq!(r["object"], "response");
        assert_eq!(r["output"].as_array().map(Vec::len), Some(1));
        assert_eq!(r["output"][0]["type"], "function_call");
        assert_eq!(r["output"][0]["call_id"], "call_9");
        assert_eq!(r["usage"]["input_tokens"], 1);
        assert!(r["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
    }
}
