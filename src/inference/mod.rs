//! The inferencer registry and the calls to inference upstreams.
//!
//! One [`Registry`] per process holds every configured inferencer with its
//! API key resolved once from the captured environment, and the single pooled
//! `reqwest::Client` (rustls, ring) every upstream call goes through. Keys
//! live in [`Secret`]s: they are sent in the `Authorization` header and
//! nowhere else.
//!
//! - `chat`: the backend seam every caller uses — pass-through relay, and a
//!   recipe's chat turn as a typed answer or a stream of typed events.
//! - `openai`: OpenAI-compatible HTTP: posting a body, relaying a stream,
//!   model discovery.
//! - `ollama`: the Ollama native `/api/chat` translation for `num_ctx`.
//! - [`agents`]: Anthropic's managed agents (`claude-agent/<model>`), the
//!   hosted sessions behind stateful turns.
//! - [`claude`]: the `claude` CLI (`claude-code/<model>`), one locked-down
//!   process per call; the registry holds one runner, behind an
//!   [`Inferencer`] named `claude-code` that is not listed among the
//!   configured ones.
//! - [`sse`]: reading an upstream event stream into [`ChatEvent`]s.

pub mod agents;
mod chat;
pub mod claude;
pub(crate) mod ollama;
mod openai;
pub mod sse;
mod upstream;

pub use chat::{Body, CLIENT_TOOLS, Endpoint, Relay, claude_completion};
pub use openai::RESPONSE_LIMIT;
pub use sse::ChatEvent;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;

use crate::config::{Env, InferencerSpec, Secret};

/// Outbound timeouts (contract Appendix B). Fixed for users; tests build a
/// registry with short ones to exercise a hung upstream.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Chat pass-through, and each orchestration request.
    pub chat: Duration,
    /// Ollama native `/api/chat` (large `num_ctx` means a long prompt eval).
    pub native: Duration,
    pub images: Duration,
    pub embeddings: Duration,
    /// A `claude` call: tool-less, and delegation.
    pub claude: claude::Timeouts,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            chat: Duration::from_secs(180),
            native: Duration::from_secs(600),
            images: Duration::from_secs(300),
            embeddings: Duration::from_secs(180),
            claude: claude::Timeouts::default(),
        }
    }
}

/// What can go wrong calling an upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("inferencer '{inferencer}' requires ${env} to be set")]
    MissingKey { inferencer: String, env: String },
    #[error("inferencer '{inferencer}' is unreachable at {url}: {cause}; {}", unreachable_hint(.inferencer))]
    Unreachable {
        inferencer: String,
        url: String,
        cause: String,
    },
    #[error(
        "inferencer '{inferencer}' did not answer within {} ({url}); the server may be overloaded or still loading the model: try again, or raise first_byte_timeout_secs / idle_timeout_secs under [inferencers.{inferencer}] in inferencers.toml",
        shown_secs(*.after)
    )]
    Timeout {
        inferencer: String,
        url: String,
        after: Duration,
    },
    /// The upstream answered with an error status; relayed as it is.
    #[error("inferencer '{inferencer}' answered {status}")]
    Upstream {
        inferencer: String,
        status: StatusCode,
        content_type: Option<String>,
        body: Bytes,
    },
    /// An upstream's event stream carried an error (`body`, its JSON) after
    /// it had started.
    #[error("inferencer '{inferencer}' failed mid-stream: {}", String::from_utf8_lossy(.body))]
    StreamFailed { inferencer: String, body: Bytes },
    /// A non-streaming answer larger than woollama buffers.
    #[error(
        "inferencer '{inferencer}' answered more than {} MiB ({url}); woollama reads at most that much of an answer it must parse — ask for a shorter answer (max_tokens) or use stream: true",
        .limit / (1024 * 1024)
    )]
    TooLarge {
        inferencer: String,
        url: String,
        limit: usize,
    },
    /// The upstream answered something we could not read.
    #[error("inferencer '{inferencer}' sent a response woollama could not read: {detail}")]
    BadResponse { inferencer: String, detail: String },
    /// The `claude` CLI failed (502).
    #[error("{backend} backend: {source}")]
    Claude {
        /// `claude-code`, or `claude-resume` for a conversation's turn.
        backend: &'static str,
        source: claude::Error,
    },
    /// Anthropic's managed agents failed (502).
    #[error("managed-agents backend: {0}")]
    Agents(#[from] agents::Error),
    /// A request this backend cannot take (400), e.g. client tools for the
    /// `claude` CLI.
    #[error("{0}")]
    Refused(String),
}

/// A duration as a person reads it: `180s`, `0.3s`.
fn shown_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// How to fix an unreachable inferencer: where its address is configured.
fn unreachable_hint(inferencer: &str) -> String {
    if inferencer == "ollama" {
        "is Ollama running? Start it (`ollama serve`), or set WOOLLAMA_OLLAMA_URL, or `base_url` under [inferencers.ollama] in inferencers.toml, to where it listens".into()
    } else {
        format!(
            "check that the server is running and reachable, or fix `base_url` under [inferencers.{inferencer}] in inferencers.toml"
        )
    }
}

/// One configured inferencer, ready to call.
#[derive(Debug)]
pub struct Inferencer {
    pub spec: InferencerSpec,
    key: Option<Secret>,
    /// The built-in `ollama` provider also speaks Ollama's native API
    /// (`/api/chat`), used when a request sets `options.num_ctx`.
    ollama: bool,
    /// `claude-code`: the `claude` CLI, not an HTTP upstream.
    claude: bool,
    /// Where this inferencer's calls are timed and its failures counted.
    pub(crate) metrics: crate::metrics::Metrics,
    /// The endpoints' URLs, parsed once (parsing a URL with its IDNA rules
    /// for every request was a tenth of a pass-through's CPU).
    urls: Vec<(&'static str, EndpointUrl)>,
    /// `Authorization: Bearer <key>`, made once (marked sensitive).
    bearer: Option<http::HeaderValue>,
    /// Its upstream series, looked up at its first call.
    series: std::sync::OnceLock<crate::metrics::Upstream>,
}

/// One endpoint's URL, parsed for reqwest and, for a plain-http upstream,
/// for the fast client (`upstream`).
#[derive(Debug)]
pub(crate) struct EndpointUrl {
    pub url: reqwest::Url,
    pub fast: Option<http::Uri>,
}

/// The paths under a base URL that calls go to.
const PATHS: &[&str] = &[
    "chat/completions",
    "embeddings",
    "images/generations",
    "messages",
    "messages/count_tokens",
];

fn parsed_urls(base: &str) -> Vec<(&'static str, EndpointUrl)> {
    PATHS
        .iter()
        .filter_map(|p| {
            let url = reqwest::Url::parse(&format!("{base}/{p}")).ok()?;
            let fast = upstream::fast_uri(&url);
            Some((*p, EndpointUrl { url, fast }))
        })
        .collect()
}

impl Inferencer {
    pub fn new(spec: InferencerSpec, env: &Env, metrics: crate::metrics::Metrics) -> Self {
        let key = spec
            .api_key_env
            .as_deref()
            .and_then(|name| env.non_empty(name))
            .map(Secret::new);
        let ollama = spec.name == "ollama";
        let urls = parsed_urls(&spec.base_url);
        let bearer = key.as_ref().and_then(|k| {
            let mut v = http::HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Self {
            spec,
            key,
            ollama,
            claude: false,
            metrics,
            urls,
            bearer,
            series: std::sync::OnceLock::new(),
        }
    }

    /// The prebuilt `Authorization` value (`None`: no key, or a key that is
    /// not a valid header value, which the slow path reports).
    pub(crate) fn bearer(&self) -> Option<&http::HeaderValue> {
        self.bearer.as_ref()
    }

    /// The upstream answered a call's headers (`ok`), or failed, after `took`.
    pub(crate) fn answered(&self, took: std::time::Duration, ok: bool) {
        self.series
            .get_or_init(|| self.metrics.upstream_series(self.name()))
            .answered(took, ok);
    }

    /// The `claude-code` inferencer (the `claude` CLI).
    fn claude_code(metrics: crate::metrics::Metrics) -> Self {
        Self {
            spec: InferencerSpec {
                name: CLAUDE_CODE.to_string(),
                base_url: String::new(),
                api_key_env: None,
                extra_body: serde_json::Map::new(),
                models: Vec::new(),
                discover: false,
                model_patterns: Vec::new(),
                capabilities: BTreeMap::new(),
                builtin: true,
                first_byte_timeout: None,
                idle_timeout: None,
            },
            key: None,
            ollama: false,
            claude: true,
            metrics,
            urls: Vec::new(),
            bearer: None,
            series: std::sync::OnceLock::new(),
        }
    }

    /// Whether this is the `claude` CLI.
    pub fn is_claude(&self) -> bool {
        self.claude
    }

    /// Whether this inferencer also speaks Ollama's native API.
    pub fn speaks_ollama(&self) -> bool {
        self.ollama
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The bearer key, if the inferencer uses one. Fails fast, before any
    /// network call, when the configured variable is unset or empty.
    pub fn auth(&self) -> Result<Option<&Secret>, Error> {
        match (&self.spec.api_key_env, &self.key) {
            (None, _) => Ok(None),
            (Some(_), Some(k)) => Ok(Some(k)),
            (Some(env), None) => Err(Error::MissingKey {
                inferencer: self.spec.name.clone(),
                env: env.clone(),
            }),
        }
    }

    /// `<base_url>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.spec.base_url)
    }

    /// `<base_url>/<path>` parsed, for the paths calls go to.
    pub(crate) fn parsed_url(&self, path: &str) -> Option<&reqwest::Url> {
        self.endpoint(path).map(|e| &e.url)
    }

    /// The endpoint at `path`, parsed, for the paths calls go to.
    pub(crate) fn endpoint(&self, path: &str) -> Option<&EndpointUrl> {
        self.urls.iter().find(|(p, _)| *p == path).map(|(_, u)| u)
    }
}

/// Every configured inferencer, by name.
fn inferencers(
    specs: &BTreeMap<String, InferencerSpec>,
    env: &Env,
    metrics: &crate::metrics::Metrics,
) -> Arc<BTreeMap<String, Arc<Inferencer>>> {
    Arc::new(
        specs
            .iter()
            .map(|(name, spec)| {
                let inf = Inferencer::new(spec.clone(), env, metrics.clone());
                (name.clone(), Arc::new(inf))
            })
            .collect(),
    )
}

/// The name of the `claude` CLI's inferencer (`claude-code/<model>`).
pub const CLAUDE_CODE: &str = "claude-code";

/// Every configured inferencer, plus the one HTTP client and the `claude`
/// CLI runner.
#[derive(Debug, Clone)]
pub struct Registry {
    inferencers: Arc<BTreeMap<String, Arc<Inferencer>>>,
    client: reqwest::Client,
    /// Plain-http upstreams' client (`upstream`), unless a proxy is set.
    fast: Option<upstream::Fast>,
    timeouts: Timeouts,
    claude_code: Arc<Inferencer>,
    claude: Arc<claude::ClaudeCli>,
    agents: Arc<agents::Agents>,
}

impl Registry {
    pub fn new(
        specs: &BTreeMap<String, InferencerSpec>,
        env: &Env,
        client: reqwest::Client,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        Self {
            inferencers: inferencers(specs, env, metrics),
            client: client.clone(),
            fast: upstream::Fast::unless_proxied(),
            timeouts: Timeouts::default(),
            claude_code: Arc::new(Inferencer::claude_code(metrics.clone())),
            claude: Arc::new(claude::ClaudeCli::new(
                env,
                std::path::Path::new("/nonexistent"),
                None,
            )),
            agents: Arc::new(agents::Agents::new(
                env,
                std::path::Path::new("/nonexistent"),
                client.clone(),
            )),
        }
    }

    /// The registry for a reloaded `inferencers.toml`: the new inferencers,
    /// and the same HTTP client, timeouts, `claude` runner, managed-agents
    /// client and metrics.
    #[must_use]
    pub fn reconfigured(&self, specs: &BTreeMap<String, InferencerSpec>, env: &Env) -> Self {
        Self {
            inferencers: inferencers(specs, env, &self.claude_code.metrics),
            ..self.clone()
        }
    }

    /// The one HTTP client every outbound call goes through.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// The same registry with other timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self.claude = Arc::new((*self.claude).clone().with_timeouts(timeouts.claude));
        self
    }

    /// The same registry with this `claude` CLI runner.
    #[must_use]
    pub fn with_claude(mut self, cli: claude::ClaudeCli) -> Self {
        self.claude = Arc::new(cli.with_timeouts(self.timeouts.claude));
        self
    }

    /// The same registry with this managed-agents client.
    #[must_use]
    pub fn with_agents(mut self, agents: agents::Agents) -> Self {
        self.agents = Arc::new(agents);
        self
    }

    /// Anthropic's managed agents (`claude-agent/<model>`).
    pub fn agents(&self) -> &agents::Agents {
        &self.agents
    }

    /// The `claude-code` inferencer.
    pub fn claude_code(&self) -> &Arc<Inferencer> {
        &self.claude_code
    }

    /// The `claude` CLI runner.
    pub fn claude(&self) -> &claude::ClaudeCli {
        &self.claude
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Inferencer>> {
        self.inferencers.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.inferencers.contains_key(name)
    }

    /// Sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Inferencer>> {
        self.inferencers.values()
    }

    pub fn names(&self) -> Vec<&str> {
        self.inferencers.keys().map(String::as_str).collect()
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn fast(&self) -> Option<&upstream::Fast> {
        self.fast.as_ref()
    }

    /// The models a provider lists at `GET <base_url>/models`, within
    /// `timeout`.
    pub async fn discover(
        &self,
        inf: &Inferencer,
        timeout: Duration,
    ) -> Result<Vec<String>, Error> {
        openai::discover(&self.client, inf, timeout).await
    }
}

/// The process's one HTTP client: rustls with the ring provider, pooled
/// connections, no overall timeout (each call sets its own).
/// What woollama calls itself to upstreams.
pub const USER_AGENT: &str = concat!("woollama/", env!("CARGO_PKG_VERSION"));

pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_inferencer_says_how_to_fix_it() {
        let e = |name: &str| {
            Error::Unreachable {
                inferencer: name.into(),
                url: "http://127.0.0.1:11434/v1/chat/completions".into(),
                cause: "Connection refused (os error 111)".into(),
            }
            .to_string()
        };
        let ollama = e("ollama");
        assert!(ollama.contains("`ollama serve`"), "{ollama}");
        assert!(ollama.contains("WOOLLAMA_OLLAMA_URL"), "{ollama}");
        let groq = e("groq");
        assert!(
            groq.contains("[inferencers.groq] in inferencers.toml"),
            "{groq}"
        );
    }
}
