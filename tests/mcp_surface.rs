//! woollama as an MCP server, driven by real clients: rmcp's client over
//! Streamable HTTP (`/mcp` and `/mcp/`) and over stdio (`woollama mcp`, the
//! real binary); raw HTTP for the Host and Origin checks. Downstreams are
//! the bundled `hello` and the rmcp HTTP fixture; the model is the mock.
#![expect(
    deprecated,
    reason = "the chat tool's steps arrive as MCP logging messages (deprecated by SEP-2577)"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fixture::Fixture;
use common::mock::{Gate, Mock, Reply, completion, sse_chunks, tool_calls};
use common::{Setup, TestApp, obj};
use reqwest::StatusCode;
use rmcp::model::{
    CallToolRequestParams, GetPromptRequestParams, LoggingMessageNotificationParam, NumberOrString,
    ProgressNotificationParam, ProgressToken, RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use woollama::tools::Health;

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
const LIMIT: Duration = Duration::from_secs(30);

/// What a client hears besides answers.
#[derive(Debug)]
enum Heard {
    Progress(ProgressNotificationParam),
    Log(LoggingMessageNotificationParam),
    ToolsChanged,
}

#[derive(Clone)]
struct Listener(mpsc::UnboundedSender<Heard>);

impl ClientHandler for Listener {
    async fn on_progress(&self, p: ProgressNotificationParam, _: NotificationContext<RoleClient>) {
        let _ = self.0.send(Heard::Progress(p));
    }
    async fn on_logging_message(
        &self,
        p: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(Heard::Log(p));
    }
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send(Heard::ToolsChanged);
    }
}

type Client = RunningService<RoleClient, Listener>;

/// Waits (bounded) for `notifications/tools/list_changed`, skipping anything else heard.
async fn until_tools_changed(heard: &mut mpsc::UnboundedReceiver<Heard>) {
    loop {
        let h = tokio::time::timeout(LIMIT, heard.recv())
            .await
            .expect("list_changed")
            .expect("open");
        if matches!(h, Heard::ToolsChanged) {
            return;
        }
    }
}

async fn connect_http(app: &TestApp, path: &str) -> (Client, mpsc::UnboundedReceiver<Heard>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = StreamableHttpClientTransportConfig::with_uri(app.url(path));
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        config,
    );
    let client = Listener(tx)
        .serve(transport)
        .await
        .expect("MCP initialize over HTTP");
    (client, rx)
}

const RECIPES: &str = r#"
[recipes.counter]
inferencer = "mock/m"
system = "Count when asked. Speak {{lang}}."
tools = ["hello.count_to"]
[recipes.counter.variables.lang]
default = "English"
description = "the language to answer in"

[recipes.plain]
inferencer = "mock/m"
system = "Be brief."
"#;

async fn app(mock: &Mock, extra: Value) -> TestApp {
    let mut servers = json!({"hello": {"command": BIN, "args": ["example-server", "hello"]}});
    if let (Value::Object(a), Value::Object(b)) = (&mut servers, extra) {
        a.extend(b);
    }
    let app = Setup::new(mock)
        .mcp(&json!({"mcpServers": servers}).to_string())
        .recipes(RECIPES)
        .start()
        .await;
    let names: Vec<String> = app.config.servers.iter().map(|s| s.name.clone()).collect();
    let ready = tokio::time::timeout(
        LIMIT,
        app.tools.wait_for(|s| {
            names
                .iter()
                .all(|n| s.server(n).is_some_and(|x| x.health == Health::Connected))
        }),
    )
    .await;
    assert!(
        matches!(ready, Ok(Some(_))),
        "downstreams not connected: {:#?}",
        app.tools.snapshot()
    );
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_surface_carries_recipes_chat_and_downstream_tools() {
    let mock = Mock::start().await;
    let app = app(&mock, json!({})).await;
    let (client, mut heard) = connect_http(&app, "/mcp").await;

    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("identity");
    assert_eq!(
        (server.name.as_str(), server.version.as_str()),
        ("woollama", env!("CARGO_PKG_VERSION"))
    );
    let caps = &info.capabilities;
    assert_eq!(caps.tools.as_ref().and_then(|t| t.list_changed), Some(true));
    assert_eq!(
        caps.prompts.as_ref().and_then(|p| p.list_changed),
        Some(true)
    );
    assert!(caps.logging.is_some());

    // Tools: chat first, then the downstream's under wire names, schemas verbatim.
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        vec!["chat", "mcp__hello__count_to", "mcp__hello__hello"]
    );
    let chat_out =
        Value::Object((**tools[0].output_schema.as_ref().expect("chat output schema")).clone());
    assert_eq!(chat_out["required"], json!(["result"]));
    assert_eq!(chat_out["x-fastmcp-wrap-result"], true);
    let count_out = Value::Object(
        (**tools[1]
            .output_schema
            .as_ref()
            .expect("forwarded output schema"))
        .clone(),
    );
    assert_eq!(count_out["properties"]["count"]["type"], "integer");

    // A re-exported call: the downstream's result, verbatim.
    let r = client
        .call_tool(
            CallToolRequestParams::new("mcp__hello__count_to").with_arguments(obj(json!({"n": 2}))),
        )
        .await
        .expect("proxied call");
    assert_eq!(r.structured_content, Some(json!({"count": 2})));
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("counted to 2")
    );
    // An unknown tool is a protocol error.
    match client
        .call_tool(CallToolRequestParams::new("mcp__nope__x"))
        .await
    {
        Err(ServiceError::McpError(e)) => {
            assert!(e.message.contains("unknown tool 'mcp__nope__x'"), "{e:?}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }

    // Recipes as prompts, with their variables as arguments.
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["counter", "plain"]);
    let args = prompts[0]
        .arguments
        .as_ref()
        .expect("counter has an argument");
    assert_eq!(args[0].name, "lang");
    assert_eq!(
        args[0].description.as_deref(),
        Some("the language to answer in")
    );
    assert!(prompts[1].arguments.is_none());
    let mut get = GetPromptRequestParams::new("counter");
    get.arguments = Some(obj(json!({"lang": "French"})));
    let p = client.get_prompt(get).await.expect("prompts/get");
    assert_eq!(p.messages.len(), 1);
    assert_eq!(
        serde_json::to_value(&p.messages[0]).expect("json"),
        json!({"role": "user", "content": {"type": "text", "text": "Count when asked. Speak French."}})
    );
    assert!(matches!(
        client.get_prompt(GetPromptRequestParams::new("nope")).await,
        Err(ServiceError::McpError(_))
    ));

    // chat runs the recipe, reporting each tool step.
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("c1", "mcp__hello__count_to", json!({"n": 3}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("I counted to 3.")));
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::String("chat-1".into())));
    let mut call = CallToolRequestParams::new("chat").with_arguments(obj(
        json!({"recipe": "counter", "messages": [{"role": "user", "content": "count to 3"}]}),
    ));
    call.meta = Some(meta);
    let r = client.call_tool(call).await.expect("chat");
    assert_eq!(r.is_error, Some(false));
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("I counted to 3.")
    );
    assert_eq!(
        r.structured_content,
        Some(json!({"result": "I counted to 3."}))
    );
    let mut progress = Vec::new();
    let mut logs = Vec::new();
    while progress.len() < 2 || logs.len() < 2 {
        match tokio::time::timeout(LIMIT, heard.recv())
            .await
            .expect("notifications")
            .expect("open")
        {
            // The proxied count_to above reported its progress too ("1", "2").
            Heard::Progress(p)
                if p.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(['→', '←'])) =>
            {
                progress.push(p)
            }
            Heard::Log(l) if l.logger.as_deref() == Some("woollama") => logs.push(l),
            _ => {}
        }
    }
    assert_eq!(
        progress[0].message.as_deref(),
        Some("→ mcp__hello__count_to({\"n\":3})")
    );
    assert_eq!(
        progress[1].message.as_deref(),
        Some("← mcp__hello__count_to: ok")
    );
    assert_eq!(progress[1].progress, 2.0);
    assert_eq!(logs[0].data, json!("→ mcp__hello__count_to({\"n\":3})"));
    assert_eq!(logs[1].data, json!("← mcp__hello__count_to: ok"));

    // Failures are tool-level errors.
    let r = client
        .call_tool(
            CallToolRequestParams::new("chat")
                .with_arguments(obj(json!({"model": "woollama/nope", "messages": []}))),
        )
        .await
        .expect("a tool error, not a protocol error");
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("unknown recipe 'nope'")
    );

    // A second, concurrent session on /mcp/ shares the same registry.
    let (second, _) = connect_http(&app, "/mcp/").await;
    let again = second
        .call_tool(
            CallToolRequestParams::new("mcp__hello__hello")
                .with_arguments(obj(json!({"name": "two"}))),
        )
        .await
        .expect("second session");
    assert_eq!(
        again.content[0].as_text().map(|t| t.text.as_str()),
        Some("Hello, two!")
    );
    second.cancel().await.expect("close");
    client.cancel().await.expect("close");
    app.tools.shutdown(LIMIT).await;
}

/// A downstream's roster change reaches woollama's clients, from a server
/// on either generation: `fx` is heard on its 2026-07-28 listen stream,
/// `fx_old` (the same server, pinned to 2025-11-25) on its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_roster_change_reaches_mcp_clients() {
    let fixture = Fixture::default();
    let (addr, stop) = fixture.start().await;
    let mock = Mock::start().await;
    let url = format!("http://{addr}/mcp");
    let app = app(
        &mock,
        json!({"fx": {"url": url}, "fx_old": {"url": url, "protocol": "2025-11-25"}}),
    )
    .await;
    let snap = app.tools.snapshot();
    let protocol = |name: &str| snap.server(name).and_then(|s| s.protocol.clone());
    assert_eq!(protocol("fx").as_deref(), Some("2026-07-28"));
    assert_eq!(protocol("fx_old").as_deref(), Some("2025-11-25"));
    let (client, mut heard) = connect_http(&app, "/mcp").await;
    let before = client.list_all_tools().await.expect("tools").len();
    fixture.add_tool().await;
    let after = tokio::time::timeout(LIMIT, async {
        loop {
            until_tools_changed(&mut heard).await;
            let tools = client.list_all_tools().await.expect("tools");
            if ["mcp__fx__added", "mcp__fx_old__added"]
                .iter()
                .all(|n| tools.iter().any(|t| t.name == *n))
            {
                return tools;
            }
        }
    })
    .await
    .expect("both servers' new tool");
    assert_eq!(after.len(), before + 2);
    client.cancel().await.expect("close");
    app.tools.shutdown(LIMIT).await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cancels_chat_cancels_the_upstream() {
    let mock = Mock::start().await;
    let rx = endless_answer(&mock);
    let app = app(&mock, json!({})).await;
    let (client, _) = connect_http(&app, "/mcp").await;
    let call = spawn_chat(&client);
    // Wait until the model request is in flight, then the client goes away.
    tokio::time::timeout(LIMIT, mock.wait_for_requests(1))
        .await
        .expect("the model was never asked");
    // Aborting the call makes the client send notifications/cancelled.
    call.abort();
    tokio::time::timeout(LIMIT, rx)
        .await
        .expect("the upstream was not cancelled")
        .expect("signal");
    drop(client);
    app.tools.shutdown(LIMIT).await;
}

/// Starts `chat` with the `plain` recipe in the background.
fn spawn_chat(
    client: &Client,
) -> tokio::task::JoinHandle<Result<rmcp::model::CallToolResponse, ServiceError>> {
    let peer = client.peer().clone();
    tokio::spawn(async move {
        peer.call_tool_once(
            CallToolRequestParams::new("chat")
                .with_arguments(obj(json!({"recipe": "plain", "messages": []}))),
        )
        .await
    })
}

/// A model answer that never finishes; `dropped` fires when woollama lets go of it.
fn endless_answer(mock: &Mock) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    mock.push(Reply::Stream {
        content_type: "application/json",
        chunks: sse_chunks(&["a", "b"]),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::new(tokio::sync::Notify::new()),
            dropped: Some(tx),
        }),
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_chat_stops_the_loop() {
    let mock = Mock::start().await;
    let dropped = endless_answer(&mock);
    let app = app(&mock, json!({})).await;
    let (client, _) = connect_http(&app, "/mcp").await;
    let call = spawn_chat(&client);
    tokio::time::timeout(LIMIT, mock.wait_for_requests(1))
        .await
        .expect("the model was never asked");
    // No notifications/cancelled: the client just closes its session.
    client.cancel().await.expect("close");
    tokio::time::timeout(LIMIT, dropped)
        .await
        .expect("the model request outlived the client")
        .expect("signal");
    assert!(
        matches!(tokio::time::timeout(LIMIT, call).await, Ok(Ok(Err(_)))),
        "the call must end without an answer"
    );
    app.tools.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_that_goes_away_mid_chat_ends_woollama_mcp() {
    let mock = Mock::start().await;
    let dropped = endless_answer(&mock);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("inferencers.toml"),
        format!("[inferencers.mock]\nbase_url = \"{}\"\n", mock.base_url()),
    )
    .expect("write");
    std::fs::write(dir.path().join("recipes.toml"), RECIPES).expect("write");
    std::fs::write(dir.path().join("mcp.json"), r#"{"mcpServers": {}}"#).expect("write");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("mcp")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("WOOLLAMA_CONFIG_DIR", dir.path())
        .env("XDG_RUNTIME_DIR", dir.path().join("run"));
    // Spawned by hand (not TokioChildProcess, which kills its child on drop):
    // the process must end by itself when its stdin closes.
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn woollama mcp");
    let transport = (
        child.stdout.take().expect("stdout"),
        child.stdin.take().expect("stdin"),
    );
    let (tx, _heard) = mpsc::unbounded_channel();
    let client = Listener(tx).serve(transport).await.expect("initialize");
    let _call = spawn_chat(&client);
    tokio::time::timeout(LIMIT, mock.wait_for_requests(1))
        .await
        .expect("the model was never asked");
    // The client closes stdin mid-chat.
    drop(client);
    tokio::time::timeout(LIMIT, dropped)
        .await
        .expect("the model request outlived the stdio client")
        .expect("signal");
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("woollama mcp kept running without its client")
        .expect("wait");
    assert!(status.success(), "woollama mcp exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woollama_mcp_serves_over_stdio() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("brief answer")));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("inferencers.toml"),
        format!("[inferencers.mock]\nbase_url = \"{}\"\n", mock.base_url()),
    )
    .expect("write");
    let mut cmd = common::woollama_mcp(dir.path(), RECIPES);
    cmd.env("RUST_LOG", "info");
    let (tx, mut heard) = mpsc::unbounded_channel();
    let client = Listener(tx)
        .serve(TokioChildProcess::new(cmd).expect("spawn"))
        .await
        .expect("initialize over stdio");
    assert_eq!(
        client
            .peer_info()
            .and_then(|i| i.server_info.clone())
            .map(|s| s.name),
        Some("woollama".into())
    );
    let r = client
        .call_tool(CallToolRequestParams::new("chat").with_arguments(obj(
            json!({"recipe": "plain", "messages": [{"role": "user", "content": "hi"}]}),
        )))
        .await
        .expect("chat over stdio");
    assert_eq!(
        r.structured_content,
        Some(json!({"result": "brief answer"}))
    );
    // The downstream connects in the background: its tools are listed
    // already, or announced with list_changed when it connects.
    let has_hello =
        |tools: &[rmcp::model::Tool]| tools.iter().any(|t| t.name == "mcp__hello__count_to");
    if !has_hello(&client.list_all_tools().await.expect("tools")) {
        until_tools_changed(&mut heard).await;
        assert!(has_hello(&client.list_all_tools().await.expect("tools")));
    }
    client.cancel().await.expect("close");
    assert!(
        !dir.path().join("run").exists(),
        "woollama mcp binds no socket"
    );
}

#[tokio::test]
async fn web_pages_and_foreign_hosts_are_refused() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    // A browser page elsewhere: refused on every TCP route.
    let resp = app
        .client
        .get(app.url("/v1/models"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("req");
    let msg = common::expect_error(resp, 403, "permission_error").await;
    assert!(msg.contains("evil.example"), "{msg}");
    // A local page is fine.
    let resp = app
        .client
        .get(app.url("/v1/models"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);
    // A rebound DNS name pointing at 127.0.0.1 is refused on every route:
    // a browser sends no Origin on a same-origin GET.
    for path in ["/v1/models", "/v1/tools"] {
        let resp = app
            .client
            .get(app.url(path))
            .header("host", "rebound.evil.example")
            .send()
            .await
            .expect("req");
        let msg = common::expect_error(resp, 403, "permission_error").await;
        assert!(msg.contains("rebound.evil.example"), "{msg}");
        let resp = app
            .client
            .get(app.url(path))
            .header("host", format!("localhost:{}", app.addr.port()))
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status(), 200, "{path}");
    }
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("host", "rebound.evil.example")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#)
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 403);
}

/// The `chat` tool called the moment a client has connected — while the
/// server the recipe names is still connecting — runs with the recipe's
/// tools (it waits for the server's first connection, bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_right_after_start_waits_for_the_recipes_tools() {
    let mock = Mock::start().await;
    let gate = common::ServerGate::new();
    let app = Setup::new(&mock)
        .mcp(&json!({"mcpServers": {"hello": gate.entry()}}).to_string())
        .recipes(RECIPES)
        .start()
        .await;
    let (client, _heard) = connect_http(&app, "/mcp").await;
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(CallToolRequestParams::new("chat").with_arguments(obj(
            json!({"recipe": "counter", "messages": [{"role": "user", "content": "hi"}]}),
        )))
        .await
    });
    gate.open();
    let r = tokio::time::timeout(LIMIT, call)
        .await
        .expect("answer")
        .expect("task")
        .expect("chat");
    assert_eq!(r.is_error, Some(false), "{r:?}");
    let sent = mock.only_request().body;
    assert_eq!(
        sent["tools"][0]["function"]["name"], "mcp__hello__count_to",
        "{sent}"
    );
    client.cancel().await.expect("close");
}

/// A 2026-07-28 `tools/call` on `/mcp` (no session; `params` carries its
/// name and `_meta`): the HTTP status and the JSON-RPC answer.
async fn stateless_sample(app: &TestApp, id: u64, params: Value) -> (u16, Value) {
    stateless(app, id, "tools/call", params).await
}

/// A 2026-07-28 request on `/mcp` (no session): the HTTP status and the
/// JSON-RPC answer (from a JSON body, or the SSE event that carries it).
async fn stateless(app: &TestApp, id: u64, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut request = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    let r = request.body(body.to_string()).send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim();
    let v = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, v)
}

/// A 2026-07-28 request (no session) for a tool whose server asks the
/// client for sampling, which the request did not declare: the client gets
/// -32021 naming `sampling`, with HTTP 400 — not the tool error the server
/// made of the refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_call_needing_an_undeclared_capability_gets_32021() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mcp = json!({"mcpServers": {"asks": common::unruly(&dir.path().join("pids"), &[])}});
    let app = Setup::new(&mock).mcp(&mcp.to_string()).start().await;
    common::until(&app.tools, "connected", |s| common::connected(s, "asks")).await;
    let (status, v) = stateless_sample(
        &app,
        7,
        json!({"name": "mcp__asks__sample", "arguments": {},
               "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                         "io.modelcontextprotocol/clientCapabilities": {}}}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["id"], json!(7), "{v}");
    assert_eq!(v["error"]["code"], json!(-32021), "{v}");
    assert_eq!(
        v["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}}),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("server 'asks'"), "{message}");
}

/// The bridge (issue 16): a 2026-07-28 client that declared sampling calls a
/// tool whose server, on its older session with woollama, asks for a
/// sampling. The client gets `input_required` carrying that request and a
/// `requestState`; its retry with the answer completes the very same
/// downstream call. A `requestState` woollama did not issue is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstreams_sampling_request_becomes_input_required_and_resumes() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let mcp = json!({"mcpServers": {"asks": common::unruly(&pids, &[])}});
    let app = Setup::new(&mock).mcp(&mcp.to_string()).start().await;
    common::until(&app.tools, "connected", |s| common::connected(s, "asks")).await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}});
    let (_, first) = stateless_sample(
        &app,
        9,
        json!({"name": "mcp__asks__sample", "arguments": {}, "_meta": meta}),
    )
    .await;
    let result = &first["result"];
    assert_eq!(result["resultType"], json!("input_required"), "{first}");
    let requests = result["inputRequests"].as_object().expect("inputRequests");
    assert_eq!(requests.len(), 1, "{first}");
    let (key, asked) = requests.iter().next().expect("one");
    assert_eq!(asked["method"], json!("sampling/createMessage"), "{first}");
    assert_eq!(
        asked["params"]["messages"][0]["content"]["text"],
        json!("A line, please.")
    );
    let state = result["requestState"]
        .as_str()
        .expect("requestState")
        .to_string();

    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "a line from the model"},
                         "model": "m", "stopReason": "endTurn"});
    let retry = json!({"name": "mcp__asks__sample", "arguments": {}, "_meta": meta,
                       "inputResponses": {key.as_str(): sampled}, "requestState": state});
    let (_, done) = stateless_sample(&app, 10, retry.clone()).await;
    assert_eq!(done["result"]["resultType"], json!("complete"), "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"],
        json!("a line from the model"),
        "{done}"
    );
    assert_ne!(done["result"]["isError"], json!(true), "{done}");
    // One downstream process served both rounds: the same call resumed.
    assert_eq!(common::pids(&pids).len(), 1);

    let (_, again) = stateless_sample(&app, 11, retry).await;
    assert_eq!(again["error"]["code"], json!(-32602), "{again}");
    assert!(
        again["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown requestState")),
        "{again}"
    );
}

/// A 2026-07-28 client that gets `input_required` and never comes back:
/// the parked call ends at the call timeout, the downstream's waiting
/// request gets a clean error at once (it is not left hanging), and a
/// late retry learns the call timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_releases_the_downstream() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let mcp = json!({"mcpServers": {"asks": common::unruly(&pids, &[])}});
    let app = Setup::new(&mock)
        .env("WOOLLAMA_MCP_CALL_TIMEOUT_SECS", "0.5")
        .mcp(&mcp.to_string())
        .start()
        .await;
    common::until(&app.tools, "connected", |s| common::connected(s, "asks")).await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}});
    let (_, first) = stateless_sample(
        &app,
        21,
        json!({"name": "mcp__asks__sample", "arguments": {}, "_meta": meta}),
    )
    .await;
    assert_eq!(
        first["result"]["resultType"],
        json!("input_required"),
        "{first}"
    );
    let state = first["result"]["requestState"].clone();
    // The downstream hears why its question went unanswered.
    let events = pids.with_extension("events");
    let heard = tokio::time::timeout(common::LIMIT, async {
        loop {
            let text = std::fs::read_to_string(&events).unwrap_or_default();
            if !text.is_empty() {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the downstream's question was left hanging");
    assert!(
        heard.contains("sampling failed") && heard.contains("ended before it answered"),
        "{heard}"
    );
    // A late retry: the call is over, and says why.
    let (_, late) = stateless_sample(
        &app,
        22,
        json!({"name": "mcp__asks__sample", "arguments": {}, "_meta": meta,
               "inputResponses": {}, "requestState": state}),
    )
    .await;
    assert_eq!(late["result"]["isError"], json!(true), "{late}");
    let text = late["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("timed out"), "{late}");
}

/// An inner `woollama mcp` as a downstream of the test's woollama: an rmcp
/// server, so it speaks 2026-07-28, whose own downstream is `asks` (the
/// unruly server, on a 2025-11-25 session, asking for a sampling in
/// `sample`; its pids go to `pids`). Through it, `sample` reaches the outer
/// woollama as `mcp__inner__mcp__asks__sample`, and the inner woollama
/// answers with `input_required` when `asks` asks.
fn inner_woollama(dir: &std::path::Path, pids: &std::path::Path) -> Value {
    let config = dir.join("inner");
    std::fs::create_dir_all(&config).expect("mkdir inner");
    std::fs::write(
        config.join("mcp.json"),
        json!({"mcpServers": {"asks": common::unruly(pids, &[])}}).to_string(),
    )
    .expect("write inner mcp.json");
    std::fs::write(config.join("recipes.toml"), "").expect("write inner recipes.toml");
    json!({"command": BIN, "args": ["mcp"], "env": {
        "WOOLLAMA_CONFIG_DIR": config,
        "XDG_RUNTIME_DIR": dir.join("inner-run"),
        "HOME": dir.join("inner-home"),
    }})
}

const NESTED_SAMPLE: &str = "mcp__inner__mcp__asks__sample";

/// The outer woollama with the inner one as `inner`, once `sample` is
/// listed through it.
async fn nested(mock: &Mock, dir: &std::path::Path, pids: &std::path::Path) -> TestApp {
    let mcp = json!({"mcpServers": {"inner": inner_woollama(dir, pids)}});
    let app = Setup::new(mock).mcp(&mcp.to_string()).start().await;
    common::until(&app.tools, "the inner woollama's sample tool", |s| {
        s.tool(NESTED_SAMPLE).is_some()
    })
    .await;
    app
}

/// A 2026-07-28 downstream (the inner woollama) answers with its own
/// `input_required`: a 2026-07-28 client gets it as it came, and its retry
/// — answers and the inner's `requestState`, which the outer woollama did
/// not issue — goes back to the inner one, which completes the same call.
/// The client's capabilities travel with each request: a client that did
/// not declare sampling gets the inner's -32021, and a state the inner did
/// not issue is refused by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_downstreams_input_required_goes_to_a_2026_client_as_it_came() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let app = nested(&mock, dir.path(), &pids).await;
    assert_eq!(
        app.tools
            .snapshot()
            .server("inner")
            .and_then(|s| s.protocol.clone())
            .as_deref(),
        Some("2026-07-28")
    );
    let meta = |caps: Value| {
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": caps})
    };

    let (status, refused) = stateless_sample(
        &app,
        1,
        json!({"name": NESTED_SAMPLE, "arguments": {}, "_meta": meta(json!({}))}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], json!(-32021), "{refused}");
    assert_eq!(
        refused["error"]["data"]["requiredCapabilities"],
        json!({"sampling": {}}),
        "{refused}"
    );

    let with_sampling = meta(json!({"sampling": {}}));
    let (_, first) = stateless_sample(
        &app,
        2,
        json!({"name": NESTED_SAMPLE, "arguments": {}, "_meta": with_sampling}),
    )
    .await;
    let result = &first["result"];
    assert_eq!(result["resultType"], json!("input_required"), "{first}");
    let (key, asked) = result["inputRequests"]
        .as_object()
        .and_then(|r| r.iter().next())
        .expect("one input request");
    assert_eq!(asked["method"], json!("sampling/createMessage"), "{first}");
    let state = result["requestState"].as_str().expect("requestState");
    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "a nested line"},
                         "model": "m", "stopReason": "endTurn"});
    let retry = |state: &str| {
        json!({"name": NESTED_SAMPLE, "arguments": {}, "_meta": with_sampling,
               "inputResponses": {key.as_str(): sampled}, "requestState": state})
    };

    // The outer woollama passes a state it did not issue on; the inner one
    // (whose downstream `asks` issues none) is the one that refuses it.
    let (_, forged) = stateless_sample(&app, 3, retry("wl1.not-issued-by-anyone")).await;
    assert_eq!(forged["error"]["code"], json!(-32602), "{forged}");
    assert!(
        forged["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown requestState") && m.contains("server 'asks'")),
        "{forged}"
    );

    let (_, done) = stateless_sample(&app, 4, retry(state)).await;
    assert_eq!(done["result"]["resultType"], json!("complete"), "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"],
        json!("a nested line"),
        "{done}"
    );
    // The inner woollama's downstream ran once, through both rounds.
    assert_eq!(common::pids(&pids).len(), 1);
    app.tools.shutdown(LIMIT).await;
}

/// A client of the older generation that can sample.
#[derive(Clone)]
struct Sampler;

impl ClientHandler for Sampler {
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        let asked = params
            .messages
            .first()
            .and_then(|m| m.content.first())
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        Ok(rmcp::model::CreateMessageResult::new(
            rmcp::model::SamplingMessage::assistant_text(format!(
                "sampled on the session for: {asked}"
            )),
            "m".into(),
        ))
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_sampling()
                .build(),
            rmcp::model::Implementation::new("sampler", "1"),
        )
    }
}

/// The other direction: a 2025-11-25 client (rmcp's, with a session) calls a
/// tool of a 2026-07-28 downstream that answers `input_required`. woollama
/// asks the client on its session (a `sampling/createMessage` request),
/// sends the downstream its answer with the state it issued, and the client
/// gets the completed result — it never sees `input_required`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_client_answers_a_2026_downstreams_input_required_on_its_session() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let app = nested(&mock, dir.path(), &pids).await;
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")),
    );
    let client = Sampler.serve(transport).await.expect("initialize");
    assert_eq!(
        client
            .peer_info()
            .map(|i| i.protocol_version.to_string())
            .as_deref(),
        Some("2025-11-25"),
        "the test needs a client of the older generation"
    );
    let result = tokio::time::timeout(
        LIMIT,
        client.call_tool(CallToolRequestParams::new(NESTED_SAMPLE)),
    )
    .await
    .expect("the call ended")
    .expect("tools/call");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(
        result.content[0].as_text().map(|t| t.text.as_str()),
        Some("sampled on the session for: A line, please."),
        "{result:?}"
    );
    assert_eq!(common::pids(&pids).len(), 1);
    client.cancel().await.expect("close");
    app.tools.shutdown(LIMIT).await;
}

/// `"protocol": "auto"` (the default) finds each server's generation:
/// 2026-07-28 for the inner woollama; 2025-11-25 for a server that answers
/// `server/discover` with "method not found" (on the same connection) and
/// for one that exits on it (started again, with `initialize` alone); a
/// pinned "2025-11-25" never probes. A server pinned to "2026-07-28" that
/// cannot speak it fails with a message naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_auto_finds_each_servers_generation() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    let mut pinned_old = inner_woollama(&path("pinned-old"), &path("pinned-old.pids"));
    pinned_old["protocol"] = json!("2025-11-25");
    let mut pinned_new = common::unruly(&path("pinned-new.pids"), &[]);
    pinned_new["protocol"] = json!("2026-07-28");
    let mcp = json!({"mcpServers": {
        "inner": inner_woollama(dir.path(), &path("inner.pids")),
        "old": common::unruly(&path("old.pids"), &[]),
        "strict": common::unruly(&path("strict.pids"), &["--strict"]),
        "pinned_old": pinned_old,
        "pinned_new": pinned_new,
    }});
    let app = Setup::new(&mock)
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0")
        .mcp(&mcp.to_string())
        .start()
        .await;
    let snap = common::until(&app.tools, "every server's first attempt", |s| {
        s.servers.len() == 5 && s.servers.iter().all(|x| x.health != Health::Connecting)
    })
    .await;
    let protocol = |name: &str| {
        snap.server(name)
            .and_then(|s| s.protocol.clone())
            .unwrap_or_else(|| format!("{name} not connected: {:?}", snap.server(name)))
    };
    assert_eq!(protocol("inner"), "2026-07-28");
    assert_eq!(protocol("old"), "2025-11-25");
    assert_eq!(protocol("strict"), "2025-11-25");
    assert_eq!(protocol("pinned_old"), "2025-11-25");
    // `old` took the probe's error and went on on one connection; `strict`
    // needed a second process, and the first is gone.
    assert_eq!(common::pids(&path("old.pids")).len(), 1);
    let strict = common::pids(&path("strict.pids"));
    assert_eq!(strict.len(), 2, "{strict:?}");
    let gone = tokio::time::timeout(LIMIT, async {
        while common::running(&strict[0]) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the first `strict` process is still running");
    match &snap.server("pinned_new").expect("pinned_new").health {
        Health::Failed { reason } => assert!(
            reason.contains(r#""protocol": "2026-07-28""#) && reason.contains("2025-11-25"),
            "{reason}"
        ),
        other => panic!("pinned_new: {other:?}"),
    }
    // What /v1/tools tells a person.
    let listed: Value = app
        .client
        .get(app.url("/v1/tools"))
        .send()
        .await
        .expect("GET /v1/tools")
        .json()
        .await
        .expect("json");
    let servers = listed["servers"].as_array().expect("servers");
    let inner = servers
        .iter()
        .find(|s| s["name"] == "inner")
        .expect("inner");
    assert_eq!(inner["protocol"], json!("2026-07-28"), "{listed}");
    // Both older servers serve their tools.
    for wire in ["mcp__old__echo", "mcp__strict__echo"] {
        let r = app
            .tools
            .call(wire, Some(obj(json!({"text": "still here"}))))
            .await
            .expect(wire);
        assert_eq!(
            r.content[0].as_text().map(|t| t.text.as_str()),
            Some("still here")
        );
    }
    app.tools.shutdown(LIMIT).await;
}

/// `server/discover` (2026-07-28) the moment woollama starts: the
/// aggregated view — both generations, what woollama and its downstreams
/// offer together, and each downstream's own instructions under its name
/// (the inner woollama's, here), which `initialize` carries too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_discover_gives_the_aggregated_view() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mcp =
        json!({"mcpServers": {"inner": inner_woollama(dir.path(), &dir.path().join("pids"))}});
    let app = Setup::new(&mock).mcp(&mcp.to_string()).start().await;
    let meta = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                "io.modelcontextprotocol/clientCapabilities": {}}});
    let (status, v) = stateless(&app, 1, "server/discover", meta.clone()).await;
    assert_eq!(status, 200, "{v}");
    let result = &v["result"];
    let versions = result["supportedVersions"].as_array().expect("versions");
    assert!(
        versions.contains(&json!("2026-07-28")) && versions.contains(&json!("2025-11-25")),
        "{v}"
    );
    assert_eq!(
        result["capabilities"]["tools"]["listChanged"],
        json!(true),
        "{v}"
    );
    assert!(result["capabilities"]["resources"].is_object(), "{v}");
    let instructions = result["instructions"].as_str().expect("instructions");
    assert!(
        instructions.starts_with("woollama routes"),
        "{instructions}"
    );
    assert!(
        instructions.contains("Server 'inner' says: woollama routes"),
        "{instructions}"
    );

    let (client, _heard) = connect_http(&app, "/mcp").await;
    let told = client
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default();
    assert!(told.contains("Server 'inner' says:"), "{told}");
    client.cancel().await.expect("close");

    // A delegate (a grant for one tool) hears woollama's words only, on
    // both generations.
    let grant = app.tools.grants().grant([NESTED_SAMPLE.to_string()]);
    let token = grant.token().expose().to_string();
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": meta});
    let text = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(body.to_string())
        .send()
        .await
        .expect("discover")
        .text()
        .await
        .expect("body");
    assert!(text.contains("woollama routes"), "{text}");
    assert!(!text.contains("says:"), "{text}");
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(token),
    );
    let delegate = ().serve(transport).await.expect("initialize with the grant");
    let told = delegate
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default();
    assert!(
        told.starts_with("woollama routes") && !told.contains("says:"),
        "{told}"
    );
    delegate.cancel().await.expect("close");
    app.tools.shutdown(LIMIT).await;
}

/// `prompts/get` is bridged like `tools/call`: a 2025-11-25 downstream that
/// asks for a sampling while it makes its prompt gives a 2026-07-28 client
/// `input_required`, and the retry completes the prompt. The state is good
/// for `prompts/get` only: sent with a `tools/call`, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_needs_a_sampling_is_bridged_too() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pids = dir.path().join("pids");
    let mcp = json!({"mcpServers": {"asks": common::unruly(&pids, &[])}});
    let app = Setup::new(&mock).mcp(&mcp.to_string()).start().await;
    common::until(&app.tools, "the asks prompt", |s| {
        s.prompt("mcp__asks__ask").is_some()
    })
    .await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}});
    let (_, first) = stateless(
        &app,
        1,
        "prompts/get",
        json!({"name": "mcp__asks__ask", "_meta": meta}),
    )
    .await;
    let result = &first["result"];
    assert_eq!(result["resultType"], json!("input_required"), "{first}");
    let (key, asked) = result["inputRequests"]
        .as_object()
        .and_then(|r| r.iter().next())
        .expect("one input request");
    assert_eq!(
        asked["params"]["messages"][0]["content"]["text"],
        json!("A prompt line, please."),
        "{first}"
    );
    let state = result["requestState"].as_str().expect("requestState");
    let sampled = json!({"role": "assistant", "content": {"type": "text", "text": "a prompt line from the model"},
                         "model": "m", "stopReason": "endTurn"});
    let answers = json!({key.as_str(): sampled});

    let (_, wrong) = stateless(
        &app,
        2,
        "tools/call",
        json!({"name": "mcp__asks__sample", "arguments": {}, "_meta": meta,
               "inputResponses": answers, "requestState": state}),
    )
    .await;
    assert_eq!(wrong["error"]["code"], json!(-32602), "{wrong}");

    let (_, done) = stateless(
        &app,
        3,
        "prompts/get",
        json!({"name": "mcp__asks__ask", "_meta": meta,
               "inputResponses": answers, "requestState": state}),
    )
    .await;
    assert_eq!(done["result"]["resultType"], json!("complete"), "{done}");
    assert_eq!(
        done["result"]["messages"][0]["content"]["text"],
        json!("a prompt line from the model"),
        "{done}"
    );
    assert_eq!(common::pids(&pids).len(), 1);
    app.tools.shutdown(LIMIT).await;
}

/// A resource subscription on a 2026-07-28 downstream: a client's
/// `resources/subscribe` becomes part of woollama's listen stream to the
/// server (reopened with the URI), and the server's update reaches the
/// client under the URI it knows. The same server pinned to 2025-11-25
/// gets `resources/subscribe` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_update_from_a_2026_downstream_reaches_the_subscriber() {
    #[derive(Clone)]
    struct Updates(mpsc::UnboundedSender<String>);
    impl ClientHandler for Updates {
        async fn on_resource_updated(
            &self,
            p: rmcp::model::ResourceUpdatedNotificationParam,
            _: NotificationContext<RoleClient>,
        ) {
            let _ = self.0.send(p.uri);
        }
    }

    let fixture = Fixture::default();
    let (addr, stop) = fixture.start().await;
    let mock = Mock::start().await;
    let url = format!("http://{addr}/mcp");
    let app = app(
        &mock,
        json!({"fx": {"url": url}, "fx_old": {"url": url, "protocol": "2025-11-25"}}),
    )
    .await;
    let (tx, mut updates) = mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")),
    );
    let client = Updates(tx).serve(transport).await.expect("initialize");
    for uri in ["woollama://fx/mem://note", "woollama://fx_old/mem://note"] {
        client
            .subscribe(rmcp::model::SubscribeRequestParams::new(uri))
            .await
            .expect(uri);
    }
    // woollama's listen stream to `fx` now carries the URI.
    tokio::time::timeout(LIMIT, async {
        while fixture
            .listened()
            .last()
            .is_none_or(|uris| uris != &["mem://note".to_string()])
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no listen stream with the URI: {:?}", fixture.listened()));
    // Said again until heard: a stream reopened for the subscription
    // (rmcp acknowledges a listen request before the server's handler sees
    // it) can miss an update sent in that instant.
    let mut heard = std::collections::BTreeSet::new();
    tokio::time::timeout(LIMIT, async {
        while heard.len() < 2 {
            fixture.update("mem://note").await;
            if let Ok(Some(uri)) =
                tokio::time::timeout(Duration::from_millis(200), updates.recv()).await
            {
                heard.insert(uri);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("updates heard: {heard:?}"));
    assert_eq!(
        heard.into_iter().collect::<Vec<_>>(),
        ["woollama://fx/mem://note", "woollama://fx_old/mem://note"]
    );
    client.cancel().await.expect("close");
    app.tools.shutdown(LIMIT).await;
    stop.cancel();
}

/// A real 2026-07-28 peer downstream: a server on the official Python SDK
/// (2.x) is spoken to in 2026-07-28, its tool works through woollama, and
/// the result names woollama (not the Python server) in its `_meta`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_server_is_spoken_to_in_2026_and_woollama_answers_for_it() {
    let mock = Mock::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/mcp_sdk_server.py"
    );
    let mcp = json!({"mcpServers": {"py": {"command": common::python(), "args": [script]}}});
    let app = Setup::new(&mock).mcp(&mcp.to_string()).start().await;
    let snap = common::until(&app.tools, "the Python server", |s| {
        common::connected(s, "py")
    })
    .await;
    assert_eq!(
        snap.server("py")
            .and_then(|s| s.protocol.clone())
            .as_deref(),
        Some("2026-07-28")
    );
    let (_, v) = stateless_sample(
        &app,
        1,
        json!({"name": "mcp__py__shout", "arguments": {"text": "hi there"},
               "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                         "io.modelcontextprotocol/clientCapabilities": {}}}),
    )
    .await;
    assert_eq!(v["result"]["content"][0]["text"], json!("HI THERE"), "{v}");
    let named = &v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"];
    assert_eq!(named["name"], json!("woollama"), "{v}");
    app.tools.shutdown(LIMIT).await;
}
