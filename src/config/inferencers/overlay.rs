//! One `[inferencers.<name>]` table, merged over the registry: over the
//! built-in of that name field by field, or as a new provider (which then
//! needs a `base_url`).
//!
//! A bad setting is an error ending in `; the setting is ignored` and the
//! provider keeps what it inherited; a setting that would make the provider
//! unusable or wrong (`base_url`, `capabilities`) is fatal. `api_key_env`
//! holds a variable *name*, and people paste the key itself there, so no
//! message ever echoes it.

use std::collections::BTreeMap;

use serde_json::Map;
use url::Url;

use super::{InferencerSpec, RESERVED};
use crate::config::diagnostics::{Diagnostics, Severity};
use crate::config::expand::{KeyPath, is_var_name};
use crate::config::fields::{Reporter, Skipped};
use crate::config::node::{Node, toml_to_json};

const POOLING_KEYS: &[&str] = &[
    "management_url",
    "management_protocol",
    "parallel",
    "pool_max",
    "queue_max",
    "queue_timeout",
    "virtual",
];

/// The two ways a setting is reported: fatal, or ignored (an error).
struct Reports<'a> {
    fatal: Reporter<'a>,
    ignore: Reporter<'a>,
}

/// `api_key_env = "${OPENAI_API_KEY}"` would expand to the key itself and
/// then be used as a variable *name*: refuse it before expansion, without
/// echoing anything, and drop it so the inferencer keeps its inherited name.
pub(super) fn refuse_referenced_key_names(
    doc: &mut toml::Table,
    file: &str,
    diags: &mut Diagnostics,
) {
    let Some(toml::Value::Table(entries)) = doc.get_mut("inferencers") else {
        return;
    };
    let ignore = Reporter::new(file, Severity::Error, "; the setting is ignored");
    for (name, entry) in entries.iter_mut() {
        let toml::Value::Table(t) = entry else {
            continue;
        };
        if t.get("api_key_env")
            .and_then(toml::Value::as_str)
            .is_some_and(|v| v.contains("${"))
        {
            t.remove("api_key_env");
            ignore.say(
                diags,
                &KeyPath::root().key("inferencers").key(name).key("api_key_env"),
                "names the variable that holds the key, so write it bare (api_key_env = \"MY_KEY\"), not as a ${…} reference",
            );
        }
    }
}

/// Merges the table `entry` named `name` into `registry`.
pub(super) fn overlay(
    registry: &mut BTreeMap<String, InferencerSpec>,
    name: &str,
    entry: &toml::Value,
    file: &str,
    path: &KeyPath,
    diags: &mut Diagnostics,
) {
    let reports = Reports {
        fatal: Reporter::new(file, Severity::Fatal, ""),
        ignore: Reporter::new(file, Severity::Error, "; the setting is ignored"),
    };
    let Ok(t) = reports.fatal.expect(
        diags,
        path,
        entry,
        "a table of provider settings",
        toml::Value::as_table,
    ) else {
        return;
    };
    if RESERVED.contains(&name) || name.contains('/') || name.is_empty() {
        diags.error(
            file,
            path,
            format!(
                "'{name}' cannot name an inferencer (the names {} are the router's own, and a name cannot contain '/'); entry skipped",
                RESERVED.join(", ")
            ),
        );
        return;
    }
    let Some(mut spec) = starting_point(registry, name, t, &reports.fatal, path, diags) else {
        return;
    };
    for (key, value) in t {
        setting(&mut spec, key, value, &reports, &path.key(key), diags);
    }
    if !spec.base_url.is_empty() {
        registry.insert(name.to_string(), spec);
    }
}

/// The built-in to change, or a new provider — which must set `base_url`.
fn starting_point(
    registry: &BTreeMap<String, InferencerSpec>,
    name: &str,
    t: &toml::Table,
    fatal: &Reporter<'_>,
    path: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<InferencerSpec> {
    if let Some(existing) = registry.get(name) {
        return Some(existing.clone());
    }
    let base = t
        .get("base_url")
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    if base.trim().is_empty() {
        fatal.say(
            diags,
            path,
            format!(
                "inferencer '{name}' has no base_url and is not a known built-in to extend — add base_url in inferencers.toml (for example base_url = \"http://127.0.0.1:8000/v1\")"
            ),
        );
        return None;
    }
    Some(InferencerSpec {
        name: name.to_string(),
        base_url: String::new(),
        api_key_env: None,
        extra_body: Map::new(),
        models: Vec::new(),
        discover: false,
        model_patterns: Vec::new(),
        capabilities: BTreeMap::new(),
        builtin: false,
        first_byte_timeout: None,
        idle_timeout: None,
    })
}

/// Applies one key of the table to `spec`.
fn setting(
    spec: &mut InferencerSpec,
    key: &str,
    value: &toml::Value,
    reports: &Reports<'_>,
    kpath: &KeyPath,
    diags: &mut Diagnostics,
) {
    let ignore = &reports.ignore;
    match key {
        "base_url" => {
            let fatal = &reports.fatal;
            if let Ok(s) = fatal.expect(diags, kpath, value, "a URL string", toml::Value::as_str)
                && let Some(url) = base_url(s, fatal, kpath, diags)
            {
                spec.base_url = url;
            }
        }
        "api_key_env" => {
            if let Ok(s) =
                ignore.expect(diags, kpath, value, "a variable name", toml::Value::as_str)
                && let Ok(name) = key_name(s, ignore, kpath, diags)
            {
                spec.api_key_env = name;
            }
        }
        "extra_body" => {
            if let Ok(b) = ignore.expect(diags, kpath, value, "a table", toml::Value::as_table)
                && !b.is_empty()
            {
                spec.extra_body = b
                    .iter()
                    .map(|(k, v)| (k.clone(), toml_to_json(v)))
                    .collect();
            }
        }
        "models" | "model_patterns" => {
            let Ok(list) = names(value, ignore, kpath, diags) else {
                return;
            };
            if key == "model_patterns" {
                spec.model_patterns = list;
            } else if !list.is_empty() {
                spec.models = list;
            }
        }
        "discover" => {
            if let Ok(b) = ignore.expect(diags, kpath, value, "true or false", toml::Value::as_bool)
            {
                spec.discover = b;
            }
        }
        "first_byte_timeout_secs" | "idle_timeout_secs" => {
            let secs = |v: &toml::Value| {
                v.as_float()
                    .or_else(|| v.as_integer().map(|i| i as f64))
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0 * 365.0)
            };
            if let Ok(s) = ignore.expect(diags, kpath, value, "a number of seconds above 0", secs) {
                let d = Some(std::time::Duration::from_secs_f64(s));
                if key == "first_byte_timeout_secs" {
                    spec.first_byte_timeout = d;
                } else {
                    spec.idle_timeout = d;
                }
            }
        }
        "capabilities" => {
            if let Some(caps) = capabilities(value, &reports.fatal, kpath, diags) {
                spec.capabilities = caps;
            }
        }
        k if POOLING_KEYS.contains(&k) => diags.warn(
            ignore.file(),
            kpath,
            "model pooling is not supported by this version of woollama; ignored",
        ),
        k if k.starts_with('_') => {}
        _ => diags.warn(ignore.file(), kpath, "unknown inferencer key, ignored"),
    }
}

/// The base URL without its trailing `/`; `None` when blank (inherited) or
/// not an http(s) URL (reported).
fn base_url(
    raw: &str,
    fatal: &Reporter<'_>,
    kpath: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<String> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    let usable =
        Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !usable {
        fatal.say(
            diags,
            kpath,
            "not an http:// or https:// URL (for example base_url = \"http://127.0.0.1:8000/v1\")",
        );
        return None;
    }
    let trimmed = s.trim_end_matches('/');
    if trimmed.ends_with("/chat/completions") {
        fatal.say(
            diags,
            kpath,
            "base_url is the API base, without /chat/completions (for example http://127.0.0.1:8000/v1)",
        );
    }
    Some(trimmed.to_string())
}

/// `api_key_env`: `""` means no auth; anything but a variable name is
/// refused without being echoed (people paste the key itself here).
fn key_name(
    s: &str,
    ignore: &Reporter<'_>,
    kpath: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<Option<String>, Skipped> {
    if s.is_empty() {
        Ok(None)
    } else if is_var_name(s) {
        Ok(Some(s.to_string()))
    } else {
        Err(ignore.say(
            diags,
            kpath,
            "must be the *name* of an environment variable (like OPENAI_API_KEY), not the key itself",
        ))
    }
}

/// `models` or `model_patterns`: the strings of the list; any other item is
/// reported and left out.
fn names(
    value: &toml::Value,
    ignore: &Reporter<'_>,
    kpath: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<Vec<String>, Skipped> {
    let items = ignore.expect(diags, kpath, value, "an array of strings", Node::items)?;
    let item_report = Reporter::new(ignore.file(), Severity::Error, "; ignored");
    Ok(items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            item_report
                .expect(
                    diags,
                    &kpath.index(i),
                    item,
                    "a string",
                    toml::Value::as_str,
                )
                .ok()
                .map(str::to_string)
        })
        .collect())
}

/// `capabilities`: capability → model globs; non-string globs are dropped.
fn capabilities(
    value: &toml::Value,
    fatal: &Reporter<'_>,
    kpath: &KeyPath,
    diags: &mut Diagnostics,
) -> Option<BTreeMap<String, Vec<String>>> {
    let caps = fatal
        .expect(
            diags,
            kpath,
            value,
            "a table of capability → globs",
            toml::Value::as_table,
        )
        .ok()?;
    Some(
        caps.iter()
            .filter_map(|(cap, globs)| {
                let list = fatal
                    .expect(
                        diags,
                        &kpath.key(cap),
                        globs,
                        "an array of model globs like [\"*embed*\"]",
                        Node::items,
                    )
                    .ok()?;
                let globs = list.iter().filter_map(|g| g.as_str().map(str::to_string));
                Some((cap.clone(), globs.collect()))
            })
            .collect(),
    )
}
