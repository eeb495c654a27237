//! Property tests of the parsers that read input woollama does not control
//! (issue 14): an upstream's event stream split anywhere, and request bodies
//! and config strings of any shape. Each holds for a bounded number of
//! generated cases under `cargo test` (proptest's default, 256);
//! `scripts/fuzz` runs them longer (`PROPTEST_CASES`).

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, a few levels deep, with the keys the parsers look at
/// among the random ones.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("model".to_string()),
        Just("messages".to_string()),
        Just("role".to_string()),
        Just("content".to_string()),
        Just("type".to_string()),
        Just("text".to_string()),
        Just("tools".to_string()),
        Just("tool_choice".to_string()),
        Just("input".to_string()),
        Just("system".to_string()),
        Just("stream".to_string()),
        Just("tool_use_id".to_string()),
        Just("name".to_string()),
        Just("source".to_string()),
        Just("max_tokens".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("user".to_string()),
            Just("assistant".to_string()),
            Just("system".to_string()),
            Just("text".to_string()),
            Just("image".to_string()),
            Just("tool_use".to_string()),
            Just("tool_result".to_string()),
            Just("function_call".to_string()),
            Just("function_call_output".to_string()),
            ".{0,12}",
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

proptest! {
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
