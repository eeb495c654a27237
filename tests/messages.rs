//! `/v1/messages`, the Anthropic Messages API in: the official `anthropic`
//! Python SDK against the real app and the scripted OpenAI-compatible mock
//! (`tests/python/anthropic_sdk_client.py`), native pass-through for
//! `anthropic/<model>`, recipes, and the real `claude` CLI with
//! `ANTHROPIC_BASE_URL` at woollama and `ANTHROPIC_MODEL` routed to the mock.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::mock::{Mock, Reply, completion, sse, sse_tool_calls, tool_calls};
use common::{JsonBody as _, Setup};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_python_sdk_works_against_any_backend() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("hello from mock")));
    mock.push(sse(&["Hello", ", ", "world"]));
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("call_1", "get_weather", json!({"city": "Paris"}))]),
    ));
    mock.push(Reply::Json(
        StatusCode::OK,
        completion("It is 18C in Paris."),
    ));
    mock.push(sse_tool_calls(
        "",
        &[("call_2", "get_weather", json!({"city": "Rome"}))],
    ));
    mock.push(Reply::Json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
    ));
    let app = Setup::new(&mock).start().await;
    common::python_script("anthropic_sdk_client.py", app.url(""), 12).await;

    let requests = mock.requests();
    assert_eq!(requests.len(), 6, "{requests:#?}");
    // The translation the upstream saw: system first, the tool as a
    // function, the tool result as a `tool` message after the call.
    let first = &requests[0].body;
    assert_eq!(
        first["messages"],
        json!([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(first["max_tokens"], 100);
    assert_eq!(first["model"], "m");
    let round = &requests[3].body;
    assert_eq!(round["tools"][0]["function"]["name"], "get_weather");
    let messages = round["messages"].as_array().expect("messages");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"})
    );
    assert_eq!(requests[1].body["stream"], true);
}

#[tokio::test]
async fn anthropic_models_pass_through_natively() {
    let mock = Mock::start().await;
    let anthropic = json!({"id": "msg_up", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "native"}], "stop_reason": "end_turn",
        "stop_sequence": null, "usage": {"input_tokens": 1, "output_tokens": 1}});
    mock.push(Reply::Json(StatusCode::OK, anthropic.clone()));
    mock.push(Reply::Json(
        StatusCode::UNAUTHORIZED,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
    ));
    let app = Setup::new(&mock)
        .inferencers(&format!(
            "[inferencers.anthropic]\nbase_url = \"{}\"\n",
            mock.base_url()
        ))
        .env("ANTHROPIC_API_KEY", "sk-ant-upstream")
        .start()
        .await;
    let body = json!({"model": "anthropic/claude-x", "max_tokens": 10, "thinking": {"type": "enabled", "budget_tokens": 5},
                      "messages": [{"role": "user", "content": "hi"}]});
    let r = app
        .client
        .post(app.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "some-beta")
        .json_body(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let got: Value = r.json().await.expect("json");
    assert_eq!(got, anthropic);
    let up = mock.only_request();
    assert_eq!(up.path, "/v1/messages");
    // Untranslated: Anthropic-only fields arrive as sent, model bare.
    assert_eq!(up.body["thinking"], body["thinking"]);
    assert_eq!(up.body["model"], "claude-x");
    let h = |k: &str| {
        up.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("x-api-key").as_deref(), Some("sk-ant-upstream"));
    assert_eq!(h("anthropic-beta").as_deref(), Some("some-beta"));
    assert_eq!(h("authorization"), None);

    // Anthropic's own error comes back as it was.
    let r = app.post("/v1/messages", body).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"]["message"], "invalid x-api-key");
}

#[tokio::test]
async fn recipes_errors_and_models_in_anthropics_shapes() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("recipe answer")));
    let app = Setup::new(&mock)
        .recipes("[recipes.plain]\ninferencer = \"mock/m\"\nsystem = \"You are plain.\"\n")
        .start()
        .await;
    let r = app
        .post(
            "/v1/messages",
            json!({"model": "woollama/plain", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let m: Value = r.json().await.expect("json");
    assert_eq!(m["content"][0]["text"], "recipe answer", "{m}");
    assert_eq!(
        mock.only_request().body["messages"][0]["content"],
        "You are plain."
    );

    for (body, status, kind, says) in [
        (
            json!({"model": "woollama/plain", "max_tokens": 10, "messages": [],
                "tools": [{"name": "t", "input_schema": {"type": "object"}}]}),
            400,
            "invalid_request_error",
            "is a recipe",
        ),
        (
            json!({"model": "woollama/none", "messages": []}),
            404,
            "not_found_error",
            "unknown recipe",
        ),
        (
            json!({"messages": []}),
            400,
            "invalid_request_error",
            "missing required field `model`",
        ),
        (
            json!({"model": "mock/m", "messages": "hi"}),
            400,
            "invalid_request_error",
            "`messages`",
        ),
        (
            json!({"model": "claude-agent/opus", "messages": []}),
            400,
            "invalid_request_error",
            "store: true",
        ),
    ] {
        let r = app.post("/v1/messages", body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let e: Value = r.json().await.expect("json");
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["error"]["type"], kind, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{e}"
        );
    }
    // Not JSON at all: still Anthropic's shape.
    let r = app
        .client
        .post(app.url("/v1/messages"))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["type"], "error");

    // The model list in Anthropic's shape when asked the Anthropic way.
    let r = app
        .client
        .get(app.url("/v1/models"))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect("models");
    let list: Value = r.json().await.expect("json");
    assert_eq!(list["has_more"], false);
    assert!(
        list["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|m| m["id"] == "woollama/plain" && m["type"] == "model"),
        "{list}"
    );
}

fn claude() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/node_modules/.bin/claude");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// Runs the real Claude Code CLI against woollama, offline.
async fn run_claude(
    base: String,
    home: &std::path::Path,
    workdir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut c = Command::new(claude());
    c.args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", base)
        .env("ANTHROPIC_API_KEY", "sk-unused")
        .env("ANTHROPIC_MODEL", "mock/m")
        .env("ANTHROPIC_SMALL_FAST_MODEL", "mock/m")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
    tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("join")
        .expect("run claude")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_on_any_model_through_woollama() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    std::fs::write(
        work.path().join("note.txt"),
        "the secret word is pineapple\n",
    )
    .expect("write");

    // A plain answer, streamed as Claude Code always asks.
    mock.push(sse(&["Hello ", "from the mock."]));
    let out = run_claude(
        app.url(""),
        home.path(),
        work.path(),
        &[
            "-p",
            "Say hello.",
            "--output-format",
            "json",
            "--max-turns",
            "1",
            "--tools",
            "",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(text.trim()).expect("json result");
    assert_eq!(result["result"], "Hello from the mock.", "{result}");

    // A tool round trip with Claude Code's own Read tool: the mock asks for
    // the file, Claude Code reads it and sends the result back through the
    // translation, and the mock answers.
    let path = work.path().join("note.txt");
    mock.push(sse_tool_calls(
        "Reading it.",
        &[(
            "call_r",
            "Read",
            json!({"file_path": path.to_string_lossy()}),
        )],
    ));
    mock.push(sse(&["The word is pineapple."]));
    let before = mock.requests().len();
    let out = run_claude(
        app.url(""),
        home.path(),
        work.path(),
        &[
            "-p",
            "What is the secret word in note.txt?",
            "--output-format",
            "json",
            "--max-turns",
            "3",
            "--tools",
            "Read",
            "--allowedTools",
            "Read",
            "--permission-mode",
            "dontAsk",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(text.trim()).expect("json result");
    assert_eq!(result["result"], "The word is pineapple.", "{result}");
    let requests: Vec<Value> = mock.requests()[before..]
        .iter()
        .map(|r| r.body.clone())
        .collect();
    let chat: Vec<&Value> = requests
        .iter()
        .filter(|b| b["messages"].is_array() && b["tools"].is_array())
        .collect();
    let last = chat.last().expect("the second turn");
    assert!(
        last["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["function"]["name"] == "Read"),
        "{last}"
    );
    let tool_message = last["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the Read result went back to the model")
        .clone();
    assert_eq!(tool_message["tool_call_id"], "call_r");
    assert!(
        tool_message["content"]
            .as_str()
            .is_some_and(|c| c.contains("pineapple")),
        "{tool_message}"
    );
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event() {
    let mock = Mock::start().await;
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
        )
    };
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: vec![
            chunk(json!({"role": "assistant", "content": "Half an"})),
            format!(
                "data: {}\n\n",
                json!({"error": {"message": "model crashed", "type": "server_error"}})
            ),
        ],
        gate: None,
    });
    let app = Setup::new(&mock).start().await;
    let r = app
        .post(
            "/v1/messages",
            json!({"model": "mock/m", "max_tokens": 10, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ],
        "{text}"
    );
    assert!(text.contains("model crashed"), "{text}");
    assert!(text.contains(r#""type":"error""#), "{text}");
}

#[tokio::test]
async fn the_surface_token_works_as_an_anthropic_key_and_count_tokens_passes_through() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, json!({"input_tokens": 42})));
    let app = Setup::new(&mock)
        .env("WOOLLAMA_TOKEN", "surface-secret")
        .env("ANTHROPIC_API_KEY", "sk-ant-upstream")
        .inferencers(&format!(
            "[inferencers.anthropic]\nbase_url = \"{}\"\n",
            mock.base_url()
        ))
        .start()
        .await;
    let body =
        json!({"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]});
    let send = |key: &'static str| {
        app.client
            .post(app.url("/v1/messages/count_tokens"))
            .header("x-api-key", key)
            .json_body(&body)
            .send()
    };
    let r = send("wrong").await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");

    let r = send("surface-secret").await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let n: Value = r.json().await.expect("json");
    assert_eq!(n["input_tokens"], 42);
    let up = mock.only_request();
    assert_eq!(up.path, "/v1/messages/count_tokens");
    // The surface token is not the upstream key.
    assert_eq!(
        up.headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        Some("sk-ant-upstream")
    );
}
