//! The MCP client side: one long-lived connection per `mcp.json` server, the
//! tool snapshot, health and reconnect, wire names, dispatch.
//!
//! - Every server connects concurrently in its own supervisor task, bounded
//!   by `WOOLLAMA_MCP_CONNECT_TIMEOUT_SECS`; the daemon serves while they
//!   connect.
//! - What requests read is an immutable [`Snapshot`] (servers with health,
//!   tools, the wire-name index), swapped whole on every change, so a request
//!   never waits on a downstream and never sees half an update.
//! - Unlike the earlier implementations, a downstream that dies **after**
//!   connecting is noticed — its transport closes, or a call through it fails
//!   at the transport — reported `retrying`, and reconnected with backoff
//!   (`WOOLLAMA_MCP_RETRY_MAX_SECS`; `0` disables retry and marks it
//!   `failed`). `notifications/tools/list_changed` refreshes its roster.
//! - Children get an allow-listed environment plus their `env`, run in their
//!   own process group, and are stopped — stdin closed, then SIGTERM to the
//!   group, then SIGKILL — at [`ToolRegistry::shutdown`].

mod downstream;
pub mod names;
mod render;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, Tool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Env, ServerSpec, Settings};
use downstream::Downstream;
pub use names::wire_name;
pub use render::render;

/// The knobs of the MCP client side (from the environment).
#[derive(Debug, Clone, Copy)]
pub struct McpSettings {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// Backoff ceiling; zero disables reconnecting.
    pub retry_max: Duration,
    /// Federation nesting cap; zero disables it.
    pub max_nesting: u32,
}

impl From<&Settings> for McpSettings {
    fn from(s: &Settings) -> Self {
        Self {
            connect_timeout: s.mcp_connect_timeout,
            call_timeout: s.mcp_call_timeout,
            retry_max: s.mcp_retry_max,
            max_nesting: s.mcp_max_nesting,
        }
    }
}

/// A server's health (contract §7.4, plus `connecting` for the first try).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Connecting,
    Connected,
    Retrying { attempts: u32, last_error: String },
    Failed { reason: String },
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Connecting => "connecting",
            Health::Connected => "connected",
            Health::Retrying { .. } => "retrying",
            Health::Failed { .. } => "failed",
        }
    }
}

/// One configured server as the snapshot sees it.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub health: Health,
    /// Tools listed (those past the nesting cap are not counted).
    pub tools: usize,
}

/// One downstream tool.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub server: String,
    /// The name toward models and MCP clients.
    pub wire: String,
    /// The downstream's own definition: name, description, schemas.
    pub tool: Tool,
    /// Past the nesting cap: not listed, but still dispatchable.
    pub capped: bool,
}

impl ToolEntry {
    /// `server.tool`.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.server, self.tool.name)
    }
}

/// Everything a request needs to know about the downstreams, immutable.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Every configured server, sorted by name — down ones included.
    pub servers: Vec<ServerStatus>,
    /// Every tool, sorted by (server, tool).
    pub tools: Vec<ToolEntry>,
    by_wire: HashMap<String, usize>,
    by_ref: HashMap<(String, String), usize>,
}

impl Snapshot {
    fn build(version: u64, parts: Vec<(ServerStatus, Vec<Tool>)>, max_nesting: u32) -> Self {
        let mut servers = Vec::with_capacity(parts.len());
        let mut tools = Vec::new();
        for (mut status, list) in parts {
            let mut listed = 0;
            for tool in list {
                let capped =
                    max_nesting > 0 && names::nesting(&tool.name) + 1 > max_nesting as usize;
                if !capped {
                    listed += 1;
                }
                tools.push(ToolEntry {
                    server: status.name.clone(),
                    wire: wire_name(&status.name, &tool.name),
                    tool,
                    capped,
                });
            }
            status.tools = listed;
            servers.push(status);
        }
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        tools.sort_by(|a, b| (&a.server, &a.tool.name).cmp(&(&b.server, &b.tool.name)));
        let by_wire = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.wire.clone(), i))
            .collect();
        let by_ref = tools
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.server.clone(), t.tool.name.to_string()), i))
            .collect();
        Snapshot {
            version,
            servers,
            tools,
            by_wire,
            by_ref,
        }
    }

    /// A tool by wire name.
    pub fn tool(&self, wire: &str) -> Option<&ToolEntry> {
        self.by_wire.get(wire).map(|i| &self.tools[*i])
    }

    /// A tool by `server` and tool name.
    pub fn find(&self, server: &str, tool: &str) -> Option<&ToolEntry> {
        self.by_ref
            .get(&(server.to_string(), tool.to_string()))
            .map(|i| &self.tools[*i])
    }

    /// Tools that are listed (not past the nesting cap).
    pub fn listed(&self) -> impl Iterator<Item = &ToolEntry> {
        self.tools.iter().filter(|t| !t.capped)
    }

    pub fn server(&self, name: &str) -> Option<&ServerStatus> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// Why a tool call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    #[error("server '{server}' is not connected ({why})")]
    Unavailable { server: String, why: String },
    #[error("downstream tool call timed out after {}s", .after.as_secs_f64())]
    Timeout { after: Duration },
    #[error("server '{server}' failed during the call: {detail}")]
    Transport { server: String, detail: String },
    /// The downstream answered with a JSON-RPC error (kept whole, so the
    /// MCP surface can forward it as it came).
    #[error("server '{server}' refused the call: {}", .error.message)]
    Protocol {
        server: String,
        error: rmcp::ErrorData,
    },
    #[error(
        "tool '{tool}' on server '{server}' asked for more input, which woollama does not provide"
    )]
    InputRequired { server: String, tool: String },
}

struct Inner {
    downstreams: Vec<Arc<Downstream>>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    settings: McpSettings,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Inner {
    /// Rebuilds and swaps the snapshot from every downstream's state.
    fn publish(&self) {
        let parts = self.downstreams.iter().map(|d| d.status()).collect();
        self.snapshot.send_modify(|current| {
            *current = Arc::new(Snapshot::build(
                current.version + 1,
                parts,
                self.settings.max_nesting,
            ));
        });
    }
}

/// The downstream registry: cheap to clone, one per process.
#[derive(Clone)]
pub struct ToolRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("version", &self.snapshot().version)
            .finish_non_exhaustive()
    }
}

impl ToolRegistry {
    /// Starts connecting every server in the background and returns at once.
    pub fn start(
        servers: &[ServerSpec],
        settings: McpSettings,
        env: &Env,
        http: reqwest::Client,
    ) -> Self {
        let downstreams: Vec<Arc<Downstream>> = servers
            .iter()
            .map(|s| Arc::new(Downstream::new(s.clone())))
            .collect();
        let (snapshot, _) = watch::channel(Arc::new(Snapshot::default()));
        let inner = Arc::new(Inner {
            downstreams,
            snapshot,
            settings,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        inner.publish();
        let child_env = downstream::base_env(env);
        for ds in &inner.downstreams {
            let task = downstream::supervise(
                Arc::clone(&inner),
                Arc::clone(ds),
                child_env.clone(),
                http.clone(),
            );
            inner.tasks.spawn(task);
        }
        inner.tasks.close();
        Self { inner }
    }

    /// An empty registry (no servers).
    pub fn empty() -> Self {
        Self::start(
            &[],
            McpSettings {
                connect_timeout: Duration::from_secs(30),
                call_timeout: Duration::from_secs(120),
                retry_max: Duration::from_secs(60),
                max_nesting: 2,
            },
            &Env::default(),
            reqwest::Client::new(),
        )
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.inner.snapshot.borrow())
    }

    /// Follows snapshot changes. Never keep a borrow of the receiver (the
    /// guard `borrow()` or `wait_for()` returns) alive across an `.await` or
    /// for long: it holds the channel's lock and stalls every publish. Clone
    /// the `Arc` out, or use [`ToolRegistry::wait_for`].
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.snapshot.subscribe()
    }

    /// Waits until the snapshot satisfies `pred` and returns it (the channel
    /// is not held). `None` only if the registry is gone.
    pub async fn wait_for(
        &self,
        pred: impl FnMut(&Arc<Snapshot>) -> bool,
    ) -> Option<Arc<Snapshot>> {
        let mut rx = self.watch();
        rx.wait_for(pred).await.ok().map(|s| Arc::clone(&s))
    }

    pub fn settings(&self) -> McpSettings {
        self.inner.settings
    }

    /// Calls a tool by wire name, bounded by the call timeout. A failure at
    /// the transport marks the server for reconnection.
    pub async fn call(
        &self,
        wire: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, Error> {
        let snap = self.snapshot();
        let entry = snap
            .tool(wire)
            .ok_or_else(|| Error::UnknownTool(wire.to_string()))?;
        let ds = self
            .inner
            .downstreams
            .iter()
            .find(|d| d.spec.name == entry.server)
            .ok_or_else(|| Error::UnknownTool(wire.to_string()))?;
        let mut params = CallToolRequestParams::new(entry.tool.name.clone());
        params.arguments = arguments;
        ds.call(params, self.inner.settings.call_timeout).await
    }

    /// Stops every downstream: supervisors end, children are stopped and
    /// reaped. Waits up to `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        self.inner.shutdown.cancel();
        if tokio::time::timeout(deadline, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "some MCP downstreams did not stop within {}s",
                deadline.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "d", Arc::new(JsonObject::new()))
    }

    fn status(name: &str) -> ServerStatus {
        ServerStatus {
            name: name.into(),
            transport: "http",
            health: Health::Connected,
            tools: 0,
        }
    }

    #[test]
    fn the_nesting_cap_hides_but_keeps_dispatchable() {
        let parts = vec![(
            status("fed"),
            vec![
                tool("chat"),
                tool("mcp__leaf__count_to"),
                tool("mcp__a__mcp__b__deep"),
            ],
        )];
        let s = Snapshot::build(1, parts, 2);
        let listed: Vec<&str> = s.listed().map(|t| t.wire.as_str()).collect();
        assert_eq!(
            listed,
            vec!["mcp__fed__chat", "mcp__fed__mcp__leaf__count_to"]
        );
        assert_eq!(s.server("fed").map(|x| x.tools), Some(2));
        // Past the cap: not listed, still in the wire index.
        assert!(
            s.tool("mcp__fed__mcp__a__mcp__b__deep")
                .is_some_and(|t| t.capped)
        );
        // A cap of zero disables it.
        let parts = vec![(status("fed"), vec![tool("mcp__a__mcp__b__deep")])];
        assert_eq!(Snapshot::build(1, parts, 0).listed().count(), 1);
    }

    #[test]
    fn servers_and_tools_are_sorted() {
        let parts = vec![
            (status("zeta"), vec![tool("b"), tool("a")]),
            (status("alpha"), vec![tool("z")]),
        ];
        let s = Snapshot::build(1, parts, 2);
        let names: Vec<String> = s.tools.iter().map(ToolEntry::dotted).collect();
        assert_eq!(names, vec!["alpha.z", "zeta.a", "zeta.b"]);
        assert_eq!(s.servers[0].name, "alpha");
        assert_eq!(
            s.find("zeta", "a").map(|t| t.wire.as_str()),
            Some("mcp__zeta__a")
        );
    }
}
