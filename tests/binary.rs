//! Black-box tests of the built `woollama` binary: the CLI, config refusal,
//! check-config, binding, the socket, the token, a second daemon, and
//! graceful shutdown. Each daemon gets its own temp dirs and a cleared
//! environment; readiness is the banner line, never a sleep.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::daemon::{BIN, Daemon, children_of, command, dirs, output};
use common::mock::{Gate, Mock, Reply, sse_chunks};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

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
        out.contains(
            "  one: connected (stdio, unprefixed, MCP 2026-07-28): 2 tool(s), 0 prompt(s)"
        ),
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

/// A runtime directory of 90 bytes (a temp dir, a deep home) still gets its
/// socket: the staging path it is bound at is no longer than the final one.
#[tokio::test]
async fn a_long_runtime_dir_still_gets_its_socket() {
    let d = dirs();
    let base = d.home.parent().expect("tmp").to_path_buf();
    let pad = 90 - base.as_os_str().len() - 1;
    let run = base.join("r".repeat(pad));
    assert_eq!(run.as_os_str().len(), 90);
    let mut c = command(&d, &[]);
    c.env("XDG_RUNTIME_DIR", &run);
    let daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let sock = run.join("woollama.sock");
    let raw = over_socket(
        &sock,
        "GET /v1/models HTTP/1.1\r\nHost: woollama\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(!daemon.log().contains("no Unix socket"), "{}", daemon.log());
}

/// The runtime directory woollama creates is 0700 whatever the umask.
#[test]
fn the_runtime_dir_is_created_private_under_any_umask() {
    let d = dirs();
    let mut c = std::process::Command::new("sh");
    c.args(["-c", "umask 000 && exec \"$0\"", BIN])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &d.home)
        .env("XDG_RUNTIME_DIR", &d.run)
        .env("WOOLLAMA_CONFIG_DIR", &d.config);
    let mut daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let mode = std::fs::metadata(&d.run)
        .expect("run dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{}", daemon.log());
    daemon.signal("-TERM");
    assert!(daemon.wait_exit().success());
}

/// A start on the bundled defaults, as a person reads it: the banner and
/// one line per downstream — no library internals, no child line carrying
/// a second timestamp and level.
#[test]
fn the_default_log_is_the_banner_and_a_line_per_downstream() {
    let d = dirs();
    let mut c = command(&d, &[]);
    c.env_remove("RUST_LOG");
    let mut daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    daemon.wait_logged(|log| {
        log.iter()
            .filter(|l| l.contains("downstream connected"))
            .count()
            == 2
    });
    daemon.signal("-TERM");
    assert!(daemon.wait_exit().success());
    let log = daemon.log();
    let lines: Vec<&str> = log.lines().collect();
    let banner = lines.iter().take_while(|l| !l.starts_with("20")).count();
    assert!(banner >= 4, "{log}");
    let events: Vec<&&str> = lines[banner..]
        .iter()
        .filter(|l| !l.contains("shutting down") && !l.contains("stopped"))
        .collect();
    assert_eq!(events.len(), 2, "expected one line per downstream:\n{log}");
    for l in &events {
        assert!(l.contains("downstream connected"), "{l}");
    }
    assert!(!log.contains("rmcp"), "{log}");
    for l in &lines {
        let stamps = l
            .match_indices("Z ")
            .filter(|(i, _)| l[..*i].ends_with(|c: char| c.is_ascii_digit()))
            .count();
        assert!(stamps <= 1, "a line with two timestamps: {l}");
    }
}

/// An older server that complains on stderr about the `server/discover`
/// probe (as Python SDK 1.x servers do, at length) does not fill the default
/// log: what it wrote while refusing the probe is logged at debug level.
/// Its later stderr is logged as usual.
#[test]
fn a_server_complaining_about_the_probe_stays_out_of_the_default_log() {
    let d = dirs();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/unruly_mcp.py");
    let mcp = json!({"mcpServers": {"grumpy": {
        "command": common::python(),
        "args": [script, d.home.join("pids"), "--grumble"],
    }}});
    std::fs::write(d.config.join("mcp.json"), mcp.to_string()).expect("write");
    // The daemon's whole log, once `grumpy` connected, at `rust_log`.
    let log_at = |rust_log: Option<&str>| {
        let mut c = command(&d, &[]);
        match rust_log {
            Some(level) => c.env("RUST_LOG", level),
            None => c.env_remove("RUST_LOG"),
        };
        let mut daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
        daemon.wait_logged(|log| log.iter().any(|l| l.contains("downstream connected")));
        daemon.signal("-TERM");
        assert!(daemon.wait_exit().success());
        daemon.log()
    };
    let log = log_at(None);
    assert!(
        log.contains("server=grumpy") && log.contains("protocol=2025-11-25"),
        "{log}"
    );
    assert!(!log.contains("unknown method report"), "{log}");

    // At debug level the report is there, under the server's name.
    let log = log_at(Some("woollama=debug"));
    assert!(
        log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("unknown method report 0")),
        "{log}"
    );
}

/// The conversation table survives a `kill -9` in the middle of writing:
/// every create that was acknowledged is there after a restart, and the
/// file is whole (atomic rename of a flushed file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_conversations_survive_a_kill_mid_write() {
    let d = dirs();
    let state = d.home.join("state");
    let mut c = command(&d, &[]);
    c.env("WOOLLAMA_STATE_DIR", &state);
    let daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let url = format!("{}/v1/conversations", daemon.base);
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (url, acked) = (url.clone(), Arc::clone(&acknowledged));
        writers.push(tokio::spawn(async move {
            let client = client();
            for _ in 0..200 {
                let Ok(r) = client.post(&url).body("{}").send().await else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    return;
                };
                acked
                    .lock()
                    .expect("lock")
                    .push(v["id"].as_str().unwrap_or("").to_string());
            }
        }));
    }
    // Kill it while the writers are busy.
    while acknowledged.lock().expect("lock").len() < 40 {
        tokio::task::yield_now().await;
        assert!(
            !writers.iter().all(|w| w.is_finished()),
            "the writers stopped early"
        );
    }
    daemon.signal("-KILL");
    for w in writers {
        let _ = w.await;
    }
    let acked = acknowledged.lock().expect("lock").clone();

    let mut c = command(&d, &[]);
    c.env("WOOLLAMA_STATE_DIR", &state);
    let again = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let mut listed = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut u = format!("{}/v1/conversations?limit=100", again.base);
        if let Some(a) = &after {
            u.push_str(&format!("&after={a}"));
        }
        let page = client()
            .get(&u)
            .send()
            .await
            .expect("list")
            .json_value()
            .await;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        for c in &data {
            listed.insert(c["id"].as_str().unwrap_or("").to_string());
        }
        if page["has_more"] != true {
            break;
        }
        after = data
            .last()
            .and_then(|c| c["id"].as_str())
            .map(str::to_string);
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !listed.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged conversations lost: {lost:?}",
        lost.len()
    );
}

/// Plain-http upstreams go through hyper's client directly — unless a proxy
/// variable is set, when every call goes through reqwest, which honours it:
/// here the "proxy" is the mock, and the upstream's host does not exist.
#[tokio::test]
async fn a_proxy_variable_is_honoured_for_plain_http_upstreams() {
    let proxy = Mock::start().await;
    let d = dirs();
    std::fs::write(
        d.config.join("inferencers.toml"),
        "[inferencers.far]\nbase_url = \"http://upstream.invalid/v1\"\n\
         [inferencers.ollama]\ndiscover = false\n",
    )
    .expect("write");
    let mut c = command(&d, &[]);
    c.env("HTTP_PROXY", proxy.base_url().trim_end_matches("/v1"));
    let daemon = Daemon::start(c).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
    let resp = client()
        .post(format!("{}/v1/chat/completions", daemon.base))
        .json(&json!({"model": "far/m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200, "{}", daemon.log());
    let seen = proxy.only_request();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.headers.get("host").and_then(|h| h.to_str().ok()),
        Some("upstream.invalid")
    );
    assert_eq!(seen.body["model"], json!("m"));
}
