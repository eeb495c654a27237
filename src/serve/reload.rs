//! Hot reload: the three config files are read again on `SIGHUP` (the
//! daemon) and whenever one of them changes on disk — checked once a second
//! by size and modification time, which sees an editor's save-by-rename as
//! well as an in-place write, and a file created or deleted, without a
//! watcher that would have to follow the directory being replaced.
//!
//! A config that is not valid changes nothing: woollama keeps serving the
//! last good one and logs exactly what `check-config` would say. A valid one
//! is swapped in whole (`app::Live::reload`): requests in flight finish on
//! the config they started with; only the MCP servers whose entries changed
//! are restarted; MCP clients are told `list_changed` when their lists
//! change. Settings from the environment (`WOOLLAMA_ADDRESS`, the token,
//! the state dir) belong to the process and need a restart.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::app::Live;

/// How often the files are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// The config files' size and modification time (absent: `None`).
fn fingerprint(files: &[PathBuf]) -> Vec<Option<(u64, SystemTime)>> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

/// Reloads, and says what happened.
pub fn reload(live: &Live, why: &str) {
    match live.reload() {
        Ok(done) => tracing::info!(trigger = why, "config reloaded: {done}"),
        Err(problems) => {
            for p in &problems {
                tracing::error!(trigger = why, "config not reloaded: {p}");
            }
            tracing::error!(
                "keeping the last good config; fix the files (`woollama check-config` checks them) and save again"
            );
        }
    }
}

/// Follows the config files (and, with `sighup`, the signal) until
/// woollama shuts down.
pub fn follow(live: &Live, sighup: bool) {
    let state = live.load();
    let Some(dir) = state.config.dir.clone() else {
        return;
    };
    let shutdown = state.shutdown.clone();
    let files: Vec<PathBuf> = ["mcp.json", "recipes.toml", "inferencers.toml"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let live = live.clone();
    // The files as they are now, taken before returning: a change made the
    // moment after start (before the task first runs) is still a change.
    let mut seen = fingerprint(&files);
    tokio::spawn(async move {
        let mut hup = if sighup {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(
                        "cannot handle SIGHUP ({e}); config changes are still picked up from the files"
                    );
                    None
                }
            }
        } else {
            None
        };
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hangup => {
                    seen = fingerprint(&files);
                    reload(&live, "SIGHUP");
                }
                _ = tick.tick() => {
                    let now = fingerprint(&files);
                    if now != seen {
                        seen = now;
                        reload(&live, "a config file changed");
                    }
                }
            }
        }
    });
}
