//! `woollama status`: asks the running daemon over its Unix socket (no token
//! needed: the socket's 0600 mode is the boundary) for `GET /status`, and
//! prints what it says — for a person, or as JSON with `--json`.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Why the daemon could not be asked.
fn unreachable(socket: &Path, why: &str) -> String {
    format!(
        "no woollama daemon answers at {} ({why}); start one with `woollama`, or set XDG_RUNTIME_DIR to the one the daemon uses",
        socket.display()
    )
}

/// `GET /status` over the socket: the JSON body.
pub fn fetch(socket: &Path) -> Result<Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| unreachable(socket, &e.to_string()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| unreachable(socket, &e.to_string()))?;
    let mut raw = Vec::new();
    s.take(8 * 1024 * 1024)
        .read_to_end(&mut raw)
        .map_err(|e| unreachable(socket, &e.to_string()))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| unreachable(socket, "it did not answer HTTP"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "the daemon at {} answered {status} to GET /status (is it an older woollama?)",
            socket.display()
        ));
    }
    serde_json::from_slice(&raw[split + 4..])
        .map_err(|e| format!("the daemon's status is not JSON: {e}"))
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The status for a person.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "woollama {} (pid {}), up {}",
        text(&s["version"]),
        text(&s["pid"]),
        duration(s["uptime_secs"].as_u64().unwrap_or(0))
    ));
    let l = &s["listeners"];
    line(format!(
        "  listening  {} ({}), socket {}",
        text(&l["tcp"]),
        if l["token_required"] == true {
            "token required"
        } else {
            "loopback, no token"
        },
        text(&l["socket"])
    ));
    let c = &s["config"];
    line(format!("  config     {}", text(&c["dir"])));
    for f in ["mcp.json", "recipes.toml", "inferencers.toml"] {
        line(format!("    {f:<17} {}", text(&c[f])));
    }
    if let Some(skipped) = c["skipped_servers"].as_array().filter(|a| !a.is_empty()) {
        let names: Vec<String> = skipped.iter().map(text).collect();
        line(format!(
            "    skipped servers   {} (run `woollama check-config`)",
            names.join(", ")
        ));
    }
    line(format!("  state      {}", text(&s["state_dir"])));
    line("inferencers".into());
    for i in s["inferencers"].as_array().into_iter().flatten() {
        let key = match &i["key"] {
            Value::Null => String::new(),
            k if k["set"] == true => format!("  key ${}", text(&k["env"])),
            k => format!("  key ${} NOT SET", text(&k["env"])),
        };
        line(format!(
            "  {:<12} {}{key}",
            text(&i["name"]),
            text(&i["base_url"])
        ));
    }
    line("recipes".into());
    for r in s["recipes"].as_array().into_iter().flatten() {
        let tools: Vec<String> = r["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let tools = if tools.is_empty() {
            "no tools".to_string()
        } else {
            tools.join(", ")
        };
        line(format!(
            "  {:<12} {}  ({tools})",
            text(&r["name"]),
            text(&r["inferencer"])
        ));
    }
    line("downstreams".into());
    let downstreams = s["downstreams"].as_array().cloned().unwrap_or_default();
    if downstreams.is_empty() {
        line("  (none configured)".into());
    }
    for d in &downstreams {
        let mut l = format!(
            "  {:<12} {:<10} {} tools ({})",
            text(&d["name"]),
            text(&d["health"]),
            text(&d["tools"]),
            text(&d["transport"])
        );
        if let Some(e) = d["last_error"].as_str() {
            l.push_str(&format!("\n    last error: {e}"));
        }
        line(l);
    }
    out
}

/// Runs `woollama status [--json]`.
pub fn run(socket: &Path, json: bool) -> ExitCode {
    match fetch(socket) {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", render(&s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("woollama status: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 5s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(2 * 86_400 + 3600), "2d 1h");
    }

    #[test]
    fn no_daemon_is_said_with_the_fix() {
        let e = fetch(Path::new("/nonexistent/woollama.sock")).expect_err("no daemon");
        assert!(
            e.starts_with("no woollama daemon answers at /nonexistent/woollama.sock"),
            "{e}"
        );
        assert!(e.contains("start one with `woollama`"), "{e}");
    }
}
