//! Hot reload, against the real daemon: a recipe added to `recipes.toml`
//! appears in `/v1/models` and as an MCP prompt (with `list_changed`); a
//! broken file changes nothing and says why; one changed MCP server entry
//! restarts that server only (the other child keeps its pid); `SIGHUP`
//! reloads too. Each step waits for the daemon's own log line, never a
//! timer.

mod common;

use std::path::Path;

use common::daemon::{self, Daemon, LIMIT};
use rmcp::ServiceExt as _;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

#[derive(Clone)]
struct Heard(tokio::sync::mpsc::UnboundedSender<&'static str>);

impl rmcp::ClientHandler for Heard {
    async fn on_prompt_list_changed(
        &self,
        _: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send("prompts");
    }
}

fn mcp_json(config: &Path, textops_env: Value) {
    std::fs::write(
        config.join("mcp.json"),
        json!({"mcpServers": {
            "hello": {"command": daemon::BIN, "args": ["example-server", "hello"]},
            "textops": {"command": daemon::BIN, "args": ["example-server", "textops"], "env": textops_env},
        }})
        .to_string(),
    )
    .expect("write");
}

/// The guard pid serving each example server.
fn servers(pid: u32) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = daemon::children_of(pid)
        .into_iter()
        .filter_map(|c| {
            let cmd = std::fs::read_to_string(format!("/proc/{c}/cmdline")).ok()?;
            let name = cmd.split('\0').rfind(|a| !a.is_empty())?.to_string();
            Some((name, c))
        })
        .filter(|(n, _)| n == "hello" || n == "textops")
        .collect();
    out.sort();
    out
}

async fn models(base: &str) -> Vec<String> {
    let client = woollama::inference::build_client().expect("client");
    let v: Value = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_live() {
    let d = daemon::dirs();
    mcp_json(&d.config, json!({}));
    std::fs::write(
        d.config.join("recipes.toml"),
        "[recipes.first]\ninferencer = \"ollama/m\"\n",
    )
    .expect("write");
    let mut c = daemon::command(&d, &[]);
    c.env("WOOLLAMA_ACCESS_LOG", "0");
    let mut daemon = Daemon::start(c).expect("daemon");
    daemon.wait_logged(|log| {
        log.iter()
            .filter(|l| l.contains("downstream connected"))
            .count()
            == 2
    });
    let before = servers(daemon.pid);
    assert_eq!(before.len(), 2, "{before:?}");

    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", daemon.base)),
    );
    let client = Heard(tx).serve(transport).await.expect("MCP initialize");
    let prompts = client.list_all_prompts().await.expect("prompts");
    assert_eq!(
        prompts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["first"]
    );

    // A recipe added.
    std::fs::write(
        d.config.join("recipes.toml"),
        "[recipes.first]\ninferencer = \"ollama/m\"\n[recipes.second]\ninferencer = \"ollama/m\"\n",
    )
    .expect("write");
    daemon
        .wait_line(|l| l.contains("config reloaded: recipes added: second"))
        .expect("reloaded");
    assert!(
        models(&daemon.base)
            .await
            .contains(&"woollama/second".to_string())
    );
    let told = tokio::time::timeout(LIMIT, heard.recv()).await;
    assert_eq!(told, Ok(Some("prompts")), "no prompts/list_changed");
    let prompts = client.list_all_prompts().await.expect("prompts");
    assert_eq!(
        prompts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );

    // A broken file: the last good config stays, and the log says why.
    std::fs::write(d.config.join("recipes.toml"), "[recipes.first\n").expect("write");
    let why = daemon
        .wait_line(|l| l.contains("config not reloaded"))
        .expect("refused");
    assert!(
        why.contains("recipes.toml") && why.contains("not valid TOML"),
        "{why}"
    );
    assert!(
        models(&daemon.base)
            .await
            .contains(&"woollama/second".to_string())
    );
    std::fs::write(
        d.config.join("recipes.toml"),
        "[recipes.first]\ninferencer = \"ollama/m\"\n[recipes.second]\ninferencer = \"ollama/m\"\n",
    )
    .expect("write");
    daemon
        .wait_line(|l| l.contains("config reloaded: nothing changed"))
        .expect("reloaded");

    // One server's entry changed, applied by SIGHUP: only it restarts.
    mcp_json(&d.config, json!({"TEXTOPS_MARK": "1"}));
    daemon.signal("-HUP");
    daemon
        .wait_line(|l| l.contains("servers restarted: textops") && l.contains("SIGHUP"))
        .expect("restarted");
    daemon
        .wait_line(|l| l.contains("downstream connected") && l.contains("textops"))
        .expect("textops back");
    // The old textops is stopped while the new one starts: wait for it to
    // go before counting.
    assert!(
        daemon::wait_gone(&[before[1].1]).is_empty(),
        "the old textops still runs"
    );
    let after = servers(daemon.pid);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        after[0], before[0],
        "hello was restarted: {before:?} → {after:?}"
    );
    assert_ne!(after[1].1, before[1].1, "textops kept its process");
    let _ = client.cancel().await;
}
