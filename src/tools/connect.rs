//! Connecting one downstream: the child process (allow-listed environment,
//! its own process group, started through the child guard, stderr drained
//! into the log) or the Streamable HTTP transport; the MCP handshake with
//! woollama's client handler; the first listing of what it offers.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, Implementation, JsonRpcMessage, ListRootsResult,
    ProtocolVersion, ResourceUpdatedNotificationParam, ServerCapabilities, ServerNotification,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::service::{
    NotificationContext, RequestContext, RunningService, RxJsonRpcMessage, TxJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{
    StreamableHttpClientTransport, TokioChildProcess, Transport as McpTransport,
};
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, ServiceError};
use tokio::sync::broadcast;

use super::catalog::Catalog;
use super::downstream::{Downstream, Refresh};
use super::forward::{self, InFlight};
use super::{Event, McpSettings};
use crate::config::{Env, Protocol, Transport};
use crate::guard;

/// The `PATH` a child is started with: its own `env`'s, else the inherited one.
fn path_of<'a>(
    env: &'a BTreeMap<String, String>,
    extra: &'a BTreeMap<String, crate::config::Secret>,
) -> Option<&'a str> {
    extra
        .get("PATH")
        .map(|v| v.expose())
        .or_else(|| env.get("PATH").map(String::as_str))
}

/// Logs one line a server wrote to stderr (see [`super::stderr`]).
fn relay_line(server: &str, level: super::stderr::Level, line: &str) {
    use super::stderr::Level;
    match level {
        Level::Debug => tracing::debug!(target: "woollama::downstream", server, "{line}"),
        Level::Info => tracing::info!(target: "woollama::downstream", server, "{line}"),
        Level::Warn => tracing::warn!(target: "woollama::downstream", server, "{line}"),
        Level::Error => tracing::error!(target: "woollama::downstream", server, "{line}"),
    }
}

/// The allow-listed base environment for children.
pub(super) fn base_env(env: &Env) -> Arc<BTreeMap<String, String>> {
    Arc::new(env.inherited())
}

/// The client side of one downstream session: learns of list changes, and
/// sends resource updates and server→client requests on to woollama's own
/// clients (progress and log messages are taken earlier, by [`InOrder`]).
#[derive(Clone)]
pub(super) struct DownstreamClient {
    server: String,
    refresh: Arc<Refresh>,
    inflight: Arc<InFlight>,
    events: broadcast::Sender<Event>,
}

impl ClientHandler for DownstreamClient {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.changed(Refresh::TOOLS);
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.changed(Refresh::PROMPTS);
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.changed(Refresh::RESOURCES);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let _ = self.events.send(Event::ResourceUpdated {
            server: self.server.clone(),
            uri: params.uri,
        });
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        forward::sampling(&self.inflight, &self.server, params, ctx).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        forward::elicitation(&self.inflight, &self.server, params, ctx).await
    }

    async fn list_roots(
        &self,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        forward::roots(&self.inflight, &self.server, ctx).await
    }

    fn get_info(&self) -> ClientConfig {
        // Everything a client may offer is declared, so servers use it; a
        // request the calling client cannot take is refused per call.
        let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
            "sampling": {},
            "elicitation": {"form": {}, "url": {}},
            "roots": {}
        }))
        .unwrap_or_default();
        // The version `initialize` asks for (2026-07-28 has no initialize:
        // `Start` names it for `server/discover`).
        ClientConfig::new(
            capabilities,
            Implementation::new("woollama", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

/// A downstream transport that forwards progress and log messages as they
/// are read, before rmcp sees them.
///
/// rmcp hands each notification to the handler in a task of its own, but a
/// response straight to the waiting call: through the handler, progress could
/// reach the caller out of order, or after the call's result (and be lost).
/// Reading them here, in wire order and before the response that follows them
/// is read, keeps the caller's progress increasing and complete.
struct InOrder<T> {
    inner: T,
    server: String,
    inflight: Arc<InFlight>,
    events: broadcast::Sender<Event>,
}

impl<T> InOrder<T> {
    fn new(inner: T, ds: &Downstream, events: &broadcast::Sender<Event>) -> Self {
        Self {
            inner,
            server: ds.spec.name.clone(),
            inflight: Arc::clone(&ds.inflight),
            events: events.clone(),
        }
    }
}

impl<T: McpTransport<RoleClient>> McpTransport<RoleClient> for InOrder<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await?;
        if let JsonRpcMessage::Notification(n) = &message {
            match &n.notification {
                ServerNotification::ProgressNotification(p) => {
                    forward::progress(&self.inflight, p.params.clone()).await;
                }
                ServerNotification::LoggingMessageNotification(l) => {
                    let params = l.params.clone();
                    if !forward::log(&self.inflight, &self.server, params.clone()).await {
                        let _ = self.events.send(Event::Log {
                            server: self.server.clone(),
                            params,
                        });
                    }
                }
                _ => {}
            }
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

pub(super) type Session = RunningService<RoleClient, DownstreamClient>;

/// A live connection, and the process group of a stdio server.
pub(super) struct Connected {
    pub session: Session,
    pub catalog: Catalog,
    pub group: Option<u32>,
}

/// Everything the server offers, per its capabilities. Tools are required;
/// a prompt or resource listing that fails is logged and left empty.
pub(super) async fn load_catalog(server: &str, peer: &Peer<RoleClient>) -> Result<Catalog, String> {
    let capabilities = peer.peer_info().map(|i| i.capabilities.clone());
    let offers = |f: fn(&ServerCapabilities) -> bool| capabilities.as_ref().is_none_or(f);
    let mut catalog = Catalog::default();
    if offers(|c| c.tools.is_some()) {
        catalog.tools = peer
            .list_all_tools()
            .await
            .map_err(|e| format!("tools/list failed: {e}"))?;
    }
    let optional = |what: &str, e: ServiceError| {
        tracing::warn!(server, error = %e, "{what} failed; the server's {what} are left out");
    };
    if capabilities.as_ref().is_some_and(|c| c.prompts.is_some()) {
        match peer.list_all_prompts().await {
            Ok(p) => catalog.prompts = p,
            Err(e) => optional("prompts/list", e),
        }
    }
    if capabilities.as_ref().is_some_and(|c| c.resources.is_some()) {
        match peer.list_all_resources().await {
            Ok(r) => catalog.resources = r,
            Err(e) => optional("resources/list", e),
        }
        match peer.list_all_resource_templates().await {
            Ok(t) => catalog.templates = t,
            Err(e) => optional("resources/templates/list", e),
        }
    }
    catalog.capabilities = capabilities;
    catalog.instructions = peer.peer_info().and_then(|i| i.instructions.clone());
    Ok(catalog)
}

/// Stops whatever is left of a stdio server's process group once its session
/// is over. The server itself has usually exited when stdin closed, but a
/// child it started (an `npx` tree, a helper) may ignore that: SIGTERM the
/// group, give it two seconds, then SIGKILL.
pub(super) async fn stop_group(server: &str, pgid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pgid) else { return };
    let group = Pid::from_raw(raw);
    if killpg(group, Signal::SIGTERM).is_err() {
        return; // nobody left
    }
    for _ in 0..100 {
        if !guard::group_runs(raw, 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(server, pgid, "processes ignored SIGTERM; killing the group");
    let _ = killpg(group, Signal::SIGKILL);
}

/// Starts a stdio server (through the child guard when there is one) in a
/// process group of its own, its stderr drained into the log.
fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    extra: &BTreeMap<String, crate::config::Secret>,
    settings: &McpSettings,
    held: Held,
) -> Result<TokioChildProcess, String> {
    let program = guard::resolve(command, path_of(env, extra))?;
    let setup = |c: &mut tokio::process::Command| {
        c.env_clear()
            .envs(env.iter())
            .envs(extra.iter().map(|(k, v)| (k.as_str(), v.expose())));
    };
    let mut cmd = match &settings.guard {
        Some(exe) => CommandWrap::with_new(exe, |c| {
            c.args(guard::argv(&program, args));
            setup(c);
        }),
        None => CommandWrap::with_new(&program, |c| {
            c.args(args);
            setup(c);
        }),
    };
    cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{command}`: {e}"))?;
    if let Some(stderr) = stderr {
        let server = server.to_string();
        tokio::spawn(async move {
            super::stderr::drain(stderr, |level, line| {
                if !held.hold(level, line) {
                    relay_line(&server, level, line);
                }
            })
            .await;
        });
    }
    Ok(transport)
}

/// A stdio server's stderr while `server/discover` probes it: held until
/// the handshake tells whether the server refused the probe — then what it
/// wrote meanwhile is mostly its complaint about an unknown method (an older
/// Python SDK server writes a 50-line validation report), and goes to the
/// log at debug level — or not (then it is logged as it came). At most
/// [`HELD_LINES`] lines are held; the rest pass at once.
#[derive(Clone, Default)]
struct Held(Arc<std::sync::Mutex<Option<Lines>>>);

/// Lines held back, with their levels.
type Lines = Vec<(super::stderr::Level, String)>;

const HELD_LINES: usize = 256;

impl Held {
    fn holding() -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(Vec::new()))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Lines>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the line if lines are being held; `false`: log it now.
    fn hold(&self, level: super::stderr::Level, line: &str) -> bool {
        match self.lock().as_mut() {
            Some(lines) if lines.len() < HELD_LINES => {
                lines.push((level, line.to_string()));
                true
            }
            _ => false,
        }
    }

    /// Logs what was held (at debug level when `quiet`) and holds no more.
    fn release(&self, server: &str, quiet: bool) {
        let Some(lines) = self.lock().take() else {
            return;
        };
        if quiet && !lines.is_empty() {
            tracing::debug!(
                server,
                lines = lines.len(),
                "what the server wrote on stderr while it refused server/discover follows at debug level"
            );
        }
        for (level, line) in lines {
            let level = if quiet {
                super::stderr::Level::Debug
            } else {
                level
            };
            relay_line(server, level, &line);
        }
    }
}

/// How a connection starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// 2025-11-25: `initialize`.
    Legacy,
    /// 2026-07-28: `server/discover`, nothing else.
    Modern,
    /// `server/discover`, then `initialize` on the same connection when the
    /// server answers it with an error or not at all (rmcp waits 10 s).
    Probe,
}

impl Start {
    fn lifecycle(self) -> ClientLifecycleMode {
        let modern = vec![ProtocolVersion::V_2026_07_28];
        match self {
            Start::Legacy => ClientLifecycleMode::Initialize,
            Start::Modern => ClientLifecycleMode::Discover {
                preferred_versions: modern,
            },
            Start::Probe => ClientLifecycleMode::Auto {
                preferred_versions: modern,
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        }
    }
}

/// Connects `ds` once: transport, handshake, and the first listing.
///
/// `"protocol": "auto"` probes with `server/discover`; a server that breaks
/// on the probe instead of answering it (exits, or an HTTP server that
/// refuses a request without a session) is connected again at once with
/// `initialize` alone, and remembered as 2025-11-25 for its reconnects.
pub(super) async fn connect(
    ds: &Downstream,
    env: &BTreeMap<String, String>,
    http: &reqwest::Client,
    events: &broadcast::Sender<Event>,
    settings: &McpSettings,
) -> Result<Connected, String> {
    let start = match ds.spec.protocol {
        Protocol::Legacy => Start::Legacy,
        Protocol::Modern => Start::Modern,
        Protocol::Auto if ds.legacy_seen.load(Ordering::Relaxed) => Start::Legacy,
        Protocol::Auto => Start::Probe,
    };
    let name = &ds.spec.name;
    let (session, group) = match open(ds, env, http, events, settings, start).await {
        Err(probe) if start == Start::Probe => {
            tracing::info!(server = %name, "the server did not take server/discover ({probe}); connecting again with initialize (2025-11-25)");
            let legacy = open(ds, env, http, events, settings, Start::Legacy)
                .await
                .map_err(|e| {
                    format!("{e} (probing with server/discover first failed too: {probe})")
                })?;
            // Only a server that broke on the probe and then took
            // `initialize` is remembered: one that was merely down (not
            // started yet, unreachable) is probed again next time.
            ds.legacy_seen.store(true, Ordering::Relaxed);
            legacy
        }
        other => other?,
    };
    let catalog = match load_catalog(name, session.peer()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = session.cancel().await;
            if let Some(g) = group {
                stop_group(name, g).await;
            }
            return Err(e);
        }
    };
    Ok(Connected {
        session,
        catalog,
        group,
    })
}

/// The transport and the handshake.
async fn open(
    ds: &Downstream,
    env: &BTreeMap<String, String>,
    http: &reqwest::Client,
    events: &broadcast::Sender<Event>,
    settings: &McpSettings,
    start: Start,
) -> Result<(Session, Option<u32>), String> {
    let handler = DownstreamClient {
        server: ds.spec.name.clone(),
        refresh: Arc::clone(&ds.refresh),
        inflight: Arc::clone(&ds.inflight),
        events: events.clone(),
    };
    let name = ds.spec.name.clone();
    let modern_only = |e: &dyn std::fmt::Display| {
        if start == Start::Modern {
            format!(
                "{e} (this server has \"protocol\": \"2026-07-28\"; if it speaks only 2025-11-25, set \"auto\" or \"2025-11-25\" in mcp.json)"
            )
        } else {
            e.to_string()
        }
    };
    match &ds.spec.transport {
        Transport::Stdio {
            command,
            args,
            env: extra,
        } => {
            let held = if start == Start::Probe {
                Held::holding()
            } else {
                Held::default()
            };
            let transport = spawn(&name, command, args, env, extra, settings, held.clone())?;
            // The child leads its own group: its pid is the group id.
            let group = transport.id();
            let session = handler
                .serve_with_lifecycle(InOrder::new(transport, ds, events), start.lifecycle())
                .await
                .map_err(|e| {
                    format!(
                        "MCP handshake failed: {} (the server exited or wrote something other than MCP on stdout; its stderr is in this log under server={name})",
                        modern_only(&e)
                    )
                });
            // The probe was refused when the session is a 2025-11-25 one.
            let refused = session.as_ref().is_ok_and(|s| {
                s.peer()
                    .peer_info()
                    .is_some_and(|i| i.protocol_version.has_initialize())
            });
            held.release(&name, refused);
            match session {
                Ok(s) => Ok((s, group)),
                Err(e) => {
                    if let Some(g) = group {
                        stop_group(&name, g).await;
                    }
                    Err(e)
                }
            }
        }
        Transport::Http { url, headers } => {
            let mut map = HashMap::new();
            for (n, v) in headers {
                let mut value = reqwest::header::HeaderValue::from_str(v.expose())
                    .map_err(|_| format!("header {n} has an invalid value"))?;
                value.set_sensitive(true);
                map.insert(n.clone(), value);
            }
            let config =
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
            let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
            let session = handler
                .serve_with_lifecycle(InOrder::new(transport, ds, events), start.lifecycle())
                .await
                .map_err(|e| {
                    format!(
                        "MCP handshake failed: {} (is an MCP server listening at {}? check the url in mcp.json)",
                        modern_only(&e),
                        crate::config::mcp::display_url(url)
                    )
                })?;
            Ok((session, None))
        }
    }
}
