//! The MCP client side: one long-lived connection per `mcp.json` server, the
//! snapshot of what they offer (tools, prompts, resources, templates — see
//! `catalog` for the exposed names), health and reconnect, dispatch, and
//! the forwarding of what a downstream sends back during a call (`forward`).
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
//!   `failed`). A `list_changed` for tools, prompts or resources refreshes
//!   its lists.
//! - Children get an allow-listed environment plus their `env`, run in their
//!   own process group, and are stopped — stdin closed, then SIGTERM to the
//!   group, then SIGKILL — at [`ToolRegistry::shutdown`].
//!   They are started through the child guard ([`crate::guard`]), so they die
//!   with woollama even when it is killed; their stderr is drained into the
//!   log whatever it carries (`stderr`).
//! - Each server is spoken to in the MCP generation it supports
//!   (`"protocol"`, `connect`): a 2025-11-25 session, or 2026-07-28, where
//!   every request carries its caller's capabilities and log level, list
//!   changes come on a `subscriptions/listen` stream, and a request that
//!   needs the client's input comes back `input_required` — relayed to a
//!   2026-07-28 caller, answered from an older caller's session
//!   (`Downstream::request`, `forward::fulfil`).

#![expect(
    deprecated,
    reason = "logging, sampling, roots and resources/subscribe (deprecated by SEP-2577) are what 2025-11-25 servers and clients still speak"
)]

mod catalog;
mod connect;
mod downstream;
mod forward;
pub mod grants;
pub mod names;
mod render;
mod stderr;

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, JsonObject, LoggingMessageNotificationParam, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, ServerResult, SubscribeRequest,
    SubscribeRequestParams, UnsubscribeRequest, UnsubscribeRequestParams,
};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Env, ServerSpec, Settings};
pub use catalog::{
    CHAT_TOOL, PromptEntry, Reserved, ResourceEntry, ServerStatus, Snapshot, TemplateEntry,
    ToolEntry,
};
use downstream::Downstream;
pub use downstream::Retry;
pub use forward::{ASK_LIMIT, Ask, Asks, Caller, severity};
pub use grants::{Grant, Grants, Scope};
pub use names::wire_name;
pub use render::render;

/// What downstreams send that is not tied to a call in flight.
#[derive(Debug, Clone)]
pub enum Event {
    /// A subscribed resource changed (`uri` as the server knows it).
    ResourceUpdated { server: String, uri: String },
    /// A log message sent while no call to that server was in flight.
    Log {
        server: String,
        params: LoggingMessageNotificationParam,
    },
}

/// The knobs of the MCP client side (from the environment).
#[derive(Debug, Clone)]
pub struct McpSettings {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
    /// Backoff ceiling; zero disables reconnecting.
    pub retry_max: Duration,
    /// Federation nesting cap; zero disables it.
    pub max_nesting: u32,
    /// A woollama binary to start stdio servers through (its hidden
    /// `child-guard` command, see [`crate::guard`]), so they die with woollama even
    /// when it is killed; `None` starts them directly. Set by the app
    /// assembly (`app::Options`).
    pub guard: Option<std::path::PathBuf>,
    /// Where tool calls and reconnects are counted.
    pub metrics: crate::metrics::Metrics,
}

impl From<&Settings> for McpSettings {
    fn from(s: &Settings) -> Self {
        Self {
            connect_timeout: s.mcp_connect_timeout,
            call_timeout: s.mcp_call_timeout,
            retry_max: s.mcp_retry_max,
            max_nesting: s.mcp_max_nesting,
            guard: None,
            metrics: crate::metrics::Metrics::default(),
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

/// Why a tool call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    #[error(
        "server '{server}' is not connected ({why}); GET /v1/tools shows its health, `woollama check-config --connect` tries it once"
    )]
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
        error: Box<rmcp::ErrorData>,
    },
    #[error(
        "{what} on server '{server}' asked for the client's input (input_required), and no MCP client is behind this call to answer it (a recipe's tool calls have none)"
    )]
    InputRequired { server: String, what: String },
    #[error("server '{server}' asked for input that could not be given: {detail}")]
    Input { server: String, detail: String },
    #[error(
        "unknown requestState: woollama did not issue it, and {what} is on server '{server}', which speaks 2025-11-25 and issues none (a call waits for its input for 5 minutes)"
    )]
    UnknownState { server: String, what: String },
    #[error("the call was cut short: {0}")]
    Aborted(String),
    #[error(
        "server '{server}' needed a client capability this request did not declare ({})",
        serde_json::to_string(.required).unwrap_or_default()
    )]
    MissingCapability {
        server: String,
        required: Box<rmcp::model::ClientCapabilities>,
    },
    #[error("server '{server}' answered with a result of the wrong kind")]
    Unexpected { server: String },
    #[error("unknown prompt '{0}'")]
    UnknownPrompt(String),
    #[error("no server offers the resource '{0}'")]
    UnknownResource(String),
    #[error("unknown server '{0}'")]
    UnknownServer(String),
}

struct Inner {
    /// The configured servers; a reload replaces the ones whose entries
    /// changed (`ToolRegistry::reconfigure`).
    downstreams: std::sync::RwLock<Vec<Arc<Downstream>>>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<Event>,
    settings: McpSettings,
    reserved: std::sync::RwLock<Reserved>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    grants: Grants,
    /// What a stdio child inherits, and the HTTP client of `url` servers.
    child_env: Arc<std::collections::BTreeMap<String, String>>,
    http: reqwest::Client,
}

fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    /// Starts supervising `ds` (connect, reconnect, stop when told).
    fn spawn(self: &Arc<Self>, ds: Arc<Downstream>) {
        let task = downstream::supervise(
            Arc::clone(self),
            ds,
            Arc::clone(&self.child_env),
            self.http.clone(),
        );
        self.tasks.spawn(task);
    }

    /// Rebuilds and swaps the snapshot from every downstream's state.
    fn publish(&self) {
        let parts = read(&self.downstreams).iter().map(|d| d.status()).collect();
        let reserved = read(&self.reserved).clone();
        let mut fresh = Vec::new();
        self.snapshot.send_modify(|current| {
            let mut next = Snapshot::build(
                current.version + 1,
                parts,
                self.settings.max_nesting,
                &reserved,
            );
            next.own_prompts.clone_from(&reserved.prompts);
            fresh = next
                .collisions
                .iter()
                .filter(|c| !current.collisions.contains(c))
                .cloned()
                .collect();
            *current = Arc::new(next);
        });
        for c in fresh {
            tracing::warn!("name collision: {c}");
        }
    }
}

/// What a reload did to the downstreams, by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconfigured {
    pub added: Vec<String>,
    pub restarted: Vec<String>,
    pub removed: Vec<String>,
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
    /// `reserved` are woollama's own names, which an unprefixed server's
    /// names never take.
    pub fn start(
        servers: &[ServerSpec],
        settings: McpSettings,
        reserved: Reserved,
        env: &Env,
        http: reqwest::Client,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let downstreams: Vec<Arc<Downstream>> = servers
            .iter()
            .map(|s| Arc::new(Downstream::new(s.clone(), shutdown.child_token())))
            .collect();
        let (snapshot, _) = watch::channel(Arc::new(Snapshot::default()));
        let (events, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            downstreams: std::sync::RwLock::new(downstreams.clone()),
            snapshot,
            events,
            settings,
            reserved: std::sync::RwLock::new(reserved),
            shutdown,
            tasks: TaskTracker::new(),
            grants: Grants::default(),
            child_env: connect::base_env(env),
            http,
        });
        inner.publish();
        for ds in downstreams {
            inner.spawn(ds);
        }
        inner.tasks.close();
        Self { inner }
    }

    /// Applies a reloaded `mcp.json` (and the recipes' names, which the MCP
    /// surface reserves): a server whose entry is unchanged keeps its
    /// connection and child; a changed one is stopped and started afresh;
    /// a removed one is stopped; a new one is started. Clients see the new
    /// lists (and get `list_changed`) as the servers come up.
    pub fn reconfigure(&self, servers: &[ServerSpec], reserved: Reserved) -> Reconfigured {
        let mut done = Reconfigured::default();
        let mut fresh = Vec::new();
        {
            let mut list = write(&self.inner.downstreams);
            let mut next = Vec::with_capacity(servers.len());
            for spec in servers {
                match list.iter().find(|d| d.spec.name == spec.name) {
                    Some(d) if d.spec == *spec => next.push(Arc::clone(d)),
                    found => {
                        if found.is_some() {
                            done.restarted.push(spec.name.clone());
                        } else {
                            done.added.push(spec.name.clone());
                        }
                        let ds = Arc::new(Downstream::new(
                            spec.clone(),
                            self.inner.shutdown.child_token(),
                        ));
                        next.push(Arc::clone(&ds));
                        fresh.push(ds);
                    }
                }
            }
            for old in list.iter() {
                if !next.iter().any(|d| Arc::ptr_eq(d, old)) {
                    old.stop.cancel();
                    if !servers.iter().any(|s| s.name == old.spec.name) {
                        done.removed.push(old.spec.name.clone());
                    }
                }
            }
            *list = next;
            *write(&self.inner.reserved) = reserved;
        }
        for ds in fresh {
            self.inner.spawn(ds);
        }
        self.inner.publish();
        done
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
                guard: None,
                metrics: crate::metrics::Metrics::default(),
            },
            Reserved::default(),
            &Env::default(),
            reqwest::Client::new(),
        )
    }

    /// Scoped access to this process's `/mcp` for delegates.
    pub fn grants(&self) -> &Grants {
        &self.inner.grants
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

    pub fn settings(&self) -> &McpSettings {
        &self.inner.settings
    }

    /// Waits, at most `limit`, until every server has finished its first
    /// connection attempt (connected, retrying or failed), and returns the
    /// snapshot then. A client that lists right after woollama started sees
    /// the downstreams that could connect, not an empty roster; later
    /// changes reach it as `list_changed`.
    pub async fn settled(&self, limit: Duration) -> Arc<Snapshot> {
        self.settled_where(limit, |_| true).await
    }

    /// [`ToolRegistry::settled`] for the named servers only (those a recipe's
    /// allow-list names), bounded by the connect timeout: a recipe called the
    /// moment woollama started runs with the tools that could connect, not
    /// without tools that were still connecting.
    pub async fn settled_for(&self, servers: &[&str]) -> Arc<Snapshot> {
        let limit = self.inner.settings.connect_timeout;
        self.settled_where(limit, |name| servers.contains(&name))
            .await
    }

    async fn settled_where(&self, limit: Duration, named: impl Fn(&str) -> bool) -> Arc<Snapshot> {
        let first_done = |s: &Arc<Snapshot>| {
            !s.servers
                .iter()
                .any(|x| x.health == Health::Connecting && named(&x.name))
        };
        let now = self.snapshot();
        if first_done(&now) {
            return now;
        }
        match tokio::time::timeout(limit, self.wait_for(first_done)).await {
            Ok(Some(s)) => s,
            _ => self.snapshot(),
        }
    }

    /// Follows what downstreams send outside of calls (resource updates,
    /// stray log messages).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn downstream(&self, server: &str) -> Result<Arc<Downstream>, Error> {
        read(&self.inner.downstreams)
            .iter()
            .find(|d| d.spec.name == server)
            .cloned()
            .ok_or_else(|| Error::UnknownServer(server.to_string()))
    }

    /// Calls a tool by wire name, bounded by the call timeout. A failure at
    /// the transport marks the server for reconnection.
    pub async fn call(
        &self,
        wire: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, Error> {
        match self
            .call_for(wire, arguments, Retry::default(), None)
            .await?
        {
            CallToolResponse::Complete(r) => Ok(r),
            _ => Err(Error::Unexpected {
                server: self
                    .snapshot()
                    .tool(wire)
                    .map(|t| t.server.clone())
                    .unwrap_or_default(),
            }),
        }
    }

    /// [`ToolRegistry::call`] on behalf of an MCP client, which receives the
    /// downstream's progress, log messages and server→client requests. A
    /// 2026-07-28 client may get `input_required` (from a 2026-07-28
    /// downstream, as it came), and `retry` carries its answers back.
    pub async fn call_for(
        &self,
        wire: &str,
        arguments: Option<JsonObject>,
        retry: Retry,
        caller: Option<Caller>,
    ) -> Result<CallToolResponse, Error> {
        let snap = self.snapshot();
        let entry = snap
            .tool(wire)
            .ok_or_else(|| Error::UnknownTool(wire.to_string()))?;
        let ds = self
            .downstream(&entry.server)
            .map_err(|_| Error::UnknownTool(wire.to_string()))?;
        let mut params = CallToolRequestParams::new(entry.tool.name.clone());
        params.arguments = arguments;
        params.input_responses = retry.input_responses;
        if let Some(state) = retry.request_state {
            if !ds.modern()? {
                return Err(Error::UnknownState {
                    server: entry.server.clone(),
                    what: format!("tool '{wire}'"),
                });
            }
            params.request_state = Some(state);
        }
        let started = std::time::Instant::now();
        let result = ds
            .call(params, self.inner.settings.call_timeout, caller)
            .await;
        let outcome = match &result {
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "error",
            Ok(CallToolResponse::InputRequired(_)) => "input_required",
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        self.inner
            .settings
            .metrics
            .tool_call(&entry.server, outcome, started.elapsed());
        result
    }

    /// Sends a request to `server`, bounded by the call timeout.
    async fn request(
        &self,
        server: &str,
        request: ClientRequest,
        caller: Option<Caller>,
    ) -> Result<ServerResult, Error> {
        self.downstream(server)?
            .request(request, self.inner.settings.call_timeout, caller)
            .await
    }

    /// `prompts/get` for a prompt by its exposed name; a 2026-07-28 caller
    /// may get `input_required`, and its retry's answers and state are in
    /// `params`.
    pub async fn get_prompt(
        &self,
        mut params: GetPromptRequestParams,
        caller: Option<Caller>,
    ) -> Result<GetPromptResponse, Error> {
        let snap = self.snapshot();
        let entry = snap
            .prompt(&params.name)
            .ok_or_else(|| Error::UnknownPrompt(params.name.clone()))?;
        let server = entry.server.clone();
        if params.request_state.is_some() && !self.downstream(&server)?.modern()? {
            return Err(Error::UnknownState {
                server,
                what: format!("prompt '{}'", params.name),
            });
        }
        params.name.clone_from(&entry.prompt.name);
        params.meta = None;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.request(&server, request, caller).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(Error::Unexpected { server }),
        }
    }

    /// `resources/read` for a URI as a client sees it; the contents come
    /// back with the URIs the client sees. A 2026-07-28 caller may get
    /// `input_required`, and `retry` carries its answers back.
    pub async fn read_resource(
        &self,
        uri: &str,
        retry: Retry,
        caller: Option<Caller>,
    ) -> Result<ReadResourceResponse, Error> {
        let snap = self.snapshot();
        let (server, original) = snap
            .route_uri(uri)
            .ok_or_else(|| Error::UnknownResource(uri.to_string()))?;
        if retry.request_state.is_some() && !self.downstream(&server)?.modern()? {
            return Err(Error::UnknownState {
                server,
                what: format!("resource '{uri}'"),
            });
        }
        let mut params = ReadResourceRequestParams::new(original.clone());
        params.input_responses = retry.input_responses;
        params.request_state = retry.request_state;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.request(&server, request, caller).await? {
            ServerResult::ReadResourceResult(mut r) => {
                for c in &mut r.contents {
                    if let rmcp::model::ResourceContents::TextResourceContents { uri, .. }
                    | rmcp::model::ResourceContents::BlobResourceContents { uri, .. } = c
                    {
                        *uri = snap.exposed_uri(&server, uri);
                    }
                }
                Ok(ReadResourceResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(Error::Unexpected { server }),
        }
    }

    /// `resources/subscribe` (`on`) or `resources/unsubscribe` at the server
    /// that owns `uri`; returns `(server, uri as the server knows it)`.
    pub async fn subscribe(&self, uri: &str, on: bool) -> Result<(String, String), Error> {
        let snap = self.snapshot();
        let (server, original) = snap
            .route_uri(uri)
            .ok_or_else(|| Error::UnknownResource(uri.to_string()))?;
        let ds = self.downstream(&server)?;
        // Recorded whatever the connection: 2026-07-28 has no
        // resources/subscribe, and the URI is part of its listen filter
        // instead (now, or after a reconnect).
        ds.listen_for(&original, on)?;
        if ds.modern()? {
            return Ok((server, original));
        }
        let request = if on {
            ClientRequest::SubscribeRequest(SubscribeRequest::new(SubscribeRequestParams::new(
                original.clone(),
            )))
        } else {
            ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(
                UnsubscribeRequestParams::new(original.clone()),
            ))
        };
        self.request(&server, request, None).await?;
        Ok((server, original))
    }

    /// `completion/complete` for a downstream prompt or resource template
    /// (by exposed name). `Ok(None)` when the reference is not a downstream's.
    pub async fn complete(
        &self,
        mut params: CompleteRequestParams,
    ) -> Result<Option<CompleteResult>, Error> {
        use rmcp::model::Reference;
        let snap = self.snapshot();
        let server = match &mut params.r#ref {
            Reference::Prompt(p) => match snap.prompt(&p.name) {
                Some(e) => {
                    p.name.clone_from(&e.prompt.name);
                    e.server.clone()
                }
                None => return Ok(None),
            },
            Reference::Resource(r) => match snap.template(&r.uri) {
                Some(e) => {
                    r.uri.clone_from(&e.template.uri_template);
                    e.server.clone()
                }
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let offers = snap
            .server(&server)
            .and_then(|s| s.capabilities.as_ref())
            .is_some_and(|c| c.completions.is_some());
        if !offers {
            return Ok(Some(CompleteResult::default()));
        }
        params.meta = None;
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        match self.request(&server, request, None).await? {
            ServerResult::CompleteResult(r) => Ok(Some(r)),
            _ => Err(Error::Unexpected { server }),
        }
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
