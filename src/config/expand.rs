//! `${VAR}` and `${VAR:-default}` references in `mcp.json` and
//! `inferencers.toml` (contract §2.2).
//!
//! Rules, as existing configs rely on them:
//! - only the braced form is a reference; a bare `$VAR` is left alone;
//! - `${VAR}` is the value; a variable that is **unset** (not merely empty)
//!   is a hard error that names it;
//! - `${VAR:-default}` uses the default when VAR is unset *or* empty; the
//!   default runs to the first `}`, so it cannot nest;
//! - keys starting with `_` are documentation: a reference under one is
//!   still expanded (an `env` entry such as `_JAVA_OPTIONS` is data), but
//!   never reported — except the server names directly under `mcpServers`,
//!   which are always checked.
//!
//! One deliberate difference from the existing implementations: they expand
//! the raw file text before parsing. We parse first and expand each string
//! value, which gives the same result for every ordinary config but means a
//! value containing `"` or `\` can never break the JSON or TOML around it.
//! Keys are not expanded.
//!
//! A reference we cannot read — `${}`, `${A:-${B}}`, `${A:b}`, an unclosed
//! `${` — is reported as malformed and refuses the config: silently producing
//! a literal `${B` would hand a downstream a wrong path or credential.

use std::fmt;

use super::env::Env;
use super::node::{Node, Open};

/// What went wrong with one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `${NAME}` with NAME unset and no default.
    Unset { name: String },
    /// A `${` that is not a well-formed reference.
    Malformed { text: String, reason: &'static str },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unset { name } => write!(
                f,
                "references a variable which is not set: ${{{name}}}. Export it, or declare a \
                 fallback with `${{{name}:-default}}` if absence is intended."
            ),
            Problem::Malformed { text, reason } => write!(
                f,
                "`{text}` is not a valid reference ({reason}). Write `${{VAR}}` or \
                 `${{VAR:-default}}`; defaults cannot contain another reference."
            ),
        }
    }
}

/// The result of expanding one string.
#[derive(Debug, Default)]
pub struct Expanded {
    pub value: String,
    pub problems: Vec<Problem>,
    /// Whether the string contained at least one reference.
    pub had_reference: bool,
}

/// Whether `s` is a variable name: a letter or `_`, then letters, digits
/// and `_`.
pub(super) fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Expands every reference in `input` against `env`.
pub fn expand(input: &str, env: &Env) -> Expanded {
    let mut out = Expanded {
        value: String::with_capacity(input.len()),
        ..Expanded::default()
    };
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.value.push_str(&rest[..start]);
        out.had_reference = true;
        let after = &rest[start + 2..];
        let Some(close) = after.find('}') else {
            // Unclosed: copy the rest verbatim and stop scanning.
            out.problems.push(Problem::Malformed {
                text: rest[start..].chars().take(40).collect(),
                reason: "no closing `}`",
            });
            out.value.push_str(&rest[start..]);
            return out;
        };
        let body = &after[..close];
        let whole = &rest[start..start + 2 + close + 1];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_var_name(name) {
            let reason = if name.is_empty() {
                "empty variable name"
            } else if name.contains("${") {
                "references cannot nest"
            } else {
                "a variable name is letters, digits and `_`"
            };
            out.problems.push(Problem::Malformed {
                text: whole.to_string(),
                reason,
            });
            out.value.push_str(whole);
        } else if default.is_some_and(|d| d.contains("${")) {
            out.problems.push(Problem::Malformed {
                text: whole.to_string(),
                reason: "references cannot nest",
            });
            out.value.push_str(whole);
        } else {
            match (env.get(name), default) {
                (Some(""), Some(d)) => out.value.push_str(d),
                (Some(v), _) => out.value.push_str(v),
                (None, Some(d)) => out.value.push_str(d),
                (None, None) => out.problems.push(Problem::Unset {
                    name: name.to_string(),
                }),
            }
        }
        rest = &after[close + 1..];
    }
    out.value.push_str(rest);
    out
}

/// A dotted key path into a config document, for messages:
/// `mcpServers.git.env.TOKEN`, `args[2]`, `mcpServers."my server"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root() -> Self {
        Self(String::new())
    }

    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let seg = if plain {
            key.to_string()
        } else {
            format!("{key:?}")
        };
        if self.0.is_empty() {
            Self(seg)
        } else {
            Self(format!("{}.{seg}", self.0))
        }
    }

    #[must_use]
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A problem found while expanding a document, with where it was.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: KeyPath,
    pub problem: Problem,
}

/// Whether a key is documentation. Server names under `mcpServers` never are.
fn is_doc_key(parent: &KeyPath, key: &str) -> bool {
    key.starts_with('_') && parent.0 != "mcpServers"
}

/// Expands every string value of a JSON document in place.
pub fn expand_json(value: &mut serde_json::Value, env: &Env) -> Vec<Located> {
    let mut walk = Walk {
        env,
        found: Vec::new(),
    };
    walk.value(value, &KeyPath::root(), false);
    walk.found
}

/// Expands every string value of a TOML document in place.
pub fn expand_toml(table: &mut toml::Table, env: &Env) -> Vec<Located> {
    let mut walk = Walk {
        env,
        found: Vec::new(),
    };
    walk.table::<toml::Value>(table, &KeyPath::root(), false);
    walk.found
}

/// One walk over a document of either format; `doc` is whether the value is
/// under a documentation key.
struct Walk<'e> {
    env: &'e Env,
    found: Vec<Located>,
}

impl Walk<'_> {
    fn value<V: Node>(&mut self, value: &mut V, path: &KeyPath, doc: bool) {
        match value.open() {
            Open::Text(s) => self.text(s, path, doc),
            Open::Items(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, &path.index(i), doc);
                }
            }
            Open::Table(table) => self.table::<V>(table, path, doc),
            Open::Leaf => {}
        }
    }

    fn table<V: Node>(&mut self, table: &mut V::Map, path: &KeyPath, doc: bool) {
        for (k, v) in V::entries_mut(table) {
            let doc = doc || is_doc_key(path, k);
            self.value(v, &path.key(k), doc);
        }
    }

    /// Expands one value; under a documentation key, problems are not
    /// reported.
    fn text(&mut self, s: &mut String, path: &KeyPath, doc: bool) {
        if !s.contains("${") {
            return;
        }
        let expanded = expand(s, self.env);
        if !doc {
            self.found
                .extend(expanded.problems.into_iter().map(|problem| Located {
                    path: path.clone(),
                    problem,
                }));
        }
        *s = expanded.value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("HOME", "/home/u"), ("EMPTY", ""), ("TOKEN", "t\"k")])
    }

    fn ok(s: &str) -> String {
        let e = expand(s, &env());
        assert!(e.problems.is_empty(), "{s}: {:?}", e.problems);
        e.value
    }

    #[test]
    fn braced_references_expand() {
        assert_eq!(ok("${HOME}/x"), "/home/u/x");
        assert_eq!(ok("a${HOME}b${HOME}c"), "a/home/ub/home/uc");
        assert_eq!(ok("no refs"), "no refs");
    }

    #[test]
    fn braceless_dollar_is_left_alone() {
        assert_eq!(ok("$HOME and $"), "$HOME and $");
    }

    #[test]
    fn defaults_follow_posix_colon_dash() {
        assert_eq!(ok("${UNSET:-/opt/x}"), "/opt/x");
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${HOME:-fallback}"), "/home/u");
        assert_eq!(ok("${UNSET:-}"), "");
        // The default runs to the first `}`.
        assert_eq!(ok("${UNSET:-/opt/x:-y}"), "/opt/x:-y");
    }

    #[test]
    fn set_but_empty_is_not_an_error() {
        assert_eq!(ok("${EMPTY}"), "");
    }

    #[test]
    fn bare_unset_is_reported_by_name() {
        let e = expand("${NOPE}/${ALSO_NOPE}", &env());
        assert_eq!(
            e.problems,
            vec![
                Problem::Unset {
                    name: "NOPE".into()
                },
                Problem::Unset {
                    name: "ALSO_NOPE".into()
                }
            ]
        );
        assert_eq!(e.value, "/");
        let msg = e.problems[0].to_string();
        assert!(
            msg.contains("${NOPE}") && msg.contains("${NOPE:-default}"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_references_are_reported() {
        for bad in [
            "${}",
            "${A:-${HOME}/fb}",
            "${${HOME}}",
            "${A:b}",
            "tail ${OPEN",
        ] {
            let e = expand(bad, &env());
            assert!(
                matches!(e.problems.as_slice(), [Problem::Malformed { .. }, ..]),
                "{bad}: {:?}",
                e.problems
            );
        }
        // An unclosed `${` copies the rest verbatim.
        assert_eq!(expand("a ${OPEN", &env()).value, "a ${OPEN");
    }

    #[test]
    fn json_walk_skips_doc_keys_but_not_server_names() {
        let mut doc = serde_json::json!({
            "_doc": "${UNSET_IN_DOC}",
            "mcpServers": {
                "_disabled": {"command": "${UNSET_SERVER}"},
                "git": {"env": {"TOKEN": "${TOKEN}", "_note": "${UNSET_NOTE}", "_JAVA": "-Xmx${HOME}"},
                        "args": ["a", "${MISSING_ARG}"]}
            }
        });
        let found = expand_json(&mut doc, &env());
        let paths: Vec<String> = found.iter().map(|l| l.path.to_string()).collect();
        assert_eq!(
            paths,
            vec!["mcpServers._disabled.command", "mcpServers.git.args[1]"]
        );
        // A value with a quote expands without breaking anything.
        assert_eq!(doc["mcpServers"]["git"]["env"]["TOKEN"], "t\"k");
        // Under `_` keys references still expand (they may be data, like an
        // `env` entry), but an unset one is not reported.
        assert_eq!(doc["mcpServers"]["git"]["env"]["_JAVA"], "-Xmx/home/u");
        assert_eq!(doc["mcpServers"]["git"]["env"]["_note"], "");
        assert_eq!(doc["_doc"], "");
    }

    #[test]
    fn toml_walk_expands_nested_values() {
        let mut t: toml::Table = toml::from_str(
            "[inferencers.vllm]\nbase_url = \"http://${HOST:-gpu}:8000/v1\"\n_doc = \"${X}\"\n\
             [inferencers.vllm.extra_body]\nuser = \"${NOPE}\"\n",
        )
        .expect("toml");
        let found = expand_toml(&mut t, &env());
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].path.to_string(),
            "inferencers.vllm.extra_body.user"
        );
        assert_eq!(
            t["inferencers"]["vllm"]["base_url"].as_str(),
            Some("http://gpu:8000/v1")
        );
    }

    #[test]
    fn key_paths_quote_unusual_keys() {
        let p = KeyPath::root()
            .key("mcpServers")
            .key("my server")
            .key("args")
            .index(0);
        assert_eq!(p.to_string(), "mcpServers.\"my server\".args[0]");
    }
}
