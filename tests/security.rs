//! Security probes (issue 14): the token guards every TCP route — including
//! the operator routes and any route added later, since the auth layer
//! wraps the whole router, fallback included, and the probe's route list is
//! checked against the router's source; a foreign `Host` or `Origin` is
//! refused everywhere; a provider key reaches no log line, error body,
//! `/metrics`, `/status` or child environment; symlinks are not followed;
//! the state dir is private; no id a client sends reaches a path.

mod common;

use common::daemon::{self, Daemon};
use common::mock::Mock;
use common::{JsonBody as _, Setup};
use serde_json::json;

/// Every route the router has, and one it does not: a route added later is
/// inside the same layer as these.
const PATHS: &[&str] = &[
    "/v1/models",
    "/v1/tools",
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/conversations",
    "/v1/conversations/conv_x",
    "/v1/conversations/conv_x/items",
    "/v1/embeddings",
    "/v1/images/generations",
    "/mcp",
    "/metrics",
    "/status",
    "/no/such/route",
];

#[tokio::test]
async fn the_token_and_the_browser_rules_guard_every_route() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("WOOLLAMA_TOKEN", "probe-token")
        .start()
        .await;
    let grant = app.tools.grants().grant(Vec::<String>::new());
    for path in PATHS {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let send = |b: reqwest::RequestBuilder| async move {
                b.json_body(&json!({}))
                    .send()
                    .await
                    .expect("send")
                    .status()
                    .as_u16()
            };
            let url = app.url(path);
            let bare = send(app.client.request(method.clone(), &url)).await;
            assert_eq!(bare, 401, "{method} {path} without a token");
            let wrong = send(app.client.request(method.clone(), &url).bearer_auth("nope")).await;
            assert_eq!(wrong, 401, "{method} {path} with a wrong token");
            if *path != "/mcp" {
                let granted = send(
                    app.client
                        .request(method.clone(), &url)
                        .bearer_auth(grant.token().expose()),
                )
                .await;
                assert_eq!(granted, 401, "{method} {path} with a delegate's grant");
            }
            let rebound = send(
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("probe-token")
                    .header("host", "evil.example:80"),
            )
            .await;
            assert_eq!(rebound, 403, "{method} {path} with a foreign Host");
            let page = send(
                app.client
                    .request(method.clone(), &url)
                    .bearer_auth("probe-token")
                    .header("origin", "https://evil.example"),
            )
            .await;
            assert_eq!(page, 403, "{method} {path} from a foreign Origin");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_key_is_nowhere_to_be_seen() {
    const KEY: &str = "sk-probe-do-not-leak-4242";
    let d = daemon::dirs();
    // A provider whose upstream is down, a server that prints its
    // environment, and a recipe on the provider: every path a key could
    // leak through.
    std::fs::write(
        d.config.join("inferencers.toml"),
        "[inferencers.leaky]\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"LEAKY_KEY\"\n",
    )
    .expect("write");
    std::fs::write(
        d.config.join("mcp.json"),
        json!({"mcpServers": {"printer": {"command": "sh", "args": ["-c",
            format!("env >&2; exec '{}' example-server hello", daemon::BIN)]}}})
        .to_string(),
    )
    .expect("write");
    std::fs::write(
        d.config.join("recipes.toml"),
        "[recipes.leak]\ninferencer = \"leaky/m\"\n",
    )
    .expect("write");
    let mut c = daemon::command(&d, &[]);
    c.env("LEAKY_KEY", KEY)
        .env("OPENAI_API_KEY", KEY)
        .env("RUST_LOG", "debug");
    let mut daemon = Daemon::start(c).expect("daemon");
    daemon.wait_line(|l| l.contains("downstream connected") && l.contains("printer"));
    assert!(
        daemon.log().contains("HOME="),
        "the child's environment was not printed:\n{}",
        daemon.log()
    );
    let client = woollama::inference::build_client().expect("client");
    let mut seen = String::new();
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "leaky/m", "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "woollama/leak", "messages": []}),
        ),
        ("/v1/responses", json!({"model": "leaky/m", "input": "x"})),
        (
            "/v1/messages",
            json!({"model": "leaky/m", "max_tokens": 5, "messages": []}),
        ),
    ] {
        let r = client
            .post(format!("{}{path}", daemon.base))
            .json_body(&body)
            .send()
            .await
            .expect("send");
        seen.push_str(&r.text().await.expect("body"));
    }
    for path in ["/metrics", "/status", "/v1/models", "/v1/tools"] {
        let r = client
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .expect("send");
        seen.push_str(&r.text().await.expect("body"));
    }
    assert!(
        seen.contains("unreachable"),
        "the calls did not fail as planned: {seen}"
    );
    daemon.wait_line(|l| l.contains("woollama::access") && l.contains("/v1/tools"));
    let log = daemon.log();
    assert!(!seen.contains(KEY), "a key reached an answer");
    assert!(
        !log.contains(KEY),
        "a key reached the log (or a child's environment)"
    );
    assert!(
        log.contains("LEAKY") || log.contains("leaky"),
        "the log is not the one expected"
    );
}

/// Symlinks planted where woollama writes are never followed: the files
/// they point at are left as they were (the address file is replaced; a
/// socket path that is not a socket is refused, with the fix).
#[test]
fn symlinks_at_the_socket_and_address_paths_are_not_followed() {
    let d = daemon::dirs();
    std::fs::create_dir_all(&d.run).expect("mkdir");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&d.run, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let victims = d.home.join("victims");
    std::fs::create_dir_all(&victims).expect("mkdir");
    for name in ["woollama.sock", "woollama.addr"] {
        let victim = victims.join(name);
        std::fs::write(&victim, "precious\n").expect("write");
        std::os::unix::fs::symlink(&victim, d.run.join(name)).expect("symlink");
    }
    let daemon = Daemon::start(daemon::command(&d, &[])).expect("daemon");
    for name in ["woollama.sock", "woollama.addr"] {
        assert_eq!(
            std::fs::read_to_string(victims.join(name)).expect("victim"),
            "precious\n",
            "{name}'s target was written"
        );
    }
    // The address file is replaced by a file of its own…
    let meta = std::fs::symlink_metadata(d.run.join("woollama.addr")).expect("addr");
    assert!(
        meta.file_type().is_file(),
        "the address file is still a symlink"
    );
    // …and a socket path taken by something else is left alone, and said.
    assert!(
        daemon.log().contains("is not a socket; remove it"),
        "{}",
        daemon.log()
    );
    drop(daemon);
}

/// The probes' `PATHS` cover every route the router declares: a route
/// added to `src/http/mod.rs` without a line there fails here.
#[test]
fn the_probes_cover_every_declared_route() {
    let source = include_str!("../src/http/mod.rs");
    let mut declared = Vec::new();
    for call in [".route(", ".nest_service("] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(p, _)| p)
                .expect("a route's path is a string literal");
            declared.push(path.replace("{id}", "conv_x"));
        }
    }
    assert!(declared.len() >= 14, "{declared:?}");
    for path in &declared {
        assert!(
            PATHS.contains(&path.as_str()),
            "route {path} is not in the security probes' PATHS"
        );
    }
}

/// One request on a fresh connection, written as given (no client
/// normalises `..` or `%2e%2e` away): the status and the body.
async fn raw(app: &common::TestApp, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Everything woollama writes under its state dir is private — the dir and
/// every directory in it 0700, every file 0600, nothing else (no symlink,
/// no socket) — and no id a client sends reaches a path: a traversal in a
/// conversation id, a `conversation` or a `previous_response_id` is an
/// OpenAI-shaped 4xx, and files planted beside and above the state are
/// neither read nor removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_dir_is_private_and_no_id_reaches_a_path() {
    use std::os::unix::fs::PermissionsExt as _;
    let mock = Mock::start().await;
    let fake = common::fake_claude::fake();
    let root = tempfile::tempdir().expect("tempdir");
    let state = root.path().join("state");
    let app = Setup::new(&mock)
        .env("WOOLLAMA_CLAUDE_BIN", &fake.bin.to_string_lossy())
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .env("WOOLLAMA_STATE_DIR", &state.to_string_lossy())
        .start()
        .await;
    // Each writer once: the conversation table, a claude-resume
    // conversation's directory (two turns), a one-off call's directory.
    let (status, first) = app
        .respond(json!({"model": "claude-code/sonnet", "input": "first", "store": true}))
        .await;
    assert_eq!(status, 200, "{first}");
    let conversation = first["conversation"]["id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (status, v) = app
        .respond(json!({"model": "claude-code/sonnet", "input": "second",
                        "conversation": conversation, "store": true}))
        .await;
    assert_eq!(status, 200, "{v}");
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "claude-code/haiku", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);

    let mut seen = (0, 0);
    let mut stack = vec![state.clone()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            seen.0 += 1;
            for e in std::fs::read_dir(&path).expect("read_dir") {
                stack.push(e.expect("entry").path());
            }
        } else {
            assert!(meta.is_file(), "{} is neither file nor dir", path.display());
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            seen.1 += 1;
        }
    }
    // state, claude, claude/conversations, claude/conversations/<id>, …
    assert!(seen.0 >= 4 && seen.1 >= 1, "{seen:?}");
    let kept = state.join("claude/conversations").join(&conversation);
    assert!(kept.is_dir());

    // Planted where a traversal would land.
    let victims = [
        root.path().join("victim"),
        state.join("victim"),
        state.join("claude/victim"),
    ];
    for v in &victims {
        std::fs::write(v, "planted").expect("plant");
    }
    let runs = fake.runs().len();
    let long = "a".repeat(4000);
    let ids = [
        "..",
        "../victim",
        "..%2Fvictim",
        "..%2F..%2Fvictim",
        "%2e%2e%2fvictim",
        "%2E%2E",
        "conv_..%2F..%2F..%2Fvictim",
        "conv_%00",
        "conv_x%2F..%2F..",
        long.as_str(),
    ];
    for id in ids {
        for (method, path, body) in [
            ("GET", format!("/v1/conversations/{id}"), String::new()),
            (
                "POST",
                format!("/v1/conversations/{id}"),
                r#"{"metadata":{"a":"b"}}"#.to_string(),
            ),
            ("DELETE", format!("/v1/conversations/{id}"), String::new()),
            (
                "GET",
                format!("/v1/conversations/{id}/items"),
                String::new(),
            ),
        ] {
            let (status, body) = raw(&app, method, &path, &body).await;
            assert!(
                (400..500).contains(&status) && body.contains("\"error\""),
                "{method} {path}: {status} {body}"
            );
        }
    }
    for id in [
        "../victim",
        "../../victim",
        "conv_/../../victim",
        "..",
        long.as_str(),
    ] {
        for field in ["conversation", "previous_response_id"] {
            let (status, v) = app
                .respond(
                    json!({"model": "claude-code/sonnet", "input": "x", "store": true, field: id}),
                )
                .await;
            assert!(
                (400..500).contains(&status) && v["error"]["type"].is_string(),
                "{field} {id}: {status} {v}"
            );
        }
    }
    for v in &victims {
        assert_eq!(std::fs::read_to_string(v).expect("still there"), "planted");
    }
    assert!(kept.is_dir(), "the real conversation's directory went");
    assert_eq!(fake.runs().len(), runs, "a traversal reached claude");
}
