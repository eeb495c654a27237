//! The one assembly of what every surface shares.
//!
//! [`AppState`] holds cheap-to-clone handles — the config snapshot, the
//! inferencer registry, the MCP downstream registry, the one pooled HTTP
//! client, the shutdown token — and [`AppState::build`] is the one function
//! that makes it, called by `serve`, `woollama mcp`, `check-config --connect`
//! and the tests alike. A handle every surface needs (the conversation
//! table, metrics) is added here and nowhere else.
//!
//! The surfaces (`http`, `mcp_surface`) take an `AppState` and never each
//! other; `serve` is what puts them on listeners.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Env};
use crate::conversations::{Store, Table};
use crate::inference::{self, Registry, Timeouts};
use crate::tools::{McpSettings, Reserved, ToolRegistry};

/// How the process is assembled beyond what the config says.
#[derive(Debug, Clone)]
pub struct Options {
    /// A woollama binary whose hidden `child-guard` command starts stdio
    /// servers (`guard`); `None` starts them directly.
    pub guard: Option<PathBuf>,
    /// Outbound timeouts (fixed for users; short in tests of a hung upstream).
    pub timeouts: Timeouts,
    /// Reconnect downstreams that fail (off for `check-config --connect`,
    /// which tries each once).
    pub reconnect: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            guard: None,
            timeouts: Timeouts::default(),
            reconnect: true,
        }
    }
}

impl Options {
    /// The options of the `woollama` binary itself: its stdio servers start
    /// through this very binary's guard. Without a readable path to it
    /// (replaced on disk while running) they start directly, with a warning.
    pub fn for_this_binary() -> Self {
        let guard = match std::env::current_exe() {
            Ok(exe) if exe.is_file() => Some(exe),
            _ => {
                tracing::warn!(
                    "cannot find this woollama binary on disk; MCP servers are started without a guard and outlive a killed woollama"
                );
                None
            }
        };
        Self {
            guard,
            ..Self::default()
        }
    }
}

/// The live assembly: the current [`AppState`], which a config reload
/// replaces whole (`Live::reload`). Every request takes the snapshot that is
/// current when it starts (axum's `State<AppState>` extracts it through
/// [`FromRef`](axum::extract::FromRef)) and finishes on it; the shared
/// handles inside (tool registry, conversation table, metrics, shutdown)
/// are the same across reloads.
///
/// Cheap to clone (one `Arc`): axum clones its router's state for every
/// request.
#[derive(Clone)]
pub struct Live(Arc<LiveInner>);

struct LiveInner {
    current: std::sync::RwLock<AppState>,
    /// The environment captured at start, which reloads expand `${VAR}`
    /// against (a running process's environment does not change).
    env: Env,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl axum::extract::FromRef<Live> for AppState {
    fn from_ref(live: &Live) -> AppState {
        live.load()
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default)]
pub struct Reloaded {
    pub recipes_added: Vec<String>,
    pub recipes_removed: Vec<String>,
    pub recipes_changed: Vec<String>,
    pub servers: crate::tools::Reconfigured,
    pub inferencers_changed: bool,
}

impl std::fmt::Display for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, names) in [
            ("recipes added", &self.recipes_added),
            ("recipes removed", &self.recipes_removed),
            ("recipes changed", &self.recipes_changed),
            ("servers added", &self.servers.added),
            ("servers restarted", &self.servers.restarted),
            ("servers removed", &self.servers.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        if self.inferencers_changed {
            parts.push("inferencers changed".into());
        }
        if parts.is_empty() {
            f.write_str("nothing changed")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

impl Live {
    pub fn new(state: AppState, env: Env) -> Self {
        Self(Arc::new(LiveInner {
            current: std::sync::RwLock::new(state),
            env,
        }))
    }

    /// The current snapshot.
    pub fn load(&self) -> AppState {
        self.0
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the three config files again. If they are not valid, nothing
    /// changes and the error is what `check-config` would say; if they
    /// are, the new config is swapped in at once (requests in flight finish
    /// on the one they started with), inferencers are rebuilt, and only the
    /// MCP servers whose entries changed are restarted.
    pub fn reload(&self) -> Result<Reloaded, Vec<String>> {
        // The directory this config came from (the daemon's is the one the
        // environment names; an embedder's, the one it gave).
        let dir = self.load().config.dir.clone();
        let loaded = crate::config::load_from(dir.as_deref(), &self.0.env);
        if loaded.diagnostics.has_fatal() {
            return Err(loaded
                .diagnostics
                .of(crate::config::Severity::Fatal)
                .map(ToString::to_string)
                .collect());
        }
        for d in loaded.diagnostics.iter() {
            match d.severity {
                crate::config::Severity::Error => tracing::warn!("{d}"),
                _ => tracing::info!("{d}"),
            }
        }
        let mut guard = self
            .0
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = guard.clone();
        let config = Arc::new(loaded.config);
        let old = &current.config.recipes;
        let new = &config.recipes;
        let mut reloaded = Reloaded {
            recipes_added: new
                .keys()
                .filter(|k| !old.contains_key(*k))
                .cloned()
                .collect(),
            recipes_removed: old
                .keys()
                .filter(|k| !new.contains_key(*k))
                .cloned()
                .collect(),
            recipes_changed: new
                .iter()
                .filter(|(k, r)| old.get(*k).is_some_and(|o| o != *r))
                .map(|(k, _)| k.clone())
                .collect(),
            inferencers_changed: format!("{:?}", current.config.inferencers)
                != format!("{:?}", config.inferencers),
            ..Reloaded::default()
        };
        let inference = current
            .inference
            .reconfigured(&config.inferencers, &self.0.env);
        let conversation_store = Store::from_config(
            config.conversation_store.as_ref(),
            &current.tools,
            inference.http(),
        );
        reloaded.servers = current
            .tools
            .reconfigure(&config.servers, Reserved::of(&config));
        *guard = AppState(Arc::new(Shared {
            config,
            inference,
            conversation_store,
            ..(*current.0).clone()
        }));
        Ok(reloaded)
    }
}

/// Why the app could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What every handler shares. One `Arc`: axum's `State` extractor and the
/// middleware take their own copy several times per request, and copying
/// the handles one by one (a dozen reference counts and a cancellation
/// token's lock) showed in the pass-through's profile.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles inside an [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub inference: Registry,
    /// The MCP downstreams.
    pub tools: ToolRegistry,
    /// The conversation handle table (durable, under the state dir).
    pub conversations: Table,
    /// Where store-backed conversations keep their messages.
    pub conversation_store: Option<Store>,
    /// The Prometheus metrics (`GET /metrics`).
    pub metrics: crate::metrics::Metrics,
    /// Process start, seconds since the epoch (the `created` of listed models).
    pub started: u64,
    /// Cancelled when woollama shuts down: long-lived streams (MCP SSE) end
    /// so the drain does not wait on them.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Builds every shared handle; downstreams start connecting in the
    /// background at once (call this only once the listeners are bound).
    pub fn build(config: Arc<Config>, env: &Env, options: Options) -> Result<Self, Error> {
        let client = inference::build_client().map_err(|e| Error::Client(e.to_string()))?;
        let metrics = crate::metrics::Metrics::new();
        let mut mcp = McpSettings::from(&config.settings);
        mcp.guard.clone_from(&options.guard);
        mcp.metrics = metrics.clone();
        if !options.reconnect {
            mcp.retry_max = Duration::ZERO;
        }
        let tools = ToolRegistry::start(
            &config.servers,
            mcp,
            Reserved::of(&config),
            env,
            client.clone(),
        );
        let claude = inference::claude::ClaudeCli::new(
            env,
            &config.settings.state_dir,
            options.guard.clone(),
        );
        let inference = Registry::new(&config.inferencers, env, client.clone(), &metrics)
            .with_timeouts(options.timeouts)
            .with_claude(claude)
            .with_agents(inference::agents::Agents::new(
                env,
                &config.settings.state_dir,
                client.clone(),
            ));
        let conversations = Table::open_or_unavailable(
            &config.settings.state_dir,
            config
                .settings
                .state_url
                .as_ref()
                .map(crate::config::Secret::expose),
        );
        let conversation_store =
            Store::from_config(config.conversation_store.as_ref(), &tools, &client);
        Ok(Self(Arc::new(Shared {
            config,
            inference,
            tools,
            conversations,
            conversation_store,
            metrics,
            started: crate::wire::now(),
            shutdown: CancellationToken::new(),
        })))
    }

    /// Records the TCP address this process serves `/mcp` on, so that a
    /// delegate (the `claude` CLI running a recipe with tools) can reach it:
    /// an unspecified bind (`0.0.0.0`, `::`) is reached on loopback.
    ///
    /// When `WOOLLAMA_ADDRESS` named the host, that name is used: the `Host`
    /// rule admits it, and not the address it happened to resolve to.
    pub fn listening_on(&self, addr: std::net::SocketAddr) {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let named = self
            .config
            .settings
            .explicit_host()
            .filter(|h| h.parse::<IpAddr>().is_err());
        if let Some(name) = named {
            let url = format!("http://{name}:{}/mcp", addr.port());
            self.tools.grants().set_endpoint(url);
            return;
        }
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let at = std::net::SocketAddr::new(ip, addr.port());
        self.tools.grants().set_endpoint(format!("http://{at}/mcp"));
    }

    /// Ends long-lived streams and stops every downstream (children reaped),
    /// waiting at most `deadline` for them.
    pub async fn stop(&self, deadline: Duration) {
        self.shutdown.cancel();
        self.tools.shutdown(deadline).await;
    }
}
