//! The `check-config` report (contract §1.1): a summary per file on stdout,
//! `error:` then `warning:` lines on stderr, and an exit status of 1 when
//! anything is wrong. It binds and connects nothing.

use std::fmt::Write as _;

use super::{Loaded, Severity, Source};

/// What `check-config` prints and how it exits.
#[derive(Debug, Clone)]
pub struct Report {
    pub stdout: String,
    pub stderr: String,
    /// False when any fatal or error diagnostic was found (exit 1).
    pub ok: bool,
}

fn source(s: &Source, bundled: &str) -> String {
    match s {
        Source::User(p) => p.display().to_string(),
        Source::Bundled => bundled.to_string(),
        Source::Absent => "none (built-in providers only)".to_string(),
    }
}

/// Renders the report for a load.
pub fn check_report(loaded: &Loaded) -> Report {
    let c = &loaded.config;
    let d = &loaded.diagnostics;
    let mut out = String::new();
    let dir = c.dir.as_ref().map_or_else(
        || "(none: HOME is not set)".to_string(),
        |p| p.display().to_string(),
    );
    let _ = writeln!(out, "config dir: {dir}");
    let _ = writeln!(
        out,
        "  mcp.json: {}\n  recipes.toml: {}\n  inferencers.toml: {}",
        source(&c.mcp_source, "bundled default"),
        source(&c.recipes_source, "bundled default"),
        source(&c.inferencers_source, "")
    );
    let names: Vec<&str> = c.servers.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        out,
        "mcp.json: {} server(s) usable ({}), {} skipped",
        names.len(),
        names.join(", "),
        c.skipped_servers.len()
    );
    let _ = writeln!(out, "recipes.toml: {} recipe(s)", c.recipes.len());
    let inf_problems = d
        .iter()
        .filter(|x| x.severity != Severity::Warning && x.file.contains("inferencers.toml"))
        .count();
    if inf_problems == 0 {
        let _ = writeln!(out, "inferencers.toml: OK");
    } else {
        let _ = writeln!(out, "inferencers.toml: {inf_problems} problem(s)");
    }

    let mut err = String::new();
    for x in d.iter().filter(|x| x.severity != Severity::Warning) {
        let _ = writeln!(err, "error: {x}");
    }
    for x in d.of(Severity::Warning) {
        let _ = writeln!(err, "warning: {x}");
    }
    let problems = d.problems();
    if problems == 0 {
        let _ = writeln!(out, "config OK");
    } else {
        let _ = writeln!(err, "{problems} problem(s) found");
    }
    Report {
        stdout: out,
        stderr: err,
        ok: problems == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, load_from};

    #[test]
    fn clean_defaults_report_ok() {
        let l = load_from(None, &Env::from_pairs([("WOOLLAMA_EXE", "/w")]));
        let r = check_report(&l);
        assert!(r.ok);
        assert!(
            r.stdout
                .contains("mcp.json: 2 server(s) usable (hello, textops), 0 skipped\n")
        );
        assert!(r.stdout.contains("recipes.toml: 4 recipe(s)\n"));
        assert!(r.stdout.contains("inferencers.toml: OK\n"));
        assert!(r.stdout.ends_with("config OK\n"));
        assert!(r.stderr.is_empty());
    }

    #[test]
    fn problems_go_to_stderr_errors_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mcp.json"),
            r#"{"extra": 1, "mcpServers": {"a": {"command": "x", "url": "http://h/mcp"}}}"#,
        )
        .expect("write");
        let l = load_from(Some(dir.path()), &Env::default());
        let r = check_report(&l);
        assert!(!r.ok);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert!(lines[0].starts_with("error: ") && lines[0].contains("mcpServers.a"));
        assert!(lines[1].starts_with("warning: ") && lines[1].contains("extra"));
        assert_eq!(lines.last(), Some(&"1 problem(s) found"));
        assert!(r.stdout.contains("0 server(s) usable (), 1 skipped"));
        assert!(!r.stdout.contains("config OK"));
    }
}
