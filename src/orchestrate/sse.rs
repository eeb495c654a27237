//! Reading an upstream chat-completions SSE stream inside the loop: `data:`
//! lines are split on raw bytes (a multi-byte character split across network
//! chunks is never decoded in halves), and streamed tool-call fragments are
//! reassembled by `index`.

use serde_json::{Map, Value, json};

/// Splits SSE bytes into `data:` payloads.
#[derive(Debug, Default)]
pub struct DataLines {
    buf: Vec<u8>,
}

impl DataLines {
    /// Feeds bytes; returns the complete `data:` payloads they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if let Some(data) = data_of(&line) {
                out.push(data);
            }
        }
        out
    }

    /// A last line without a newline.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        data_of(&rest)
    }
}

fn data_of(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let data = line.strip_prefix(b"data:")?;
    let data = data.strip_prefix(b" ").unwrap_or(data);
    Some(String::from_utf8_lossy(data).into_owned())
}

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
    /// Takes one chunk; returns its content delta, if any.
    pub fn chunk(&mut self, v: &Value) -> Option<String> {
        if self.id.is_none() {
            self.id = v.get("id").and_then(Value::as_str).map(str::to_string);
        }
        let choice = v.get("choices")?.get(0)?;
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_string());
        }
        let delta = choice.get("delta")?;
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, c) in calls.iter().enumerate() {
                let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                let slot = match self.calls.iter().position(|(i, _)| *i == index) {
                    Some(p) => &mut self.calls[p].1,
                    None => {
                        self.calls.push((index, Partial::default()));
                        let last = self.calls.len() - 1;
                        &mut self.calls[last].1
                    }
                };
                if slot.id.is_empty()
                    && let Some(id) = c.get("id").and_then(Value::as_str)
                {
                    slot.id = id.to_string();
                }
                if let Some(f) = c.get("function") {
                    if slot.name.is_empty()
                        && let Some(n) = f.get("name").and_then(Value::as_str)
                    {
                        slot.name = n.to_string();
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        slot.arguments.push_str(a);
                    }
                }
            }
        }
        let text = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())?;
        self.content.push_str(text);
        Some(text.to_string())
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
        json!({
            "id": self.id.unwrap_or_else(crate::inference::ollama::completion_id),
            "object": "chat.completion",
            "created": crate::inference::ollama::now(),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_on_bytes() {
        let mut d = DataLines::default();
        let input = "data: {\"a\":\"é\"}\r\n\r\n: comment\ndata:[DONE]\n".as_bytes();
        let mut out = Vec::new();
        for b in input.chunks(1) {
            out.extend(d.push(b));
        }
        assert_eq!(out, vec!["{\"a\":\"é\"}", "[DONE]"]);
    }

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
        let deltas: Vec<String> = chunks.iter().filter_map(|c| a.chunk(c)).collect();
        assert_eq!(deltas, vec!["Let me ", "count."]);
        let done = a.finish("m");
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
