//! A streamed turn put back together: the typed events of
//! `inference::sse` accumulated into the `chat.completion` the loop and the
//! surfaces read, tool calls reassembled from their fragments by `index`.

use serde_json::{Map, Value, json};

use crate::inference::ChatEvent;
use crate::wire::{self, ChatCompletion};

/// One tool call being reassembled from fragments.
#[derive(Debug, Default, Clone)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
}

/// Accumulates a streamed turn into a `chat.completion`.
#[derive(Debug, Default)]
pub struct Assembler {
    content: String,
    calls: Vec<(u64, Partial)>,
    finish: Option<String>,
    id: Option<String>,
}

impl Assembler {
    /// Takes one event; returns its text, if it is a text delta.
    pub fn push(&mut self, event: ChatEvent) -> Option<String> {
        match event {
            ChatEvent::Id(id) => {
                self.id.get_or_insert(id);
            }
            ChatEvent::Delta(text) => {
                self.content.push_str(&text);
                return Some(text);
            }
            ChatEvent::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let slot = match self.calls.iter().position(|(i, _)| *i == index) {
                    Some(p) => &mut self.calls[p].1,
                    None => {
                        self.calls.push((index, Partial::default()));
                        let last = self.calls.len() - 1;
                        &mut self.calls[last].1
                    }
                };
                if slot.id.is_empty()
                    && let Some(id) = id
                {
                    slot.id = id;
                }
                if slot.name.is_empty()
                    && let Some(name) = name
                {
                    slot.name = name;
                }
                slot.arguments.push_str(&arguments);
            }
            ChatEvent::Finish(f) => self.finish = Some(f),
            ChatEvent::Usage(_) => {}
        }
        None
    }

    /// The turn as a `chat.completion`.
    pub fn finish(mut self, model: &str) -> Value {
        self.calls.sort_by_key(|(i, _)| *i);
        let calls: Vec<Value> = self
            .calls
            .iter()
            .enumerate()
            .map(|(i, (_, c))| {
                let id = if c.id.is_empty() { format!("call_{i}") } else { c.id.clone() };
                json!({"id": id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), json!(self.content));
        let finish = if calls.is_empty() {
            self.finish.unwrap_or_else(|| "stop".into())
        } else {
            message.insert("tool_calls".into(), Value::Array(calls));
            "tool_calls".into()
        };
        let id = self.id.unwrap_or_else(wire::completion_id);
        ChatCompletion::new(&id, wire::now(), model, Value::Object(message), &finish).to_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::sse::events;

    #[test]
    fn fragments_reassemble_by_index() {
        let mut a = Assembler::default();
        let chunks = [
            json!({"id": "x", "choices": [{"delta": {"content": "Let me "}}]}),
            json!({"choices": [{"delta": {"content": "count."}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "b", "function": {"name": "second", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "first", "arguments": "{\"n\""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 3}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ];
        let deltas: Vec<String> = chunks
            .iter()
            .flat_map(events)
            .filter_map(|e| a.push(e))
            .collect();
        assert_eq!(deltas, vec!["Let me ", "count."]);
        let done = a.finish("m");
        assert_eq!(done["id"], "x");
        let msg = &done["choices"][0]["message"];
        assert_eq!(msg["content"], "Let me count.");
        assert_eq!(
            msg["tool_calls"][0]["function"],
            json!({"name": "first", "arguments": "{\"n\": 3}"})
        );
        assert_eq!(msg["tool_calls"][1]["id"], "b");
        assert_eq!(done["choices"][0]["finish_reason"], "tool_calls");
    }
}
