//! Configuration: locating and reading `mcp.json`, `recipes.toml` and
//! `inferencers.toml`, `${VAR}` expansion, validation into one immutable
//! [`Config`], and the `check-config` report.
//!
//! Loading never fails outright: it always returns a [`Loaded`] with the
//! [`Config`] it could build and the [`Diagnostics`] it found. The daemon
//! refuses to start on a fatal diagnostic; `check-config` prints them all.
//!
//! Files are parsed into generic JSON/TOML trees and validated by hand (the
//! "raw" phase is the tree), with one typed reader (`fields`) over both
//! formats (`node`). The walk is hand-written rather than derived with serde
//! (`serde_path_to_error` over `Raw*` types) because serde cannot give our
//! messages: each names the file, the exact key path and the fix; an unknown
//! key is a warning and a `_`-prefixed key documentation, not an error; and
//! one bad entry is skipped without failing its siblings.

mod diagnostics;
pub mod env;
pub mod expand;
mod fields;
pub mod inferencers;
pub mod mcp;
mod node;
pub mod recipes;
mod report;
pub mod settings;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

pub use diagnostics::{Diagnostic, Diagnostics, Severity};
pub use env::{Env, Secret};
pub use inferencers::InferencerSpec;
pub use mcp::{Protocol, ServerSpec, StoreSpec, Transport};
pub use recipes::{Recipe, ToolRef};
pub use report::{Report, check_report};
pub use settings::Settings;

use expand::KeyPath;

/// The bundled default `mcp.json`, used when the user has none.
pub const DEFAULT_MCP_JSON: &str = include_str!("defaults/mcp.json");
/// The bundled default `recipes.toml`, used when the user has none.
pub const DEFAULT_RECIPES_TOML: &str = include_str!("defaults/recipes.toml");

/// Where a config file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The user's file at this path.
    User(PathBuf),
    /// The default embedded in the binary.
    Bundled,
    /// No file; built-ins only (`inferencers.toml`).
    Absent,
}

/// The validated configuration the rest of woollama runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config directory, if one could be determined.
    pub dir: Option<PathBuf>,
    pub mcp_source: Source,
    pub recipes_source: Source,
    pub inferencers_source: Source,
    /// Usable downstream MCP servers, in file order.
    pub servers: Vec<ServerSpec>,
    /// `mcp.json` entries that were skipped.
    pub skipped_servers: Vec<String>,
    /// Where store-backed conversations keep their messages.
    pub conversation_store: Option<StoreSpec>,
    pub recipes: BTreeMap<String, Recipe>,
    /// The built-ins overlaid with `inferencers.toml`, by name.
    pub inferencers: BTreeMap<String, InferencerSpec>,
    pub settings: Settings,
}

/// A config and what loading it found.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diagnostics: Diagnostics,
}

/// `$WOOLLAMA_CONFIG_DIR` (with `~` expansion), else
/// `$XDG_CONFIG_HOME/woollama`, else `~/.config/woollama`.
pub fn config_dir(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = env.non_empty("WOOLLAMA_CONFIG_DIR") {
        return Some(expand_tilde(dir, env));
    }
    if let Some(xdg) = env.non_empty("XDG_CONFIG_HOME") {
        return Some(Path::new(xdg).join("woollama"));
    }
    env.non_empty("HOME")
        .map(|h| Path::new(h).join(".config").join("woollama"))
}

fn expand_tilde(path: &str, env: &Env) -> PathBuf {
    match (path.strip_prefix('~'), env.non_empty("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(format!("{home}{rest}"))
        }
        _ => PathBuf::from(path),
    }
}

/// What reading one config file gave.
struct Read {
    text: Contents,
    path: Option<PathBuf>,
    /// How the file is named in messages.
    shown: String,
}

enum Contents {
    User(String),
    Bundled,
    Unreadable,
}

impl Read {
    /// The user's file, or (when there is none) `bundled`; `None` when the
    /// file could not be read.
    fn text<'a>(&'a self, bundled: Option<&'a str>) -> Option<&'a str> {
        match &self.text {
            Contents::User(t) => Some(t),
            Contents::Bundled => bundled,
            Contents::Unreadable => None,
        }
    }

    fn source(&self, missing: Source) -> Source {
        self.path.clone().map_or(missing, Source::User)
    }
}

/// Reads `dir/name`; a missing file (or no `dir`) means the bundled default,
/// an unreadable one is fatal.
fn read(dir: Option<&Path>, name: &str, diags: &mut Diagnostics) -> Read {
    let bundled = || Read {
        text: Contents::Bundled,
        path: None,
        shown: format!("{name} (bundled default)"),
    };
    let Some(dir) = dir else { return bundled() };
    let path = dir.join(name);
    let shown = path.display().to_string();
    let text = match read_optional(&path) {
        Ok(Some(text)) => Contents::User(text),
        Ok(None) => return bundled(),
        Err(e) => {
            diags.fatal(&shown, &KeyPath::root(), format!("cannot be read: {e}"));
            Contents::Unreadable
        }
    };
    Read {
        text,
        path: Some(path),
        shown,
    }
}

/// Reads an optional file: `Ok(None)` if it does not exist.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Loads the configuration from the directory the environment names.
pub fn load(env: &Env) -> Loaded {
    load_from(config_dir(env).as_deref(), env)
}

/// Loads the configuration from `dir` (or the bundled defaults alone).
pub fn load_from(dir: Option<&Path>, env: &Env) -> Loaded {
    let mut diags = Diagnostics::default();
    let settings = Settings::from_env(env, &mut diags);
    let mcp_read = read(dir, "mcp.json", &mut diags);
    let recipes_read = read(dir, "recipes.toml", &mut diags);
    let inf_read = read(dir, "inferencers.toml", &mut diags);
    let inferencers_source = inf_read.source(Source::Absent);
    let inf_file = if inferencers_source == Source::Absent {
        "inferencers.toml"
    } else {
        &inf_read.shown
    };

    // An unreadable file contributes nothing (it is already a fatal error).
    let fatal_before = diags.of(Severity::Fatal).count();
    let mcp = mcp_read
        .text(Some(DEFAULT_MCP_JSON))
        .map_or_else(mcp::McpConfig::default, |t| {
            mcp::parse(t, &mcp_read.shown, env, &mut diags)
        });
    // A broken mcp.json would make every recipe tool look unknown.
    let mcp_usable = !matches!(mcp_read.text, Contents::Unreadable)
        && diags.of(Severity::Fatal).count() == fatal_before;
    let recipes = recipes_read
        .text(Some(DEFAULT_RECIPES_TOML))
        .map_or_else(BTreeMap::new, |t| {
            recipes::parse(t, &recipes_read.shown, &mut diags)
        });
    let mut inferencers = inferencers::load(inf_read.text(None), inf_file, env, &mut diags);
    for spec in inferencers.values_mut() {
        spec.first_byte_timeout = spec.first_byte_timeout.or(settings.upstream_first_byte);
        spec.idle_timeout = spec.idle_timeout.or(settings.upstream_idle);
    }

    cross_check(
        &recipes,
        &recipes_read.shown,
        mcp_usable.then_some(&mcp),
        &inferencers,
        &mut diags,
    );

    Loaded {
        config: Config {
            dir: dir.map(Path::to_path_buf),
            mcp_source: mcp_read.source(Source::Bundled),
            recipes_source: recipes_read.source(Source::Bundled),
            inferencers_source,
            servers: mcp.servers,
            skipped_servers: mcp.skipped,
            conversation_store: mcp.conversation_store,
            recipes,
            inferencers,
            settings,
        },
        diagnostics: diags,
    }
}

/// Warnings that need more than one file: a recipe naming a provider or a
/// server that does not exist.
fn cross_check(
    recipes: &BTreeMap<String, Recipe>,
    file: &str,
    mcp: Option<&mcp::McpConfig>,
    inferencers: &BTreeMap<String, InferencerSpec>,
    diags: &mut Diagnostics,
) {
    for (name, r) in recipes {
        let path = KeyPath::root().key("recipes").key(name);
        let provider = r.provider();
        let route = crate::routing::route(&r.inferencer, |p| inferencers.contains_key(p));
        if matches!(route, crate::routing::Route::ClaudeAgent(_)) {
            diags.warn(
                file,
                &path.key("inferencer"),
                "claude-agent models are stateful and cannot be a recipe's inferencer; calls will fail with 501",
            );
        } else if !matches!(
            route,
            crate::routing::Route::ClaudeCode(_) | crate::routing::Route::Provider { .. }
        ) {
            diags.warn(
                file,
                &path.key("inferencer"),
                format!(
                    "provider '{provider}' is not a configured inferencer ({}, claude-code); calls will fail with 501 until you add [inferencers.{provider}] to inferencers.toml",
                    inferencers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let Some(mcp) = mcp else { continue };
        for (i, t) in r.tools.iter().enumerate() {
            let known = mcp.servers.iter().any(|s| s.name == t.server);
            if !known {
                let why = if mcp.skipped.contains(&t.server) {
                    "was skipped (see its error above)"
                } else {
                    "is not in mcp.json"
                };
                diags.warn(
                    file,
                    &path.key("tools").index(i),
                    format!("server '{}' {why}; the recipe runs without '{t}'", t.server),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("HOME", "/home/u"), ("WOOLLAMA_EXE", "/opt/woollama")])
    }

    #[test]
    fn config_dir_precedence() {
        let e = Env::from_pairs([("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(config_dir(&e), Some(PathBuf::from("/x/woollama")));
        let e = e.with("WOOLLAMA_CONFIG_DIR", "~/conf");
        assert_eq!(config_dir(&e), Some(PathBuf::from("/h/conf")));
        let e = Env::from_pairs([("HOME", "/h")]);
        assert_eq!(config_dir(&e), Some(PathBuf::from("/h/.config/woollama")));
        assert_eq!(config_dir(&Env::default()), None);
    }

    #[test]
    fn bundled_defaults_load_clean() {
        let l = load_from(None, &env());
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        let c = l.config;
        assert_eq!(c.mcp_source, Source::Bundled);
        let names: Vec<_> = c.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["hello", "textops"]);
        match &c.servers[0].transport {
            Transport::Stdio { command, args, .. } => {
                assert_eq!(command, "/opt/woollama");
                assert_eq!(args, &["example-server", "hello"]);
            }
            Transport::Http { .. } => panic!("stdio expected"),
        }
        assert_eq!(
            c.recipes.keys().collect::<Vec<_>>(),
            vec!["cc-assistant", "cc-counter", "streamer", "textcounter"]
        );
        assert_eq!(c.recipes["textcounter"].tools.len(), 2);
        assert_eq!(c.inferencers.len(), 6);
    }

    #[test]
    fn user_files_replace_and_overlay() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("mcp.json"), r#"{"mcpServers": {}}"#).expect("write");
        std::fs::write(
            dir.path().join("recipes.toml"),
            "[recipes.r]\ninferencer = \"vllm/q\"\ntools = [\"git.log\"]\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("inferencers.toml"),
            "[inferencers.vllm]\nbase_url = \"http://127.0.0.1:8000/v1\"\n",
        )
        .expect("write");
        let l = load_from(Some(dir.path()), &env());
        let c = &l.config;
        assert!(c.servers.is_empty());
        assert_eq!(c.recipes.len(), 1);
        assert_eq!(c.inferencers.len(), 7);
        assert!(matches!(c.mcp_source, Source::User(_)));
        // The recipe's server is missing: a warning, not a failure.
        let warnings: Vec<String> = l
            .diagnostics
            .of(Severity::Warning)
            .map(ToString::to_string)
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("recipes.r.tools[0]: server 'git' is not in mcp.json"));
        assert!(warnings[0].starts_with(&dir.path().join("recipes.toml").display().to_string()));
    }

    #[test]
    fn an_unreadable_file_is_fatal_and_not_replaced_by_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be cannot be read as a file.
        std::fs::create_dir(dir.path().join("mcp.json")).expect("mkdir");
        let l = load_from(Some(dir.path()), &env());
        assert!(l.diagnostics.has_fatal());
        assert!(
            l.config.servers.is_empty(),
            "the bundled servers must not stand in"
        );
        let all: Vec<String> = l.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(all[0].contains("mcp.json: cannot be read"), "{}", all[0]);
    }

    #[test]
    fn unknown_recipe_provider_is_warned() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("recipes.toml"),
            "[recipes.r]\ninferencer = \"nope/q\"\n",
        )
        .expect("write");
        let l = load_from(Some(dir.path()), &env());
        let w: Vec<String> = l.diagnostics.iter().map(ToString::to_string).collect();
        assert!(
            w.iter()
                .any(|m| m.contains("provider 'nope' is not a configured inferencer")),
            "{w:?}"
        );
        assert_eq!(l.diagnostics.problems(), 0);
    }
}
