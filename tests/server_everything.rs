//! `@modelcontextprotocol/server-everything` (npm) as a stdio downstream:
//! a real third-party MCP server, run with `node` (installed into `.peers`
//! by `scripts/install-peers`). Proves the environment allow-list from the
//! server's side, structured output, and a recipe through it.

mod common;

use std::time::Duration;

use common::mock::{Mock, Reply, completion, tool_calls};
use common::{Setup, json, obj, server_everything};
use reqwest::StatusCode;
use serde_json::json;
use woollama::tools::Health;

const LIMIT: Duration = Duration::from_secs(60);

/// Waits (up to [`LIMIT`]: node starts slowly) for server-everything to connect.
async fn connected(app: &common::TestApp) {
    let connected = tokio::time::timeout(
        LIMIT,
        app.tools.wait_for(|s| {
            s.server("everything")
                .is_some_and(|x| x.health == Health::Connected)
        }),
    )
    .await;
    assert!(
        matches!(connected, Ok(Some(_))),
        "not connected: {:#?}",
        app.tools.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_as_a_downstream() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("s1", "mcp__everything__get-sum", json!({"a": 2, "b": 40}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("The sum is 42.")));
    let mcp = json!({"mcpServers": {"everything": {
        "command": "node",
        "args": [server_everything(), "stdio"],
        "env": {"WOOLLAMA_TEST_EXTRA": "passed-on"}
    }}});
    let app = Setup::new(&mock)
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", "sk-must-not-leak")
        .env("WOOLLAMA_TOKEN", "")
        .mcp(&mcp.to_string())
        .recipes("[recipes.adder]\ninferencer = \"mock/m\"\ntools = [\"everything.get-sum\"]\n")
        .start()
        .await;
    connected(&app).await;

    let snap = app.tools.snapshot();
    for t in [
        "echo",
        "get-sum",
        "get-env",
        "get-structured-content",
        "trigger-long-running-operation",
    ] {
        assert!(snap.find("everything", t).is_some(), "missing {t}");
    }
    let structured = snap
        .find("everything", "get-structured-content")
        .expect("tool");
    assert!(
        structured.tool.output_schema.is_some(),
        "output schema forwarded"
    );

    // The child's environment: the allow-list plus its own `env`, never a provider key.
    let r = app
        .tools
        .call("mcp__everything__get-env", None)
        .await
        .expect("get-env");
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert!(
        text.contains("WOOLLAMA_TEST_EXTRA") && text.contains("passed-on"),
        "{text}"
    );
    assert!(text.contains("PATH"), "{text}");
    assert!(
        !text.contains("sk-must-not-leak") && !text.contains("OPENAI_API_KEY"),
        "a key leaked: {text}"
    );

    let r = app
        .tools
        .call(
            "mcp__everything__get-structured-content",
            Some(obj(json!({"location": "New York"}))),
        )
        .await
        .expect("structured");
    assert!(
        r.structured_content
            .as_ref()
            .is_some_and(|s| s.get("temperature").is_some()),
        "{r:?}"
    );

    // A recipe through it: the model's call reaches server-everything.
    let (status, v) = json(
        app.post(
            "/v1/chat/completions",
            json!({"model": "woollama/adder", "messages": []}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let second = &mock.requests()[1].body;
    assert_eq!(second["messages"][1]["role"], "tool");
    assert!(
        second["messages"][1]["content"]
            .as_str()
            .is_some_and(|c| c.contains("42")),
        "{second}"
    );

    app.tools.shutdown(LIMIT).await;
}

/// MCP 2026-07-28 in front, 2025-11-25 behind (issue 16): the official
/// Python SDK in auto mode calls server-everything's sampling and
/// elicitation tools through `/mcp`. The server asks woollama the old way;
/// the SDK gets `input_required`, answers from its callbacks and retries,
/// and the server's call completes with those answers
/// (`tests/python/mcp_mrtr_client.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_answers_server_everythings_questions_through_the_bridge() {
    let mock = Mock::start().await;
    let mcp = json!({"mcpServers": {"everything": {
        "command": "node",
        "args": [server_everything(), "stdio"],
    }}});
    let app = Setup::new(&mock)
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .mcp(&mcp.to_string())
        .start()
        .await;
    connected(&app).await;
    let snap = app.tools.snapshot();
    for t in ["trigger-sampling-request", "trigger-elicitation-request"] {
        assert!(snap.find("everything", t).is_some(), "{t} is not offered");
    }
    common::python_script("mcp_mrtr_client.py", app.url("/mcp"), 7).await;
}

/// The same bridge on `woollama mcp` (stdio), where the SDK in auto mode
/// also speaks 2026-07-28.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_works_on_woollama_mcp_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mcp.json"),
        json!({"mcpServers": {"everything": {"command": "node", "args": [server_everything(), "stdio"]}}})
            .to_string(),
    )
    .expect("write");
    std::fs::write(dir.path().join("recipes.toml"), "").expect("write");
    std::fs::write(
        dir.path().join("inferencers.toml"),
        "[inferencers.ollama]\ndiscover = false\n",
    )
    .expect("write");
    let dir_path = dir.path().display().to_string();
    let args = vec![
        "stdio".to_string(),
        env!("CARGO_BIN_EXE_woollama").to_string(),
        dir_path.clone(),
        dir_path,
    ];
    common::python_script_with("mcp_mrtr_client.py", args, 7).await;
}
