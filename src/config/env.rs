//! The process environment, captured once at start-up and passed in.
//!
//! Nothing below `main` reads `std::env` directly: configuration loading, the
//! listeners and the inferencer registry all take an [`Env`]. Tests build one
//! from a list of pairs, so no test ever mutates the process environment and
//! tests can run in parallel in one process.

use std::collections::BTreeMap;
use std::fmt;

/// A snapshot of environment variables (UTF-8 names and values only).
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// Captures the current process environment. Variables whose name or
    /// value is not valid UTF-8 are left out (no config can reference them).
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// Builds an environment from explicit pairs (tests, embedding).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns a copy with `name` set to `value`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, if set (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name` if it is set and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every variable, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// What a child process (an MCP server, `claude`) may inherit: the
    /// variables of [`INHERITED`] and `LC_*`, never a provider key or
    /// anything else not on that list (DESIGN.md, contract §7.3).
    pub fn inherited(&self) -> BTreeMap<String, String> {
        self.iter()
            .filter(|(k, _)| INHERITED.contains(k) || k.starts_with("LC_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// The variables a child inherits by name (besides `LC_*`).
pub const INHERITED: &[&str] = &[
    "HOME",
    "PATH",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "TZ",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
];

impl fmt::Debug for Env {
    // Values may be API keys: print names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// A value that must never reach a log line or an error message: an API key,
/// a bearer token, an HTTP header value. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_names_not_values() {
        let env = Env::from_pairs([("OPENAI_API_KEY", "sk-secret")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("OPENAI_API_KEY"));
        assert!(!shown.contains("sk-secret"));
        assert_eq!(format!("{:?}", Secret::new("sk-secret")), "Secret(***)");
        assert_eq!(Secret::new("sk-secret").to_string(), "***");
    }

    #[test]
    fn non_empty_treats_empty_as_unset() {
        let env = Env::from_pairs([("A", ""), ("B", "x")]);
        assert_eq!(env.get("A"), Some(""));
        assert_eq!(env.non_empty("A"), None);
        assert_eq!(env.non_empty("B"), Some("x"));
        assert_eq!(env.get("C"), None);
    }
}
