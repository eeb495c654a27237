//! An Anthropic Messages request as an OpenAI chat request (`docs/messages.md`
//! has the table).
//!
//! - `system` (a string or text blocks) → one `system` message first; a
//!   `system` message inside `messages` (Claude Code sends its environment
//!   that way) → a `system` message in its place.
//! - `messages`: text blocks → text (a string when there is only text, else
//!   content parts); `image` (base64 or url) → an `image_url` part (a data
//!   URL for base64); an assistant's `tool_use` blocks → its `tool_calls`
//!   (input as a JSON string); a user's `tool_result` blocks → `tool`
//!   messages placed right after the calls they answer, before any text of
//!   the same turn (an `is_error` result says so in its text, which is all
//!   OpenAI's shape has for it). `thinking` and other blocks with nothing a
//!   chat backend can take are left out.
//! - `tools` (`name`, `description`, `input_schema`) → function tools;
//!   Anthropic's server tools (a `type` other than `custom`, no schema) have
//!   no chat equivalent and are left out.
//! - `tool_choice`: `auto` → `"auto"`, `any` → `"required"`, `tool` → the
//!   named function, `none` → `"none"`; `disable_parallel_tool_use` →
//!   `parallel_tool_calls: false`.
//! - `max_tokens`, `temperature`, `top_p`, `top_k`, `stop_sequences` (→
//!   `stop`), `stream` (with usage asked for); `metadata`, `thinking`,
//!   `service_tier` and the like are not chat parameters and are dropped.
//!
//! A malformed request is refused with what is wrong, before anything is
//! sent.

use serde_json::{Map, Value, json};

use crate::http::error::RequestError;

/// A translated request.
#[derive(Debug, Clone)]
pub struct Translated {
    /// The chat request, without `model`.
    pub chat: Map<String, Value>,
    pub stream: bool,
    /// The client sent tools of its own (a recipe refuses them).
    pub client_tools: bool,
}

fn bad(field: &'static str, expected: &'static str) -> RequestError {
    RequestError::FieldType { field, expected }
}

/// The text of a `system` value or a `tool_result`'s `content`: a string,
/// or the text blocks joined.
fn text_of(v: &Value, field: &'static str) -> Result<String, RequestError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n")),
        _ => Err(bad(field, "a string or an array of content blocks")),
    }
}

/// An `image` block as an `image_url` part.
fn image(block: &Value) -> Option<Value> {
    let source = &block["source"];
    let url = match source["type"].as_str()? {
        "base64" => format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str()?
        ),
        "url" => source["url"].as_str()?.to_string(),
        _ => return None,
    };
    Some(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Text and image parts as chat content: a string when it is all text.
fn content(parts: Vec<Value>) -> Value {
    if parts.iter().all(|p| p["type"] == "text") {
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        return Value::String(text.join(""));
    }
    Value::Array(parts)
}

/// One Anthropic message as chat messages (a user turn with tool results
/// becomes the `tool` messages, then the rest).
fn message(m: &Value, out: &mut Vec<Value>) -> Result<(), RequestError> {
    let role = match m["role"].as_str() {
        Some(r @ ("user" | "assistant")) => r,
        Some("system") => {
            let text = text_of(&m["content"], "messages[].content")?;
            out.push(json!({"role": "system", "content": text}));
            return Ok(());
        }
        _ => return Err(bad("messages[].role", "`user`, `assistant` or `system`")),
    };
    let blocks = match &m["content"] {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => {
            return Err(bad(
                "messages[].content",
                "a string or an array of content blocks",
            ));
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => {
                let text = b["text"]
                    .as_str()
                    .ok_or_else(|| bad("messages[].content[].text", "a string"))?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => parts.extend(image(b)),
            Some("tool_use") if role == "assistant" => {
                let name = b["name"]
                    .as_str()
                    .ok_or_else(|| bad("tool_use.name", "a string"))?;
                calls.push(json!({
                    "id": b["id"].as_str().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": name, "arguments": b["input"].to_string()},
                }));
            }
            Some("tool_result") if role == "user" => {
                let id = b["tool_use_id"]
                    .as_str()
                    .ok_or_else(|| bad("tool_result.tool_use_id", "a string"))?;
                let mut text = text_of(&b["content"], "tool_result.content")?;
                if b["is_error"] == true {
                    text = format!("ERROR: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            // thinking, redacted_thinking, documents, server tool blocks:
            // nothing a chat backend takes.
            _ => {}
        }
    }
    if role == "assistant" {
        let mut msg = json!({"role": "assistant", "content": content(parts)});
        if !calls.is_empty() {
            if msg["content"] == "" {
                msg["content"] = Value::Null;
            }
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    } else if !parts.is_empty() {
        out.push(json!({"role": "user", "content": content(parts)}));
    }
    Ok(())
}

fn tool(t: &Value) -> Option<Value> {
    if t["type"].as_str().is_some_and(|k| k != "custom") {
        return None;
    }
    let mut function = json!({
        "name": t["name"].as_str()?,
        "parameters": t.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(d) = t["description"].as_str() {
        function["description"] = json!(d);
    }
    Some(json!({"type": "function", "function": function}))
}

fn tool_choice(c: &Value, chat: &mut Map<String, Value>) -> Result<(), RequestError> {
    let choice = match c["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = c["name"]
                .as_str()
                .ok_or_else(|| bad("tool_choice.name", "a string"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(bad(
                "tool_choice",
                "an object with `type` auto, any, tool or none",
            ));
        }
    };
    chat.insert("tool_choice".into(), choice);
    if c["disable_parallel_tool_use"] == true {
        chat.insert("parallel_tool_calls".into(), json!(false));
    }
    Ok(())
}

/// Translates a Messages request body (its `model` already read).
pub fn translate(body: &Map<String, Value>) -> Result<Translated, RequestError> {
    let mut messages = Vec::new();
    if let Some(system) = body.get("system") {
        let s = text_of(system, "system")?;
        if !s.is_empty() {
            messages.push(json!({"role": "system", "content": s}));
        }
    }
    let Some(Value::Array(input)) = body.get("messages") else {
        return Err(bad("messages", "an array of messages"));
    };
    for m in input {
        message(m, &mut messages)?;
    }
    let mut chat = Map::new();
    chat.insert("messages".into(), Value::Array(messages));
    match body.get("max_tokens") {
        Some(v @ Value::Number(_)) => {
            chat.insert("max_tokens".into(), v.clone());
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(bad("max_tokens", "a number")),
    }
    for k in ["temperature", "top_p", "top_k"] {
        if let Some(v @ Value::Number(_)) = body.get(k) {
            chat.insert(k.into(), v.clone());
        }
    }
    if let Some(Value::Array(stops)) = body.get("stop_sequences")
        && !stops.is_empty()
    {
        chat.insert("stop".into(), Value::Array(stops.clone()));
    }
    let tools: Vec<Value> = match body.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.iter().filter_map(tool).collect(),
        Some(_) => return Err(bad("tools", "an array of tools")),
    };
    let client_tools = !tools.is_empty();
    if client_tools {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(c) = body.get("tool_choice").filter(|c| !c.is_null()) {
            tool_choice(c, &mut chat)?;
        }
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("stream", "a boolean")),
    };
    Ok(Translated {
        chat,
        stream,
        client_tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Value) -> Map<String, Value> {
        translate(v.as_object().expect("object"))
            .expect("translates")
            .chat
    }

    #[test]
    fn golden_request() {
        let chat = t(json!({
            "model": "x",
            "max_tokens": 100,
            "system": [{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Really."}],
            "temperature": 0.2, "top_k": 5, "stop_sequences": ["END"],
            "metadata": {"user_id": "u"}, "thinking": {"type": "enabled"},
            "tools": [
                {"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search"}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": "no data"}
                ]}
            ]
        }));
        assert_eq!(
            Value::Object(chat),
            json!({
                "messages": [
                    {"role": "system", "content": "Be terse.\nReally."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": "Checking.", "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "And tomorrow?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_2", "content": "ERROR: no data"}
                ],
                "max_tokens": 100,
                "temperature": 0.2,
                "top_k": 5,
                "stop": ["END"],
                "tools": [{"type": "function", "function": {"name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "description": "Weather."}}],
                "tool_choice": "required",
                "parallel_tool_calls": false
            })
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let e = |v: Value| {
            translate(v.as_object().expect("object"))
                .expect_err("refused")
                .to_string()
        };
        assert!(e(json!({"model": "m"})).contains("`messages`"));
        assert!(
            e(json!({"messages": [{"role": "tool", "content": "x"}]}))
                .contains("`messages[].role`")
        );
        assert!(e(json!({"messages": [], "max_tokens": "9"})).contains("`max_tokens`"));
        assert!(
            e(json!({"messages": [], "tools": [{"name": "t", "input_schema": {}}], "tool_choice": {"type": "sometimes"}}))
                .contains("`tool_choice`")
        );
    }
}
