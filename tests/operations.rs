//! Operations: Prometheus metrics scraped before and after real traffic, the
//! access log as a person and a log shipper read it, and `woollama status`
//! against a live daemon (and none).

mod common;

use common::daemon::{self, Daemon};
use common::mock::{Mock, Reply, completion, sse};
use common::{JsonBody as _, Setup};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The value of the sample `name{labels}` in an exposition (0 if absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_exactly_the_requests_made() {
    let mock = Mock::start().await;
    let bin = env!("CARGO_BIN_EXE_woollama");
    let app = Setup::new(&mock)
        .mcp(&format!(
            r#"{{"mcpServers": {{"hello": {{"command": "{bin}", "args": ["example-server", "hello"]}}}}}}"#
        ))
        .recipes("[recipes.counter]\ninferencer = \"mock/m\"\ntools = [\"hello.count_to\"]\n")
        .start()
        .await;
    app.tools.settled(std::time::Duration::from_secs(30)).await;
    let scrape = || async {
        let r = app.get("/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|c| c.starts_with("application/openmetrics-text"))
        );
        r.text().await.expect("text")
    };
    let before = scrape().await;
    let chat = r#"woollama_http_requests_total{route="/v1/chat/completions",method="POST",status="2xx",namespace="mock"}"#;
    let refused = r#"woollama_http_requests_total{route="/v1/chat/completions",method="POST",status="4xx",namespace="unknown"}"#;
    let recipe = r#"woollama_http_requests_total{route="/v1/chat/completions",method="POST",status="2xx",namespace="woollama"}"#;
    let tool_ok = r#"woollama_tool_calls_total{server="hello",outcome="ok"}"#;
    let turns = r#"woollama_recipe_turns_total{recipe="counter"}"#;

    // Three pass-through answers (one streamed), two refusals with made-up
    // model names, one recipe run with a tool turn.
    mock.push(Reply::Json(StatusCode::OK, completion("a")));
    mock.push(Reply::Json(StatusCode::OK, completion("b")));
    mock.push(sse(&["c"]));
    for stream in [false, false, true] {
        let r = app
            .post(
                "/v1/chat/completions",
                json!({"model": "mock/m", "stream": stream, "messages": []}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let _ = r.bytes().await;
    }
    for model in ["made-up/one", "made-up/two"] {
        let r = app
            .post(
                "/v1/chat/completions",
                json!({"model": model, "messages": []}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    mock.push(Reply::Json(
        StatusCode::OK,
        common::mock::tool_calls(&[("c1", "mcp__hello__count_to", json!({"n": 2}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("counted")));
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/counter", "messages": []}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let _ = r.bytes().await;

    let r = app.post("/v1/conversations", json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let after = scrape().await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(moved(chat), 3.0, "{after}");
    assert_eq!(moved(refused), 2.0, "{after}");
    assert_eq!(moved(recipe), 1.0, "{after}");
    assert_eq!(moved(tool_ok), 1.0, "{after}");
    assert_eq!(moved(turns), 2.0, "{after}");
    assert_eq!(
        moved(r#"woollama_conversations_created_total{backend="none"}"#),
        1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"woollama_upstream_duration_seconds_count{inferencer="mock"}"#
        ) >= 5.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            r#"woollama_downstream_health{server="hello",state="connected"}"#
        ),
        1.0
    );
    // Bounded: a made-up model never becomes a label.
    assert!(!after.contains("made-up"), "{after}");
    // Nothing in flight once every answer was read (this scrape excepted).
    assert_eq!(
        sample(&after, "woollama_http_streams_in_flight"),
        0.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "woollama_http_requests_in_flight"),
        1.0,
        "{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_one_line_per_request_and_never_a_secret() {
    let d = daemon::dirs();
    let mut c = daemon::command(&d, &[]);
    c.env("WOOLLAMA_TOKEN", "tok-secret-123")
        .env("RUST_LOG", "warn,woollama=info");
    let mut daemon = Daemon::start(c).expect("daemon");
    let client = woollama::inference::build_client().expect("client");
    let r = client
        .post(format!("{}/v1/chat/completions", daemon.base))
        .bearer_auth("tok-secret-123")
        .header("x-extra", "header-secret-456")
        .json_body(&json!({"model": "nowhere/m", "messages": [{"role": "user", "content": "body-secret-789"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client
        .get(format!("{}/v1/models?key=query-secret", daemon.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let second = daemon
        .wait_line(|l| l.contains("woollama::access") && l.contains("GET /v1/models"))
        .expect("the models line");
    let log = daemon.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("woollama::access"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("POST /v1/chat/completions 400 ")
            && lines[0].contains(" model=nowhere/m origin=error"),
        "{}",
        lines[0]
    );
    assert!(second.contains("GET /v1/models 401 "), "{second}");
    for secret in [
        "tok-secret-123",
        "header-secret-456",
        "body-secret-789",
        "query-secret",
    ] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
    drop(daemon);

    // Off, and as JSON.
    let mut c = daemon::command(&d, &[]);
    c.env("WOOLLAMA_ACCESS_LOG", "0");
    let daemon = Daemon::start(c).expect("daemon");
    let _ = client
        .get(format!("{}/v1/models", daemon.base))
        .send()
        .await
        .expect("get");
    let mut c = daemon::command(&d, &["--log-format", "json"]);
    c.env("XDG_RUNTIME_DIR", d.run.join("json"));
    let mut json_daemon = Daemon::start(c).expect("json daemon");
    let _ = client
        .get(format!("{}/v1/models", json_daemon.base))
        .send()
        .await
        .expect("get");
    let line = json_daemon
        .wait_line(|l| l.contains("woollama::access"))
        .expect("a JSON access line");
    let v: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["fields"]["status"], 200, "{v}");
    assert_eq!(v["fields"]["path"], "/v1/models", "{v}");
    assert_eq!(v["fields"]["method"], "GET", "{v}");
    drop(json_daemon);
    assert!(
        !daemon.log().contains("woollama::access"),
        "WOOLLAMA_ACCESS_LOG=0 still logged:\n{}",
        daemon.log()
    );

    // RUST_LOG decides by target, as for any other line.
    let mut c = daemon::command(&d, &[]);
    c.env("RUST_LOG", "info,woollama::access=off")
        .env("XDG_RUNTIME_DIR", d.run.join("filtered"));
    let mut filtered = Daemon::start(c).expect("filtered daemon");
    let r = client
        .get(format!("{}/v1/models", filtered.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    filtered.signal("-TERM");
    assert!(filtered.wait_exit().success());
    filtered.wait_logged(|log| log.iter().any(|l| l.ends_with(" stopped")));
    assert!(
        !filtered.log().contains("woollama::access"),
        "RUST_LOG=woollama::access=off still logged:\n{}",
        filtered.log()
    );
}

#[test]
fn status_tells_what_the_daemon_runs() {
    let d = daemon::dirs();
    std::fs::write(
        d.config.join("mcp.json"),
        json!({"mcpServers": {
            "hello": {"command": daemon::BIN, "args": ["example-server", "hello"]},
            "broken": {"command": "/nonexistent/server"}
        }})
        .to_string(),
    )
    .expect("write");
    let mut daemon = Daemon::start(daemon::command(&d, &[])).expect("daemon");
    daemon.wait_line(|l| l.contains("downstream connected") && l.contains("hello"));
    daemon.wait_line(|l| l.contains("server=broken"));

    let (status, out, err) = daemon::output(daemon::command(&d, &["status", "--json"]));
    assert!(status.success(), "{err}");
    let s: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(s["pid"], daemon.pid);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    let ds = s["downstreams"].as_array().expect("downstreams");
    let hello = ds.iter().find(|x| x["name"] == "hello").expect("hello");
    assert_eq!(hello["health"], "connected");
    assert_eq!(hello["tools"], 2);
    let broken = ds.iter().find(|x| x["name"] == "broken").expect("broken");
    assert!(
        broken["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/server")),
        "{broken}"
    );

    let (status, out, err) = daemon::output(daemon::command(&d, &["status"]));
    assert!(status.success(), "{err}");
    assert!(
        out.starts_with(&format!(
            "woollama {} (pid {})",
            env!("CARGO_PKG_VERSION"),
            daemon.pid
        )),
        "{out}"
    );
    assert!(out.contains("hello        connected  2 tools"), "{out}");
    assert!(out.contains("last error:"), "{out}");
    drop(daemon);

    // No daemon: said, exit 1.
    let (status, out, err) = daemon::output(daemon::command(&d, &["status"]));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(err.contains("no woollama daemon answers at"), "{err}");
}

/// A busy daemon writes its log a batch at a time: every request still
/// leaves its line, whole, and what is held when it stops is written before
/// it exits (the last line is `stopped`, after every access line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_daemon_logs_every_request_whole_and_the_rest_before_it_exits() {
    const N: usize = 400;
    let d = daemon::dirs();
    let mut c = daemon::command(&d, &[]);
    // Two workers: lines logged on both threads at once.
    c.env("RUST_LOG", "warn,woollama=info")
        .env("WOOLLAMA_WORKER_THREADS", "2");
    let mut daemon = Daemon::start(c).expect("daemon");
    let client = woollama::inference::build_client().expect("client");
    let base = daemon.base.clone();
    let mut sent = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let client = client.clone();
        let base = base.clone();
        sent.spawn(async move {
            for i in (lane..N).step_by(16) {
                let r = client
                    .get(format!("{base}/v1/nothing/{i}"))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(r.status(), StatusCode::NOT_FOUND);
            }
        });
    }
    while let Some(r) = sent.join_next().await {
        r.expect("lane");
    }
    daemon.signal("-TERM");
    assert!(daemon.wait_exit().success(), "{}", daemon.log());
    daemon.wait_logged(|log| log.iter().any(|l| l.ends_with(" stopped")));
    let log = daemon.log();
    let lines: Vec<&str> = log.lines().collect();
    let mut seen = vec![false; N];
    for l in lines.iter().filter(|l| l.contains("woollama::access")) {
        let i: usize = l
            .split("GET /v1/nothing/")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("not a whole access line: {l:?}"));
        assert!(l.contains(" 404 ") && l.starts_with("20"), "{l:?}");
        assert!(!seen[i], "request {i} logged twice");
        seen[i] = true;
    }
    let missing: Vec<usize> = (0..N).filter(|&i| !seen[i]).collect();
    assert!(missing.is_empty(), "no access line for {missing:?}");
    assert!(
        lines.last().is_some_and(|l| l.ends_with(" stopped")),
        "the log does not end with `stopped`:\n{log}"
    );
}
