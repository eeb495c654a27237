//! Property tests of everything that reads input woollama does not control
//! (issue 14). Each holds for a bounded number of generated cases under
//! `cargo test` (proptest's default, 256); `scripts/fuzz [CASES]` runs them
//! longer (`PROPTEST_CASES`, release build).
//!
//! - upstream streams: SSE split at every byte boundary, with comment, event
//!   and garbage lines between frames, cut short; Ollama's NDJSON likewise;
//!   the real-world streams of `fuzz/corpus/sse/` split and edited;
//! - tool-call fragments reassembled whatever their interleaving;
//! - wire names always valid for a strict provider;
//! - the three config formats (structured and garbage) and `${VAR}`;
//! - model strings; Messages and Responses translation;
//! - **any request on any route of the real router** (the requests of
//!   `fuzz/corpus/requests/` and generated ones, mutated; JSON cut short;
//!   bytes; JSON-RPC on `/mcp` with and without a session): an answer, never
//!   a panic, a hang or a 500, and an error body with every 4xx.
//!
//! A failure prints the smallest input that breaks it; proptest keeps its
//! seed in `proptest-regressions/` (commit it) so `cargo test` replays it.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// The keys the request parsers look at.
const REQUEST_KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "tool_choice",
    "tool_calls",
    "function",
    "arguments",
    "input",
    "instructions",
    "system",
    "stream",
    "tool_use_id",
    "name",
    "source",
    "max_tokens",
    "conversation",
    "previous_response_id",
    "store",
    "metadata",
    "options",
    "num_ctx",
    "prompt",
    "id",
];

/// The strings they look for.
const REQUEST_WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "tool",
    "text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "function",
    "function_call",
    "function_call_output",
    "input_text",
    "message",
    "auto",
    "required",
    "mock/m",
    "woollama/plain",
    "woollama/tooled",
    "woollama/nope",
    "ollama/m",
    "claude-code/haiku",
    "claude-agent/sonnet",
    "conv_00000000000000000000000000000000",
    "${HOME}",
];

/// Any JSON value, a few levels deep, with the keys the request parsers
/// look at among the random ones.
fn json() -> impl Strategy<Value = Value> {
    json_with(REQUEST_KEYS, REQUEST_WORDS)
}

/// Any JSON value whose object keys are often from `keys` and whose
/// strings are often from `words`.
fn json_with(
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..100_000).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            2 => prop::sample::select(words).prop_map(str::to_string),
            1 => ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    json().prop_map(|v| match v {
        Value::Object(m) => m,
        other => {
            let mut m = Map::new();
            m.insert("messages".into(), Value::Array(vec![other]));
            m
        }
    })
}

/// The samples in `fuzz/corpus/<kind>/`, by file name: real-world shapes
/// (provider streams, SDK requests) the generated cases start from. A file
/// added there is picked up without a code change.
fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} is empty", dir.display());
    out
}

/// `bytes` with a few random edits: bytes flipped, inserted, removed, or
/// the tail cut off.
fn edited(bytes: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (0u8..4, any::<prop::sample::Index>(), any::<u8>());
    prop::collection::vec(edit, 0..6).prop_map(move |edits| {
        let mut b = bytes.clone();
        for (how, at, byte) in edits {
            let i = at.index(b.len() + 1);
            match how {
                0 if i < b.len() => b[i] ^= byte | 1,
                1 => b.insert(i, byte),
                2 if i < b.len() => {
                    b.remove(i);
                }
                3 => b.truncate(i),
                _ => {}
            }
        }
        b
    })
}

/// Reads an SSE chat stream the way a recipe's turn does: payloads, chunk
/// events, the assembled completion.
fn read_stream(pieces: &[&[u8]]) -> (Vec<String>, Value) {
    let mut lines = crate::inference::sse::DataLines::default();
    let mut payloads = Vec::new();
    for p in pieces {
        payloads.extend(lines.push(p));
    }
    payloads.extend(lines.finish());
    let mut asm = crate::orchestrate::assemble::Assembler::default();
    for p in &payloads {
        if let Ok(v) = serde_json::from_str::<Value>(p) {
            for e in crate::inference::sse::events(&v) {
                asm.push(e);
            }
        }
    }
    let mut done = asm.finish("m");
    // Minted per call when the stream named none.
    done["id"] = Value::Null;
    done["created"] = Value::Null;
    (payloads, done)
}

proptest! {
    /// Every stream in the corpus reads the same however it is cut, and an
    /// edited one (bytes flipped, added, removed, cut short) is read
    /// without a panic.
    #[test]
    fn corpus_streams_read_the_same_however_cut(
        (name, bytes) in prop::sample::select(corpus("sse")),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
        edits in prop::sample::select(corpus("sse")).prop_flat_map(|(_, b)| edited(b)),
    ) {
        let whole = read_stream(&[&bytes]);
        prop_assert!(!whole.0.is_empty(), "{name} has no frames");
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        at.push(bytes.len());
        let mut pieces = Vec::new();
        let mut from = 0;
        for to in at {
            pieces.push(&bytes[from..to]);
            from = to;
        }
        prop_assert_eq!(read_stream(&pieces), whole, "{}", name);
        let _ = read_stream(&[&edits]);
    }

    /// An upstream's SSE, cut at any byte boundaries and with comment and
    /// event lines between frames, gives the same payloads as read whole.
    #[test]
    fn sse_payloads_survive_any_split(
        payloads in prop::collection::vec("[^\r\n]{0,40}", 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut text = String::new();
        for p in &payloads {
            text.push_str(&format!(": keep-alive{nl}event: message{nl}data: {p}{nl}{nl}"));
        }
        let bytes = text.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut lines = crate::inference::sse::DataLines::default();
        let mut got = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain(std::iter::once(bytes.len())) {
            got.extend(lines.push(&bytes[from..to]));
            from = to;
        }
        got.extend(lines.finish());
        prop_assert_eq!(got, payloads);
    }

    /// A chat chunk of any shape becomes events without a panic.
    #[test]
    fn any_chunk_is_read_without_panic(v in json()) {
        let _ = crate::inference::sse::events(&v);
    }

    /// Any Anthropic Messages body is translated or refused, never a panic.
    #[test]
    fn any_messages_body_is_translated_or_refused(body in object()) {
        let _ = crate::http::messages_translate_for_tests(&body);
    }

    /// Any Responses body is translated or refused, never a panic.
    #[test]
    fn any_responses_body_is_translated_or_refused(body in object()) {
        let _ = crate::http::responses_translate_for_tests(&body);
    }

    /// `${VAR}` expansion of any string: no panic, and a string without
    /// `${` comes back as it was.
    #[test]
    fn expansion_of_any_string(s in ".{0,60}") {
        let env = crate::config::Env::from_pairs([("A", "1"), ("EMPTY", "")]);
        let out = crate::config::expand::expand(&s, &env);
        if !s.contains("${") {
            prop_assert_eq!(out.value, s);
        }
    }

    /// Any model string routes somewhere, without a panic.
    #[test]
    fn any_model_routes(m in ".{0,40}") {
        let _ = crate::routing::route(&m, |p| p == "ollama");
    }
}

/// A line between SSE frames that is no `data:` line: a comment, an event
/// name, an id, a retry, or garbage.
fn junk_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(": keep-alive".to_string()),
        Just("event: message".to_string()),
        Just("id: 7".to_string()),
        Just("retry: 1000".to_string()),
        "[^\r\nd][^\r\n]{0,20}",
    ]
}

/// Cuts `bytes` at the given points and feeds the pieces to `push`.
fn fed_in_pieces<T>(
    bytes: &[u8],
    cuts: &[prop::sample::Index],
    mut push: impl FnMut(&[u8]) -> Vec<T>,
) -> Vec<T> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.sort_unstable();
    let mut got = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain(std::iter::once(bytes.len())) {
        got.extend(push(&bytes[from..to]));
        from = to;
    }
    got
}

/// One line of an Ollama NDJSON stream: a message piece, the end, an
/// error, or garbage.
fn ndjson_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ".{0,16}".prop_map(|t| serde_json::json!({"message": {"role": "assistant", "content": t}, "done": false}).to_string()),
        1 => Just(serde_json::json!({"message": {"content": ""}, "done": true, "done_reason": "length"}).to_string()),
        1 => ".{0,16}".prop_map(|t| serde_json::json!({"error": t}).to_string()),
        1 => "[^\r\n]{0,16}",
    ]
}

/// `mcp.json`'s keys.
const MCP_KEYS: &[&str] = &[
    "mcpServers",
    "servers",
    "command",
    "args",
    "env",
    "url",
    "headers",
    "type",
    "transport",
    "prefix",
    "conversationStore",
    "timeout",
    "cwd",
    "disabled",
];

const MCP_WORDS: &[&str] = &[
    "stdio",
    "http",
    "streamable-http",
    "sse",
    "/bin/true",
    "http://127.0.0.1:1/mcp",
    "${HOME}",
    "${NOPE}",
    "${NOPE:-x}",
    "$${HOME}",
];

/// One TOML value, as text.
fn toml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        "[a-zA-Z0-9 ./:${}_-]{0,24}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            "\"mock/m\"",
            "\"ollama/*\"",
            "\"claude-code/haiku\"",
            "\"http://127.0.0.1:1/v1\"",
            "\"${HOME}\"",
            "\"${NOPE}\"",
            "\"hello.hello\"",
            "\"{{name}}\"",
            "\"chat\"",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        (-1.0e6f64..1.0e6).prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
    ];
    prop_oneof![
        3 => scalar.clone(),
        1 => prop::collection::vec(scalar.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        1 => prop::collection::vec(("[a-z_]{1,8}", scalar), 0..3).prop_map(|v| {
            let pairs: Vec<String> = v.iter().map(|(k, x)| format!("{k} = {x}")).collect();
            format!("{{ {} }}", pairs.join(", "))
        }),
    ]
}

/// An `inferencers.toml` or `recipes.toml` of any shape: tables under
/// `root`, lines of meaningful and random keys, and some garbage.
fn toml_doc(root: &'static str) -> impl Strategy<Value = String> {
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "base_url", "api_key_env", "models", "discover", "capabilities", "endpoints",
            "first_byte_timeout_secs", "idle_timeout_secs", "inferencer", "system", "tools",
            "max_turns", "variables", "description", "temperature", "default", "choices",
            "required", "tool_choice", "parallel_tool_calls",
        ])
        .prop_map(str::to_string),
        1 => "[a-z_]{1,10}",
    ];
    let line = prop_oneof![
        8 => (key, toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => ("[a-z-]{1,8}", "[a-z]{1,6}").prop_map(move |(n, sub)| format!("[{root}.{n}.{sub}]")),
        1 => "[^\r\n]{0,20}",
    ];
    let table = ("[a-z-]{1,8}", prop::collection::vec(line, 0..6))
        .prop_map(move |(name, lines)| format!("[{root}.{name}]\n{}\n", lines.join("\n")));
    prop::collection::vec(table, 0..4).prop_map(|t| t.concat())
}

proptest! {
    /// An upstream's SSE, cut at any byte boundaries, with comment, event,
    /// id and garbage lines between frames, gives the same payloads as read
    /// whole; a stream cut short anywhere gives a prefix of them.
    #[test]
    fn sse_with_junk_between_frames_survives_any_split_and_truncation(
        frames in prop::collection::vec(("[^\r\n]{0,40}", prop::collection::vec(junk_line(), 0..3)), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        end in any::<prop::sample::Index>(),
    ) {
        let mut text = String::new();
        for (payload, junk) in &frames {
            for j in junk {
                text.push_str(j);
                text.push('\n');
            }
            text.push_str(&format!("data: {payload}\n\n"));
        }
        let payloads: Vec<String> = frames.iter().map(|(p, _)| p.clone()).collect();
        let mut lines = crate::inference::sse::DataLines::default();
        let mut got = fed_in_pieces(text.as_bytes(), &cuts, |b| lines.push(b));
        got.extend(lines.finish());
        prop_assert_eq!(&got, &payloads);

        let cut = &text.as_bytes()[..end.index(text.len() + 1)];
        let mut lines = crate::inference::sse::DataLines::default();
        let mut got = fed_in_pieces(cut, &cuts, |b| lines.push(b));
        got.extend(lines.finish());
        // Whole frames come out as they were; the last may be cut short.
        prop_assert!(got.len() <= payloads.len());
        for (i, g) in got.iter().enumerate() {
            // A cut inside a character leaves one U+FFFD at the end.
            let g = g.trim_end_matches('\u{FFFD}');
            prop_assert!(payloads[i].starts_with(g), "{g:?} vs {:?}", payloads[i]);
        }
    }

    /// Ollama's NDJSON, cut at any byte boundaries: the same SSE as fed
    /// whole, every frame a `data:` line of JSON (or `[DONE]`), and the
    /// stream closed even when cut short.
    #[test]
    fn ndjson_translation_survives_any_split_and_truncation(
        lines in prop::collection::vec(ndjson_line(), 0..10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        end in any::<prop::sample::Index>(),
    ) {
        use crate::inference::ollama::SseTranslator;
        let head = || crate::wire::ChunkHead { id: "c".into(), created: 1, model: "m".into() };
        let text = lines.join("\n");
        let mut whole = SseTranslator::new(head());
        let mut expected = whole.push(text.as_bytes());
        expected.extend(whole.finish());
        let mut split = SseTranslator::new(head());
        let mut got = fed_in_pieces(text.as_bytes(), &cuts, |b| split.push(b));
        got.extend(split.finish());
        prop_assert_eq!(&got, &expected);

        let cut = &text.as_bytes()[..end.index(text.len() + 1)];
        let mut t = SseTranslator::new(head());
        let mut out = fed_in_pieces(cut, &cuts, |b| t.push(b));
        out.extend(t.finish());
        let out = String::from_utf8(out).expect("SSE is UTF-8");
        prop_assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
        for frame in out.split("\n\n").filter(|f| !f.is_empty()) {
            let data = frame.strip_prefix("data: ");
            prop_assert!(data.is_some(), "{frame}");
            let data = data.unwrap_or_default();
            prop_assert!(data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(), "{frame}");
        }
    }

    /// Tool calls streamed as fragments — arguments cut anywhere, calls
    /// interleaved, `id` and `name` on the first piece only — come back
    /// whole, in index order.
    #[test]
    fn tool_calls_reassemble_from_any_fragments(
        calls in prop::collection::vec(("[a-z_]{1,10}", ".{0,30}", prop::collection::vec(any::<prop::sample::Index>(), 0..4)), 1..5),
        order in any::<prop::sample::Index>(),
    ) {
        use crate::inference::ChatEvent;
        // Each call's fragments, in its own order.
        let mut queues: Vec<std::collections::VecDeque<ChatEvent>> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args, cuts))| {
                let chars: Vec<char> = args.chars().collect();
                let mut at: Vec<usize> = cuts.iter().map(|c| c.index(chars.len() + 1)).collect();
                at.sort_unstable();
                at.push(chars.len());
                let mut from = 0;
                at.into_iter()
                    .enumerate()
                    .map(|(k, to)| {
                        let piece: String = chars[from..to].iter().collect();
                        from = to;
                        ChatEvent::ToolCall {
                            index: i as u64,
                            id: (k == 0).then(|| format!("call_{i}")),
                            name: (k == 0).then(|| name.clone()),
                            arguments: piece,
                        }
                    })
                    .collect()
            })
            .collect();
        // Interleaved by a seed, keeping each call's own order.
        let mut seed = order.index(usize::MAX);
        let mut asm = crate::orchestrate::assemble::Assembler::default();
        while queues.iter().any(|q| !q.is_empty()) {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            let pick = live[seed % live.len()];
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) >> 1;
            if let Some(e) = queues[pick].pop_front() {
                asm.push(e);
            }
        }
        let done = asm.finish("m");
        let got = done["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(got.len(), calls.len());
        for (i, (name, args, _)) in calls.iter().enumerate() {
            prop_assert_eq!(&got[i]["id"], &Value::from(format!("call_{i}")));
            prop_assert_eq!(&got[i]["function"]["name"], &Value::from(name.as_str()));
            prop_assert_eq!(&got[i]["function"]["arguments"], &Value::from(args.as_str()));
        }
        prop_assert_eq!(&done["choices"][0]["finish_reason"], &Value::from("tool_calls"));
    }

    /// Any server and tool name gives a wire name a strict provider takes
    /// (`[A-Za-z0-9_-]{1,64}`), the same every time, readable when it can be.
    #[test]
    fn wire_names_are_always_valid_and_stable(server in ".{0,40}", tool in ".{0,80}") {
        let wire = crate::tools::wire_name(&server, &tool);
        prop_assert!(!wire.is_empty() && wire.len() <= 64, "{wire}");
        prop_assert!(wire.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{wire}");
        prop_assert_eq!(&wire, &crate::tools::wire_name(&server, &tool));
        let readable = format!("mcp__{server}__{tool}");
        if readable.len() <= 64 && readable.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            prop_assert_eq!(wire, readable);
        }
    }

    /// Any `inferencers.toml`, `recipes.toml` and `mcp.json` — structured
    /// or garbage — loads to a config with diagnostics, never a panic; and
    /// a file that is not valid TOML or JSON is reported as such.
    #[test]
    fn any_config_loads_or_is_reported(
        inferencers in prop_oneof![3 => toml_doc("inferencers"), 1 => ".{0,80}"],
        recipes in prop_oneof![3 => toml_doc("recipes"), 1 => ".{0,80}"],
        mcp in prop_oneof![
            3 => json_with(MCP_KEYS, MCP_WORDS).prop_map(|v| serde_json::json!({"mcpServers": v}).to_string()),
            1 => json_with(MCP_KEYS, MCP_WORDS).prop_map(|v| v.to_string()),
            1 => ".{0,80}",
        ],
    ) {
        let env = crate::config::Env::from_pairs([("HOME", "/home/u"), ("EMPTY", "")]);
        let mut diags = crate::config::Diagnostics::default();
        let _ = crate::config::inferencers::load(Some(&inferencers), "inferencers.toml", &env, &mut diags);
        let _ = crate::config::recipes::parse(&recipes, "recipes.toml", &mut diags);
        let _ = crate::config::mcp::parse(&mcp, "mcp.json", &env, &mut diags);
        if serde_json::from_str::<Value>(&mcp).is_err() {
            prop_assert!(diags.iter().any(|d| d.to_string().contains("mcp.json")), "{mcp}");
        }
        // And through the one loader, from files.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("inferencers.toml"), &inferencers).expect("write");
        std::fs::write(dir.path().join("recipes.toml"), &recipes).expect("write");
        std::fs::write(dir.path().join("mcp.json"), &mcp).expect("write");
        let _ = crate::config::load_from(Some(dir.path()), &env);
    }
}

/// Any body on any route of the real router: an answer, never a panic, a
/// hang or a 500 — a 4xx with an error body for what is wrong, a 502 when
/// the (loopback) upstream or a backend that is not there could not help.
mod routes {
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    struct Fixture {
        rt: tokio::runtime::Runtime,
        router: axum::Router,
        /// An initialized MCP session on `/mcp`.
        session: String,
        _dir: tempfile::TempDir,
    }

    /// Opens an MCP session on `/mcp`: its id.
    async fn mcp_session(router: &axum::Router) -> String {
        let send = |body: Value, session: Option<String>| {
            let mut req = axum::http::Request::builder()
                .method("POST")
                .uri("/mcp")
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            if let Some(s) = session {
                req = req.header("mcp-session-id", s);
            }
            let req = req.body(Body::from(body.to_string())).expect("request");
            router.clone().oneshot(req)
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}});
        let resp = send(init, None).await.expect("infallible");
        let Some(session) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            let status = resp.status();
            let body = resp.into_body().collect().await.map(|c| c.to_bytes());
            panic!("no MCP session: {status} {body:?}");
        };
        let _ = resp.into_body().collect().await;
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let resp = send(done, Some(session.clone())).await.expect("infallible");
        let _ = resp.into_body().collect().await;
        session
    }

    /// An upstream that answers every chat, embeddings and images request.
    async fn upstream() -> std::net::SocketAddr {
        use axum::routing::{get, post};
        async fn chat(body: axum::body::Bytes) -> axum::response::Response {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if v["stream"] == json!(true) {
                let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]});
                let text = format!("data: {chunk}\n\ndata: [DONE]\n\n");
                return ([("content-type", "text/event-stream")], text).into_response();
            }
            axum::Json(json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}))
                .into_response()
        }
        use axum::response::IntoResponse as _;
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(chat))
            .route(
                "/v1/embeddings",
                post(|| async { axum::Json(json!({"object": "list", "data": []})) }),
            )
            .route(
                "/v1/images/generations",
                post(|| async { axum::Json(json!({"created": 1, "data": []})) }),
            )
            .route(
                "/v1/models",
                get(|| async { axum::Json(json!({"data": [{"id": "m"}]})) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn fixture() -> &'static Fixture {
        static APP: OnceLock<Fixture> = OnceLock::new();
        APP.get_or_init(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            let router = rt.block_on(async {
                let addr = upstream().await;
                let d = dir.path();
                std::fs::write(
                    d.join("inferencers.toml"),
                    format!(
                        "[inferencers.mock]\nbase_url = \"http://{addr}/v1\"\n\
                         [inferencers.ollama]\nbase_url = \"http://{addr}/v1\"\ndiscover = false\n"
                    ),
                )
                .expect("write");
                std::fs::write(
                    d.join("recipes.toml"),
                    "[recipes.plain]\ninferencer = \"mock/m\"\nsystem = \"Hi {{name}}\"\n",
                )
                .expect("write");
                std::fs::write(d.join("mcp.json"), r#"{"mcpServers": {}}"#).expect("write");
                let home = d.to_string_lossy().to_string();
                let env = crate::config::Env::from_pairs([
                    ("HOME", home.as_str()),
                    ("WOOLLAMA_STATE_DIR", &format!("{home}/state")),
                    ("WOOLLAMA_CLAUDE_BIN", "/nonexistent/claude"),
                ]);
                let loaded = crate::config::load_from(Some(d), &env);
                let options = crate::app::Options {
                    guard: None,
                    timeouts: crate::inference::Timeouts::default(),
                    reconnect: false,
                };
                let state = crate::app::AppState::build(Arc::new(loaded.config), &env, options)
                    .expect("app");
                let live = crate::app::Live::new(state, env);
                let router = crate::serve::routers(&live).1;
                let session = mcp_session(&router).await;
                (router, session)
            });
            let (router, session) = router;
            Fixture {
                rt,
                router,
                session,
                _dir: dir,
            }
        })
    }

    /// A well-formed request for each route, to be mutated: the models are
    /// each kind of route (provider, recipe, Ollama, the two Claude
    /// backends, unknown).
    fn template(path: &'static str) -> impl Strategy<Value = Value> {
        let model = prop::sample::select(vec![
            "mock/m",
            "woollama/plain",
            "ollama/m",
            "claude-code/haiku",
            "claude-agent/sonnet",
            "nope/m",
        ]);
        let made = (model, any::<bool>(), any::<bool>()).prop_map(move |(model, stream, store)| {
            let messages = json!([{"role": "user", "content": "hi"}]);
            match path {
                "/v1/chat/completions" => {
                    json!({"model": model, "messages": messages, "stream": stream})
                }
                "/v1/responses" => {
                    json!({"model": model, "input": "hi", "stream": stream, "store": store})
                }
                "/v1/messages" => {
                    json!({"model": model, "max_tokens": 5, "messages": messages, "stream": stream})
                }
                "/v1/messages/count_tokens" => json!({"model": model, "messages": messages}),
                "/v1/embeddings" => json!({"model": model, "input": "hi"}),
                "/v1/images/generations" => json!({"model": model, "prompt": "a cat"}),
                "/v1/conversations" => json!({"model": model, "metadata": {"k": "v"}}),
                _ => json!({"metadata": {"k": "v"}}),
            }
        });
        // And the corpus's requests for this route (`chat-…`, `responses-…`).
        let prefix = match path {
            "/v1/chat/completions" => "chat-",
            "/v1/responses" => "responses-",
            "/v1/messages" | "/v1/messages/count_tokens" => "messages-",
            "/v1/embeddings" => "embeddings",
            "/v1/images/generations" => "images",
            _ => "conversations",
        };
        let samples: Vec<Value> = super::corpus("requests")
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(n, b)| serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{n}: {e}")))
            .collect();
        prop_oneof![2 => made, 1 => prop::sample::select(samples)]
    }

    /// `v` with a few changes at random places: a value replaced by any
    /// JSON, a key removed, a key added.
    fn mutated(of: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
        let change = (
            prop::collection::vec(any::<prop::sample::Index>(), 1..4),
            0u8..3,
            super::json(),
            prop::sample::select(super::REQUEST_KEYS),
        );
        (of, prop::collection::vec(change, 0..3)).prop_map(|(mut v, changes)| {
            for (path, how, with, key) in changes {
                mutate(&mut v, &path, how, with, key);
            }
            v
        })
    }

    fn mutate(v: &mut Value, path: &[prop::sample::Index], how: u8, with: Value, key: &str) {
        let (step, rest) = match path.split_first() {
            Some(p) => p,
            None => return,
        };
        let deeper = !rest.is_empty();
        match v {
            Value::Object(m) if !m.is_empty() => {
                let k = m
                    .keys()
                    .nth(step.index(m.len()))
                    .cloned()
                    .unwrap_or_default();
                if deeper && m.get(&k).is_some_and(|c| c.is_object() || c.is_array()) {
                    if let Some(child) = m.get_mut(&k) {
                        mutate(child, rest, how, with, key);
                    }
                    return;
                }
                match how {
                    0 => {
                        m.insert(k, with);
                    }
                    1 => {
                        m.remove(&k);
                    }
                    _ => {
                        m.insert(key.to_string(), with);
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = step.index(a.len());
                if deeper && (a[i].is_object() || a[i].is_array()) {
                    mutate(&mut a[i], rest, how, with, key);
                } else if how == 1 {
                    a.remove(i);
                } else {
                    a[i] = with;
                }
            }
            other => *other = with,
        }
    }

    /// A body: a route's request with changes (most), any JSON, JSON cut
    /// short, or bytes.
    fn body(of: BoxedStrategy<Value>) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => mutated(of.clone()).prop_map(|v| v.to_string().into_bytes()),
            1 => super::json().prop_map(|v| v.to_string().into_bytes()),
            1 => (of, any::<prop::sample::Index>()).prop_map(|(v, i)| {
                let t = v.to_string().into_bytes();
                let n = i.index(t.len() + 1);
                t[..n].to_vec()
            }),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    type Req = (String, &'static str, Vec<(&'static str, String)>, Vec<u8>);

    /// A request: route, method, extra headers, body.
    fn request() -> impl Strategy<Value = Req> {
        let openai = prop::sample::select(vec![
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/messages",
            "/v1/messages/count_tokens",
            "/v1/embeddings",
            "/v1/images/generations",
            "/v1/conversations",
        ])
        .prop_flat_map(|p| (Just(p), body(template(p).boxed())));
        let id = prop_oneof![
            Just("conv_00000000000000000000000000000000".to_string()),
            "[a-zA-Z0-9_%.-]{0,40}",
        ];
        prop_oneof![
            8 => openai.prop_map(|(p, b)| (p.to_string(), "POST", Vec::new(), b)),
            1 => (id.clone(), body(template("/v1/conversations/{id}").boxed()))
                .prop_map(|(id, b)| (format!("/v1/conversations/{id}"), "POST", Vec::new(), b)),
            1 => (id.clone(), prop::sample::select(vec!["GET", "DELETE"]))
                .prop_map(|(id, m)| (format!("/v1/conversations/{id}"), m, Vec::new(), Vec::new())),
            1 => id.prop_map(|id| (format!("/v1/conversations/{id}/items"), "GET", Vec::new(), Vec::new())),
            1 => "[a-z=&%0-9_]{0,30}".prop_map(|q| (format!("/v1/conversations?{q}"), "GET", Vec::new(), Vec::new())),
            1 => ".{0,12}".prop_map(|v| ("/v1/models".to_string(), "GET", vec![("anthropic-version", v)], Vec::new())),
            4 => (body(mcp_message().boxed()), 0u8..4).prop_map(|(b, how)| {
                let mut h = vec![("accept", "application/json, text/event-stream".to_string())];
                match how {
                    0 => h.push(("mcp-protocol-version", "2026-07-28".to_string())),
                    1 => {}
                    _ => h.push(("mcp-session-id", String::new())),
                }
                ("/mcp".to_string(), "POST", h, b)
            }),
        ]
    }

    /// A JSON-RPC request for `/mcp` as a client would send it.
    fn mcp_message() -> impl Strategy<Value = Value> {
        let call = prop_oneof![
            Just(json!({"method": "tools/list", "params": {}})),
            Just(
                json!({"method": "tools/call", "params": {"name": "chat", "arguments": {"recipe": "plain", "message": "hi"}}})
            ),
            Just(json!({"method": "tools/call", "params": {"name": "mcp__x__y", "arguments": {}}})),
            Just(json!({"method": "prompts/list"})),
            Just(
                json!({"method": "prompts/get", "params": {"name": "plain", "arguments": {"name": "x"}}})
            ),
            Just(json!({"method": "resources/list"})),
            Just(json!({"method": "resources/read", "params": {"uri": "file:///etc/passwd"}})),
            Just(
                json!({"method": "completion/complete", "params": {"ref": {"type": "ref/prompt", "name": "plain"}, "argument": {"name": "name", "value": "a"}}})
            ),
            Just(json!({"method": "ping"})),
            Just(json!({"method": "logging/setLevel", "params": {"level": "debug"}})),
            Just(json!({"method": "server/discover"})),
            Just(
                json!({"method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "f", "version": "1"}}})
            ),
            Just(json!({"method": "notifications/cancelled", "params": {"requestId": 1}})),
        ];
        (call, 0u32..1000).prop_map(|(mut c, id)| {
            c["jsonrpc"] = json!("2.0");
            if !c["method"]
                .as_str()
                .is_some_and(|m| m.starts_with("notifications/"))
            {
                c["id"] = json!(id);
            }
            c
        })
    }

    proptest! {
        #[test]
        fn any_request_on_any_route_is_answered(
            (path, method, headers, body) in request(),
            json_type in prop::bool::weighted(0.8),
        ) {
            let f = fixture();
            let mut req = axum::http::Request::builder()
                .method(method)
                .uri(&path)
                .header("host", "127.0.0.1");
            if json_type {
                req = req.header("content-type", "application/json");
            }
            for (k, v) in &headers {
                // An empty session header stands for the live session.
                let v = if *k == "mcp-session-id" { f.session.as_str() } else { v.as_str() };
                if let Ok(v) = axum::http::HeaderValue::from_str(v) {
                    req = req.header(*k, v);
                }
            }
            let req = req.body(Body::from(body.clone())).expect("request");
            let (status, content_type, bytes) = f.rt.block_on(async {
                let resp = f.router.clone().oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let bytes = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
                    .await
                    .map(|r| r.map(|c| c.to_bytes()));
                (status, content_type, bytes)
            });
            let shown = String::from_utf8_lossy(&body).into_owned();
            let Ok(Ok(bytes)) = bytes else {
                panic!("{method} {path} {shown}: the body hung or broke ({status})");
            };
            let text = String::from_utf8_lossy(&bytes);
            // 501: no stateful backend configured; 502/504: the upstream
            // or a backend that is not there; never a 500.
            prop_assert!(
                status < 500 || matches!(status, 501 | 502 | 504),
                "{method} {path} {shown}: {status} {text}"
            );
            if status >= 400 {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                prop_assert!(
                    v.get("error").is_some(),
                    "{method} {path} {shown}: {status} without an error body: {content_type} {text}"
                );
            }
        }
    }
}
