//! `recipes.toml`: named system prompt + model + tool allow-list, called as
//! `woollama/<name>` (contract §2.4).
//!
//! Unlike the existing implementations we validate recipes (DESIGN.md
//! decision 7): a recipe without an inferencer, a tool entry that is not
//! `server.tool`, or a tool name with a comma or whitespace is reported,
//! naming the recipe, and that recipe is skipped. `recipes.toml` is never
//! `${VAR}`-expanded, as before.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::diagnostics::{Diagnostics, toml_kind, toml_to_json};
use super::expand::KeyPath;

/// The default cap on model turns per request.
pub const DEFAULT_MAX_TURNS: u32 = 8;

/// One recipe, validated.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    /// `<provider>/<model>` or `claude-code/<model>`.
    pub inferencer: String,
    pub system: String,
    /// The allow-list, in file order. Empty means tool-less.
    pub tools: Vec<ToolRef>,
    /// Merged into every orchestration request after the inferencer's
    /// `extra_body`.
    pub params: Map<String, Value>,
    /// Declared `{{var}}` metadata, by name.
    pub variables: BTreeMap<String, Variable>,
    pub max_turns: u32,
}

impl Recipe {
    /// The system prompt with `{{var}}` tokens filled: supplied values first,
    /// then the variables' defaults; strings go in raw, other values as their
    /// JSON text; tokens with neither stay as written.
    pub fn render_system(&self, supplied: &Map<String, Value>) -> String {
        let mut out = self.system.clone();
        for var in system_variables(&self.system) {
            let value = supplied
                .get(&var)
                .or_else(|| self.variables.get(&var).and_then(|v| v.default.as_ref()));
            if let Some(v) = value {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out = out.replace(&format!("{{{{{var}}}}}"), &text);
            }
        }
        out
    }

    /// The provider half of `inferencer`.
    pub fn provider(&self) -> &str {
        crate::routing::split(&self.inferencer).map_or(self.inferencer.as_str(), |(p, _)| p)
    }
}

/// The distinct `{{var}}` tokens of a system prompt, in first-seen order: a
/// token is non-empty and made of `[A-Za-z0-9_.-]` (surrounding spaces are
/// not allowed, so `{{ x }}` is text).
pub fn system_variables(system: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = system;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let token = &after[..end];
        if !token.is_empty()
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && !out.iter().any(|t| t == token)
        {
            out.push(token.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

/// A `server.tool` allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ToolRef {
    pub server: String,
    pub tool: String,
}

impl fmt::Display for ToolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.server, self.tool)
    }
}

/// `[recipes.<name>.variables.<var>]`.
#[derive(Debug, Clone, Default)]
pub struct Variable {
    pub default: Option<Value>,
    /// Advisory; not enforced.
    pub choices: Vec<Value>,
    pub description: Option<String>,
}

const RECIPE_KEYS: &[&str] = &[
    "inferencer",
    "system",
    "tools",
    "params",
    "variables",
    "max_turns",
];

/// Keys the loop owns; a recipe's `params` may not replace them.
const LOOP_OWNED: &[&str] = &["model", "messages", "stream", "tools"];

/// Parses and validates `recipes.toml` text.
pub fn parse(text: &str, file: &str, diags: &mut Diagnostics) -> BTreeMap<String, Recipe> {
    let root = KeyPath::root();
    let doc: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            diags.fatal(
                file,
                &root,
                format!("not valid TOML: {}", e.to_string().trim_end()),
            );
            return BTreeMap::new();
        }
    };
    let mut out = BTreeMap::new();
    for (key, value) in &doc {
        let path = root.key(key);
        match key.as_str() {
            "recipes" => match value {
                toml::Value::Table(recipes) => {
                    for (name, entry) in recipes {
                        if name.starts_with('_') {
                            continue;
                        }
                        if let Some(r) = recipe(name, entry, file, &path.key(name), diags) {
                            out.insert(name.clone(), r);
                        }
                    }
                }
                other => diags.fatal(
                    file,
                    &path,
                    format!(
                        "expected tables like [recipes.<name>], found {}",
                        toml_kind(other)
                    ),
                ),
            },
            "patterns" => diags.warn(
                file,
                &path,
                "pattern directories are not supported by this version of woollama; ignored",
            ),
            k if k.starts_with('_') => {}
            _ => diags.warn(
                file,
                &path,
                "unknown key, ignored (recipes are [recipes.<name>] tables)",
            ),
        }
    }
    out
}

fn recipe(
    name: &str,
    entry: &toml::Value,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<Recipe> {
    let skip = |diags: &mut Diagnostics, p: &KeyPath, msg: String| {
        diags.error(file, p, format!("{msg}; recipe '{name}' skipped"));
    };
    let toml::Value::Table(t) = entry else {
        skip(
            diags,
            path,
            format!("expected a table, found {}", toml_kind(entry)),
        );
        return None;
    };
    for key in t.keys() {
        if !RECIPE_KEYS.contains(&key.as_str()) && !key.starts_with('_') {
            diags.warn(file, &path.key(key), "not a recipe key, ignored");
        }
    }

    let ipath = path.key("inferencer");
    let inferencer = match t.get("inferencer") {
        None => {
            skip(
                diags,
                path,
                "no `inferencer`: add one like inferencer = \"ollama/qwen3:8b\"".into(),
            );
            return None;
        }
        Some(toml::Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            skip(
                diags,
                &ipath,
                format!(
                    "expected a string like \"ollama/qwen3:8b\", found {}",
                    toml_kind(other)
                ),
            );
            return None;
        }
    };
    match crate::routing::split(&inferencer) {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => {}
        _ => {
            skip(
                diags,
                &ipath,
                format!(
                    "{inferencer:?} is not `<provider>/<model>` (for example \"ollama/qwen3:8b\")"
                ),
            );
            return None;
        }
    }

    let system = match t.get("system") {
        None => String::new(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            skip(
                diags,
                &path.key("system"),
                format!("expected a string, found {}", toml_kind(other)),
            );
            return None;
        }
    };

    let mut tools = Vec::new();
    let tpath = path.key("tools");
    match t.get("tools") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let p = tpath.index(i);
                let toml::Value::String(s) = item else {
                    skip(
                        diags,
                        &p,
                        format!(
                            "expected a string like \"server.tool\", found {}",
                            toml_kind(item)
                        ),
                    );
                    return None;
                };
                if s.contains(',') || s.contains(char::is_whitespace) {
                    skip(
                        diags,
                        &p,
                        format!(
                            "{s:?} contains a comma or whitespace; a tool name is one `server.tool`"
                        ),
                    );
                    return None;
                }
                match s.split_once('.') {
                    Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                        let r = ToolRef {
                            server: server.to_string(),
                            tool: tool.to_string(),
                        };
                        if tools.contains(&r) {
                            diags.warn(file, &p, format!("{s:?} is listed twice"));
                        } else {
                            tools.push(r);
                        }
                    }
                    _ => {
                        skip(
                            diags,
                            &p,
                            format!("{s:?} is not `server.tool` (for example \"hello.count_to\")"),
                        );
                        return None;
                    }
                }
            }
        }
        Some(other) => {
            skip(
                diags,
                &tpath,
                format!(
                    "expected an array like [\"hello.count_to\"], found {}",
                    toml_kind(other)
                ),
            );
            return None;
        }
    }

    let mut params = Map::new();
    match t.get("params") {
        None => {}
        Some(toml::Value::Table(p)) => {
            for (k, v) in p {
                if LOOP_OWNED.contains(&k.as_str()) {
                    diags.warn(
                        file,
                        &path.key("params").key(k),
                        "woollama sets this for every turn; ignored",
                    );
                } else {
                    params.insert(k.clone(), toml_to_json(v));
                }
            }
        }
        Some(other) => {
            skip(
                diags,
                &path.key("params"),
                format!(
                    "expected a table like {{ temperature = 0.2 }}, found {}",
                    toml_kind(other)
                ),
            );
            return None;
        }
    }

    let max_turns = match t.get("max_turns") {
        None => DEFAULT_MAX_TURNS,
        Some(toml::Value::Integer(n)) if (1..=1000).contains(n) => {
            u32::try_from(*n).unwrap_or(DEFAULT_MAX_TURNS)
        }
        Some(other) => {
            let found = match other {
                toml::Value::Integer(n) => n.to_string(),
                v => toml_kind(v).to_string(),
            };
            skip(
                diags,
                &path.key("max_turns"),
                format!("expected a whole number from 1 to 1000, found {found}"),
            );
            return None;
        }
    };

    let variables = variables(t.get("variables"), file, &path.key("variables"), diags);

    Some(Recipe {
        name: name.to_string(),
        inferencer,
        system,
        tools,
        params,
        variables,
        max_turns,
    })
}

fn variables(
    value: Option<&toml::Value>,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> BTreeMap<String, Variable> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let toml::Value::Table(t) = value else {
        diags.warn(
            file,
            path,
            format!(
                "expected tables like [recipes.<name>.variables.<var>], found {}; ignored",
                toml_kind(value)
            ),
        );
        return out;
    };
    for (var, spec) in t {
        let vpath = path.key(var);
        let toml::Value::Table(spec) = spec else {
            diags.warn(
                file,
                &vpath,
                format!("expected a table, found {}; ignored", toml_kind(spec)),
            );
            continue;
        };
        let mut v = Variable::default();
        for (k, val) in spec {
            match (k.as_str(), val) {
                ("default", d) => v.default = Some(toml_to_json(d)),
                ("choices", toml::Value::Array(c)) => {
                    v.choices = c.iter().map(toml_to_json).collect()
                }
                ("description", toml::Value::String(d)) => v.description = Some(d.clone()),
                ("choices" | "description", other) => diags.warn(
                    file,
                    &vpath.key(k),
                    format!("unexpected {}; ignored", toml_kind(other)),
                ),
                _ => diags.warn(
                    file,
                    &vpath.key(k),
                    "not a variable key (default, choices, description); ignored",
                ),
            }
        }
        out.insert(var.clone(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostics::Severity;

    fn load(text: &str) -> (BTreeMap<String, Recipe>, Diagnostics) {
        let mut d = Diagnostics::default();
        let r = parse(text, "recipes.toml", &mut d);
        (r, d)
    }

    #[test]
    fn a_full_recipe_parses() {
        let (r, d) = load(
            r#"
[recipes.counter]
inferencer = "ollama/qwen3:8b"
system = "Count for {{who}}."
tools = ["hello.count_to", "textops.word_count"]
max_turns = 3
params = { temperature = 0.2, model = "sneaky" }
[recipes.counter.variables.who]
default = "me"
description = "who is counting"
"#,
        );
        let c = &r["counter"];
        assert_eq!(c.provider(), "ollama");
        assert_eq!(c.tools[0].to_string(), "hello.count_to");
        assert_eq!(c.max_turns, 3);
        assert_eq!(c.params.get("temperature"), Some(&serde_json::json!(0.2)));
        assert!(c.params.get("model").is_none());
        assert_eq!(c.variables["who"].default, Some(serde_json::json!("me")));
        // The loop-owned `model` param is warned about, nothing else.
        assert_eq!(d.iter().count(), 1);
        assert_eq!(d.problems(), 0);
    }

    #[test]
    fn bad_recipes_are_skipped_and_named() {
        let (r, d) = load(
            r#"
[recipes.noinf]
system = "x"
[recipes.noslash]
inferencer = "qwen3"
[recipes.badtool]
inferencer = "ollama/m"
tools = ["hello"]
[recipes.comma]
inferencer = "ollama/m"
tools = ["hello.count_to,hello.hello"]
[recipes.fine]
inferencer = "claude-code/haiku"
"#,
        );
        assert_eq!(r.keys().collect::<Vec<_>>(), vec!["fine"]);
        let errors: Vec<String> = d.of(Severity::Error).map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors[0].contains("recipes.noinf") && errors[0].contains("recipe 'noinf' skipped")
        );
        assert!(errors[2].contains("recipes.badtool.tools[0]"));
        assert!(errors[3].contains("comma or whitespace"));
        let fine = &r["fine"];
        assert!(fine.tools.is_empty() && fine.system.is_empty());
        assert_eq!(fine.max_turns, DEFAULT_MAX_TURNS);
    }

    #[test]
    fn system_variables_render_with_defaults() {
        let (r, _) = load(
            "[recipes.x]\ninferencer = \"a/b\"\nsystem = \"Hi {{who}}, in {{lang}} {{who}} {{ spaced }} {{n}}\"\n\
             [recipes.x.variables.lang]\ndefault = \"French\"\n[recipes.x.variables.n]\ndefault = 3\n",
        );
        let x = &r["x"];
        assert_eq!(system_variables(&x.system), vec!["who", "lang", "n"]);
        assert_eq!(
            x.render_system(&Map::new()),
            "Hi {{who}}, in French {{who}} {{ spaced }} 3"
        );
        let mut given = Map::new();
        given.insert("who".into(), Value::String("Ada".into()));
        assert_eq!(
            x.render_system(&given),
            "Hi Ada, in French Ada {{ spaced }} 3"
        );
    }

    #[test]
    fn unparseable_recipes_are_fatal() {
        let (r, d) = load("[recipes.x\ninferencer = 1");
        assert!(r.is_empty());
        assert!(d.has_fatal());
    }
}
