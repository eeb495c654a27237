//! Recipes: the hidden tool loop on `/v1/chat/completions`, with real MCP
//! servers (the bundled `hello` through the real binary, the rmcp fixture
//! over HTTP) and the scripted mock as the model.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fixture::Fixture;
use common::mock::{Mock, Reply, completion, sse, sse_tool_calls, tool_calls};
use common::{Setup, TestApp, expect_error, json};
use reqwest::StatusCode;
use serde_json::{Value, json};
use woollama::tools::{Health, Snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
const LIMIT: Duration = Duration::from_secs(30);

async fn ready(app: &TestApp, servers: &[&str]) {
    let mut rx = app.tools.watch();
    let ok = |s: &Snapshot| {
        servers
            .iter()
            .all(|n| s.server(n).is_some_and(|x| x.health == Health::Connected))
    };
    let r = tokio::time::timeout(LIMIT, rx.wait_for(|s| ok(s))).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "servers not connected: {:#?}",
        app.tools.snapshot()
    );
}

fn mcp(extra: Value) -> String {
    let mut servers = json!({"hello": {"command": BIN, "args": ["example-server", "hello"]}});
    if let (Value::Object(a), Value::Object(b)) = (&mut servers, extra) {
        a.extend(b);
    }
    json!({"mcpServers": servers}).to_string()
}

const RECIPES: &str = r#"
[recipes.counter]
inferencer = "mock/m"
system = "Count when asked. Speak {{lang}}."
tools = ["hello.count_to"]
params = { temperature = 0.3 }
[recipes.counter.variables.lang]
default = "English"

[recipes.short]
inferencer = "mock/m"
tools = ["hello.count_to"]
max_turns = 2

[recipes.nowhere]
inferencer = "nope/m"

[recipes.keyed]
inferencer = "keyed/m"

[recipes.cc]
inferencer = "claude-code/haiku"
"#;

async fn app(mock: &Mock, extra_mcp: Value) -> TestApp {
    let app = Setup::new(mock)
        .inferencers("[inferencers.mock.extra_body]\nseed = 7\ntemperature = 0\n")
        .mcp(&mcp(extra_mcp))
        .recipes(RECIPES)
        .start()
        .await;
    ready(&app, &["hello"]).await;
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_runs_the_tool_loop_out_of_sight() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("c1", "mcp__hello__count_to", json!({"n": 3}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("I counted to 3.")));
    let app = app(&mock, json!({})).await;

    let (status, v) = json(
        app.post("/v1/chat/completions", json!({"model": "woollama/counter", "messages": [{"role": "user", "content": "count to 3"}]}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        completion("I counted to 3."),
        "the final turn, as the upstream sent it"
    );

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let first = &reqs[0].body;
    assert_eq!(first["model"], "m");
    assert_eq!(first["stream"], false);
    assert_eq!(
        first["messages"][0],
        json!({"role": "system", "content": "Count when asked. Speak English."})
    );
    assert_eq!(
        first["messages"][1],
        json!({"role": "user", "content": "count to 3"})
    );
    assert_eq!(
        first["tools"][0]["function"]["name"],
        "mcp__hello__count_to"
    );
    assert_eq!(
        first["tools"][0]["function"]["parameters"]["required"],
        json!(["n"])
    );
    // extra_body, then the recipe's params over it.
    assert_eq!(first["seed"], 7);
    assert_eq!(first["temperature"], 0.3);
    let second = &reqs[1].body;
    assert_eq!(second["messages"][2]["role"], "assistant");
    assert_eq!(second["messages"][2]["tool_calls"][0]["id"], "c1");
    assert_eq!(
        second["messages"][3],
        json!({"role": "tool", "content": "counted to 3", "tool_call_id": "c1"})
    );
}

fn frames(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for f in text.split("\n\n").filter(|f| !f.is_empty()) {
        let data = f.strip_prefix("data: ").expect("data frame");
        if data == "[DONE]" {
            out.push(json!("[DONE]"));
        } else {
            out.push(serde_json::from_str(data).expect("json frame"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_recipe_shows_every_turns_text_and_one_stop() {
    let mock = Mock::start().await;
    mock.push(sse_tool_calls(
        "Let me count. ",
        &[("c1", "mcp__hello__count_to", json!({"n": 2}))],
    ));
    mock.push(sse(&["Counted ", "to 2."]));
    let app = app(&mock, json!({})).await;

    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/counter", "stream": true, "messages": [{"role": "user", "content": "count"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let f = frames(&resp.text().await.expect("body"));
    assert_eq!(f.last(), Some(&json!("[DONE]")));
    let chunks = &f[..f.len() - 1];
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant"})
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Let me count. Counted to 2.");
    let stops: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(stops.len(), 1, "exactly one stop chunk");
    assert_eq!(stops[0]["choices"][0]["finish_reason"], "stop");
    for c in chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "woollama/counter");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert_eq!(c["created"], chunks[0]["created"]);
        assert!(
            c["choices"][0]["delta"].get("tool_calls").is_none(),
            "tool calls never shown"
        );
    }
    // The fragments were reassembled into one call with whole arguments.
    let second = &mock.requests()[1].body;
    assert_eq!(
        second["messages"][2]["tool_calls"][0]["function"],
        json!({"name": "mcp__hello__count_to", "arguments": "{\"n\":2}"})
    );
    assert_eq!(second["messages"][3]["content"], "counted to 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_list_call_never_reaches_the_server() {
    let fixture = Fixture::default();
    let (addr, stop) = fixture.start().await;
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[
            ("c1", "mcp__fx__echo", json!({"text": "smuggled"})),
            ("c2", "mcp__hello__count_to", json!({"n": 1})),
        ]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("done")));
    let app = app(&mock, json!({"fx": {"url": format!("http://{addr}/mcp")}})).await;
    ready(&app, &["hello", "fx"]).await;

    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/counter", "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // Proven from the server's side: the connected fx server got no call.
    assert!(
        fixture.calls().is_empty(),
        "fx was called: {:?}",
        fixture.calls()
    );
    let second = &mock.requests()[1].body;
    assert_eq!(
        second["messages"][2]["content"],
        "ERROR: tool 'mcp__fx__echo' is not permitted by this recipe (allowed: [\"mcp__hello__count_to\"])"
    );
    assert_eq!(second["messages"][2]["tool_call_id"], "c1");
    // The permitted call in the same turn still ran, in call order.
    assert_eq!(
        second["messages"][3],
        json!({"role": "tool", "content": "counted to 1", "tool_call_id": "c2"})
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_tool_calls_stop_at_max_turns() {
    let mock = Mock::start().await;
    for i in 0..3 {
        mock.push(Reply::Json(
            StatusCode::OK,
            tool_calls(&[(&format!("c{i}"), "mcp__hello__count_to", json!({"n": 1}))]),
        ));
    }
    let app = app(&mock, json!({})).await;
    let msg = expect_error(
        app.post(
            "/v1/chat/completions",
            json!({"model": "woollama/short", "messages": []}),
        )
        .await,
        500,
        "server_error",
    )
    .await;
    assert_eq!(msg, "max turns (2) exceeded");
    assert_eq!(mock.requests().len(), 2);

    // Streaming: the error arrives as a frame, then the stop chunk and [DONE].
    let mock = Mock::start().await;
    for _ in 0..2 {
        mock.push(sse_tool_calls(
            "again ",
            &[("c", "mcp__hello__count_to", json!({"n": 1}))],
        ));
    }
    let app = self::app(&mock, json!({})).await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/short", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let f = frames(&resp.text().await.expect("body"));
    let n = f.len();
    assert_eq!(f[n - 1], json!("[DONE]"));
    assert_eq!(f[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        f[n - 3],
        json!({"error": {"message": "max turns (2) exceeded", "type": "server_error"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipe_errors_map_to_the_contract_statuses() {
    let mock = Mock::start().await;
    let app = app(&mock, json!({})).await;
    let post = |model: &str, stream: bool| {
        app.post(
            "/v1/chat/completions",
            json!({"model": model, "stream": stream, "messages": []}),
        )
    };

    expect_error(post("woollama/none", false).await, 404, "not_found").await;
    let msg = expect_error(post("woollama/nowhere", true).await, 501, "not_implemented").await;
    assert!(
        msg.starts_with("unsupported inferencer 'nope/m' (supported providers: "),
        "{msg}"
    );
    assert!(msg.ends_with(", claude-code)"), "{msg}");
    let msg = expect_error(
        post("woollama/keyed", false).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(msg, "inferencer 'keyed' requires $MOCK_KEY to be set");
    // No `claude` installed here: said, with the fix.
    let msg = expect_error(post("woollama/cc", false).await, 502, "server_error").await;
    assert!(msg.starts_with("claude-code backend: "), "{msg}");
    assert!(msg.contains("WOOLLAMA_CLAUDE_BIN"), "{msg}");
    assert!(mock.requests().is_empty());

    // An upstream error on the first turn: its status and body, before any stream.
    let err = json!({"error": {"message": "model not loaded", "type": "invalid_request_error"}});
    mock.push(Reply::Json(StatusCode::NOT_FOUND, err.clone()));
    let resp = post("woollama/counter", true).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(json(resp).await, (404, err));
    // 200 without choices: 502 with the upstream body.
    mock.push(Reply::Json(StatusCode::OK, json!({"object": "weird"})));
    let (s, v) = json(post("woollama/counter", false).await).await;
    assert_eq!((s, v), (502, json!({"object": "weird"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_recipe_cancels_the_upstream() {
    let mock = Mock::start().await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: common::mock::sse_chunks(&["partial", "never"]),
        gate: Some(common::mock::Gate {
            hold_after: 1,
            release: Arc::new(tokio::sync::Notify::new()),
            dropped: Some(tx),
        }),
    });
    let app = app(&mock, json!({})).await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/counter", "stream": true, "messages": []}),
        )
        .await;
    let mut body = resp.bytes_stream();
    use futures_util::StreamExt;
    body.next().await.expect("first frame").expect("ok");
    drop(body);
    tokio::time::timeout(LIMIT, rx)
        .await
        .expect("upstream not cancelled")
        .expect("signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_streamer_answers_through_hello_streamed_and_not() {
    // The bundled mcp.json and recipes.toml as shipped; only `ollama` points
    // at the mock model.
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("c1", "mcp__hello__count_to", json!({"n": 5}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("Counted to 5.")));
    mock.push(sse_tool_calls(
        "",
        &[("c2", "mcp__hello__count_to", json!({"n": 2}))],
    ));
    mock.push(sse(&["Counted ", "to 2."]));
    let setup = Setup::new(&mock)
        .env("WOOLLAMA_EXE", BIN)
        .mcp(woollama::config::DEFAULT_MCP_JSON);
    let app = setup.start().await;
    ready(&app, &["hello", "textops"]).await;

    let (status, v) = json(
        app.post("/v1/chat/completions", json!({"model": "woollama/streamer", "messages": [{"role": "user", "content": "count to 5"}]}))
            .await,
    )
    .await;
    assert_eq!(
        (status, v["choices"][0]["message"]["content"].clone()),
        (200, json!("Counted to 5."))
    );
    let reqs = mock.requests();
    assert_eq!(reqs[0].body["model"], "qwen3:14b-iq4xs");
    assert_eq!(
        reqs[0].body["options"],
        json!({"temperature": 0}),
        "ollama's extra_body"
    );
    assert_eq!(reqs[1].body["messages"][3]["content"], "counted to 5");

    let resp = app
        .post("/v1/chat/completions", json!({"model": "woollama/streamer", "stream": true, "messages": [{"role": "user", "content": "count to 2"}]}))
        .await;
    let f = frames(&resp.text().await.expect("body"));
    let text: String = f
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Counted to 2.");
    assert_eq!(
        mock.requests()[3].body["messages"][3]["content"],
        "counted to 2"
    );
    app.tools.shutdown(LIMIT).await;
}

/// A recipe called while a server its allow-list names is still making its
/// first connection waits for it (bounded by the connect timeout) instead of
/// running without its tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_called_while_its_server_connects_waits_for_its_tools() {
    let mock = Mock::start().await;
    let gate = common::ServerGate::new();
    let app = Setup::new(&mock)
        .mcp(&json!({"mcpServers": {"hello": gate.entry()}}).to_string())
        .recipes(RECIPES)
        .start()
        .await;
    assert_eq!(
        app.tools
            .snapshot()
            .server("hello")
            .map(|s| s.health.clone()),
        Some(Health::Connecting)
    );
    let url = app.url("/v1/chat/completions");
    let client = app.client.clone();
    let call = tokio::spawn(async move {
        client
            .post(url)
            .body(
                r#"{"model": "woollama/counter", "messages": [{"role": "user", "content": "hi"}]}"#,
            )
            .send()
            .await
            .expect("request")
    });
    gate.open();
    let resp = tokio::time::timeout(LIMIT, call)
        .await
        .expect("answer")
        .expect("task");
    assert_eq!(resp.status(), 200);
    let sent = mock.only_request().body;
    assert_eq!(
        sent["tools"][0]["function"]["name"], "mcp__hello__count_to",
        "{sent}"
    );
}
