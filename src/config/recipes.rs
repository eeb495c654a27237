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

use super::diagnostics::{Diagnostics, Severity};
use super::expand::KeyPath;
use super::fields::{Fields, Reporter, Skipped, TopLevel};
use super::node::{Node, parse_toml, toml_to_json};

/// The default cap on model turns per request.
pub const DEFAULT_MAX_TURNS: u32 = 8;

/// One recipe, validated.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, Default, PartialEq)]
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

const TOP_LEVEL: TopLevel<'static> = TopLevel {
    entries: "recipes",
    expected: "tables like [recipes.<name>]",
    doc_entries: true,
    handled: &[],
    unsupported: &["patterns"],
    unsupported_why: "pattern directories are not supported by this version of woollama; ignored",
    unknown: "unknown key, ignored (recipes are [recipes.<name>] tables)",
};

/// Parses and validates `recipes.toml` text.
pub fn parse(text: &str, file: &str, diags: &mut Diagnostics) -> BTreeMap<String, Recipe> {
    let mut out = BTreeMap::new();
    let Some(doc) = parse_toml(text, file, diags) else {
        return out;
    };
    TOP_LEVEL.walk::<toml::Value>(&doc, file, diags, |name, entry, path, diags| {
        let report = Reporter::new(file, Severity::Error, format!("; recipe '{name}' skipped"));
        if let Ok(r) = recipe(name, entry, &report, path, diags) {
            out.insert(name.to_string(), r);
        }
    });
    out
}

/// One recipe's keys, reported as `; recipe '<name>' skipped` errors.
type Entry<'a> = Fields<'a, toml::Value>;

fn recipe(
    name: &str,
    entry: &toml::Value,
    report: &Reporter<'_>,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<Recipe, Skipped> {
    let t = report.expect(diags, path, entry, "a table", toml::Value::as_table)?;
    let entry = Entry::new(t, path, report);
    entry.warn_unknown(diags, RECIPE_KEYS, "not a recipe key, ignored");
    let inferencer = inferencer(&entry, diags)?;
    let system = entry
        .opt_string(diags, "system", "a string")?
        .unwrap_or_default()
        .to_string();
    let tools = tools(&entry, diags)?;
    let params = params(&entry, diags)?;
    let max_turns = max_turns(&entry, diags)?;
    let variables = variables(&entry, diags);
    Ok(Recipe {
        name: name.to_string(),
        inferencer,
        system,
        tools,
        params,
        variables,
        max_turns,
    })
}

/// `inferencer`: required, `<provider>/<model>`.
fn inferencer(entry: &Entry<'_>, diags: &mut Diagnostics) -> Result<String, Skipped> {
    let Some(raw) = entry.opt_string(diags, "inferencer", "a string like \"ollama/qwen3:8b\"")?
    else {
        return Err(entry.report.say(
            diags,
            entry.path,
            "no `inferencer`: add one like inferencer = \"ollama/qwen3:8b\"",
        ));
    };
    let inferencer = raw.trim().to_string();
    match crate::routing::split(&inferencer) {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok(inferencer),
        _ => Err(entry.report.say(
            diags,
            &entry.path.key("inferencer"),
            format!("{inferencer:?} is not `<provider>/<model>` (for example \"ollama/qwen3:8b\")"),
        )),
    }
}

/// `tools`: `server.tool` entries; a repeated one is a warning.
fn tools(entry: &Entry<'_>, diags: &mut Diagnostics) -> Result<Vec<ToolRef>, Skipped> {
    let items = entry
        .opt(
            diags,
            "tools",
            "an array like [\"hello.count_to\"]",
            toml::Value::items,
        )?
        .unwrap_or_default();
    let mut tools = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = entry.path.key("tools").index(i);
        let s = entry.report.expect(
            diags,
            &p,
            item,
            "a string like \"server.tool\"",
            toml::Value::as_str,
        )?;
        let r = tool_ref(s).map_err(|why| entry.report.say(diags, &p, why))?;
        if tools.contains(&r) {
            diags.warn(entry.report.file(), &p, format!("{s:?} is listed twice"));
        } else {
            tools.push(r);
        }
    }
    Ok(tools)
}

fn tool_ref(s: &str) -> Result<ToolRef, String> {
    if s.contains(',') || s.contains(char::is_whitespace) {
        return Err(format!(
            "{s:?} contains a comma or whitespace; a tool name is one `server.tool`"
        ));
    }
    match s.split_once('.') {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Ok(ToolRef {
            server: server.to_string(),
            tool: tool.to_string(),
        }),
        _ => Err(format!(
            "{s:?} is not `server.tool` (for example \"hello.count_to\")"
        )),
    }
}

/// `params`, without the keys the loop owns (those are warned about).
fn params(entry: &Entry<'_>, diags: &mut Diagnostics) -> Result<Map<String, Value>, Skipped> {
    let mut params = Map::new();
    let Some(p) = entry.opt_table(diags, "params", "a table like { temperature = 0.2 }")? else {
        return Ok(params);
    };
    for (k, v) in p {
        if LOOP_OWNED.contains(&k.as_str()) {
            diags.warn(
                entry.report.file(),
                &entry.path.key("params").key(k),
                "woollama sets this for every turn; ignored",
            );
        } else {
            params.insert(k.clone(), toml_to_json(v));
        }
    }
    Ok(params)
}

fn max_turns(entry: &Entry<'_>, diags: &mut Diagnostics) -> Result<u32, Skipped> {
    let Some(v) = entry.get("max_turns") else {
        return Ok(DEFAULT_MAX_TURNS);
    };
    match v.as_integer() {
        Some(n) if (1..=1000).contains(&n) => Ok(u32::try_from(n).unwrap_or(DEFAULT_MAX_TURNS)),
        n => {
            let found = n.map_or_else(|| v.kind().to_string(), |n| n.to_string());
            Err(entry.report.say(
                diags,
                &entry.path.key("max_turns"),
                format!("expected a whole number from 1 to 1000, found {found}"),
            ))
        }
    }
}

/// `variables`: a problem here is a warning and never skips the recipe.
fn variables(entry: &Entry<'_>, diags: &mut Diagnostics) -> BTreeMap<String, Variable> {
    let path = entry.path.key("variables");
    let ignore = Reporter::new(entry.report.file(), Severity::Warning, "; ignored");
    let Some(Ok(t)) = entry.get("variables").map(|value| {
        ignore.expect(
            diags,
            &path,
            value,
            "tables like [recipes.<name>.variables.<var>]",
            toml::Value::as_table,
        )
    }) else {
        return BTreeMap::new();
    };
    t.iter()
        .filter_map(|(var, spec)| {
            let vpath = path.key(var);
            let spec = ignore
                .expect(diags, &vpath, spec, "a table", toml::Value::as_table)
                .ok()?;
            Some((var.clone(), variable(spec, &vpath, &ignore, diags)))
        })
        .collect()
}

fn variable(
    spec: &toml::Table,
    vpath: &KeyPath,
    ignore: &Reporter<'_>,
    diags: &mut Diagnostics,
) -> Variable {
    let mut v = Variable::default();
    for (k, val) in spec {
        match (k.as_str(), val) {
            ("default", d) => v.default = Some(toml_to_json(d)),
            ("choices", toml::Value::Array(c)) => v.choices = c.iter().map(toml_to_json).collect(),
            ("description", toml::Value::String(d)) => v.description = Some(d.clone()),
            ("choices" | "description", other) => {
                ignore.say(
                    diags,
                    &vpath.key(k),
                    format_args!("unexpected {}", other.kind()),
                );
            }
            _ => {
                ignore.say(
                    diags,
                    &vpath.key(k),
                    "not a variable key (default, choices, description)",
                );
            }
        }
    }
    v
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
        // One recipe a line: four broken ones, then a fine one.
        let (r, d) = load(concat!(
            "\n[recipes.noinf]\nsystem = \"x\"\n",
            "[recipes.noslash]\ninferencer = \"qwen3\"\n",
            "[recipes.badtool]\ninferencer = \"ollama/m\"\ntools = [\"hello\"]\n",
            "[recipes.comma]\ninferencer = \"ollama/m\"\ntools = [\"hello.count_to,hello.hello\"]\n",
            "[recipes.fine]\ninferencer = \"claude-code/haiku\"\n",
        ));
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
