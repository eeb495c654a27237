//! One downstream server: connecting it, supervising the connection, and
//! calling through it.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, Implementation, ListRootsResult,
    RequestId, ResourceUpdatedNotificationParam, ServerCapabilities, ServerResult,
};
use rmcp::model::{JsonRpcMessage, ServerNotification};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestContext, RunningService, RxJsonRpcMessage,
    TxJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{
    StreamableHttpClientTransport, TokioChildProcess, Transport as McpTransport,
};
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, ServiceError, ServiceExt};
use tokio::sync::{Notify, broadcast};

use super::catalog::{Catalog, Part, ServerStatus};
use super::forward::{self, Caller, InFlight};
use super::{Error, Event, Health, Inner, McpSettings, guard};
use crate::config::{Env, ServerSpec, Transport};

/// What a child may inherit from woollama's environment (DESIGN.md): never
/// provider keys or anything else not on this list.
const INHERITED: &[&str] = &[
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
    Arc::new(
        env.iter()
            .filter(|(k, _)| INHERITED.contains(k) || k.starts_with("LC_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub(super) struct Downstream {
    pub spec: ServerSpec,
    state: Mutex<State>,
    /// A call failed at the transport: drop the connection and reconnect.
    reconnect: Notify,
    /// The server said one of its lists changed.
    refresh: Arc<Notify>,
    /// Calls in flight, for forwarding what the server sends back.
    inflight: Arc<InFlight>,
}

struct State {
    health: Health,
    catalog: Catalog,
    peer: Option<Peer<RoleClient>>,
}

/// Sends `notifications/cancelled` for a request whose caller went away
/// (timeout, or the client cancelled) before its answer came.
struct CancelOnDrop {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let _ = peer
                .notify_cancelled(CancelledNotificationParam::new(
                    Some(id),
                    Some("the caller went away".into()),
                ))
                .await;
        });
    }
}

impl Downstream {
    pub fn new(spec: ServerSpec) -> Self {
        Self {
            spec,
            state: Mutex::new(State {
                health: Health::Connecting,
                catalog: Catalog::default(),
                peer: None,
            }),
            reconnect: Notify::new(),
            refresh: Arc::new(Notify::new()),
            inflight: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is plain data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> Part {
        let st = self.lock();
        let catalog = if st.health == Health::Connected {
            st.catalog.clone()
        } else {
            Catalog::default()
        };
        Part {
            status: ServerStatus {
                name: self.spec.name.clone(),
                transport: self.spec.transport.kind(),
                health: st.health.clone(),
                tools: 0,
                unprefixed: !self.spec.prefix,
                capabilities: catalog.capabilities.clone(),
            },
            catalog,
        }
    }

    fn set(&self, health: Health, catalog: Option<Catalog>, peer: Option<Peer<RoleClient>>) {
        let mut st = self.lock();
        st.health = health;
        if let Some(c) = catalog {
            st.catalog = c;
        }
        st.peer = peer;
    }

    /// The live session, or why there is none.
    fn peer(&self) -> Result<Peer<RoleClient>, Error> {
        let st = self.lock();
        st.peer.clone().ok_or_else(|| {
            let why = match &st.health {
                Health::Retrying { last_error, .. } => format!("retrying: {last_error}"),
                Health::Failed { reason } => format!("failed: {reason}"),
                other => other.as_str().to_string(),
            };
            Error::Unavailable {
                server: self.spec.name.clone(),
                why,
            }
        })
    }

    /// Maps a failed request: a JSON-RPC error is kept whole; a transport
    /// failure also marks the connection for reconnecting.
    fn failed(&self, e: ServiceError) -> Error {
        let server = self.spec.name.clone();
        match e {
            ServiceError::McpError(error) => Error::Protocol {
                server,
                error: Box::new(error),
            },
            e => {
                tracing::warn!(server = %server, error = %e, "a request failed at the transport; reconnecting");
                self.reconnect.notify_one();
                Error::Transport {
                    server,
                    detail: e.to_string(),
                }
            }
        }
    }

    /// Sends one request, bounded by `timeout`; dropping the future (the
    /// timeout, or our caller went away) sends the server a cancellation.
    /// `caller`, when given, receives the server's progress, log messages and
    /// server→client requests while the request is in flight.
    pub async fn request(
        &self,
        request: ClientRequest,
        timeout: Duration,
        caller: Option<Caller>,
    ) -> Result<ServerResult, Error> {
        let peer = self.peer()?;
        let exchange = async {
            // Registered before sending: the server may answer with progress
            // or a request of its own before `send_request_with_option` returns.
            let registered = caller.map(|c| self.inflight.register(c));
            let handle = peer
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await?;
            if let Some(r) = &registered {
                r.sent(handle.id.clone(), handle.progress_token.clone());
            }
            let mut guard = CancelOnDrop {
                peer: peer.clone(),
                id: Some(handle.id.clone()),
            };
            let result = handle.await_response().await;
            guard.id = None;
            result
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => Err(Error::Timeout { after: timeout }),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.failed(e)),
        }
    }

    pub async fn call(
        &self,
        params: CallToolRequestParams,
        timeout: Duration,
        caller: Option<Caller>,
    ) -> Result<CallToolResult, Error> {
        let tool = params.name.to_string();
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        match self.request(request, timeout, caller).await? {
            ServerResult::CallToolResult(r) => Ok(r),
            ServerResult::InputRequiredResult(_) => Err(Error::InputRequired {
                server: self.spec.name.clone(),
                tool,
            }),
            _ => Err(Error::Unexpected {
                server: self.spec.name.clone(),
            }),
        }
    }
}

/// The client side of one downstream session: learns of list changes, and
/// sends resource updates and server→client requests on to woollama's own
/// clients (progress and log messages are taken earlier, by [`InOrder`]).
#[derive(Clone)]
struct DownstreamClient {
    server: String,
    refresh: Arc<Notify>,
    inflight: Arc<InFlight>,
    events: broadcast::Sender<Event>,
}

impl ClientHandler for DownstreamClient {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
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
        ClientConfig::new(
            capabilities,
            Implementation::new("woollama", env!("CARGO_PKG_VERSION")),
        )
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

type Session = RunningService<RoleClient, DownstreamClient>;

/// A live connection, and the process group of a stdio server.
struct Connected {
    session: Session,
    catalog: Catalog,
    group: Option<u32>,
}

/// Everything the server offers, per its capabilities. Tools are required;
/// a prompt or resource listing that fails is logged and left empty.
async fn load_catalog(server: &str, peer: &Peer<RoleClient>) -> Result<Catalog, String> {
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
    Ok(catalog)
}

/// Stops whatever is left of a stdio server's process group once its session
/// is over. The server itself has usually exited when stdin closed, but a
/// child it started (an `npx` tree, a helper) may ignore that: SIGTERM the
/// group, give it two seconds, then SIGKILL.
async fn stop_group(server: &str, pgid: u32) {
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

async fn connect(
    ds: &Downstream,
    env: &BTreeMap<String, String>,
    http: &reqwest::Client,
    events: &broadcast::Sender<Event>,
    settings: &McpSettings,
) -> Result<Connected, String> {
    let handler = DownstreamClient {
        server: ds.spec.name.clone(),
        refresh: Arc::clone(&ds.refresh),
        inflight: Arc::clone(&ds.inflight),
        events: events.clone(),
    };
    let name = ds.spec.name.clone();
    let mut group = None;
    let session = match &ds.spec.transport {
        Transport::Stdio {
            command,
            args,
            env: extra,
        } => {
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
            // The child leads its own group: its pid is the group id.
            group = transport.id();
            if let Some(stderr) = stderr {
                let server = name.clone();
                tokio::spawn(async move {
                    super::stderr::drain(stderr, |level, line| relay_line(&server, level, line))
                        .await;
                });
            }
            handler
                .serve(InOrder::new(transport, ds, events))
                .await
                .map_err(|e| {
                    format!(
                        "MCP handshake failed: {e} (the server exited or wrote something other than MCP on stdout; its stderr is in this log under server={name})"
                    )
                })?
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
            handler
                .serve(InOrder::new(transport, ds, events))
                .await
                .map_err(|e| {
                    format!(
                        "MCP handshake failed: {e} (is an MCP server listening at {}? check the url in mcp.json)",
                        crate::config::mcp::display_url(url)
                    )
                })?
        }
    };
    let catalog = match load_catalog(&name, session.peer()).await {
        Ok(c) => c,
        Err(e) => {
            let _ = session.cancel().await;
            if let Some(g) = group {
                stop_group(&name, g).await;
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

/// Keeps one downstream connected until shutdown.
pub(super) async fn supervise(
    reg: Arc<Inner>,
    ds: Arc<Downstream>,
    env: Arc<BTreeMap<String, String>>,
    http: reqwest::Client,
) {
    let settings = &reg.settings;
    let initial = Duration::from_secs(1).min(settings.retry_max);
    let mut delay = initial;
    let mut failures: u32 = 0;
    let name = ds.spec.name.clone();
    loop {
        let attempt = tokio::select! {
            r = tokio::time::timeout(settings.connect_timeout, connect(&ds, &env, &http, &reg.events, settings)) => r,
            () = reg.shutdown.cancelled() => break,
        };
        let last_error = match attempt {
            Ok(Ok(Connected {
                session,
                catalog,
                group,
            })) => {
                tracing::info!(
                    server = %name,
                    tools = catalog.tools.len(),
                    prompts = catalog.prompts.len(),
                    resources = catalog.resources.len(),
                    "downstream connected"
                );
                failures = 0;
                delay = initial;
                let peer = session.peer().clone();
                ds.set(Health::Connected, Some(catalog), Some(peer.clone()));
                reg.publish();
                let held = hold(&reg, &ds, session, &peer).await;
                if let Some(g) = group {
                    stop_group(&name, g).await;
                }
                match held {
                    Held::Shutdown => break,
                    Held::Lost(why) => {
                        tracing::warn!(server = %name, "downstream lost: {why}");
                        why
                    }
                }
            }
            Ok(Err(e)) => e,
            Err(_) => format!(
                "no MCP handshake and tool list within {}s (a server that is slow to start needs a higher WOOLLAMA_MCP_CONNECT_TIMEOUT_SECS)",
                settings.connect_timeout.as_secs_f64()
            ),
        };
        failures += 1;
        if settings.retry_max.is_zero() {
            tracing::warn!(server = %name, "downstream failed: {last_error} (retry disabled)");
            ds.set(
                Health::Failed {
                    reason: format!("{last_error} (retry disabled)"),
                },
                None,
                None,
            );
            reg.publish();
            break;
        }
        tracing::warn!(server = %name, attempts = failures, retry_in_secs = delay.as_secs_f64(), "downstream unavailable: {last_error}");
        ds.set(
            Health::Retrying {
                attempts: failures,
                last_error,
            },
            None,
            None,
        );
        reg.publish();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = reg.shutdown.cancelled() => break,
        }
        delay = (delay * 2).min(settings.retry_max);
    }
}

enum Held {
    Shutdown,
    Lost(String),
}

/// Serves one live session: refreshes the roster when told, and returns when
/// the session ends, a call found it broken, or woollama shuts down.
async fn hold(reg: &Inner, ds: &Downstream, session: Session, peer: &Peer<RoleClient>) -> Held {
    let stop = session.cancellation_token();
    let mut waiting = Box::pin(session.waiting());
    let graceful = Duration::from_secs(5);
    loop {
        tokio::select! {
            r = &mut waiting => {
                return Held::Lost(match r {
                    Ok(reason) => format!("the connection closed ({reason:?})"),
                    Err(e) => format!("the session task failed: {e}"),
                });
            }
            () = reg.shutdown.cancelled() => {
                stop.cancel();
                let _ = tokio::time::timeout(graceful, &mut waiting).await;
                return Held::Shutdown;
            }
            () = ds.reconnect.notified() => {
                stop.cancel();
                let _ = tokio::time::timeout(graceful, &mut waiting).await;
                return Held::Lost("a call failed at the transport".into());
            }
            () = ds.refresh.notified() => {
                match tokio::time::timeout(reg.settings.connect_timeout, load_catalog(&ds.spec.name, peer)).await {
                    Ok(Ok(catalog)) => {
                        tracing::info!(server = %ds.spec.name, tools = catalog.tools.len(), prompts = catalog.prompts.len(), resources = catalog.resources.len(), "downstream lists changed");
                        ds.set(Health::Connected, Some(catalog), Some(peer.clone()));
                        reg.publish();
                    }
                    Ok(Err(e)) => tracing::warn!(server = %ds.spec.name, error = %e, "could not refresh the lists"),
                    Err(_) => tracing::warn!(server = %ds.spec.name, "refreshing the lists timed out"),
                }
            }
        }
    }
}
