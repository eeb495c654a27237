//! Reading an upstream's chat-completions event stream: `data:` payloads
//! split on raw bytes (a multi-byte character split across network chunks is
//! never decoded in halves), each chunk turned into typed [`ChatEvent`]s.
//!
//! Hand-written rather than `sse-stream` (already in the tree through rmcp):
//! that parser drops an event the upstream did not end with a blank line
//! when the body ends, and stops at a line it does not know; upstreams send
//! both (`data: [DONE]` with one newline; proxies' comment or garbage lines),
//! and a turn must not lose its last chunk for it.

use serde_json::Value;

/// What one chunk of a streamed chat turn says, in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The upstream's id for the turn.
    Id(String),
    /// Assistant text.
    Delta(String),
    /// A piece of a tool call: calls are told apart by `index`; `id` and
    /// `name` usually come with the first piece, `arguments` in pieces.
    ToolCall {
        index: u64,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// Token counts (when the request asked for them).
    Usage(Value),
    /// Why the turn ended (`stop`, `length`, `tool_calls`).
    Finish(String),
}

/// The events in one parsed `chat.completion.chunk`.
pub fn events(chunk: &Value) -> Vec<ChatEvent> {
    let mut out = Vec::new();
    if let Some(id) = chunk.get("id").and_then(Value::as_str) {
        out.push(ChatEvent::Id(id.to_string()));
    }
    if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
        out.push(ChatEvent::Usage(u.clone()));
    }
    let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
        return out;
    };
    if let Some(delta) = choice.get("delta") {
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, c) in calls.iter().enumerate() {
                let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
                let function = c.get("function");
                out.push(ChatEvent::ToolCall {
                    index: c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64),
                    id: text(c.get("id")),
                    name: text(function.and_then(|f| f.get("name"))),
                    arguments: text(function.and_then(|f| f.get("arguments"))).unwrap_or_default(),
                });
            }
        }
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            out.push(ChatEvent::Delta(text.to_string()));
        }
    }
    if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
        out.push(ChatEvent::Finish(f.to_string()));
    }
    out
}

/// The longest line kept: an upstream that never sends a newline cannot
/// make woollama buffer without end; a longer line is dropped (with a
/// warning) up to its newline.
pub const LINE_LIMIT: usize = 8 * 1024 * 1024;

/// Splits a byte stream into lines (each with its `\n`, a last one
/// without), whatever the chunking, keeping at most [`LINE_LIMIT`] of a line
/// that has not ended. Shared by the SSE and NDJSON readers.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// Inside a line longer than [`LINE_LIMIT`]: dropping it.
    skipping: bool,
}

impl Lines {
    /// Feeds bytes; calls `each` with every line they complete. Complete
    /// lines inside `bytes` are handed over in place, not copied.
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(pos + 1);
            rest = after;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.buf.is_empty() {
                each(line);
            } else {
                self.buf.extend_from_slice(line);
                each(&self.buf);
                self.buf.clear();
            }
        }
        if !self.skipping {
            self.buf.extend_from_slice(rest);
            if self.buf.len() > LINE_LIMIT {
                tracing::warn!(
                    limit = LINE_LIMIT,
                    "an upstream stream line is longer than woollama keeps; dropping it"
                );
                self.buf = Vec::new();
                self.skipping = true;
            }
        }
    }

    /// A last line without a newline (`None` if it was being dropped).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        (!std::mem::take(&mut self.skipping)).then_some(rest)
    }
}

/// Splits SSE bytes into `data:` payloads.
#[derive(Debug, Default)]
pub struct DataLines {
    lines: Lines,
}

impl DataLines {
    /// Feeds bytes; returns the complete `data:` payloads they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        self.lines.push(bytes, |line| out.extend(data_of(line)));
        out
    }

    /// A last line without a newline.
    pub fn finish(&mut self) -> Option<String> {
        self.lines.finish().and_then(|rest| data_of(&rest))
    }
}

fn data_of(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let data = line.strip_prefix(b"data:")?;
    let data = data.strip_prefix(b" ").unwrap_or(data);
    Some(String::from_utf8_lossy(data).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_lines_split_on_bytes() {
        let mut d = DataLines::default();
        let input = "data: {\"a\":\"é\"}\r\n\r\n: comment\ndata:[DONE]\n".as_bytes();
        let mut out = Vec::new();
        for b in input.chunks(1) {
            out.extend(d.push(b));
        }
        assert_eq!(out, vec!["{\"a\":\"é\"}", "[DONE]"]);
        // A last payload without its newline is still read.
        let mut d = DataLines::default();
        assert!(d.push(b"data: last").is_empty());
        assert_eq!(d.finish().as_deref(), Some("last"));
    }

    #[test]
    fn an_endless_line_is_not_buffered_without_end() {
        let mut d = DataLines::default();
        let mb = vec![b'x'; 1024 * 1024];
        d.push(b"data: ");
        for _ in 0..20 {
            assert!(d.push(&mb).is_empty());
            assert!(d.lines.buf.len() <= LINE_LIMIT + mb.len());
        }
        // The overlong line ends; the next one is read.
        assert_eq!(d.push(b"\ndata: next\n"), vec!["next"]);
    }

    #[test]
    fn a_chunk_becomes_typed_events() {
        let chunk = json!({"id": "x", "choices": [{"delta": {"content": "hi", "tool_calls": [
            {"index": 1, "id": "c", "function": {"name": "f", "arguments": "{\"a\""}}
        ]}, "finish_reason": "tool_calls"}], "usage": {"total_tokens": 3}});
        assert_eq!(
            events(&chunk),
            vec![
                ChatEvent::Id("x".into()),
                ChatEvent::Usage(json!({"total_tokens": 3})),
                ChatEvent::ToolCall {
                    index: 1,
                    id: Some("c".into()),
                    name: Some("f".into()),
                    arguments: "{\"a\"".into()
                },
                ChatEvent::Delta("hi".into()),
                ChatEvent::Finish("tool_calls".into()),
            ]
        );
        assert!(events(&json!({"choices": []})).is_empty());
    }
}
