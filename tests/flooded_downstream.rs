//! A downstream whose stdout is flooded and full of garbage (issue 14), in
//! a test binary of its own: it measures this process's memory, which other
//! tests running beside it in one process (`cargo test` runs a file's tests
//! as threads) would move.

mod common;

use common::Setup;
use common::mock::Mock;
use serde_json::json;

/// A downstream whose stdout carries lines that are no JSON-RPC (text, bytes
/// that are not UTF-8, a JSON object that is no message, an unsolicited
/// notification) between its answers, and a 64 MiB garbage line before its
/// first: the noise is skipped, the long line is dropped without being held
/// (woollama's memory does not grow by it), and calls are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_with_noisy_and_flooded_stdout_still_serves() {
    let mock = Mock::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pids");
    let mcp =
        json!({"mcpServers": {"noisy": common::unruly(&file, &["--noise", "--flood", "64"])}});
    let before = rss_kib();
    let app = Setup::new(&mock)
        .mcp(&mcp.to_string())
        .env("WOOLLAMA_MCP_RETRY_MAX_SECS", "0")
        .start()
        .await;
    let snap = common::until(&app.tools, "settled", |s| {
        s.server("noisy")
            .is_some_and(|x| x.health != woollama::tools::Health::Connecting)
    })
    .await;
    assert_eq!(
        snap.server("noisy").map(|x| x.health.clone()),
        Some(woollama::tools::Health::Connected)
    );
    for i in 0..5 {
        let text = format!("call {i}");
        let r = app
            .tools
            .call("mcp__noisy__echo", Some(common::obj(json!({"text": text}))))
            .await
            .expect("call");
        assert_eq!(
            r.content[0].as_text().map(|t| t.text.as_str()),
            Some(text.as_str())
        );
    }
    // Held whole, the line alone would be 64 MiB (and its growth by
    // doubling more); dropped as it streams, it costs at most the 16 MiB
    // line limit.
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 40 << 10, "the process grew by {grown} KiB");
    app.tools.shutdown(common::LIMIT).await;
}

/// This process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
