//! The Responses answer: a `response` object built from a chat turn, and
//! the streamed event sequence (contract §4.6, plus `response.in_progress`
//! as OpenAI sends it, function-call items, `usage`, and `response.failed`
//! — never `response.completed` — when the stream breaks off).

use serde_json::{Map, Value, json};

use super::input::Echo;
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
}

impl Head {
    pub fn new(model: &str, echo: Echo) -> Self {
        Self {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            created_at: wire::now(),
            model: model.to_string(),
            echo,
        }
    }

    /// The response object with `status`, `output` and `usage`.
    pub fn response(&self, status: &str, output: Vec<Value>, usage: Value, error: Value) -> Value {
        let e = &self.echo;
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": null,
            "instructions": e.instructions,
            "max_output_tokens": e.max_output_tokens,
            "metadata": e.metadata,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": e.parallel_tool_calls,
            "previous_response_id": null,
            "conversation": null,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": e.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": e.tool_choice,
            "tools": e.tools,
            "top_p": e.top_p,
            "truncation": "disabled",
            "usage": usage,
        })
    }

    /// A whole (non-streamed) answer from a `chat.completion`.
    pub fn completed(&self, completion: &Value) -> Value {
        let message = completion.pointer("/choices/0/message");
        let mut output = Vec::new();
        let text = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let calls = message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array);
        if !text.is_empty() || calls.is_none_or(|c| c.is_empty()) {
            output.push(message_item(&item_id("msg"), text, "completed"));
        }
        for call in calls.into_iter().flatten() {
            output.push(call_item(
                &item_id("fc"),
                call.get("id").and_then(Value::as_str).unwrap_or(""),
                call.pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                call.pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}"),
                "completed",
            ));
        }
        self.response(
            "completed",
            output,
            usage(completion.get("usage")),
            Value::Null,
        )
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

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
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

/// One output item being streamed.
#[derive(Debug)]
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        index: u64,
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
}

impl Events {
    pub fn new(head: Head) -> Self {
        Self {
            head,
            seq: 0,
            items: Vec::new(),
            usage: Value::Null,
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

    fn object(pairs: Value) -> Map<String, Value> {
        match pairs {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// `response.created` and `response.in_progress`.
    pub fn start(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let r = self
            .head
            .response("in_progress", Vec::new(), Value::Null, Value::Null);
        self.frame(
            "response.created",
            Self::object(json!({"response": r})),
            &mut out,
        );
        self.frame(
            "response.in_progress",
            Self::object(json!({"response": r})),
            &mut out,
        );
        out
    }

    /// The frames for one event of the turn.
    pub fn push(&mut self, event: ChatEvent) -> Vec<u8> {
        let mut out = Vec::new();
        match event {
            ChatEvent::Delta(text) => {
                let index = match self
                    .items
                    .iter()
                    .position(|i| matches!(i, Item::Message { .. }))
                {
                    Some(i) => i,
                    None => self.open_message(&mut out),
                };
                if let Item::Message { id, text: all } = &mut self.items[index] {
                    all.push_str(&text);
                    let id = id.clone();
                    self.frame(
                        "response.output_text.delta",
                        Self::object(json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []})),
                        &mut out,
                    );
                }
            }
            ChatEvent::ToolCall {
                index: call,
                id,
                name,
                arguments,
            } => {
                let pos = self
                    .items
                    .iter()
                    .position(|i| matches!(i, Item::Call { index, .. } if *index == call));
                let pos = match pos {
                    Some(p) => p,
                    None => self.open_call(call, id, name, &mut out),
                };
                if let Item::Call {
                    id, arguments: all, ..
                } = &mut self.items[pos]
                    && !arguments.is_empty()
                {
                    all.push_str(&arguments);
                    let id = id.clone();
                    self.frame(
                        "response.function_call_arguments.delta",
                        Self::object(
                            json!({"item_id": id, "output_index": pos, "delta": arguments}),
                        ),
                        &mut out,
                    );
                }
            }
            ChatEvent::Usage(u) => self.usage = usage(Some(&u)),
            ChatEvent::Id(_) | ChatEvent::Finish(_) => {}
        }
        out
    }

    fn open_message(&mut self, out: &mut Vec<u8>) -> usize {
        let id = item_id("msg");
        let index = self.items.len();
        self.frame(
            "response.output_item.added",
            Self::object(
                json!({"output_index": index, "item": message_item(&id, "", "in_progress")}),
            ),
            out,
        );
        self.frame(
            "response.content_part.added",
            Self::object(json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part("")})),
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
        call_id: Option<String>,
        name: Option<String>,
        out: &mut Vec<u8>,
    ) -> usize {
        let id = item_id("fc");
        let pos = self.items.len();
        let call_id = call_id.unwrap_or_else(|| format!("call_{index}"));
        let name = name.unwrap_or_default();
        self.frame(
            "response.output_item.added",
            Self::object(json!({"output_index": pos, "item": call_item(&id, &call_id, &name, "", "in_progress")})),
            out,
        );
        self.items.push(Item::Call {
            id,
            call_id,
            name,
            arguments: String::new(),
            index,
        });
        pos
    }

    /// Closes every item and sends `response.completed`. `usage` (a chat
    /// `usage`), when given, wins over what the stream carried.
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
                        Self::object(json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []})),
                        &mut out,
                    );
                    self.frame(
                        "response.content_part.done",
                        Self::object(json!({"item_id": id, "output_index": index, "content_index": 0, "part": text_part(text)})),
                        &mut out,
                    );
                    message_item(id, text, "completed")
                }
                Item::Call {
                    id,
                    call_id,
                    name,
                    arguments,
                    ..
                } => {
                    self.frame(
                        "response.function_call_arguments.done",
                        Self::object(json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments})),
                        &mut out,
                    );
                    call_item(id, call_id, name, arguments, "completed")
                }
            };
            self.frame(
                "response.output_item.done",
                Self::object(json!({"output_index": index, "item": done})),
                &mut out,
            );
            output.push(done);
        }
        if let Some(u) = usage_from.filter(|u| u.is_object()) {
            self.usage = usage(Some(u));
        }
        let r = self
            .head
            .response("completed", output, self.usage.clone(), Value::Null);
        self.frame(
            "response.completed",
            Self::object(json!({"response": r})),
            &mut out,
        );
        out
    }

    /// A failure after the stream started: `error`, then `response.failed`
    /// with what was produced so far.
    pub fn fail(&mut self, code: &str, message: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.frame(
            "error",
            Self::object(json!({"code": code, "message": message, "param": null})),
            &mut out,
        );
        let output: Vec<Value> = self
            .items
            .iter()
            .map(|i| match i {
                Item::Message { id, text } => message_item(id, text, "incomplete"),
                Item::Call {
                    id,
                    call_id,
                    name,
                    arguments,
                    ..
                } => call_item(id, call_id, name, arguments, "incomplete"),
            })
            .collect();
        let r = self.head.response(
            "failed",
            output,
            self.usage.clone(),
            json!({"code": code, "message": message}),
        );
        self.frame(
            "response.failed",
            Self::object(json!({"response": r})),
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut e = Events::new(Head::new("mock/m", Echo::default()));
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
        let mut e = Events::new(Head::new("m", Echo::default()));
        let mut out = e.start();
        out.extend(e.push(ChatEvent::Delta("half".into())));
        out.extend(e.fail("upstream_error", "the stream broke off"));
        let names: Vec<String> = kinds(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.last().map(String::as_str), Some("response.failed"));
        assert!(names.contains(&"error".to_string()));
        assert!(!names.contains(&"response.completed".to_string()));
    }

    #[test]
    fn a_whole_answer_with_calls() {
        let head = Head::new("woollama/r", Echo::default());
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
