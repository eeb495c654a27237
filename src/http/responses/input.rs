//! A Responses request as the chat-completions request the backends take.
//!
//! - `input`: a string (one user turn) or a list of items: messages (content
//!   a string or parts; `input_text`/`output_text`/`text` parts are text,
//!   `input_image` parts become `image_url` parts), `function_call` items
//!   (consecutive ones become one assistant message with `tool_calls`, ids
//!   kept as the upstream minted them), `function_call_output` items (tool
//!   messages); `reasoning` and other items are skipped.
//! - `instructions` becomes the system message; `developer` messages become
//!   `system` (local chat templates know no `developer` role).
//! - `temperature`, `top_p`, `max_output_tokens` (→ `max_tokens`),
//!   `tool_choice`, `parallel_tool_calls` and `options` (Ollama's knobs) map
//!   onto the chat request; a known field of the wrong type is a 400 naming
//!   it. Fields woollama cannot honour (`reasoning`, `include`, `text`,
//!   `truncation`, `prompt_cache_key`, …) are accepted and ignored, as real
//!   clients send them.
//! - `tools`: `function` tools go to the model; a `namespace` tool's
//!   functions are flattened to `<namespace>__<name>`; hosted tools
//!   (`web_search`, …) that a chat backend cannot run are left out.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::http::error::RequestError;

/// The client's tool names and the names a chat backend sees: a namespace
/// flattened to `<namespace>__<name>`, characters chat backends refuse
/// replaced by `_`. The model's calls are mapped back, so the client gets a
/// `function_call` for the tool it declared.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// chat name → (namespace, the client's name).
    to_client: HashMap<String, (Option<String>, String)>,
}

impl Names {
    /// The chat name of a client's tool.
    pub fn chat_name(namespace: Option<&str>, name: &str) -> String {
        let full = match namespace.filter(|n| !n.is_empty()) {
            Some(ns) => format!("{ns}__{name}"),
            None => name.to_string(),
        };
        full.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The client's (namespace, name) for a name the model called.
    pub fn client<'a>(&'a self, chat: &'a str) -> (Option<&'a str>, &'a str) {
        match self.to_client.get(chat) {
            Some((ns, name)) => (ns.as_deref(), name.as_str()),
            None => (None, chat),
        }
    }

    /// Records a tool; `false` when its chat name is another tool's.
    fn add(&mut self, namespace: Option<&str>, name: &str) -> bool {
        let chat = Names::chat_name(namespace, name);
        let client = (namespace.map(str::to_string), name.to_string());
        match self.to_client.get(&chat) {
            Some(existing) => *existing == client,
            None => {
                self.to_client.insert(chat, client);
                true
            }
        }
    }
}

/// The chat request a Responses request becomes, and what the answer needs
/// to echo.
#[derive(Debug)]
pub struct Translated {
    /// `messages` and the mapped parameters (no `model`, no `stream`).
    pub chat: Map<String, Value>,
    pub stream: bool,
    /// The client sent function tools (a recipe refuses them).
    pub client_tools: bool,
    /// Echoed on the response object.
    pub echo: Echo,
    /// How the client's tool names map to the chat names.
    pub names: Names,
}

/// The request fields a response object repeats.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Value,
    pub temperature: Value,
    pub top_p: Value,
    pub max_output_tokens: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub tools: Value,
    pub metadata: Value,
}

/// Whether the request names conversation state (contract §4.6).
pub fn is_stateful(body: &Map<String, Value>) -> bool {
    body.get("store") == Some(&Value::Bool(true))
        || ["conversation", "previous_response_id", "key"]
            .iter()
            .any(|k| body.get(*k).is_some_and(|v| !v.is_null()))
}

fn wrong(field: &'static str, expected: &'static str) -> RequestError {
    RequestError::FieldType { field, expected }
}

/// A field that must be of one JSON kind when present (null = absent).
fn field<'a>(
    body: &'a Map<String, Value>,
    name: &'static str,
    expected: &'static str,
    ok: fn(&Value) -> bool,
) -> Result<Option<&'a Value>, RequestError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if ok(v) => Ok(Some(v)),
        Some(_) => Err(wrong(name, expected)),
    }
}

/// Translates a Responses request body.
pub fn translate(body: &Map<String, Value>) -> Result<Translated, RequestError> {
    let stream = field(body, "stream", "a boolean", Value::is_boolean)?
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let instructions = field(body, "instructions", "a string", Value::is_string)?;
    let mut messages = Vec::new();
    if let Some(text) = instructions
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        messages.push(json!({"role": "system", "content": text}));
    }

    let mut chat = Map::new();
    for (from, to, expected, ok) in [
        (
            "temperature",
            "temperature",
            "a number",
            Value::is_number as fn(&Value) -> bool,
        ),
        ("top_p", "top_p", "a number", Value::is_number),
        (
            "max_output_tokens",
            "max_tokens",
            "an integer",
            Value::is_u64,
        ),
        ("options", "options", "an object", Value::is_object),
    ] {
        if let Some(v) = field(body, from, expected, ok)? {
            chat.insert(to.into(), v.clone());
        }
    }
    let mut names = Names::default();
    let tools = match field(body, "tools", "an array of tools", Value::is_array)? {
        Some(Value::Array(list)) => chat_tools(list, &mut names)?,
        _ => Vec::new(),
    };
    messages.extend(input_messages(body.get("input"))?);
    chat.insert("messages".into(), Value::Array(messages));
    let client_tools = !tools.is_empty();
    let tool_choice = field(body, "tool_choice", "a string or an object", |v| {
        v.is_string() || v.is_object()
    })?;
    let parallel = field(body, "parallel_tool_calls", "a boolean", Value::is_boolean)?;
    if client_tools {
        chat.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice {
            chat.insert("tool_choice".into(), chat_tool_choice(choice));
        }
        if let Some(p) = parallel {
            chat.insert("parallel_tool_calls".into(), p.clone());
        }
    }
    let echo = Echo {
        instructions: instructions.cloned().unwrap_or(Value::Null),
        temperature: body.get("temperature").cloned().unwrap_or(Value::Null),
        top_p: body.get("top_p").cloned().unwrap_or(Value::Null),
        max_output_tokens: body
            .get("max_output_tokens")
            .cloned()
            .unwrap_or(Value::Null),
        tool_choice: tool_choice.cloned().unwrap_or_else(|| json!("auto")),
        parallel_tool_calls: parallel.and_then(Value::as_bool).unwrap_or(true),
        tools: body.get("tools").cloned().unwrap_or_else(|| json!([])),
        metadata: body
            .get("metadata")
            .filter(|m| m.is_object())
            .cloned()
            .unwrap_or_else(|| json!({})),
    };
    Ok(Translated {
        chat,
        stream,
        client_tools,
        echo,
        names,
    })
}

const BAD_INPUT: &str = "a string or a list of message items";

/// `input` as chat messages.
fn input_messages(input: Option<&Value>) -> Result<Vec<Value>, RequestError> {
    let items = match input {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({"role": "user", "content": s})]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(wrong("input", BAD_INPUT)),
    };
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        let Value::Object(item) = item else { continue };
        match item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
        {
            "message" => out.push(message(item)),
            "function_call" => {
                let name = Names::chat_name(
                    item.get("namespace").and_then(Value::as_str),
                    item.get("name").and_then(Value::as_str).unwrap_or(""),
                );
                let call = json!({
                    "id": item.get("call_id").or_else(|| item.get("id")).cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                    },
                });
                // Consecutive calls are one assistant turn.
                match out.last_mut() {
                    Some(last)
                        if last["role"] == "assistant" && last.get("tool_calls").is_some() =>
                    {
                        if let Some(Value::Array(calls)) = last.get_mut("tool_calls") {
                            calls.push(call);
                        }
                    }
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => out.push(json!({
                "role": "tool",
                "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                "content": text_of(item.get("output")),
            })),
            _ => {} // reasoning, and items a chat backend has no use for
        }
    }
    Ok(out)
}

/// A message item as a chat message.
fn message(item: &Map<String, Value>) -> Value {
    let role = match item.get("role").and_then(Value::as_str) {
        None => "user",
        Some("developer") => "system",
        Some(r) => r,
    };
    let content = match item.get("content") {
        Some(Value::Array(parts)) if parts.iter().any(is_image) => {
            Value::Array(parts.iter().filter_map(chat_part).collect())
        }
        other => Value::String(text_of(other)),
    };
    json!({"role": role, "content": content})
}

fn is_image(part: &Value) -> bool {
    part.get("type").and_then(Value::as_str) == Some("input_image")
}

/// A content part as a chat content part (text or image).
fn chat_part(part: &Value) -> Option<Value> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_image") => {
            let url = part.get("image_url").and_then(|u| {
                u.as_str()
                    .map(str::to_string)
                    .or_else(|| u.get("url")?.as_str().map(str::to_string))
            })?;
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        Some("input_text" | "output_text" | "text") => Some(
            json!({"type": "text", "text": part.get("text").and_then(Value::as_str).unwrap_or("")}),
        ),
        _ => None,
    }
}

/// The text of a content value: a string, or its text parts concatenated.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("input_text" | "output_text" | "text")
                )
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The client's tools as chat tools.
fn chat_tools(list: &[Value], names: &mut Names) -> Result<Vec<Value>, RequestError> {
    let mut out = Vec::new();
    for tool in list {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => out.push(function(tool, None, names)?),
            Some("namespace") => {
                let prefix = tool.get("name").and_then(Value::as_str).unwrap_or("");
                for inner in tool
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if inner
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("function")
                        == "function"
                    {
                        out.push(function(inner, Some(prefix), names)?);
                    }
                }
            }
            _ => {} // hosted tools a chat backend cannot run
        }
    }
    Ok(out)
}

/// One function tool (`{type, name, description, parameters, strict}`), its
/// name prefixed by a namespace and made valid for chat backends.
fn function(
    tool: &Value,
    namespace: Option<&str>,
    names: &mut Names,
) -> Result<Value, RequestError> {
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or(wrong("tools[].name", "a string"))?;
    if !names.add(namespace, name) {
        return Err(wrong(
            "tools",
            "tools whose names stay distinct once made valid for chat backends (letters, digits, `_`, `-`)",
        ));
    }
    let name = Names::chat_name(namespace, name);
    let mut f = Map::new();
    f.insert("name".into(), Value::String(name));
    for key in ["description", "parameters", "strict"] {
        if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
            f.insert(key.into(), v.clone());
        }
    }
    Ok(json!({"type": "function", "function": f}))
}

/// `tool_choice` in chat's shape.
fn chat_tool_choice(choice: &Value) -> Value {
    match choice.get("type").and_then(Value::as_str) {
        Some("function") => {
            let name = Names::chat_name(
                choice.get("namespace").and_then(Value::as_str),
                choice.get("name").and_then(Value::as_str).unwrap_or(""),
            );
            json!({"type": "function", "function": {"name": name}})
        }
        _ if choice.is_string() => choice.clone(),
        _ => json!("auto"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_tool_round_trip_becomes_chat_messages() {
        let t = translate(&obj(json!({
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
                {"role": "user", "content": "what is 2+2?"},
                {"type": "reasoning", "summary": []},
                {"type": "function_call", "call_id": "call_a", "name": "add", "arguments": "{\"a\":2}"},
                {"type": "function_call", "call_id": "call_b", "name": "add", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "4"},
                {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "x"}]},
            ],
            "tools": [
                {"type": "function", "name": "add", "parameters": {"type": "object"}},
                {"type": "web_search"},
                {"type": "namespace", "name": "fs", "tools": [{"type": "function", "name": "read.file"}]},
            ],
            "tool_choice": {"type": "function", "name": "add"},
            "max_output_tokens": 100,
            "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"],
        })))
        .expect("translates");
        assert_eq!(
            Value::Array(t.chat["messages"].as_array().cloned().unwrap_or_default()),
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "rules"},
                {"role": "user", "content": "what is 2+2?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": "{\"a\":2}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "add", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "4"},
                {"role": "tool", "tool_call_id": "call_b", "content": "x"},
            ])
        );
        assert_eq!(
            t.chat["tools"],
            json!([
                {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "fs__read_file"}},
            ])
        );
        assert_eq!(
            t.chat["tool_choice"],
            json!({"type": "function", "function": {"name": "add"}})
        );
        assert_eq!(t.chat["max_tokens"], 100);
        assert!(t.client_tools && !t.stream);
    }

    #[test]
    fn wrong_types_name_the_field() {
        for (body, field) in [
            (json!({"input": 3}), "input"),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"stream": "yes"}), "stream"),
            (json!({"max_output_tokens": -1}), "max_output_tokens"),
            (json!({"tools": {}}), "tools"),
        ] {
            let e = translate(&obj(body)).expect_err("refused");
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
    }

    #[test]
    fn images_stay_images_and_state_is_recognised() {
        let t = translate(&obj(json!({"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        ]}]})))
        .expect("translates");
        assert_eq!(
            t.chat["messages"][0]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})
        );
        assert!(is_stateful(&obj(json!({"previous_response_id": "resp_1"}))));
        assert!(is_stateful(&obj(json!({"store": true}))));
        assert!(!is_stateful(&obj(
            json!({"store": false, "conversation": null})
        )));
    }
}
