//! `POST /v1/responses` (stateless) with the official Python `openai` SDK as
//! the client: text, streams, a client function tool round trip, a recipe,
//! refusals, and a stream that breaks off — against the scripted mock.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Setup;
use common::mock::{Mock, Reply, completion, sse, sse_chunks, sse_tool_calls, tool_calls};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_holds_stateless_responses() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("hello from mock")));
    mock.push(sse(&["Hello", ", ", "world"]));
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("call_1", "add", json!({"a": 2}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("4")));
    mock.push(sse_tool_calls("", &[("call_2", "add", json!({"a": 1}))]));
    mock.push(Reply::Json(StatusCode::OK, completion("recipe answer")));
    let mut broken = sse_chunks(&["partial"]);
    broken.truncate(1);
    broken
        .push("data: {\"error\": {\"message\": \"boom\", \"type\": \"server_error\"}}\n\n".into());
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: broken,
        gate: None,
    });
    let app = Setup::new(&mock)
        .recipes("[recipes.plain]\ninferencer = \"mock/m\"\nsystem = \"You are plain.\"\n")
        .start()
        .await;
    let base = app.url("/v1");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_responses_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::python())
            .arg(script)
            .arg(base)
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("17 passed, 0 failed"), "{stdout}");

    // What the upstream was sent: instructions as the system message, the
    // tool round trip as chat tool calls and a tool message, usage asked for
    // on streams, the recipe's own system prompt.
    let sent = mock.requests();
    assert_eq!(sent.len(), 7, "{sent:#?}");
    assert_eq!(
        sent[0].body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(sent[0].body["model"], "m");
    assert_eq!(
        sent[1].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(sent[2].body["tools"][0]["function"]["name"], "add");
    let messages = &sent[3].body["messages"];
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":2}"
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "4"})
    );
    assert_eq!(sent[5].body["messages"][0]["content"], "You are plain.");
    assert!(sent[5].body.get("tools").is_none());
}
