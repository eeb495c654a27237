//! MCP children never outlive woollama: not when an MCP client stops
//! `woollama mcp` with a signal (SIGTERM, SIGINT, SIGHUP — the Python SDK
//! sends SIGTERM two seconds after closing stdin, desktop clients on quit),
//! and not when `woollama mcp` or the daemon is killed with SIGKILL and gets
//! no chance to stop them (the child guard, `guard`). The downstreams
//! are real: `@modelcontextprotocol/server-everything` under `node`, and a
//! shell tree whose grandchild ignores stdin closing.

mod common;

use common::daemon::{BIN, Daemon, command, descendants, dirs, running, wait_gone};
use serde_json::json;

/// `mcp.json` with server-everything and a process tree: `sh` starts a
/// `sleep` that ignores stdin closing, then becomes the hello example.
fn config() -> String {
    let tree =
        format!("sleep 1000 < /dev/null > /dev/null 2>&1 & exec '{BIN}' example-server hello");
    json!({"mcpServers": {
        "everything": {"command": "node", "args": [common::server_everything(), "stdio"]},
        "tree": {"command": "sh", "args": ["-c", tree]},
    }})
    .to_string()
}

/// Each pid with its command line and state, for a failure message.
fn described(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            format!("{p} [{cmd}] {stat}")
        })
        .collect()
}

/// Waits until both downstreams are connected and returns every process
/// below woollama (guards, servers, the grandchild).
fn connected_tree(w: &mut Daemon) -> Vec<u32> {
    w.wait_logged(|log| {
        ["server=everything", "server=tree"].iter().all(|s| {
            log.iter()
                .any(|l| l.contains("downstream connected") && l.contains(s))
        })
    });
    let tree = descendants(w.pid);
    let comm = |p: &u32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    assert!(
        tree.iter().any(|p| comm(p).trim() == "node"),
        "no node process below woollama: {tree:?}"
    );
    assert!(
        tree.iter().any(|p| comm(p).trim() == "sleep"),
        "no grandchild below woollama: {tree:?}"
    );
    assert!(tree.iter().all(|p| running(*p)));
    tree
}

#[test]
fn woollama_mcp_stops_its_downstreams_on_every_stop_signal() {
    for signal in ["-TERM", "-INT", "-HUP"] {
        let d = dirs();
        std::fs::write(d.config.join("mcp.json"), config()).expect("write");
        // stdin stays open: the client is still there when the signal comes.
        let mut w = Daemon::start_mcp(command(&d, &["mcp"]));
        let tree = connected_tree(&mut w);
        w.signal(signal);
        let status = w.wait_exit();
        assert!(
            status.success(),
            "{signal}: exit {status}; log:\n{}",
            w.log()
        );
        let left = wait_gone(&tree);
        assert!(
            left.is_empty(),
            "{signal}: {:?} outlived woollama mcp; log:\n{}",
            described(&left),
            w.log()
        );
    }
}

#[test]
fn a_killed_woollama_takes_its_downstreams_along() {
    for mcp in [true, false] {
        let d = dirs();
        std::fs::write(d.config.join("mcp.json"), config()).expect("write");
        let mut w = if mcp {
            Daemon::start_mcp(command(&d, &["mcp"]))
        } else {
            Daemon::start(command(&d, &[])).unwrap_or_else(|(s, log)| panic!("{s}: {log}"))
        };
        let tree = connected_tree(&mut w);
        w.signal("-KILL");
        w.wait_exit();
        let left = wait_gone(&tree);
        let what = if mcp { "woollama mcp" } else { "the daemon" };
        assert!(
            left.is_empty(),
            "{:?} outlived {what} killed with SIGKILL; log:\n{}",
            described(&left),
            w.log()
        );
    }
}
