//! The real `claude` CLI (`@anthropic-ai/claude-code`, installed into
//! `.peers` by `scripts/install-peers`) driven by woollama end to end,
//! offline: `WOOLLAMA_CLAUDE_BIN` is a wrapper that points the CLI at a fake
//! Anthropic Messages API (`tests/python/fake_anthropic.py`, which records
//! every request) with a throwaway key. What the fake receives proves what
//! reached the model: no built-in tools, exactly the granted MCP tool, no
//! `CLAUDE.md` or git status from the directories above.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::mock::Mock;
use common::{Setup, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

fn claude() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/node_modules/.bin/claude");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// The fake Anthropic API, and a wrapper that runs the real CLI against it.
struct Api {
    child: Child,
    _dir: TempDir,
    record: PathBuf,
    wrapper: PathBuf,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Api {
    /// `home` is the HOME the CLI runs with (its sessions live there).
    fn start(home: &Path) -> Api {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("requests.jsonl");
        let port_file = dir.path().join("port");
        let child = Command::new(common::python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/fake_anthropic.py"))
            .arg(&record)
            .arg(&port_file)
            .spawn()
            .expect("fake anthropic");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the fake API did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let wrapper = dir.path().join("claude");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexport ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_API_KEY=sk-ant-fake \
                 HOME='{}' DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\nexec '{}' \"$@\"\n",
                home.display(),
                claude().display()
            ),
        )
        .expect("wrapper");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Api {
            child,
            _dir: dir,
            record,
            wrapper,
        }
    }

    /// The `/v1/messages` requests the CLI sent, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("record"))
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/v1/messages") && !p.contains("count_tokens"))
            })
            .map(|r| r["body"].clone())
            .collect()
    }
}

fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

const RECIPES: &str = r#"
[recipes.cc-assistant]
inferencer = "claude-code/haiku"
system = "You are a concise, helpful assistant."
tools = []

[recipes.cc-counter]
inferencer = "claude-code/haiku"
system = "When asked to count, use the count_to tool and report its result."
tools = ["hello.count_to"]
"#;

/// woollama with the bundled `hello` server, running the real CLI through
/// `api`'s wrapper; HOME is a git repository with a `CLAUDE.md`, as a home
/// kept in git is.
async fn app(mock: &Mock) -> (TestApp, Api) {
    let setup = Setup::new(mock);
    let home = setup.dir.path().to_path_buf();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(&home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "git {args:?}");
    };
    std::fs::write(home.join("CLAUDE.md"), "MARKER-FROM-CLAUDE-MD\n").expect("write");
    std::fs::write(home.join("SECRET-FILE-NAME.txt"), "x").expect("write");
    git(&["init", "-q", "."]);
    git(&["add", "CLAUDE.md"]);
    git(&[
        "-c",
        "user.email=t@example.com",
        "-c",
        "user.name=t",
        "commit",
        "-qm",
        "home",
    ]);
    let api = Api::start(&home);
    let bin = env!("CARGO_BIN_EXE_woollama");
    let mcp = format!(
        r#"{{"mcpServers": {{"hello": {{"command": "{bin}", "args": ["example-server", "hello"]}}}}}}"#
    );
    let app = setup
        .env("WOOLLAMA_CLAUDE_BIN", &api.wrapper.to_string_lossy())
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", "sk-must-not-leak")
        .mcp(&mcp)
        .recipes(RECIPES)
        .start()
        .await;
    (app, api)
}

async fn chat(app: &TestApp, model: &str, content: &str) -> Value {
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": content}]}),
        )
        .await;
    let status = r.status();
    let body: Value = r.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_less_recipe_answers_through_the_real_cli_with_nothing_else() {
    let mock = Mock::start().await;
    let (app, api) = app(&mock).await;
    let body = chat(&app, "woollama/cc-assistant", "- buy milk").await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "fake says: - buy milk"
    );
    let requests = api.requests();
    let last = requests.last().expect("the CLI called the API");
    // No built-in tool, no MCP tool.
    assert_eq!(tool_names(last), Vec::<String>::new(), "{last}");
    let sent = last.to_string();
    assert!(sent.contains("You are a concise, helpful assistant."));
    // Nothing from the git repository the home directory is.
    assert!(
        !sent.contains("MARKER-FROM-CLAUDE-MD"),
        "CLAUDE.md reached the model"
    );
    assert!(
        !sent.contains("SECRET-FILE-NAME"),
        "git status reached the model"
    );
    assert!(!sent.contains("sk-must-not-leak"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipe_with_tools_delegates_and_claude_sees_only_the_granted_tool() {
    let mock = Mock::start().await;
    let (app, api) = app(&mock).await;
    let body = chat(&app, "woollama/cc-counter", "count to 3").await;
    let answer = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    // The fake model called count_to with n=3 and echoed its result.
    assert!(answer.starts_with("fake says: "), "{answer}");
    assert!(answer.contains('3'), "{answer}");
    let requests = api.requests();
    assert_eq!(requests.len(), 2, "a tool turn and an answer");
    for r in &requests {
        // hello has two tools; the recipe grants one, and woollama's own
        // `chat` tool is not offered either.
        assert_eq!(
            tool_names(r),
            ["mcp__woollama__mcp__hello__count_to"],
            "{r}"
        );
    }
    let result = requests[1].to_string();
    assert!(result.contains("tool_result"), "{result}");
    // The grant ended with the call.
    assert_eq!(app.tools.grants().live(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_code_conversation_resumes_across_turns() {
    let mock = Mock::start().await;
    let (app, api) = app(&mock).await;
    let first: Value = app
        .post(
            "/v1/responses",
            json!({"model": "claude-code/sonnet", "input": "first question", "store": true}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        first["output"][0]["content"][0]["text"], "fake says: first question",
        "{first}"
    );
    let second: Value = app
        .post(
            "/v1/responses",
            json!({"model": "claude-code/sonnet", "input": "second question",
                   "previous_response_id": first["id"]}),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "fake says: second question"
    );
    // The second request carried the first turn: Claude resumed its session.
    let requests = api.requests();
    let history = requests.last().expect("request").to_string();
    assert!(history.contains("first question"), "{history}");
    assert!(history.contains("fake says: first question"), "{history}");

    let conversation = first["conversation"]["id"].as_str().expect("id");
    let items: Value = app
        .get(&format!("/v1/conversations/{conversation}/items"))
        .await
        .json()
        .await
        .expect("json");
    let texts: Vec<&str> = items["data"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["content"][0]["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "first question",
            "fake says: first question",
            "second question",
            "fake says: second question"
        ]
    );
}

/// `woollama mcp` on stdio has no listener of its own: for a delegating
/// recipe it serves `/mcp` to grants on loopback, and the `chat` tool runs
/// `cc-counter` through the real CLI, reporting Claude's tool call as
/// progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_tool_of_woollama_mcp_delegates_too() {
    use rmcp::ServiceExt as _;
    use rmcp::model::{
        CallToolRequestParams, NumberOrString, ProgressNotificationParam, ProgressToken,
        RequestMetaObject,
    };
    use rmcp::transport::TokioChildProcess;

    #[derive(Clone)]
    struct Heard(tokio::sync::mpsc::UnboundedSender<ProgressNotificationParam>);
    impl rmcp::ClientHandler for Heard {
        async fn on_progress(
            &self,
            p: ProgressNotificationParam,
            _: rmcp::service::NotificationContext<rmcp::RoleClient>,
        ) {
            let _ = self.0.send(p);
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let api = Api::start(dir.path());
    let mut cmd = common::woollama_mcp(dir.path(), RECIPES);
    cmd.env("WOOLLAMA_CLAUDE_BIN", &api.wrapper);
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let client = Heard(tx)
        .serve(TokioChildProcess::new(cmd).expect("spawn"))
        .await
        .expect("initialize over stdio");
    let mut meta = RequestMetaObject::default();
    meta.set_progress_token(ProgressToken(NumberOrString::String("cc-1".into())));
    let mut call = CallToolRequestParams::new("chat").with_arguments(
        json!({"recipe": "cc-counter", "messages": [{"role": "user", "content": "count to 3"}]})
            .as_object()
            .cloned()
            .expect("object"),
    );
    call.meta = Some(meta);
    let r = client.call_tool(call).await.expect("chat");
    let text = r.content[0]
        .as_text()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    assert_ne!(r.is_error, Some(true), "{text}");
    assert!(
        text.starts_with("fake says: ") && text.contains('3'),
        "{text}"
    );
    let mut messages = Vec::new();
    while let Ok(p) = heard.try_recv() {
        messages.push(p.message.unwrap_or_default());
    }
    assert!(
        messages.iter().any(|m| m.contains("mcp__hello__count_to")),
        "no progress named the tool: {messages:?}"
    );
    let requests = api.requests();
    assert_eq!(
        tool_names(requests.last().expect("request")),
        ["mcp__woollama__mcp__hello__count_to"]
    );
    let _ = client.cancel().await;
}
