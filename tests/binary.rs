//! Black-box tests of the built `woollama` binary: the CLI, config refusal,
//! check-config, binding, the socket, the token, a second daemon, and
//! graceful shutdown. Each daemon gets its own temp dirs and a cleared
//! environment; readiness is the banner line, never a sleep.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mock::{Gate, Mock, Reply, sse_chunks};
use futures_util::StreamExt;
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
/// A generous bound so a broken build fails instead of hanging; never a
/// condition a passing run waits on.
const LIMIT: Duration = Duration::from_secs(30);

struct Dirs {
    _tmp: TempDir,
    home: PathBuf,
    run: PathBuf,
    config: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::create_dir_all(&config).expect("mkdir");
    Dirs {
        run: tmp.path().join("run"),
        home,
        config,
        _tmp: tmp,
    }
}

fn command(d: &Dirs, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &d.home)
        .env("XDG_RUNTIME_DIR", &d.run)
        .env("WOOLLAMA_CONFIG_DIR", &d.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    c
}

fn output(mut c: Command) -> (ExitStatus, String, String) {
    let out = c.output().expect("run woollama");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running daemon, with its stderr collected line by line.
struct Daemon {
    child: Option<Child>,
    pid: u32,
    base: String,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(mut c: Command) -> Result<Daemon, (ExitStatus, String)> {
        let mut child = c
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let pid = child.id();
        let mut d = Daemon {
            child: Some(child),
            pid,
            base: String::new(),
            lines: rx,
            log,
        };
        match d.wait_line(|l| l.trim_start().starts_with("OpenAI base_url:")) {
            Some(line) => {
                let url = line.split_whitespace().last().expect("url");
                d.base = url.trim_end_matches("/v1").to_string();
                Ok(d)
            }
            None => {
                let status = d.wait_exit();
                Err((status, d.log()))
            }
        }
    }

    /// Waits for a stderr line matching `pred`; `None` if stderr closed.
    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        loop {
            match self.lines.recv_timeout(LIMIT) {
                Ok(l) if pred(&l) => return Some(l),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no such line within {LIMIT:?}; log:\n{}", self.log())
                }
            }
        }
    }

    /// Waits until the whole log so far satisfies `pred`.
    fn wait_logged(&mut self, pred: impl Fn(&[String]) -> bool) {
        loop {
            if pred(&self.log.lock().expect("lock")) {
                return;
            }
            match self.lines.recv_timeout(LIMIT) {
                Ok(_) => {}
                Err(_) => panic!("condition not met; log:\n{}", self.log()),
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("woollama did not exit within {LIMIT:?}"))
            .expect("wait")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 request over the Unix socket; returns the raw response.
async fn over_socket(path: &Path, request: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect socket");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

/// The pids of a process's direct children (`/proc/<pid>/task/*/children`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).expect("json")
    }
}

fn client() -> reqwest::Client {
    woollama::inference::build_client().expect("client")
}

#[test]
fn version_and_help_exit_before_touching_anything() {
    let d = dirs();
    // A config that would refuse to start if it were read.
    std::fs::write(d.config.join("mcp.json"), "{broken").expect("write");
    let (st, out, _) = output(command(&d, &["--version"]));
    assert!(st.success());
    assert_eq!(out, format!("woollama {}\n", env!("CARGO_PKG_VERSION")));
    let (st, out, _) = output(command(&d, &["--help"]));
    assert!(st.success());
    assert!(
        out.contains("check-config") && out.contains("serve"),
        "{out}"
    );
    let (st, _, _) = output(command(&d, &["-V"]));
    assert!(st.success());
    assert!(!d.run.exists(), "the runtime dir was touched");
}

#[test]
fn check_config_reports_and_exits_by_result() {
    let d = dirs();
    let (st, out, err) = output(command(&d, &["check-config"]));
    assert!(st.success(), "{out}{err}");
    assert!(
        out.contains("mcp.json: 2 server(s) usable (hello, textops), 0 skipped"),
        "{out}"
    );
    assert!(out.contains("recipes.toml: 4 recipe(s)"));
    assert!(out.contains("inferencers.toml: OK"));
    assert!(out.trim_end().ends_with("config OK"));

    std::fs::write(
        d.config.join("mcp.json"),
        r#"{"mcpServers": {"git": {"command": "git-mcp", "env": {"TOKEN": "${GIT_TOKEN}"}}}}"#,
    )
    .expect("write");
    std::fs::write(
        d.config.join("recipes.toml"),
        "[recipes.r]\nsystem = \"x\"\n",
    )
    .expect("write");
    let (st, out, err) = output(command(&d, &["check-config"]));
    assert_eq!(st.code(), Some(1), "{out}{err}");
    let mcp = d.config.join("mcp.json").display().to_string();
    assert!(
        err.contains(&format!("error: {mcp}: mcpServers.git.env.TOKEN: references a variable which is not set: ${{GIT_TOKEN}}")),
        "{err}"
    );
    assert!(err.contains("recipes.r: no `inferencer`"), "{err}");
    assert!(err.trim_end().ends_with("2 problem(s) found"), "{err}");
    assert!(!out.contains("config OK"));
    assert!(!d.run.exists(), "check-config must bind nothing");
}

#[test]
fn check_config_connect_reports_servers_and_collisions() {
    let d = dirs();
    let hello = json!({"command": BIN, "args": ["example-server", "hello"], "prefix": false});
    let mcp = json!({"mcpServers": {
        "one": hello,
        "two": hello,
        "gone": {"command": d.home.join("no-such-server")}
    }});
    std::fs::write(d.config.join("mcp.json"), mcp.to_string()).expect("write");
    let (st, out, err) = output(command(&d, &["check-config", "--connect"]));
    assert_eq!(st.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("  one: connected (stdio, unprefixed): 2 tool(s), 0 prompt(s)"),
        "{out}"
    );
    assert!(out.contains("  gone: unreachable (stdio)"), "{out}");
    assert!(out.contains("name collisions: 2"), "{out}");
    assert!(
        err.contains("warning: mcp.json: name collision: tool 'count_to' of server 'two' collides with server 'one'; exposed as 'mcp__two__count_to'"),
        "{err}"
    );
    assert!(
        err.contains("error: mcp.json: server 'gone' could not be reached: cannot start"),
        "{err}"
    );
    // Without --connect nothing is started.
    let (_, out, _) = output(command(&d, &["check-config"]));
    assert!(!out.contains("--connect"), "{out}");
}

#[test]
fn a_config_that_cannot_mean_anything_refuses_to_start() {
    let d = dirs();
    std::fs::write(d.config.join("recipes.toml"), "[recipes.x\n").expect("write");
    let (st, _, err) = output(command(&d, &[]));
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("recipes.toml: not valid TOML"), "{err}");
    assert!(
        err.contains("refusing to start. Run `woollama check-config` to verify a fix."),
        "{err}"
    );
    assert!(!d.run.join("woollama.sock").exists());

    let d = dirs();
    let mut c = command(&d, &["serve"]);
    c.env("WOOLLAMA_ADDRESS", "127.0.0.1:http");
    let (st, _, err) = output(c);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("WOOLLAMA_ADDRESS"), "{err}");
}

#[test]
fn a_non_loopback_bind_without_a_token_refuses_to_start() {
    let d = dirs();
    let mut c = command(&d, &[]);
    c.env("WOOLLAMA_ADDRESS", "0.0.0.0:0");
    let (st, _, err) = output(c);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("refusing to bind non-loopback address 0.0.0.0:0 without an auth token"),
        "{err}"
    );
}

#[tokio::test]
async fn serves_tcp_and_a_0600_socket_then_drains_on_sigterm() {
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    let chunks = sse_chunks(&["in", "flight"]);
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: chunks.clone(),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::clone(&release),
            dropped: None,
        }),
    });
    let d = dirs();
    std::fs::write(
        d.config.join("inferencers.toml"),
        format!("[inferencers.mock]\nbase_url = \"{}\"\n", mock.base_url()),
    )
    .expect("write");
    let mut daemon =
        Daemon::start(command(&d, &[])).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));

    // The address file holds the real port.
    let addr = std::fs::read_to_string(d.run.join("woollama.addr")).expect("addr file");
    assert_eq!(format!("http://{}", addr.trim()), daemon.base);
    assert!(!addr.trim().ends_with(":0"));
    // The socket is 0600 and serves without a token.
    let sock = d.run.join("woollama.sock");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let raw = over_socket(
        &sock,
        "GET /v1/models HTTP/1.1\r\nHost: woollama\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("woollama/streamer"));

    // The bundled MCP servers are this daemon's children.
    daemon.wait_logged(|log| {
        log.iter()
            .filter(|l| l.contains("downstream connected"))
            .count()
            >= 2
    });
    let v = client()
        .get(format!("{}/v1/tools", daemon.base))
        .send()
        .await
        .expect("tools")
        .json_value()
        .await;
    assert_eq!(v["tools"].as_array().map(Vec::len), Some(6), "{v}");
    assert!(
        v["servers"]
            .as_array()
            .is_some_and(|s| s.iter().all(|x| x["health"] == "connected")),
        "{v}"
    );
    let children = children_of(daemon.pid);
    assert_eq!(
        children.len(),
        2,
        "expected the two bundled MCP servers as children: {children:?}"
    );

    // A stream is in flight when SIGTERM arrives…
    let resp = client()
        .post(format!("{}/v1/chat/completions", daemon.base))
        .body(r#"{"model": "mock/m", "stream": true, "messages": []}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < chunks[0].len() {
        got.extend_from_slice(&body.next().await.expect("chunk").expect("ok"));
    }
    daemon.signal("-TERM");
    daemon
        .wait_line(|l| l.contains("shutting down"))
        .expect("shutdown line");
    // …and still finishes.
    release.notify_one();
    while let Some(c) = body.next().await {
        got.extend_from_slice(&c.expect("ok"));
    }
    assert_eq!(String::from_utf8(got).expect("utf8"), chunks.concat());
    let status = daemon.wait_exit();
    assert!(status.success(), "exit {status}; log:\n{}", daemon.log());
    assert!(!sock.exists(), "socket left behind");
    for c in children {
        assert!(
            !Path::new(&format!("/proc/{c}")).exists(),
            "MCP child {c} outlived the daemon"
        );
    }
    assert!(
        !d.run.join("woollama.addr").exists(),
        "addr file left behind"
    );
}

#[tokio::test]
async fn the_token_guards_tcp_but_not_the_socket() {
    let d = dirs();
    let mut c = command(&d, &[]);
    c.env("WOOLLAMA_TOKEN", "tok-123");
    let daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let http = client();
    let resp = http
        .get(format!("{}/v1/models", daemon.base))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(format!("{}/v1/models", daemon.base))
        .header("authorization", "Bearer tok-123")
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);
    let raw = over_socket(
        &d.run.join("woollama.sock"),
        "GET /v1/models HTTP/1.1\r\nHost: woollama\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        !daemon.log().contains("tok-123"),
        "the token reached the log"
    );
}

#[tokio::test]
async fn a_second_daemon_refuses_and_a_stale_socket_is_replaced() {
    let d = dirs();
    let mut first = Daemon::start(command(&d, &[])).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let Err((status, log)) = Daemon::start(command(&d, &[])) else {
        panic!("a second daemon started on the same socket");
    };
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("another woollama already owns"), "{log}");
    // The first is unharmed.
    let resp = client()
        .get(format!("{}/v1/models", first.base))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);

    // Killed without a chance to clean up, it leaves a stale socket…
    first.signal("-KILL");
    first.wait_exit();
    assert!(d.run.join("woollama.sock").exists());
    // …which the next daemon replaces.
    let third = Daemon::start(command(&d, &[])).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    assert!(
        third.log().contains("replaced a stale socket"),
        "{}",
        third.log()
    );
    let raw = over_socket(
        &d.run.join("woollama.sock"),
        "GET /v1/models HTTP/1.1\r\nHost: woollama\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let d = dirs();
    let mut c = command(&d, &["--log-format", "json"]);
    c.env("WOOLLAMA_ADDRESS", "127.0.0.1:0");
    let mut daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let listening = daemon
        .wait_line(|l| l.contains("\"listening\""))
        .expect("listening");
    let v: serde_json::Value = serde_json::from_str(&listening).expect("json log line");
    assert_eq!(v["level"], "INFO");
    daemon.signal("-INT");
    assert!(daemon.wait_exit().success());
}
