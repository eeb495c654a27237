//! `mcp.json`: the downstream MCP servers (contract §2.3).
//!
//! The shape is Claude Code's `mcpServers` block, so a user can paste theirs.
//! Each entry is validated on its own: a bad entry is skipped with an error
//! that names it and never takes its siblings down. Only a file that cannot
//! mean anything (not JSON, not an object, an unset `${VAR}`) is fatal.
//!
//! Header and `env` values may be credentials: they are kept as [`Secret`]s
//! and no message or `Debug` output ever prints them (names only; URLs are
//! shown without their query string).

use std::collections::BTreeMap;
use std::fmt;

use http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use super::diagnostics::{Diagnostics, json_kind};
use super::env::{Env, Secret};
use super::expand::{KeyPath, expand_json};

/// One downstream MCP server, validated.
#[derive(Clone)]
pub struct ServerSpec {
    pub name: String,
    pub transport: Transport,
    /// `"prefix": false`: the server's tools and prompts are exposed under
    /// their own names and its resources under their own URIs, instead of
    /// `mcp__<server>__<name>` and `woollama://<server>/<uri>`.
    pub prefix: bool,
}

#[derive(Clone)]
pub enum Transport {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Merged over the allow-listed base environment.
        env: BTreeMap<String, Secret>,
    },
    /// A Streamable HTTP endpoint.
    Http {
        url: Url,
        headers: Vec<(HeaderName, Secret)>,
    },
}

impl Transport {
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }
}

/// A URL as it may be shown: no query string, no password.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

impl fmt::Debug for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerSpec");
        d.field("name", &self.name);
        match &self.transport {
            Transport::Stdio { command, args, env } => d
                .field("command", command)
                .field("args", args)
                .field("env", &env.keys().collect::<Vec<_>>()),
            Transport::Http { url, headers } => d.field("url", &display_url(url)).field(
                "headers",
                &headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ),
        };
        d.finish()
    }
}

/// The result of reading `mcp.json`.
#[derive(Debug, Clone, Default)]
pub struct McpConfig {
    /// Usable servers, in file order.
    pub servers: Vec<ServerSpec>,
    /// Names of the entries that were skipped.
    pub skipped: Vec<String>,
}

const SERVER_KEYS: &[&str] = &["command", "args", "env", "url", "headers", "type", "prefix"];

/// Parses and validates `mcp.json` text. `file` is how the file is named in
/// messages.
pub fn parse(text: &str, file: &str, env: &Env, diags: &mut Diagnostics) -> McpConfig {
    let root = KeyPath::root();
    let mut doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            diags.fatal(
                file,
                &root,
                format!("not valid JSON: {e}. Fix the syntax (a trailing comma or a missing quote is the usual cause)."),
            );
            return McpConfig::default();
        }
    };
    let Value::Object(_) = &doc else {
        diags.fatal(
            file,
            &root,
            format!(
                "expected a JSON object like {{\"mcpServers\": {{…}}}}, found {}",
                json_kind(&doc)
            ),
        );
        return McpConfig::default();
    };

    if diags.fatal_all(file, expand_json(&mut doc, env)) {
        return McpConfig::default();
    }

    let Value::Object(top) = doc else {
        return McpConfig::default();
    };
    let mut out = McpConfig::default();
    for (key, value) in &top {
        let path = root.key(key);
        match key.as_str() {
            "mcpServers" => match value {
                Value::Object(servers) => {
                    for (name, entry) in servers {
                        let spath = path.key(name);
                        match server(name, entry, file, &spath, diags) {
                            Some(spec) => out.servers.push(spec),
                            None => out.skipped.push(name.clone()),
                        }
                    }
                }
                other => diags.fatal(
                    file,
                    &path,
                    format!(
                        "expected an object of server name → server, found {}",
                        json_kind(other)
                    ),
                ),
            },
            "conversationStore" | "fabric" => diags.warn(
                file,
                &path,
                "not supported by this version of woollama; the key is ignored",
            ),
            k if k.starts_with('_') => {}
            _ => diags.warn(
                file,
                &path,
                "unknown key, ignored (known keys: mcpServers; `_`-prefixed keys are documentation)",
            ),
        }
    }
    let mut unprefixed: Vec<&str> = out
        .servers
        .iter()
        .filter(|s| !s.prefix)
        .map(|s| s.name.as_str())
        .collect();
    unprefixed.sort_unstable();
    if let [first, rest @ ..] = unprefixed.as_slice()
        && !rest.is_empty()
    {
        diags.warn(
            file,
            &root.key("mcpServers"),
            format!(
                "{} servers have \"prefix\": false ({}); a name two of them offer goes to the first by name ('{first}') and the others keep their prefixed name (`woollama check-config --connect` lists actual collisions)",
                unprefixed.len(),
                unprefixed.join(", ")
            ),
        );
    }
    out
}

fn server(
    name: &str,
    entry: &Value,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<ServerSpec> {
    let Value::Object(map) = entry else {
        diags.error(
            file,
            path,
            format!(
                "expected an object with `command` (stdio) or `url` (Streamable HTTP), found {}; server skipped",
                json_kind(entry)
            ),
        );
        return None;
    };
    if name.is_empty() {
        diags.error(file, path, "a server name cannot be empty; server skipped");
        return None;
    }
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
    for key in map.keys() {
        if !SERVER_KEYS.contains(&key.as_str()) && !key.starts_with('_') {
            diags.warn(file, &path.key(key), "unknown server key, ignored");
        }
    }

    // An entry is either stdio or http; empty strings count as unset.
    let command = nonempty_string(map, "command", file, path, diags)?;
    let url = nonempty_string(map, "url", file, path, diags)?;
    let declared = match map.get("type") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(other) => {
            diags.error(
                file,
                &path.key("type"),
                format!(
                    "expected a string, found {}; server skipped",
                    json_kind(other)
                ),
            );
            return None;
        }
    };
    if declared == Some("sse") {
        diags.error(
            file,
            &path.key("type"),
            "the legacy HTTP+SSE transport is not supported; point `url` at the server's Streamable HTTP endpoint and drop `type`; server skipped",
        );
        return None;
    }
    let transport = match (command, url) {
        (Some(_), Some(_)) => {
            diags.error(
                file,
                path,
                "set either `command` (a stdio server) or `url` (a Streamable HTTP server), not both; server skipped",
            );
            return None;
        }
        (None, None) => {
            diags.error(
                file,
                path,
                "neither `command` (a stdio server) nor `url` (a Streamable HTTP server) is set; server skipped",
            );
            return None;
        }
        (Some(command), None) => {
            if let Some(t) = declared.filter(|t| *t != "stdio") {
                diags.warn(
                    file,
                    &path.key("type"),
                    format!("`type` is {t:?} but the entry has `command`; treated as stdio"),
                );
            }
            if map.contains_key("headers") {
                diags.warn(
                    file,
                    &path.key("headers"),
                    "`headers` applies to `url` servers only; ignored",
                );
            }
            stdio(command, map, file, path, diags)?
        }
        (None, Some(url)) => {
            if let Some(t) =
                declared.filter(|t| !matches!(*t, "http" | "streamable-http" | "streamableHttp"))
            {
                diags.warn(
                    file,
                    &path.key("type"),
                    format!("`type` is {t:?} but the entry has `url`; treated as Streamable HTTP"),
                );
            }
            for key in ["args", "env"] {
                if map.contains_key(key) {
                    diags.warn(
                        file,
                        &path.key(key),
                        format!("`{key}` applies to `command` servers only; ignored"),
                    );
                }
            }
            http(url, map, file, path, diags)?
        }
    };
    let prefix = match map.get("prefix") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            diags.error(
                file,
                &path.key("prefix"),
                format!(
                    "expected true or false, found {}; server skipped",
                    json_kind(other)
                ),
            );
            return None;
        }
    };
    Some(ServerSpec {
        name: name.to_string(),
        transport,
        prefix,
    })
}

/// `Ok(None)` when absent or empty; `None` (outer) when the entry is invalid.
fn nonempty_string<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<Option<&'a str>> {
    match map.get(key) {
        None => Some(None),
        Some(Value::String(s)) if s.trim().is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.as_str())),
        Some(other) => {
            diags.error(
                file,
                &path.key(key),
                format!(
                    "expected a string, found {}; server skipped",
                    json_kind(other)
                ),
            );
            None
        }
    }
}

fn string_map(
    map: &Map<String, Value>,
    key: &str,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<Vec<(String, String)>> {
    let kpath = path.key(key);
    match map.get(key) {
        None => Some(Vec::new()),
        Some(Value::Object(obj)) => {
            let mut out = Vec::with_capacity(obj.len());
            for (k, v) in obj {
                match v {
                    Value::String(s) => out.push((k.clone(), s.clone())),
                    other => {
                        // Never echo the value: it may be a credential.
                        diags.error(
                            file,
                            &kpath.key(k),
                            format!(
                                "expected a string value, found {}; server skipped",
                                json_kind(other)
                            ),
                        );
                        return None;
                    }
                }
            }
            Some(out)
        }
        Some(other) => {
            diags.error(
                file,
                &kpath,
                format!(
                    "expected an object of name → string, found {}; server skipped",
                    json_kind(other)
                ),
            );
            None
        }
    }
}

fn stdio(
    command: &str,
    map: &Map<String, Value>,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<Transport> {
    let args = match map.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut args = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => args.push(s.clone()),
                    other => {
                        diags.error(
                            file,
                            &path.key("args").index(i),
                            format!(
                                "expected a string, found {} (quote it); server skipped",
                                json_kind(other)
                            ),
                        );
                        return None;
                    }
                }
            }
            args
        }
        Some(other) => {
            diags.error(
                file,
                &path.key("args"),
                format!(
                    "expected an array of strings, found {}; server skipped",
                    json_kind(other)
                ),
            );
            return None;
        }
    };
    let mut env = BTreeMap::new();
    for (k, v) in string_map(map, "env", file, path, diags)? {
        if v.is_empty() {
            diags.warn(
                file,
                &path.key("env").key(&k),
                "resolves to an empty value; the server gets an empty variable",
            );
        }
        env.insert(k, Secret::new(v));
    }
    Some(Transport::Stdio {
        command: command.to_string(),
        args,
        env,
    })
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host_str() {
        Some(h) => {
            h.eq_ignore_ascii_case("localhost")
                || h == "[::1]"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

fn http(
    raw_url: &str,
    map: &Map<String, Value>,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<Transport> {
    let upath = path.key("url");
    let url = match Url::parse(raw_url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        Ok(u) => {
            diags.error(
                file,
                &upath,
                format!(
                    "expected an http:// or https:// URL, found scheme {:?}; server skipped",
                    u.scheme()
                ),
            );
            return None;
        }
        Err(e) => {
            diags.error(
                file,
                &upath,
                format!(
                    "not a valid URL ({e}); write it like http://127.0.0.1:9200/mcp; server skipped"
                ),
            );
            return None;
        }
    };
    let mut headers = Vec::new();
    for (name, value) in string_map(map, "headers", file, path, diags)? {
        let hpath = path.key("headers").key(&name);
        let Ok(hname) = HeaderName::from_bytes(name.as_bytes()) else {
            diags.error(file, &hpath, "not a valid HTTP header name; server skipped");
            return None;
        };
        if matches!(
            hname.as_str(),
            "accept" | "mcp-session-id" | "last-event-id"
        ) {
            diags.error(
                file,
                &hpath,
                "woollama sets this header itself for Streamable HTTP; remove it; server skipped",
            );
            return None;
        }
        let trimmed = value.trim();
        if trimmed.is_empty() {
            diags.error(
                file,
                &hpath,
                "the value is empty; set it (for a token from the environment write \"Bearer ${TOKEN}\") or remove the header; server skipped",
            );
            return None;
        }
        if matches!(hname.as_str(), "authorization" | "proxy-authorization")
            && !trimmed.contains(char::is_whitespace)
            && ["bearer", "basic", "digest", "token"]
                .iter()
                .any(|s| trimmed.eq_ignore_ascii_case(s))
        {
            diags.error(
                file,
                &hpath,
                "the value is only a scheme with no credential (is the variable it references empty?); server skipped",
            );
            return None;
        }
        if HeaderValue::from_str(trimmed).is_err() {
            diags.error(
                file,
                &hpath,
                "the value has characters HTTP headers cannot carry (a newline or a control character); server skipped",
            );
            return None;
        }
        headers.push((hname, Secret::new(trimmed)));
    }
    if !headers.is_empty() && url.scheme() == "http" && !is_loopback_host(&url) {
        diags.warn(
            file,
            &path.key("headers"),
            format!(
                "headers are sent over plain http:// to the non-loopback host {}; anyone on the network can read them — use https://",
                url.host_str().unwrap_or("?")
            ),
        );
    }
    Some(Transport::Http { url, headers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostics::Severity;

    fn load(text: &str) -> (McpConfig, Diagnostics) {
        let mut d = Diagnostics::default();
        let env = Env::from_pairs([("TOKEN", "abc"), ("EMPTY", "")]);
        let c = parse(text, "mcp.json", &env, &mut d);
        (c, d)
    }

    fn messages(d: &Diagnostics, s: Severity) -> Vec<String> {
        d.of(s).map(ToString::to_string).collect()
    }

    #[test]
    fn stdio_and_http_servers_parse() {
        let (c, d) = load(
            r#"{"_doc": "x", "mcpServers": {
                "hello": {"command": "woollama", "args": ["example-server", "hello"], "env": {"A": "1"}},
                "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
            }}"#,
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.servers.len(), 2);
        match &c.servers[1].transport {
            Transport::Http { headers, .. } => {
                assert_eq!(headers[0].1.expose(), "Bearer abc");
            }
            Transport::Stdio { .. } => panic!("expected http"),
        }
    }

    #[test]
    fn a_bad_entry_is_skipped_and_siblings_survive() {
        let (c, d) = load(
            r#"{"mcpServers": {
                "both": {"command": "x", "url": "http://127.0.0.1/mcp"},
                "neither": {"args": []},
                "badenv": {"command": "x", "env": {"K": 1}},
                "badarg": {"command": "x", "args": ["--port", 8080]},
                "sse": {"type": "sse", "url": "http://127.0.0.1/sse"},
                "ok": {"command": "x"}
            }}"#,
        );
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.servers[0].name, "ok");
        assert_eq!(
            c.skipped,
            vec!["both", "neither", "badenv", "badarg", "sse"]
        );
        let errors = messages(&d, Severity::Error);
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("mcp.json: mcpServers.both: set either"));
        assert!(
            errors[3].contains("mcpServers.badarg.args[1]"),
            "{}",
            errors[3]
        );
        assert!(!d.has_fatal());
    }

    #[test]
    fn header_values_never_appear_in_messages() {
        let (c, d) = load(
            r#"{"mcpServers": {
                "bare": {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${EMPTY}"}},
                "ctl": {"url": "https://h/mcp", "headers": {"X-Key": "sk-live-123\nx"}},
                "plain": {"url": "http://10.0.0.5/mcp?key=sk-query", "headers": {"X-Key": "sk-live-456"}}
            }}"#,
        );
        assert_eq!(c.servers.len(), 1);
        let all: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 3, "{all:?}");
        for m in &all {
            assert!(!m.contains("sk-live") && !m.contains("sk-query"), "{m}");
        }
        assert!(all[0].contains("only a scheme"));
        assert!(all[2].contains("plain http://"));
        let shown = format!("{:?}", c.servers[0]);
        assert!(!shown.contains("sk-"), "{shown}");
    }

    #[test]
    fn unparseable_and_unset_vars_are_fatal() {
        let (_, d) = load(r#"{"mcpServers": {"a": {"command": "x",}}}"#);
        assert!(d.has_fatal());
        assert!(messages(&d, Severity::Fatal)[0].contains("not valid JSON"));

        let (c, d) = load(
            r#"{"mcpServers": {"_off": {"command": "${NOT_SET}"}, "b": {"command": "${ALSO}"}}}"#,
        );
        let fatal = messages(&d, Severity::Fatal);
        assert_eq!(fatal.len(), 2);
        assert!(fatal[0].contains("mcpServers._off.command") && fatal[0].contains("${NOT_SET}"));
        assert!(fatal[1].contains("${ALSO}"));
        assert!(c.servers.is_empty());
    }

    #[test]
    fn prefix_is_a_boolean_and_several_unprefixed_servers_warn() {
        let (c, d) = load(
            r#"{"mcpServers": {"z": {"command": "x", "prefix": false}, "a": {"command": "x", "prefix": false}, "p": {"command": "x"}, "bad": {"command": "x", "prefix": "no"}}}"#,
        );
        let prefixes: Vec<(&str, bool)> = c
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.prefix))
            .collect();
        assert_eq!(prefixes, vec![("z", false), ("a", false), ("p", true)]);
        let errors = messages(&d, Severity::Error);
        assert!(
            errors[0].contains("mcpServers.bad.prefix")
                && errors[0].contains("expected true or false"),
            "{errors:?}"
        );
        let warnings = messages(&d, Severity::Warning);
        assert!(
            warnings[0].contains("2 servers have \"prefix\": false (a, z)")
                && warnings[0].contains("first by name ('a')"),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_keys_warn() {
        let (c, d) = load(r#"{"mcpServers": {"a": {"command": "x", "features": []}}, "extra": 1}"#);
        assert_eq!(c.servers.len(), 1);
        assert_eq!(messages(&d, Severity::Warning).len(), 2);
        assert_eq!(d.problems(), 0);
    }
}
