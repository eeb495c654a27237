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
//!
//! This file owns the types and the top level of the file; one server
//! entry is read in `entry` (and, for a `url` server, `streamable_http`).

use std::collections::BTreeMap;
use std::fmt;

use http::header::HeaderName;
use serde_json::Value;
use url::Url;

use super::diagnostics::Diagnostics;
use super::env::{Env, Secret};
use super::expand::{KeyPath, expand_json};
use super::fields::TopLevel;
use super::node::Node;

mod entry;
mod streamable_http;

/// One downstream MCP server, validated.
#[derive(Clone, PartialEq)]
pub struct ServerSpec {
    pub name: String,
    pub transport: Transport,
    /// `"prefix": false`: the server's tools and prompts are exposed under
    /// their own names and its resources under their own URIs, instead of
    /// `mcp__<server>__<name>` and `woollama://<server>/<uri>`.
    pub prefix: bool,
    /// Which protocol generation woollama speaks to it (`"protocol"`).
    pub protocol: Protocol,
}

/// `"protocol"` of a server entry: which MCP generation woollama speaks to
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `"auto"` (the default): ask with `server/discover` and speak
    /// 2026-07-28 when the server does, else 2025-11-25 with `initialize`.
    #[default]
    Auto,
    /// `"2025-11-25"`: `initialize` only, never probe.
    Legacy,
    /// `"2026-07-28"`: `server/discover` only; a server without it fails to
    /// connect.
    Modern,
}

impl Protocol {
    /// The values `"protocol"` takes.
    pub const CHOICES: &'static str = "\"auto\", \"2025-11-25\" or \"2026-07-28\"";

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "2025-11-25" => Some(Self::Legacy),
            "2026-07-28" => Some(Self::Modern),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq)]
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
        d.field("protocol", &self.protocol);
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
    /// Where store-backed conversations keep their messages.
    pub conversation_store: Option<StoreSpec>,
}

/// The external conversation store (`conversationStore`, contract §8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// An `mcpServers` server with `create_thread`, `get_thread`,
    /// `append_turn` and `delete_thread`.
    Mcp { server: String },
    /// A REST store: `PUT/GET/PATCH/DELETE <url>/threads/{id}`.
    Http { url: Url },
}

/// `conversationStore`: `"server"`, `{"type": "mcp", "server": …}` or
/// `{"type": "http", "url": …}`; anything else is an error (no store).
fn store_spec(
    value: &Value,
    servers: &[ServerSpec],
    file: &str,
    diags: &mut Diagnostics,
) -> Option<StoreSpec> {
    let path = KeyPath::root().key("conversationStore");
    let fix = "use \"<server>\", {\"type\": \"mcp\", \"server\": \"<server>\"} or {\"type\": \"http\", \"url\": \"http://…\"}";
    let spec = match value {
        Value::String(server) => StoreSpec::Mcp {
            server: server.clone(),
        },
        Value::Object(o) => match (
            o.get("type").and_then(Value::as_str),
            o.get("server"),
            o.get("url"),
        ) {
            (Some("mcp"), Some(Value::String(server)), _) => StoreSpec::Mcp {
                server: server.clone(),
            },
            (Some("http"), _, Some(Value::String(url))) => match Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => StoreSpec::Http { url: u },
                _ => {
                    diags.error(
                        file,
                        &path.key("url"),
                        format!("{url:?} is not an http:// or https:// URL; no conversation store"),
                    );
                    return None;
                }
            },
            _ => {
                diags.error(
                    file,
                    &path,
                    format!("not a conversation store: {fix}; no conversation store"),
                );
                return None;
            }
        },
        _ => {
            diags.error(
                file,
                &path,
                format!("expected a string or an object: {fix}; no conversation store"),
            );
            return None;
        }
    };
    if let StoreSpec::Mcp { server } = &spec
        && !servers.iter().any(|s| &s.name == server)
    {
        diags.error(
            file,
            &path,
            format!("server '{server}' is not a usable entry of mcpServers; add it, or name another; no conversation store"),
        );
        return None;
    }
    Some(spec)
}

const TOP_LEVEL: TopLevel<'static> = TopLevel {
    entries: "mcpServers",
    expected: "an object of server name → server",
    doc_entries: false,
    handled: &["conversationStore"],
    unsupported: &["fabric"],
    unsupported_why: "not supported by this version of woollama; the key is ignored",
    unknown: "unknown key, ignored (known keys: mcpServers, conversationStore; `_`-prefixed keys are documentation)",
};

/// Parses and validates `mcp.json` text. `file` is how the file is named in
/// messages.
pub fn parse(text: &str, file: &str, env: &Env, diags: &mut Diagnostics) -> McpConfig {
    let Some(mut doc) = parse_json(text, file, diags) else {
        return McpConfig::default();
    };
    if diags.fatal_all(file, expand_json(&mut doc, env)) {
        return McpConfig::default();
    }
    let Value::Object(top) = &doc else {
        return McpConfig::default();
    };
    let mut out = McpConfig::default();
    TOP_LEVEL.walk::<Value>(
        top,
        file,
        diags,
        |name, entry, path, diags| match entry::server(name, entry, file, path, diags) {
            Some(spec) => out.servers.push(spec),
            None => out.skipped.push(name.to_string()),
        },
    );
    if let Some(store) = top.get("conversationStore").filter(|v| !v.is_null()) {
        out.conversation_store = store_spec(store, &out.servers, file, diags);
    }
    warn_unprefixed(&out, file, diags);
    out
}

/// The document, if it is a JSON object; anything else is fatal.
fn parse_json(text: &str, file: &str, diags: &mut Diagnostics) -> Option<Value> {
    let root = KeyPath::root();
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            diags.fatal(
                file,
                &root,
                format!("not valid JSON: {e}. Fix the syntax (a trailing comma or a missing quote is the usual cause)."),
            );
            return None;
        }
    };
    if !doc.is_object() {
        diags.fatal(
            file,
            &root,
            format!(
                "expected a JSON object like {{\"mcpServers\": {{…}}}}, found {}",
                doc.kind()
            ),
        );
        return None;
    }
    Some(doc)
}

/// Two or more `"prefix": false` servers may offer the same name: say which
/// one wins.
fn warn_unprefixed(out: &McpConfig, file: &str, diags: &mut Diagnostics) {
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
            &KeyPath::root().key("mcpServers"),
            format!(
                "{} servers have \"prefix\": false ({}); a name two of them offer goes to the first by name ('{first}') and the others keep their prefixed name (`woollama check-config --connect` lists actual collisions)",
                unprefixed.len(),
                unprefixed.join(", ")
            ),
        );
    }
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
    fn protocol_names_a_generation_and_defaults_to_auto() {
        let (c, d) = load(
            r#"{"mcpServers": {"a": {"command": "x"}, "b": {"command": "x", "protocol": "2025-11-25"}, "c": {"url": "http://127.0.0.1:1/mcp", "protocol": "2026-07-28"}, "d": {"command": "x", "protocol": "2026"}, "e": {"command": "x", "protocol": 7}}}"#,
        );
        let protocols: Vec<(&str, Protocol)> = c
            .servers
            .iter()
            .map(|s| (s.name.as_str(), s.protocol))
            .collect();
        assert_eq!(
            protocols,
            vec![
                ("a", Protocol::Auto),
                ("b", Protocol::Legacy),
                ("c", Protocol::Modern)
            ]
        );
        let errors = messages(&d, Severity::Error);
        assert!(
            errors.iter().any(|e| e.contains("mcpServers.d.protocol")
                && e.contains("\"2026\" is not a protocol")
                && e.contains("\"auto\", \"2025-11-25\" or \"2026-07-28\"")
                && e.ends_with("server skipped")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("mcpServers.e.protocol")),
            "{errors:?}"
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
