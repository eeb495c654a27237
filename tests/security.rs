//! Security probes (issue 14): the token guards every TCP route — including
//! the operator routes and any route added later, since the auth layer
//! wraps the whole router, fallback included; a foreign `Host` or `Origin`
//! is refused everywhere; and a provider key reaches no log line, error
//! body, `/metrics`, `/status` or child environment.

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
