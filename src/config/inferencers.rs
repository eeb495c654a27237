//! `inferencers.toml` and the six built-in providers (contract §2.5, §3.1).
//!
//! The user file **overlays** the built-ins field by field (an inferencer
//! registry is infrastructure you extend, not content you replace): a table
//! named like a built-in changes only the fields it sets; any other name adds
//! a provider, which then needs a `base_url`.
//!
//! Inherit rules, as existing configs rely on them: `base_url` inherits when
//! absent or empty; `api_key_env` only when absent (an explicit `""` means no
//! auth); `extra_body` when absent or an empty table; `models` when absent or
//! empty; `discover` when absent.
//!
//! This file owns the types, the built-ins and the top level of the file;
//! one `[inferencers.<name>]` table is read and merged in `overlay`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use url::Url;

use super::diagnostics::Diagnostics;
use super::env::Env;
use super::expand::{KeyPath, expand_toml};
use super::fields::TopLevel;
use super::node::parse_toml;

mod overlay;

/// One OpenAI-compatible provider, validated and merged.
#[derive(Debug, Clone)]
pub struct InferencerSpec {
    pub name: String,
    /// The OpenAI-compatible base, without a trailing `/` and without
    /// `/chat/completions` (e.g. `http://localhost:11434/v1`).
    pub base_url: String,
    /// The *name* of the variable holding the bearer key; `None` = no auth.
    pub api_key_env: Option<String>,
    /// Merged into each orchestration request (never into pass-through).
    pub extra_body: Map<String, Value>,
    /// Ids listed in `/v1/models` as `<name>/<id>`.
    pub models: Vec<String>,
    /// Query `<base_url>/models` for the list.
    pub discover: bool,
    /// Globs (`*`, `?`) filtering discovered ids; empty = all.
    pub model_patterns: Vec<String>,
    /// Capability → globs of model ids declared to have it.
    pub capabilities: BTreeMap<String, Vec<String>>,
    pub builtin: bool,
    /// `first_byte_timeout_secs`: how long to wait for an answer's headers
    /// (else `WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS`, else the call's own: 180 s
    /// for chat).
    pub first_byte_timeout: Option<std::time::Duration>,
    /// `idle_timeout_secs`: how long a streamed answer may go quiet between
    /// chunks (else `WOOLLAMA_UPSTREAM_IDLE_SECS`, else the call's own).
    pub idle_timeout: Option<std::time::Duration>,
}

impl InferencerSpec {
    /// The endpoint capabilities (`chat`, `embedding`, `image`) declared for
    /// `model`. Empty means no declaration that restricts it: the model is
    /// eligible on every endpoint. Other capability names are descriptive
    /// only and never restrict.
    pub fn endpoint_capabilities(&self, model: &str) -> Vec<&str> {
        self.declared_capabilities(model)
            .into_iter()
            .filter(|c| ENDPOINT_CAPABILITIES.contains(c))
            .collect()
    }

    /// The capabilities declared for `model` (globs that match), sorted.
    pub fn declared_capabilities(&self, model: &str) -> Vec<&str> {
        self.capabilities
            .iter()
            .filter(|(_, globs)| globs.iter().any(|g| glob_match(g, model)))
            .map(|(cap, _)| cap.as_str())
            .collect()
    }

    /// Whether a discovered id passes `model_patterns`.
    pub fn admits(&self, id: &str) -> bool {
        self.model_patterns.is_empty() || self.model_patterns.iter().any(|g| glob_match(g, id))
    }
}

/// The capabilities that map to an endpoint.
pub const ENDPOINT_CAPABILITIES: &[&str] = &["chat", "embedding", "image"];

/// fnmatch-style matching with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Names the router itself owns; no inferencer may take them.
pub const RESERVED: &[&str] = &["woollama", "claude-code", "claude-agent"];

/// The Ollama `/v1` base from `WOOLLAMA_OLLAMA_URL`: a trailing `/` or `/v1`
/// is stripped and `/v1` appended.
pub fn ollama_base(env: &Env) -> String {
    let raw = env
        .non_empty("WOOLLAMA_OLLAMA_URL")
        .unwrap_or("http://localhost:11434");
    let trimmed = raw.trim().trim_end_matches('/');
    let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    format!("{root}/v1")
}

/// The six built-in providers.
pub fn builtins(env: &Env) -> BTreeMap<String, InferencerSpec> {
    let t0 = || json!({"temperature": 0});
    let cloud = |name: &str, base: &str, key: &str, extra: Value, discover: bool| InferencerSpec {
        name: name.to_string(),
        base_url: base.to_string(),
        api_key_env: (!key.is_empty()).then(|| key.to_string()),
        extra_body: match extra {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        models: Vec::new(),
        discover,
        model_patterns: Vec::new(),
        capabilities: BTreeMap::new(),
        builtin: true,
        first_byte_timeout: None,
        idle_timeout: None,
    };
    [
        cloud(
            "ollama",
            &ollama_base(env),
            "",
            json!({"options": {"temperature": 0}}),
            true,
        ),
        cloud(
            "anthropic",
            "https://api.anthropic.com/v1",
            "ANTHROPIC_API_KEY",
            json!({"temperature": 0, "max_tokens": 4096}),
            false,
        ),
        cloud(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            t0(),
            false,
        ),
        cloud(
            "groq",
            "https://api.groq.com/openai/v1",
            "GROQ_API_KEY",
            t0(),
            false,
        ),
        cloud(
            "together",
            "https://api.together.ai/v1",
            "TOGETHER_API_KEY",
            t0(),
            false,
        ),
        cloud(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            t0(),
            false,
        ),
    ]
    .into_iter()
    .map(|s| (s.name.clone(), s))
    .collect()
}

const TOP_LEVEL: TopLevel<'static> = TopLevel {
    entries: "inferencers",
    expected: "tables like [inferencers.<name>]",
    doc_entries: true,
    handled: &[],
    unsupported: &["management_protocols"],
    unsupported_why: "model pooling is not supported by this version of woollama; ignored",
    unknown: "unknown key, ignored (providers are [inferencers.<name>] tables)",
};

/// Parses `inferencers.toml` text (if any) and overlays it on the built-ins.
pub fn load(
    text: Option<&str>,
    file: &str,
    env: &Env,
    diags: &mut Diagnostics,
) -> BTreeMap<String, InferencerSpec> {
    let mut registry = builtins(env);
    check_ollama_url(&registry, env, diags);
    let Some(text) = text else { return registry };
    let Some(mut doc) = parse_toml(text, file, diags) else {
        return registry;
    };
    overlay::refuse_referenced_key_names(&mut doc, file, diags);
    if diags.fatal_all(file, expand_toml(&mut doc, env)) {
        return registry;
    }
    TOP_LEVEL.walk::<toml::Value>(&doc, file, diags, |name, entry, path, diags| {
        overlay::overlay(&mut registry, name, entry, file, path, diags);
    });
    registry
}

/// A set `WOOLLAMA_OLLAMA_URL` must give the built-in `ollama` a usable base.
fn check_ollama_url(
    registry: &BTreeMap<String, InferencerSpec>,
    env: &Env,
    diags: &mut Diagnostics,
) {
    let Some(raw) = env.non_empty("WOOLLAMA_OLLAMA_URL") else {
        return;
    };
    let usable = Url::parse(&registry["ollama"].base_url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !usable {
        diags.fatal(
            "environment",
            &KeyPath::root().key("WOOLLAMA_OLLAMA_URL"),
            format!(
                "{raw:?} is not an http:// or https:// URL (for example http://localhost:11434)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diagnostics::Severity;

    fn load_with(text: &str, env: &Env) -> (BTreeMap<String, InferencerSpec>, Diagnostics) {
        let mut d = Diagnostics::default();
        let r = load(Some(text), "inferencers.toml", env, &mut d);
        (r, d)
    }

    #[test]
    fn builtins_match_the_contract() {
        let b = builtins(&Env::default());
        assert_eq!(
            b.keys().collect::<Vec<_>>(),
            vec![
                "anthropic",
                "groq",
                "ollama",
                "openai",
                "openrouter",
                "together"
            ]
        );
        assert_eq!(b["ollama"].base_url, "http://localhost:11434/v1");
        assert!(b["ollama"].discover && b["ollama"].api_key_env.is_none());
        assert_eq!(b["groq"].base_url, "https://api.groq.com/openai/v1");
        assert_eq!(b["anthropic"].extra_body["max_tokens"], 4096);
        assert_eq!(
            b["openrouter"].api_key_env.as_deref(),
            Some("OPENROUTER_API_KEY")
        );
    }

    #[test]
    fn ollama_url_is_normalised() {
        for (raw, want) in [
            ("http://gpu:11434", "http://gpu:11434/v1"),
            ("http://gpu:11434/", "http://gpu:11434/v1"),
            ("http://gpu:11434/v1", "http://gpu:11434/v1"),
            ("http://gpu:11434/v1/", "http://gpu:11434/v1"),
        ] {
            assert_eq!(
                ollama_base(&Env::from_pairs([("WOOLLAMA_OLLAMA_URL", raw)])),
                want
            );
        }
    }

    #[test]
    fn overlay_changes_only_what_it_sets() {
        let (r, d) = load_with(
            r#"
[inferencers.openai]
base_url = "http://127.0.0.1:9/v1/"
[inferencers.groq]
api_key_env = ""
[inferencers.vllm]
base_url = "http://${HOST:-gpu}:8000/v1"
models = ["qwen"]
"#,
            &Env::default(),
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(r["openai"].base_url, "http://127.0.0.1:9/v1");
        assert_eq!(r["openai"].api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(r["openai"].extra_body["temperature"], 0);
        assert_eq!(r["groq"].api_key_env, None);
        assert_eq!(r["vllm"].base_url, "http://gpu:8000/v1");
        assert!(!r["vllm"].builtin && !r["vllm"].discover);
        assert_eq!(r.len(), 7);
    }

    #[test]
    fn a_new_provider_without_base_url_is_fatal() {
        let (r, d) = load_with("[inferencers.vllm]\nmodels = [\"x\"]\n", &Env::default());
        assert!(!r.contains_key("vllm"));
        let fatal: Vec<String> = d.of(Severity::Fatal).map(ToString::to_string).collect();
        assert_eq!(fatal.len(), 1);
        assert!(
            fatal[0].contains("inferencer 'vllm' has no base_url"),
            "{}",
            fatal[0]
        );
    }

    #[test]
    fn fatal_shapes() {
        let env = Env::default();
        assert!(
            load_with("[inferencers.x]\nbase_url = \"${NOPE}\"\n", &env)
                .1
                .has_fatal()
        );
        assert!(load_with("inferencers = 3\n", &env).1.has_fatal());
        assert!(load_with("[inferencers]\nx = 3\n", &env).1.has_fatal());
        assert!(
            load_with(
                "[inferencers.ollama.capabilities]\nembedding = \"*\"\n",
                &env
            )
            .1
            .has_fatal()
        );
        assert!(load_with("not toml [", &env).1.has_fatal());
    }

    #[test]
    fn a_pasted_key_is_refused_without_echoing_it() {
        let (r, d) = load_with(
            "[inferencers.openai]\napi_key_env = \"sk-proj-abc123\"\n",
            &Env::default(),
        );
        assert_eq!(r["openai"].api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        let all: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 1);
        assert!(!all[0].contains("sk-proj"), "{}", all[0]);
    }

    #[test]
    fn globs_and_capabilities() {
        assert!(glob_match("*embed*", "nomic-embed-text"));
        assert!(glob_match("qwen?:*", "qwen3:14b"));
        assert!(!glob_match("qwen?:*", "qwen:14b"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "ab"));
        let (r, _) = load_with(
            "[inferencers.ollama]\nmodel_patterns = [\"qwen*\"]\n[inferencers.ollama.capabilities]\nembedding = [\"*embed*\"]\n",
            &Env::default(),
        );
        assert_eq!(
            r["ollama"].declared_capabilities("nomic-embed"),
            vec!["embedding"]
        );
        assert!(r["ollama"].declared_capabilities("qwen3").is_empty());
        assert!(r["ollama"].admits("qwen3") && !r["ollama"].admits("llama3"));
    }

    #[test]
    fn only_endpoint_capabilities_restrict() {
        let (r, _) = load_with(
            "[inferencers.ollama.capabilities]\nvision = [\"*llava*\"]\nembedding = [\"*embed*\"]\n",
            &Env::default(),
        );
        assert_eq!(r["ollama"].declared_capabilities("llava"), vec!["vision"]);
        assert!(r["ollama"].endpoint_capabilities("llava").is_empty());
        assert_eq!(
            r["ollama"].endpoint_capabilities("nomic-embed"),
            vec!["embedding"]
        );
    }

    #[test]
    fn a_referenced_key_name_is_refused_without_expanding() {
        let env = Env::from_pairs([("MY_KEY", "sk-live-999")]);
        let (r, d) = load_with("[inferencers.openai]\napi_key_env = \"${MY_KEY}\"\n", &env);
        assert_eq!(r["openai"].api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        let all: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(!all[0].contains("sk-live"));
    }

    #[test]
    fn a_bad_ollama_url_is_fatal() {
        let mut d = Diagnostics::default();
        load(
            None,
            "inferencers.toml",
            &Env::from_pairs([("WOOLLAMA_OLLAMA_URL", "gpu:11434")]),
            &mut d,
        );
        let all: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert!(d.has_fatal(), "{all:?}");
        assert!(
            all[0].starts_with("environment: WOOLLAMA_OLLAMA_URL"),
            "{all:?}"
        );
    }

    #[test]
    fn reserved_names_are_refused() {
        let (r, d) = load_with(
            "[inferencers.claude-code]\nbase_url = \"http://x/v1\"\n",
            &Env::default(),
        );
        assert!(!r.contains_key("claude-code"));
        assert_eq!(d.problems(), 1);
    }
}
