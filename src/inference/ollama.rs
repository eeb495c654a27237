//! Ollama's native `/api/chat`, for requests that set `options.num_ctx`
//! (contract §9).
//!
//! Ollama's OpenAI-compatible `/v1` ignores `num_ctx`, so a pass-through
//! request to the `ollama` provider that asks for a context size and carries
//! no tools goes to `/api/chat` instead: the request is translated to the
//! native shape, and the answer back to a `chat.completion` — or, streaming,
//! Ollama's NDJSON lines to `chat.completion.chunk` SSE frames.
//!
//! Requests with tools stay on `/v1`: we do not half-translate tool calls.

use serde_json::{Map, Value, json};

use super::sse::Lines;
use crate::wire::{self, ChatCompletion, ChunkHead, Usage};

/// Whether a pass-through chat request to an Ollama inferencer should go
/// native.
pub fn wants_native(body: &Map<String, Value>) -> bool {
    let has_ctx = body
        .get("options")
        .and_then(|o| o.get("num_ctx"))
        .is_some_and(|v| !v.is_null());
    let has_tools = match body.get("tools") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    has_ctx && !has_tools
}

/// The native root for an OpenAI-compatible base: `http://h:11434/v1` →
/// `http://h:11434`.
pub fn native_root(base_url: &str) -> &str {
    let b = base_url.trim_end_matches('/');
    b.strip_suffix("/v1").unwrap_or(b)
}

/// Translates an OpenAI chat request (with `model` already bare) to the
/// native `/api/chat` body.
pub fn to_native_request(
    body: &Map<String, Value>,
    model: &str,
    stream: bool,
) -> Map<String, Value> {
    let mut options = match body.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    for key in ["temperature", "top_p", "seed", "stop"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            options.entry(key).or_insert_with(|| v.clone());
        }
    }
    if let Some(n) = body
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| body.get("max_tokens").filter(|v| !v.is_null()))
    {
        options.entry("num_predict").or_insert_with(|| n.clone());
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_string()));
    out.insert(
        "messages".into(),
        body.get("messages").cloned().unwrap_or_else(|| json!([])),
    );
    out.insert("stream".into(), Value::Bool(stream));
    out.insert("options".into(), Value::Object(options));
    if let Some(f) = body.get("format").filter(|v| !v.is_null()) {
        out.insert("format".into(), f.clone());
    }
    out
}

fn finish_reason(native: &Value) -> &'static str {
    match native.get("done_reason").and_then(Value::as_str) {
        Some("length") => "length",
        _ => "stop",
    }
}

fn content_of(native: &Value) -> &str {
    native
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Translates a native (non-streaming) answer to a `chat.completion`.
pub fn from_native_response(native: &Value, model: &str, id: &str, created: u64) -> Value {
    let count = |k: &str| native.get(k).and_then(Value::as_u64).unwrap_or(0);
    let message = json!({"role": "assistant", "content": content_of(native)});
    let mut c = ChatCompletion::new(id, created, model, message, finish_reason(native));
    c.usage = Some(Usage::new(count("prompt_eval_count"), count("eval_count")));
    c.to_value()
}

/// A native `{"error": "…"}` body (or anything else) as an OpenAI error body.
pub fn error_body(body: &[u8]) -> Vec<u8> {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    wire::error_body(&message, "upstream_error")
}

/// Turns Ollama's NDJSON stream into OpenAI SSE, one chunk of bytes at a
/// time. Lines are split on raw bytes, so a multi-byte character split
/// across network chunks is never decoded in halves.
#[derive(Debug)]
pub struct SseTranslator {
    head: ChunkHead,
    lines: Lines,
    started: bool,
    done: bool,
}

impl SseTranslator {
    pub fn new(head: ChunkHead) -> Self {
        Self {
            head,
            lines: Lines::default(),
            started: false,
            done: false,
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return; // blank or unparseable lines are skipped
        };
        if let Some(e) = v.get("error") {
            let message = e.as_str().map_or_else(|| e.to_string(), str::to_string);
            out.extend(wire::sse_raw(&wire::error_body(&message, "upstream_error")));
            return;
        }
        let content = content_of(&v);
        if !content.is_empty() {
            let delta = if self.started {
                json!({"content": content})
            } else {
                json!({"role": "assistant", "content": content})
            };
            self.started = true;
            out.extend(self.head.frame(&delta, None));
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            out.extend(self.head.end(finish_reason(&v)));
            self.done = true;
        }
    }

    /// Feeds bytes from upstream; returns the SSE bytes they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lines = std::mem::take(&mut self.lines);
        lines.push(bytes, |line| self.line(&line[..line.len() - 1], &mut out));
        self.lines = lines;
        out
    }

    /// Flushes a last unterminated line. If upstream ended without `done`,
    /// the stream is still closed properly.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(rest) = self.lines.finish() {
            self.line(&rest, &mut out);
        }
        if !self.done {
            out.extend(self.head.end("stop"));
            self.done = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> &'static str {
        match name {
            "request_in" => include_str!("../../tests/golden/ollama/request_in.json"),
            "request_out" => include_str!("../../tests/golden/ollama/request_out.json"),
            "response_in" => include_str!("../../tests/golden/ollama/response_in.json"),
            "response_out" => include_str!("../../tests/golden/ollama/response_out.json"),
            "stream_in" => include_str!("../../tests/golden/ollama/stream_in.ndjson"),
            "stream_out" => include_str!("../../tests/golden/ollama/stream_out.sse"),
            _ => panic!("no golden file {name}"),
        }
    }

    fn head(model: &str, id: &str, created: u64) -> ChunkHead {
        ChunkHead {
            id: id.into(),
            created,
            model: model.into(),
        }
    }

    fn json(name: &str) -> Value {
        serde_json::from_str(golden(name)).expect("golden json")
    }

    #[test]
    fn request_translation_matches_golden() {
        let Value::Object(body) = json("request_in") else {
            panic!()
        };
        let out = to_native_request(&body, "qwen3:14b", false);
        assert_eq!(Value::Object(out), json("request_out"));
    }

    #[test]
    fn explicit_options_win_over_top_level() {
        let Value::Object(body) = serde_json::json!({
            "messages": [], "temperature": 0.9, "max_tokens": 5, "max_completion_tokens": 7,
            "options": {"num_ctx": 8192, "temperature": 0.1}
        }) else {
            panic!()
        };
        let out = to_native_request(&body, "m", true);
        assert_eq!(out["options"]["temperature"], 0.1);
        assert_eq!(out["options"]["num_predict"], 7);
        assert_eq!(out["stream"], true);
    }

    #[test]
    fn response_translation_matches_golden() {
        let out = from_native_response(
            &json("response_in"),
            "qwen3:14b",
            "chatcmpl-golden",
            1_700_000_000,
        );
        assert_eq!(out, json("response_out"));
    }

    #[test]
    fn stream_translation_matches_golden_whatever_the_chunking() {
        let input = golden("stream_in").as_bytes();
        let want = golden("stream_out");
        // Feed in every chunk size from 1 byte (splitting multi-byte
        // characters) to the whole input at once.
        for size in [1, 2, 3, 7, 64, input.len()] {
            let mut t = SseTranslator::new(head("qwen3:14b", "chatcmpl-golden", 1_700_000_000));
            let mut out = Vec::new();
            for chunk in input.chunks(size) {
                out.extend(t.push(chunk));
            }
            out.extend(t.finish());
            assert_eq!(
                String::from_utf8(out).expect("utf8"),
                want,
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn a_stream_without_done_is_still_closed() {
        let mut t = SseTranslator::new(head("m", "chatcmpl-x", 1));
        let mut out = t.push(b"{\"message\":{\"content\":\"hi\"},\"done\":false}\n");
        out.extend(t.finish());
        let s = String::from_utf8(out).expect("utf8");
        assert!(
            s.ends_with("\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"),
            "{s}"
        );
    }

    #[test]
    fn native_errors_become_openai_errors() {
        let e: Value =
            serde_json::from_slice(&error_body(br#"{"error":"model 'nope' not found"}"#))
                .expect("json");
        assert_eq!(e["error"]["message"], "model 'nope' not found");
        assert_eq!(e["error"]["type"], "upstream_error");
        let mut t = SseTranslator::new(head("m", "chatcmpl-x", 1));
        let s = String::from_utf8(t.push(b"{\"error\":\"out of memory\"}\n")).expect("utf8");
        assert_eq!(
            s,
            "data: {\"error\":{\"message\":\"out of memory\",\"type\":\"upstream_error\"}}\n\n"
        );
    }

    #[test]
    fn routing_rule() {
        let m = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        assert!(wants_native(&m(
            serde_json::json!({"options": {"num_ctx": 4096}})
        )));
        assert!(wants_native(&m(
            serde_json::json!({"options": {"num_ctx": 4096}, "tools": []})
        )));
        assert!(!wants_native(&m(
            serde_json::json!({"options": {"num_ctx": null}})
        )));
        assert!(!wants_native(&m(
            serde_json::json!({"options": {"num_ctx": 1}, "tools": [{}]})
        )));
        assert_eq!(native_root("http://h:11434/v1"), "http://h:11434");
        assert_eq!(native_root("http://h:11434/v1/"), "http://h:11434");
    }
}
