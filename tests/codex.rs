//! The real Codex CLI (`@openai/codex`, installed into `.peers` by
//! `scripts/install-peers`) as a `/v1/responses` client, offline: a custom
//! model provider with `wire_api = "responses"` pointed at woollama, and the
//! scripted mock as the chat-completions model behind it. Codex always
//! streams, sends `developer` messages, its own function tools (a
//! `namespace` one among them), hosted `web_search`, `reasoning`, `include`
//! and `prompt_cache_key`; it runs its shell tool in a loop and needs every
//! item in `response.output_item.done` and a final `response.completed`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Setup;
use common::mock::{Mock, Reply, sse, sse_tool_calls};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn codex() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".peers/node_modules/.bin/codex");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// A Codex home (not under /tmp: Codex refuses its helper binaries there)
/// whose model provider is woollama.
fn codex_home(base_url: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("codex home");
    let config = format!(
        r#"model = "mock/m"
model_provider = "woollama"
approval_policy = "never"
sandbox_mode = "read-only"

[model_providers.woollama]
name = "woollama"
base_url = "{base_url}"
wire_api = "responses"
env_key = "WOOLLAMA_KEY"
request_max_retries = 0
stream_max_retries = 0
"#
    );
    std::fs::write(home.path().join("config.toml"), config).expect("config");
    home
}

async fn run(home: &Path, workspace: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(codex());
    c.args(args)
        .current_dir(workspace)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CODEX_HOME", home)
        .env("WOOLLAMA_KEY", "unused");
    tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("join")
        .expect("run codex")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_runs_its_shell_tool_through_woollama() {
    let mock = Mock::start().await;
    // Turn 1: the model asks for Codex's shell tool; turn 2: it answers.
    mock.push(sse_tool_calls(
        "Let me look.",
        &[("call_cat", "exec_command", json!({"cmd": "cat secret.txt"}))],
    ));
    mock.push(sse(&["The secret is ", "marmalade."]));
    // The resumed session's turn, then an upstream failure.
    mock.push(sse(&["Still marmalade."]));
    mock.push(Reply::Json(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": {"message": "the model is overloaded", "type": "server_error"}}),
    ));
    let app = Setup::new(&mock).start().await;
    let home = codex_home(&app.url("/v1"));
    let workspace = tempfile::tempdir().expect("workspace");
    std::fs::write(workspace.path().join("secret.txt"), "marmalade\n").expect("write");

    let out = run(
        home.path(),
        workspace.path(),
        &["exec", "--skip-git-repo-check", "What is in secret.txt?"],
    )
    .await;
    assert!(out.status.success(), "codex failed:\n{}", text(&out));
    assert!(
        text(&out).contains("The secret is marmalade."),
        "{}",
        text(&out)
    );

    let sent = mock.requests();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let first = &sent[0].body;
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    assert!(tools.contains(&"exec_command"), "{tools:?}");
    assert!(
        tools.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')),
        "a tool name a chat backend refuses: {tools:?}"
    );
    assert!(
        first["messages"]
            .as_array()
            .is_some_and(|m| m.iter().all(|m| m["role"] != "developer")),
        "developer messages must become system: {first}"
    );
    // Codex ran the tool itself and sent its output back as a tool message.
    let messages = sent[1].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let call = messages
        .iter()
        .find(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .expect("the assistant's tool call");
    assert_eq!(call["tool_calls"][0]["id"], "call_cat");
    let result = messages
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("the tool result");
    assert_eq!(result["tool_call_id"], "call_cat");
    assert!(
        result["content"]
            .as_str()
            .is_some_and(|c| c.contains("marmalade")),
        "{result}"
    );

    // A resumed session carries the earlier turns.
    let out = run(
        home.path(),
        workspace.path(),
        &[
            "exec",
            "--skip-git-repo-check",
            "resume",
            "--last",
            "And now?",
        ],
    )
    .await;
    assert!(out.status.success(), "resume failed:\n{}", text(&out));
    assert!(text(&out).contains("Still marmalade."), "{}", text(&out));
    let resumed = &mock.requests()[2].body["messages"];
    assert!(
        resumed
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool")),
        "the resumed turn lost the earlier ones: {resumed}"
    );

    // The upstream's error reaches the user.
    let out = run(
        home.path(),
        workspace.path(),
        &["exec", "--skip-git-repo-check", "Once more."],
    )
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the model is overloaded"),
        "{}",
        text(&out)
    );
}
