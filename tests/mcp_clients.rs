//! woollama's MCP surface driven by two real, independently written clients:
//! the official Python `mcp` SDK (2.3.0, `tests/python/mcp_sdk_client.py`)
//! in `mode="legacy"` (initialize) and `mode="auto"` (2026-07-28 through
//! `server/discover`), and the MCP Inspector CLI (2.12.0) — each over
//! Streamable HTTP (`/mcp` of the app started in-process) and over stdio
//! (the real binary's `woollama mcp`). rmcp's own client is what
//! `tests/mcp_surface.rs` uses; these catch what a different implementation
//! sends or rejects: protocol negotiation, result validation, progress
//! routing, list-change discovery.
//!
//! The downstream is the bundled `hello` server, the model the scripted mock.
//! A client that lists right after `woollama mcp` started gets `hello`'s
//! tools: lists wait (bounded) for each downstream's first connection
//! attempt, which is what one-shot clients like the Inspector CLI need.
//!
//! Needs `.peers/venv` with `mcp`, Node 22 in `.peers/bin` and the Inspector
//! in `.peers/inspector`: `scripts/install-peers` sets them up.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::mock::{Mock, Reply, completion};
use common::{Setup, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use woollama::tools::Health;

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
/// Bounds a step that should take well under a second, so a broken build
/// fails instead of hanging; a passing run never waits on it.
const LIMIT: Duration = Duration::from_secs(30);
/// Bounds a whole client run (the Python script makes four sessions).
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// What the mock answers to `chat`; the Python script expects exactly this.
const ANSWER: &str = "answer from the mock";

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

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    manifest().join("tests/python/mcp_sdk_client.py")
}

/// `$WOOLLAMA_TEST_PYTHON`, else the project's `.peers/venv`; it must have
/// the pinned `mcp` SDK.
fn python() -> PathBuf {
    let py = std::env::var_os("WOOLLAMA_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join(".peers/venv/bin/python"));
    let probe = std::process::Command::new(&py)
        .args([
            "-c",
            "import mcp, importlib.metadata as m; assert m.version('mcp') == '2.3.0', m.version('mcp')",
        ])
        .output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python mcp SDK 2.3.0 is not importable with {}: run scripts/install-peers (or set WOOLLAMA_TEST_PYTHON); {probe:?}",
        py.display()
    );
    py
}

/// A command for the Inspector CLI (`npx --prefix .peers/inspector
/// mcp-inspector --cli …`) with Node 22 first in `PATH` and its catalog
/// under `home`, printing one JSON object.
fn inspector(home: &Path) -> tokio::process::Command {
    let peers = manifest().join(".peers");
    let package = peers.join("inspector/node_modules/@modelcontextprotocol/inspector/package.json");
    let version = std::fs::read_to_string(&package)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    assert_eq!(
        version.as_deref(),
        Some("2.12.0"),
        "the MCP Inspector 2.12.0 is not installed in {}: run scripts/install-peers",
        package.display()
    );
    assert!(
        peers.join("bin/node").exists(),
        "Node 22 is not in .peers/bin: run scripts/install-peers"
    );
    let path = format!(
        "{}:{}",
        peers.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new("npx");
    cmd.arg("--prefix")
        .arg(peers.join("inspector"))
        .args(["mcp-inspector", "--cli"])
        .env("PATH", path)
        .env("HOME", home)
        .env("npm_config_update_notifier", "false");
    cmd
}

/// Runs a client to completion, bounded; its output.
async fn bounded(mut cmd: tokio::process::Command, what: &str) -> Output {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {RUN_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}): run scripts/install-peers"))
}

fn show(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Inspector's `--format json` result object.
fn inspector_result(out: &Output) -> Value {
    assert!(out.status.success(), "the Inspector failed:\n{}", show(out));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("the Inspector printed no JSON ({e}):\n{}", show(out)));
    v["result"].clone()
}

fn tool_names(result: &Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The app in-process with `hello` as a downstream, once it is connected.
async fn app(mock: &Mock) -> TestApp {
    let app = Setup::new(mock)
        .mcp(
            &json!({"mcpServers": {"hello": {"command": BIN, "args": ["example-server", "hello"]}}})
                .to_string(),
        )
        .recipes(RECIPES)
        .start()
        .await;
    let ready = tokio::time::timeout(
        LIMIT,
        app.tools.wait_for(|s| {
            s.server("hello")
                .is_some_and(|x| x.health == Health::Connected)
        }),
    )
    .await;
    assert!(
        matches!(ready, Ok(Some(_))),
        "hello did not connect: {:#?}",
        app.tools.snapshot()
    );
    app
}

/// A config directory for `woollama mcp`: the mock as inferencer `mock`,
/// the recipes, `hello` as the downstream; plus a home and a runtime dir.
struct StdioConfig {
    dir: TempDir,
}

impl StdioConfig {
    fn new(mock: &Mock) -> StdioConfig {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).expect("mkdir config");
        std::fs::create_dir_all(dir.path().join("home")).expect("mkdir home");
        std::fs::write(
            config.join("inferencers.toml"),
            format!("[inferencers.mock]\nbase_url = \"{}\"\n", mock.base_url()),
        )
        .expect("write inferencers.toml");
        std::fs::write(config.join("recipes.toml"), RECIPES).expect("write recipes.toml");
        std::fs::write(
            config.join("mcp.json"),
            json!({"mcpServers": {"hello": {"command": BIN, "args": ["example-server", "hello"]}}})
                .to_string(),
        )
        .expect("write mcp.json");
        StdioConfig { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn run(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `-e KEY=VALUE` pairs for the Inspector's stdio server.
    fn inspector_env(&self, cmd: &mut tokio::process::Command) {
        for pair in [
            format!("HOME={}", self.home().display()),
            format!("WOOLLAMA_CONFIG_DIR={}", self.config().display()),
            format!("XDG_RUNTIME_DIR={}", self.run().display()),
            "RUST_LOG=info".to_string(),
        ] {
            cmd.arg("-e").arg(pair);
        }
    }
}

/// Each `chat` the script makes (one per mode) reached the model with the recipe.
fn assert_chats(mock: &Mock) {
    let chats: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .collect();
    assert_eq!(chats.len(), 2, "one chat per mode: {chats:#?}");
    for c in &chats {
        assert_eq!(c.body["model"], "m");
        assert_eq!(
            c.body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
    }
}

fn assert_script_passed(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Option<Value> = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    let failed = summary.as_ref().map(|s| s["failed"].clone());
    assert!(
        out.status.success() && failed == Some(json!([])),
        "the mcp SDK script failed; failed checks: {}\n{}",
        failed.map_or_else(|| "(no summary)".to_string(), |f| format!("{f:#}")),
        show(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_over_streamable_http() {
    let py = python();
    let mock = Mock::start().await;
    for _ in 0..2 {
        mock.push(Reply::Json(StatusCode::OK, completion(ANSWER)));
    }
    let app = app(&mock).await;
    let mut cmd = tokio::process::Command::new(py);
    cmd.arg(script()).arg("http").arg(app.url("/mcp"));
    let out = bounded(cmd, "the mcp SDK script").await;
    assert_script_passed(&out);
    assert_chats(&mock);
    app.tools.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_over_stdio() {
    let py = python();
    let mock = Mock::start().await;
    for _ in 0..2 {
        mock.push(Reply::Json(StatusCode::OK, completion(ANSWER)));
    }
    let cfg = StdioConfig::new(&mock);
    let mut cmd = tokio::process::Command::new(py);
    cmd.arg(script())
        .arg("stdio")
        .arg(BIN)
        .arg(cfg.config())
        .arg(cfg.home())
        .arg(cfg.run());
    let out = bounded(cmd, "the mcp SDK script").await;
    assert_script_passed(&out);
    assert_chats(&mock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_cli_over_streamable_http() {
    let mock = Mock::start().await;
    let app = app(&mock).await;
    let home = tempfile::tempdir().expect("tempdir");

    let mut list = inspector(home.path());
    list.arg(app.url("/mcp"))
        .args(["--method", "tools/list", "--format", "json", "-q"]);
    let listed = inspector_result(&bounded(list, "the Inspector").await);
    assert_eq!(
        tool_names(&listed),
        ["chat", "mcp__hello__count_to", "mcp__hello__hello"],
        "{listed:#}"
    );

    let mut call = inspector(home.path());
    call.arg(app.url("/mcp")).args([
        "--method",
        "tools/call",
        "--tool-name",
        "mcp__hello__count_to",
        "--tool-arg",
        "n=2",
        "--format",
        "json",
        "-q",
    ]);
    let called = inspector_result(&bounded(call, "the Inspector").await);
    assert_eq!(
        called["structuredContent"],
        json!({"count": 2}),
        "{called:#}"
    );
    assert_eq!(called["content"][0]["text"], "counted to 2", "{called:#}");
    assert_eq!(called["isError"], false, "{called:#}");
    app.tools.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_cli_over_stdio() {
    let mock = Mock::start().await;
    let cfg = StdioConfig::new(&mock);
    let home = tempfile::tempdir().expect("tempdir");

    // Straight to `woollama mcp`, just started: `hello` is listed already.
    let mut list = inspector(home.path());
    list.args([BIN, "mcp"]);
    cfg.inspector_env(&mut list);
    list.args(["--method", "tools/list", "--format", "json", "-q"]);
    let listed = inspector_result(&bounded(list, "the Inspector").await);
    assert_eq!(
        tool_names(&listed),
        ["chat", "mcp__hello__count_to", "mcp__hello__hello"],
        "{listed:#}"
    );

    let mut call = inspector(home.path());
    call.args([BIN, "mcp"]);
    cfg.inspector_env(&mut call);
    call.args([
        "--method",
        "tools/call",
        "--tool-name",
        "mcp__hello__count_to",
        "--tool-arg",
        "n=2",
        "--format",
        "json",
        "-q",
    ]);
    let called = inspector_result(&bounded(call, "the Inspector").await);
    assert_eq!(
        called["structuredContent"],
        json!({"count": 2}),
        "{called:#}"
    );
    assert_eq!(called["content"][0]["text"], "counted to 2", "{called:#}");
    assert_eq!(called["isError"], false, "{called:#}");
}
