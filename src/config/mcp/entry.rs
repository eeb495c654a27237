//! One `mcpServers` entry: its name, which transport it is, and for a stdio
//! server its `args` and `env`.
//!
//! Every problem that makes the entry unusable is an error ending in
//! `; server skipped`, and the entry is dropped without touching its
//! siblings; what is merely ignored is a warning. `env` values may be
//! credentials, so messages name keys, never values.

use std::collections::BTreeMap;

use serde_json::Value;

use super::streamable_http;
use super::{Protocol, ServerSpec, Transport};
use crate::config::diagnostics::{Diagnostics, Severity};
use crate::config::env::Secret;
use crate::config::expand::KeyPath;
use crate::config::fields::{Fields, Reporter, Skipped};

const SERVER_KEYS: &[&str] = &[
    "command", "args", "env", "url", "headers", "type", "prefix", "protocol",
];

/// One entry's keys, reported as `; server skipped` errors.
pub(super) type Entry<'a> = Fields<'a, Value>;

/// Validates one server entry; `None` when it is skipped (and reported).
pub(super) fn server(
    name: &str,
    entry: &Value,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<ServerSpec> {
    let report = Reporter::new(file, Severity::Error, "; server skipped");
    read(name, entry, &report, path, diags).ok()
}

fn read(
    name: &str,
    entry: &Value,
    report: &Reporter<'_>,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<ServerSpec, Skipped> {
    let map = report.expect(
        diags,
        path,
        entry,
        "an object with `command` (stdio) or `url` (Streamable HTTP)",
        Value::as_object,
    )?;
    check_name(name, report, path, diags)?;
    let entry = Entry::new(map, path, report);
    entry.warn_unknown(diags, SERVER_KEYS, "unknown server key, ignored");

    // An entry is either stdio or http; empty strings count as unset.
    let command = entry
        .opt_string(diags, "command", "a string")?
        .filter(|s| !s.trim().is_empty());
    let url = entry
        .opt_string(diags, "url", "a string")?
        .filter(|s| !s.trim().is_empty());
    let declared = entry.opt_string(diags, "type", "a string")?;
    if declared == Some("sse") {
        return Err(report.say(
            diags,
            &path.key("type"),
            "the legacy HTTP+SSE transport is not supported; point `url` at the server's Streamable HTTP endpoint and drop `type`",
        ));
    }
    let transport = match (command, url) {
        (Some(_), Some(_)) => {
            return Err(report.say(
                diags,
                path,
                "set either `command` (a stdio server) or `url` (a Streamable HTTP server), not both",
            ));
        }
        (None, None) => {
            return Err(report.say(
                diags,
                path,
                "neither `command` (a stdio server) nor `url` (a Streamable HTTP server) is set",
            ));
        }
        (Some(command), None) => {
            warn_other_transport(&entry, declared, &STDIO, diags);
            stdio(command, &entry, diags)?
        }
        (None, Some(url)) => {
            warn_other_transport(&entry, declared, &STREAMABLE_HTTP, diags);
            streamable_http::transport(url, &entry, diags)?
        }
    };
    let prefix = entry
        .opt(diags, "prefix", "true or false", Value::as_bool)?
        .unwrap_or(true);
    let protocol = match entry.opt_string(diags, "protocol", Protocol::CHOICES)? {
        None => Protocol::Auto,
        Some(text) => Protocol::parse(text).ok_or_else(|| {
            report.say(
                diags,
                &path.key("protocol"),
                format!(
                    "{text:?} is not a protocol woollama speaks; use {}",
                    Protocol::CHOICES
                ),
            )
        })?,
    };
    Ok(ServerSpec {
        name: name.to_string(),
        transport,
        prefix,
        protocol,
    })
}

/// An empty name is an error; a name recipes or strict providers cannot use
/// is a warning.
fn check_name(
    name: &str,
    report: &Reporter<'_>,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<(), Skipped> {
    if name.is_empty() {
        return Err(report.say(diags, path, "a server name cannot be empty"));
    }
    let file = report.file();
    if name.contains('.') {
        diags.warn(
            file,
            path,
            "the server name contains `.`, so recipes cannot name its tools (they are written `server.tool`); rename it",
        );
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        diags.warn(
            file,
            path,
            "the server name has characters outside [A-Za-z0-9_-]; strict providers reject the tool names models see (`mcp__<server>__<tool>`)",
        );
    }
    Ok(())
}

/// What a transport is set by, the `type` values that name it, and the keys
/// that belong to the other one.
struct Kind {
    /// `command` or `url`.
    key: &'static str,
    types: &'static [&'static str],
    name: &'static str,
    other_key: &'static str,
    other_keys: &'static [&'static str],
}

const STDIO: Kind = Kind {
    key: "command",
    types: &["stdio"],
    name: "stdio",
    other_key: "url",
    other_keys: &["headers"],
};

const STREAMABLE_HTTP: Kind = Kind {
    key: "url",
    types: &["http", "streamable-http", "streamableHttp"],
    name: "Streamable HTTP",
    other_key: "command",
    other_keys: &["args", "env"],
};

/// A `type` naming the other transport, and keys of the other transport, are
/// ignored with a warning.
fn warn_other_transport(
    entry: &Entry<'_>,
    declared: Option<&str>,
    kind: &Kind,
    diags: &mut Diagnostics,
) {
    let (file, path) = (entry.report.file(), entry.path);
    if let Some(t) = declared.filter(|t| !kind.types.contains(t)) {
        diags.warn(
            file,
            &path.key("type"),
            format!(
                "`type` is {t:?} but the entry has `{}`; treated as {}",
                kind.key, kind.name
            ),
        );
    }
    for key in kind.other_keys {
        if entry.has(key) {
            diags.warn(
                file,
                &path.key(key),
                format!(
                    "`{key}` applies to `{}` servers only; ignored",
                    kind.other_key
                ),
            );
        }
    }
}

fn stdio(command: &str, entry: &Entry<'_>, diags: &mut Diagnostics) -> Result<Transport, Skipped> {
    let (file, path) = (entry.report.file(), entry.path);
    let items = entry
        .opt(diags, "args", "an array of strings", |v| match v {
            Value::Null => Some(&[][..]),
            v => v.as_array().map(Vec::as_slice),
        })?
        .unwrap_or_default();
    let quote = Reporter::new(file, Severity::Error, " (quote it); server skipped");
    let args = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            quote
                .expect(
                    diags,
                    &path.key("args").index(i),
                    item,
                    "a string",
                    Value::as_str,
                )
                .map(str::to_string)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut env = BTreeMap::new();
    for (k, v) in string_map(entry, "env", diags)? {
        if v.is_empty() {
            diags.warn(
                file,
                &path.key("env").key(k),
                "resolves to an empty value; the server gets an empty variable",
            );
        }
        env.insert(k.clone(), Secret::new(v));
    }
    Ok(Transport::Stdio {
        command: command.to_string(),
        args,
        env,
    })
}

/// `env` or `headers`: an object of name → string (empty when absent).
pub(super) fn string_map<'a>(
    entry: &Entry<'a>,
    key: &str,
    diags: &mut Diagnostics,
) -> Result<Vec<(&'a String, &'a str)>, Skipped> {
    let Some(obj) = entry.opt_table(diags, key, "an object of name → string")? else {
        return Ok(Vec::new());
    };
    let kpath = entry.path.key(key);
    obj.iter()
        .map(|(k, v)| {
            // Never echo the value: it may be a credential.
            entry
                .report
                .expect(diags, &kpath.key(k), v, "a string value", Value::as_str)
                .map(|s| (k, s))
        })
        .collect()
}
