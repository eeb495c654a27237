//! The bundled example MCP servers, driven through the real binary by rmcp's
//! client over stdio.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, NumberOrString, ProgressNotificationParam, ProgressToken,
    RequestMetaObject,
};
use rmcp::service::NotificationContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
const LIMIT: Duration = Duration::from_secs(30);

/// Forwards progress notifications to the test.
#[derive(Clone)]
struct Progress(mpsc::UnboundedSender<ProgressNotificationParam>);

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params);
    }
}

fn command(name: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.args(["example-server", name]).env("RUST_LOG", "warn");
    c
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

#[tokio::test]
async fn hello_counts_with_structured_output_and_progress() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let transport = TokioChildProcess::new(command("hello")).expect("spawn");
    let client = Progress(tx).serve(transport).await.expect("initialize");

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("woollama-hello")
    );

    let mut tools = client.list_all_tools().await.expect("tools/list");
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, vec!["count_to", "hello"]);
    let schema = tools[0]
        .output_schema
        .as_ref()
        .expect("count_to has an output schema");
    assert_eq!(
        Value::Object((**schema).clone())["properties"]["count"]["type"],
        "integer"
    );
    assert_eq!(
        Value::Object((*tools[0].input_schema).clone())["required"],
        json!(["n"])
    );

    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::Number(7)));
    let mut params = CallToolRequestParams::new("count_to").with_arguments(args(json!({"n": 3})));
    params.meta = Some(meta);
    let result = client.call_tool(params).await.expect("count_to");
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({"count": 3})));
    let text: Vec<String> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(text, vec!["counted to 3"]);
    for want in 1..=3 {
        let p = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("progress in time")
            .expect("progress");
        assert_eq!(p.progress, f64::from(want));
        assert_eq!(p.total, Some(3.0));
    }

    let hi = client
        .call_tool(CallToolRequestParams::new("hello").with_arguments(args(json!({"name": "Ada"}))))
        .await
        .expect("hello");
    assert_eq!(
        hi.content[0].as_text().map(|t| t.text.as_str()),
        Some("Hello, Ada!")
    );

    let too_big = client
        .call_tool(
            CallToolRequestParams::new("count_to").with_arguments(args(json!({"n": 1_000_000}))),
        )
        .await
        .expect("a tool-level error, not a protocol error");
    assert_eq!(too_big.is_error, Some(true));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn textops_counts_words_and_characters() {
    let client =
        ().serve(TokioChildProcess::new(command("textops")).expect("spawn"))
            .await
            .expect("initialize");
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["char_count", "reverse", "uppercase", "word_count"]
    );

    let call = |name: &'static str, text: &str| {
        CallToolRequestParams::new(name).with_arguments(args(json!({"text": text})))
    };
    let r = client
        .call_tool(call("word_count", "the quick  brown\nfox"))
        .await
        .expect("call");
    assert_eq!(r.structured_content, Some(json!({"words": 4})));
    assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("4"));
    let r = client
        .call_tool(call("char_count", "Grüß"))
        .await
        .expect("call");
    assert_eq!(r.structured_content, Some(json!({"characters": 4})));
    let r = client
        .call_tool(call("reverse", "abc"))
        .await
        .expect("call");
    assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("cba"));
    client.cancel().await.expect("close");
}

#[test]
fn an_unknown_example_is_refused() {
    let out = std::process::Command::new(BIN)
        .args(["example-server", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown example server 'nope' (there are: hello, textops, convstore)")
    );
}

#[tokio::test]
async fn convstore_keeps_threads_in_files_and_refuses_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = command("convstore");
    c.arg(dir.path());
    let client = ().serve(TokioChildProcess::new(c).expect("spawn")).await.expect("initialize");
    let call = |tool: &'static str, a: Value| {
        let client = &client;
        async move {
            let r = client
                .call_tool(CallToolRequestParams::new(tool).with_arguments(args(a)))
                .await
                .expect("call");
            let text = r.content[0]
                .as_text()
                .map(|t| t.text.clone())
                .unwrap_or_default();
            (r.is_error == Some(true), text)
        }
    };
    let (_, id) = call("create_thread", json!({})).await;
    let id: String = serde_json::from_str(&id).expect("a JSON string id");
    assert_eq!(call("get_thread", json!({"thread_id": id})).await.1, "[]");
    let m = json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]);
    let (_, ok) = call("append_turn", json!({"thread_id": id, "messages": m})).await;
    assert_eq!(
        serde_json::from_str::<Value>(&ok).expect("json"),
        json!({"ok": true, "count": 2})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&call("get_thread", json!({"thread_id": id})).await.1)
            .expect("json"),
        m
    );
    let file = dir.path().join(format!("{id}.json"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).expect("file").permissions().mode() & 0o777,
        0o600
    );
    // An id that could name another file is refused.
    let (refused, why) = call("get_thread", json!({"thread_id": "../../etc/passwd"})).await;
    assert!(refused && why.contains("invalid thread id"), "{why}");
    assert_eq!(
        call("delete_thread", json!({"thread_id": id})).await.1,
        r#"{"ok":true}"#
    );
    assert!(!file.exists());
    // Deleting again is fine.
    assert_eq!(
        call("delete_thread", json!({"thread_id": id})).await.1,
        r#"{"ok":true}"#
    );
    client.cancel().await.expect("close");
}
