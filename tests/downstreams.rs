//! MCP downstreams with real servers: the bundled examples over stdio
//! through the real binary, and an rmcp fixture over Streamable HTTP.
//! Faults: a server that cannot start, one killed after connecting, one that
//! never answers, one that is down at start and comes up later, a roster
//! change, and shutdown leaving no process behind.

mod common;

use std::path::Path;

use common::fixture::Fixture;
use common::mock::Mock;
use common::{LIMIT, Setup, connected, json, obj, running, until};
use serde_json::{Value, json};
use woollama::tools::Health;

const BIN: &str = env!("CARGO_BIN_EXE_woollama");
/// An `mcp.json` entry that runs the bundled example through `sh`, which
/// writes its pid first (`exec` keeps the pid), so tests can kill it.
fn example_with_pidfile(name: &str, pidfile: &Path) -> Value {
    json!({
        "command": "sh",
        "args": ["-c", format!("echo $$ > '{}'; exec '{BIN}' example-server {name}", pidfile.display())]
    })
}

fn pid_alive(pid: &str) -> bool {
    // A reaped process has no /proc entry; a zombie still would.
    Path::new(&format!("/proc/{}", pid.trim())).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_examples_connect_and_are_listed() {
    let mock = Mock::start().await;
    let mcp = json!({"mcpServers": {
        "hello": {"command": BIN, "args": ["example-server", "hello"]},
        "textops": {"command": BIN, "args": ["example-server", "textops"]},
        "broken": {"command": "/nonexistent/woollama-nope"}
    }});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0")
        .start()
        .await;
    until(&app.tools, "all settled", |s| {
        connected(s, "hello")
            && connected(s, "textops")
            && s.server("broken")
                .is_some_and(|b| b.health.as_str() == "failed")
    })
    .await;

    let (status, v) = json(app.get("/v1/tools").await).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["tools"],
        json!([
            "hello.count_to",
            "hello.hello",
            "textops.char_count",
            "textops.reverse",
            "textops.uppercase",
            "textops.word_count"
        ])
    );
    assert_eq!(
        v["data"][0],
        json!({"name": "mcp__hello__count_to", "server": "hello", "tool": "count_to"})
    );
    let servers = v["servers"].as_array().expect("servers");
    assert_eq!(
        servers.len(),
        3,
        "a server that is down is listed, never omitted"
    );
    assert_eq!(servers[0]["name"], "broken");
    assert_eq!(servers[0]["health"], "failed");
    let reason = servers[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("cannot start `/nonexistent/woollama-nope`")
            && reason.ends_with("(retry disabled)"),
        "{reason}"
    );
    assert_eq!(
        servers[1],
        json!({"name": "hello", "transport": "stdio", "health": "connected", "tools": 2, "protocol": "2026-07-28"})
    );

    let r = app
        .tools
        .call("mcp__hello__count_to", Some(obj(json!({"n": 4}))))
        .await
        .expect("dispatch");
    assert_eq!(r.structured_content, Some(json!({"count": 4})));
    let err = app
        .tools
        .call("mcp__nope__x", None)
        .await
        .expect_err("unknown");
    assert_eq!(err.to_string(), "unknown tool 'mcp__nope__x'");
    app.tools.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_killed_after_connecting_is_noticed_and_heals() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pidfile = dir.path().join("hello.pid");
    let mcp = json!({"mcpServers": {"hello": example_with_pidfile("hello", &pidfile)}});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0.2")
        .start()
        .await;
    until(&app.tools, "connected", |s| connected(s, "hello")).await;
    let first = std::fs::read_to_string(&pidfile).expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-9", first.trim()])
        .status()
        .expect("kill");
    assert!(status.success());

    // Noticed: reported as retrying (never a stale "connected"), in /v1/tools too…
    let (_, tools_v) = json(app.get("/v1/tools").await).await;
    let health = tools_v["servers"][0]["health"]
        .as_str()
        .expect("health")
        .to_string();
    assert!(health == "retrying" || health == "connected", "{tools_v}");
    let s = until(&app.tools, "retrying", |s| {
        s.server("hello")
            .is_some_and(|h| h.health.as_str() == "retrying")
    })
    .await;
    let Health::Retrying {
        attempts,
        last_error,
    } = &s.server("hello").expect("hello").health
    else {
        unreachable!()
    };
    assert_eq!(*attempts, 1);
    assert!(last_error.contains("connection closed"), "{last_error}");
    assert_eq!(s.server("hello").expect("hello").tools, 0);
    // …and healed, by a new process.
    until(&app.tools, "reconnected", |s| connected(s, "hello")).await;
    let second = std::fs::read_to_string(&pidfile).expect("pid");
    assert_ne!(first, second);
    let r = app
        .tools
        .call("mcp__hello__hello", Some(obj(json!({"name": "again"}))))
        .await
        .expect("call");
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("Hello, again!")
    );

    app.tools.shutdown(LIMIT).await;
    assert!(
        !pid_alive(&second),
        "the child was not stopped and reaped at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_downstream_timeouts_errors_and_roster_changes() {
    let fixture = Fixture::default();
    let (addr, stop) = fixture.start().await;
    let mock = Mock::start().await;
    let mcp = json!({"mcpServers": {"fx": {"url": format!("http://{addr}/mcp"), "headers": {"X-Token": "t1"}}}});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_CALL_TIMEOUT_SECS", "0.3")
        .start()
        .await;
    let s = until(&app.tools, "connected", |s| connected(s, "fx")).await;
    assert_eq!(s.server("fx").expect("fx").transport, "http");
    // Schemas come through verbatim.
    let echo = s.find("fx", "echo").expect("echo");
    assert_eq!(
        echo.tool.input_schema.get("additionalProperties"),
        Some(&json!(false))
    );
    assert!(echo.tool.input_schema.contains_key("$defs"));

    let r = app
        .tools
        .call("mcp__fx__echo", Some(obj(json!({"text": "hi"}))))
        .await
        .expect("echo");
    assert_eq!(r.content[0].as_text().map(|t| t.text.as_str()), Some("hi"));
    let r = app
        .tools
        .call("mcp__fx__fail", None)
        .await
        .expect("a tool error is a result");
    assert_eq!(r.is_error, Some(true));

    // A call that never answers times out; the connection is kept.
    let err = app
        .tools
        .call("mcp__fx__hang", None)
        .await
        .expect_err("timeout");
    assert_eq!(err.to_string(), "downstream tool call timed out after 0.3s");
    assert!(connected(&app.tools.snapshot(), "fx"));
    let r = app
        .tools
        .call("mcp__fx__echo", Some(obj(json!({"text": "still"}))))
        .await
        .expect("echo after timeout");
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("still")
    );

    // list_changed refreshes the roster.
    assert!(app.tools.snapshot().find("fx", "added").is_none());
    fixture.add_tool().await;
    until(&app.tools, "roster refreshed", |s| {
        s.find("fx", "added").is_some()
    })
    .await;
    let r = app.tools.call("mcp__fx__added", None).await.expect("added");
    assert_eq!(
        r.content[0].as_text().map(|t| t.text.as_str()),
        Some("added works")
    );
    assert_eq!(
        fixture.calls(),
        vec!["echo", "fail", "hang", "echo", "added"]
    );

    app.tools.shutdown(LIMIT).await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_down_at_start_connects_when_it_comes_up() {
    // Reserve a port, then free it: nothing listens there at start.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let mock = Mock::start().await;
    let mcp = json!({"mcpServers": {"late": {"url": format!("http://{addr}/mcp")}}});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0.2")
        .start()
        .await;
    until(&app.tools, "retrying", |s| {
        s.server("late")
            .is_some_and(|h| h.health.as_str() == "retrying")
    })
    .await;
    let (status, v) = json(app.get("/v1/tools").await).await;
    assert_eq!(status, 200);
    assert_eq!(v["servers"][0]["health"], "retrying");
    assert!(v["servers"][0]["attempts"].as_u64().is_some_and(|a| a >= 1));
    assert!(
        v["servers"][0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let fixture = Fixture::default();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("rebind the reserved port");
    let stop = tokio_util::sync::CancellationToken::new();
    fixture.serve(listener, stop.clone()).await;
    until(&app.tools, "connected late", |s| connected(s, "late")).await;
    app.tools.shutdown(LIMIT).await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_finishes_the_handshake_times_out() {
    let mock = Mock::start().await;
    let mcp = json!({"mcpServers": {"mute": {"command": "sleep", "args": ["1000"]}}});
    let app = Setup::new(&mock)
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .env("WOOLLAMA_MCP_CONNECT_TIMEOUT_SECS", "0.3")
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0")
        .mcp(&mcp.to_string())
        .start()
        .await;
    let s = until(&app.tools, "failed", |s| {
        s.server("mute")
            .is_some_and(|m| m.health.as_str() == "failed")
    })
    .await;
    let Health::Failed { reason } = &s.server("mute").expect("mute").health else {
        unreachable!()
    };
    assert_eq!(
        reason,
        "no MCP handshake and tool list within 0.3s (a server that is slow to start needs a higher WOOLLAMA_MCP_CONNECT_TIMEOUT_SECS) (retry disabled)"
    );
    app.tools.shutdown(LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_whole_process_tree() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let grandchild = dir.path().join("grandchild.pid");
    // A grandchild that ignores stdin closing, as npm-launched trees can.
    let script = format!(
        "sleep 1000 < /dev/null > /dev/null 2>&1 & echo $! > '{}'; exec '{BIN}' example-server hello",
        grandchild.display()
    );
    let mcp = json!({"mcpServers": {"tree": {"command": "sh", "args": ["-c", script]}}});
    let app = Setup::new(&mock)
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .mcp(&mcp.to_string())
        .start()
        .await;
    until(&app.tools, "connected", |s| connected(s, "tree")).await;
    let pid = std::fs::read_to_string(&grandchild).expect("pid");
    assert!(running(&pid));
    app.tools.shutdown(LIMIT).await;
    // The grandchild is in the server's process group, which shutdown stops
    // whole (init reaps it: it is not ours).
    assert!(
        !running(&pid),
        "grandchild {} outlived shutdown",
        pid.trim()
    );
}

/// A server's stderr is drained whatever it carries: a line of invalid
/// UTF-8 and then a megabyte without a newline neither stop the reading
/// (which would close the pipe and kill the server at its next write) nor
/// block the server on a full pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_stderr_is_drained_whatever_it_writes() {
    let mock = Mock::start().await;
    let script = format!(
        "printf '\\377\\376 not utf-8\\n' >&2; head -c 1000000 /dev/zero >&2 || exit 1; printf 'after\\n' >&2 || exit 1; exec '{BIN}' example-server hello"
    );
    let mcp = json!({"mcpServers": {"noisy": {"command": "sh", "args": ["-c", script]}}});
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0")
        .start()
        .await;
    let snap = until(&app.tools, "settled", |s| {
        s.server("noisy")
            .is_some_and(|x| x.health != Health::Connecting)
    })
    .await;
    assert_eq!(
        snap.server("noisy").map(|x| x.health.clone()),
        Some(Health::Connected)
    );
    let r = app
        .tools
        .call(
            "mcp__noisy__hello",
            Some(common::obj(json!({"name": "stderr"}))),
        )
        .await
        .expect("call");
    assert_ne!(r.is_error, Some(true));
}
