//! One downstream server: its state (health, what it offers, the live
//! peer), the calls through it, and the supervisor that keeps it connected
//! (reconnecting with backoff, refreshing its lists when told).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CancelledNotificationParam,
    ClientRequest, InputResponses, ProtocolVersion, RequestId, RequestMetaObject,
    ServerCapabilities, ServerNotification, ServerResult, SubscriptionFilter,
};
use rmcp::service::{PeerRequestOptions, Subscription};
use rmcp::{Peer, RoleClient, ServiceError};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::catalog::{Catalog, Part, ServerStatus};
use super::connect::{Connected, Session, connect, load_catalog, stop_group};
use super::forward::{Caller, InFlight};
use super::{Error, Health, Inner};
use crate::config::ServerSpec;

pub(super) struct Downstream {
    pub spec: ServerSpec,
    state: Mutex<State>,
    /// The server said one of its lists changed.
    pub refresh: Arc<Refresh>,
    /// Calls in flight, for forwarding what the server sends back.
    pub inflight: Arc<InFlight>,
    /// Cancelled when this server is taken out (a reload removed or changed
    /// it) or woollama shuts down: its supervisor stops it and ends.
    pub stop: tokio_util::sync::CancellationToken,
    /// `"protocol": "auto"` found a server that breaks on the
    /// `server/discover` probe (exits, or refuses it at the HTTP level) but
    /// takes `initialize`: its reconnects skip the probe. (A server that
    /// answers the probe with an error costs nothing to probe again.)
    pub legacy_seen: AtomicBool,
    /// Resource URIs (as the server knows them) that clients subscribed to.
    /// A 2026-07-28 connection has no `resources/subscribe`: they travel in
    /// its `subscriptions/listen` filter, reopened when this set changes.
    subscribed: Mutex<BTreeSet<String>>,
    resubscribe: Notify,
}

struct State {
    health: Health,
    catalog: Catalog,
    live: Option<Live>,
    /// The protocol version of the live connection.
    protocol: Option<ProtocolVersion>,
}

/// One connection's peer, and its own signal that a call found it broken.
/// The signal belongs to the connection: a call that failed on one that is
/// already gone (the server died mid-call, and the supervisor noticed first)
/// must not tear down the connection that replaced it — with one signal for
/// the server, every call that failed on a dead connection left a permit
/// that cut the next one, so a server that died once under load never
/// came back.
#[derive(Clone)]
pub(super) struct Live {
    peer: Peer<RoleClient>,
    broken: Arc<Notify>,
    /// A 2026-07-28 connection: no session, every request carries its
    /// caller's capabilities and log level, and the server asks for input
    /// with `input_required` results instead of requests of its own.
    modern: bool,
}

/// Which of a server's lists it said changed, and the signal to list them
/// again.
#[derive(Default)]
pub(super) struct Refresh {
    pending: std::sync::atomic::AtomicU8,
    notify: Notify,
}

impl Refresh {
    pub const TOOLS: u8 = 1;
    pub const PROMPTS: u8 = 2;
    pub const RESOURCES: u8 = 4;

    /// The server said `lists` changed.
    pub fn changed(&self, lists: u8) {
        self.pending.fetch_or(lists, Ordering::Relaxed);
        self.notify.notify_one();
    }
}

/// The most resources clients may subscribe to on one server.
const MAX_SUBSCRIBED: usize = 1024;

/// The most `input_required` rounds woollama answers for one request
/// before it gives up on a server that keeps asking.
const MAX_ROUNDS: usize = 16;

/// What a 2026-07-28 client sends back after an `input_required` result:
/// its answers and the `requestState` it was given. Passed on to a
/// 2026-07-28 downstream, which issued that state.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    pub input_responses: Option<InputResponses>,
    pub request_state: Option<String>,
}

impl Retry {
    /// Sets the answers and the state on a request that can carry them.
    fn apply(self, request: &mut ClientRequest) {
        let (responses, state) = (self.input_responses, self.request_state);
        match request {
            ClientRequest::CallToolRequest(r) => {
                r.params.input_responses = responses;
                r.params.request_state = state;
            }
            ClientRequest::GetPromptRequest(r) => {
                r.params.input_responses = responses;
                r.params.request_state = state;
            }
            ClientRequest::ReadResourceRequest(r) => {
                r.params.input_responses = responses;
                r.params.request_state = state;
            }
            _ => {}
        }
    }
}

/// What a request is, for messages.
fn what(request: &ClientRequest) -> String {
    match request {
        ClientRequest::CallToolRequest(r) => format!("tool '{}'", r.params.name),
        ClientRequest::GetPromptRequest(r) => format!("prompt '{}'", r.params.name),
        ClientRequest::ReadResourceRequest(r) => format!("resource '{}'", r.params.uri),
        _ => "the request".to_string(),
    }
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
    pub fn new(spec: ServerSpec, stop: tokio_util::sync::CancellationToken) -> Self {
        Self {
            stop,
            spec,
            state: Mutex::new(State {
                health: Health::Connecting,
                catalog: Catalog::default(),
                live: None,
                protocol: None,
            }),
            refresh: Arc::default(),
            inflight: Arc::default(),
            legacy_seen: AtomicBool::new(false),
            subscribed: Mutex::new(BTreeSet::new()),
            resubscribe: Notify::new(),
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
                protocol: st
                    .protocol
                    .as_ref()
                    .filter(|_| st.health == Health::Connected)
                    .map(ToString::to_string),
                instructions: catalog.instructions.clone(),
            },
            catalog,
        }
    }

    fn set(&self, health: Health, catalog: Option<Catalog>, live: Option<Live>) {
        let mut st = self.lock();
        st.health = health;
        if let Some(c) = catalog {
            st.catalog = c;
        }
        if let Some(l) = &live {
            st.protocol = l.peer.peer_info().map(|i| i.protocol_version.clone());
        }
        st.live = live;
    }

    /// Whether the live connection speaks 2026-07-28.
    pub fn modern(&self) -> Result<bool, Error> {
        self.live().map(|l| l.modern)
    }

    /// Records that clients subscribed to (`on`) or let go of a resource.
    /// A 2026-07-28 connection's listen stream is reopened with the new set
    /// (and a reconnect on 2026-07-28 starts with it); at most
    /// [`MAX_SUBSCRIBED`] resources per server.
    pub fn listen_for(&self, uri: &str, on: bool) -> Result<(), Error> {
        let changed = {
            let mut set = self
                .subscribed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if on && !set.contains(uri) && set.len() >= MAX_SUBSCRIBED {
                return Err(Error::Input {
                    server: self.spec.name.clone(),
                    detail: format!(
                        "clients already subscribed to {MAX_SUBSCRIBED} of its resources through woollama; unsubscribe some first"
                    ),
                });
            }
            if on {
                set.insert(uri.to_string())
            } else {
                set.remove(uri)
            }
        };
        if changed {
            self.resubscribe.notify_one();
        }
        Ok(())
    }

    /// What a 2026-07-28 connection's `subscriptions/listen` asks for: the
    /// list changes the server said it sends, and the subscribed resources;
    /// `None` when that is nothing (no stream is opened).
    fn filter(&self, capabilities: Option<&ServerCapabilities>) -> Option<SubscriptionFilter> {
        let changes = |on: Option<bool>| on.unwrap_or(false).then_some(true);
        let mut filter = SubscriptionFilter::new();
        if let Some(c) = capabilities {
            filter.tools_list_changed = changes(c.tools.as_ref().and_then(|t| t.list_changed));
            filter.prompts_list_changed = changes(c.prompts.as_ref().and_then(|p| p.list_changed));
            filter.resources_list_changed =
                changes(c.resources.as_ref().and_then(|r| r.list_changed));
        }
        let uris: Vec<String> = self
            .subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        if !uris.is_empty() {
            filter.resource_subscriptions = Some(uris);
        }
        (filter != SubscriptionFilter::new()).then_some(filter)
    }

    /// The live session, or why there is none.
    fn live(&self) -> Result<Live, Error> {
        let st = self.lock();
        st.live.clone().ok_or_else(|| {
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
    /// failure also marks the connection it happened on for reconnecting.
    fn failed(&self, e: ServiceError, on: &Live) -> Error {
        let server = self.spec.name.clone();
        match e {
            ServiceError::McpError(error) => Error::Protocol {
                server,
                error: Box::new(error),
            },
            e => {
                tracing::warn!(server = %server, error = %e, "a request failed at the transport; reconnecting");
                on.broken.notify_one();
                let detail = match e {
                    ServiceError::TransportClosed => {
                        "the connection closed before the answer came (the server exited or dropped it); woollama is reconnecting".to_string()
                    }
                    e => e.to_string(),
                };
                Error::Transport { server, detail }
            }
        }
    }

    /// Sends one request, bounded by `timeout` in all; dropping the future
    /// (the timeout, or our caller went away) sends the server a
    /// cancellation. `caller`, when given, receives the server's progress,
    /// log messages and server→client requests while the request is in
    /// flight.
    ///
    /// A 2026-07-28 server asks for the client's input with an
    /// `input_required` result instead: a 2026-07-28 caller gets that result
    /// as it came (its retry carries the answers back, see [`Retry`]); an
    /// older caller is asked here, on its session, and the request is sent
    /// again with its answers, round after round, until the server
    /// completes it.
    pub async fn request(
        &self,
        mut request: ClientRequest,
        timeout: Duration,
        caller: Option<Caller>,
    ) -> Result<ServerResult, Error> {
        let live = self.live()?;
        let deadline = Instant::now() + timeout;
        let expired = || Error::Timeout { after: timeout };
        if !live.modern {
            // An older server asks with requests of its own, during the one
            // exchange; the request is not copied for rounds it never has
            // (its arguments may be large).
            return self.once(request, &live, caller, deadline, timeout).await;
        }
        for round in 1..=MAX_ROUNDS {
            let result = self
                .once(request.clone(), &live, caller.clone(), deadline, timeout)
                .await?;
            let ServerResult::InputRequiredResult(asked) = result else {
                return Ok(result);
            };
            let Some(caller) = caller.as_ref() else {
                return Err(Error::InputRequired {
                    server: self.spec.name.clone(),
                    what: what(&request),
                });
            };
            if caller.stateless {
                return Ok(ServerResult::InputRequiredResult(asked));
            }
            if round == MAX_ROUNDS {
                // Asking the user a question whose answer is never sent on
                // would be worse than stopping now.
                break;
            }
            let questions = asked.input_requests.unwrap_or_default();
            let answers = tokio::time::timeout_at(
                deadline,
                super::forward::fulfil(caller, &self.spec.name, questions),
            )
            .await
            .map_err(|_| expired())??;
            Retry {
                input_responses: Some(answers),
                request_state: asked.request_state,
            }
            .apply(&mut request);
        }
        Err(Error::Input {
            server: self.spec.name.clone(),
            detail: format!(
                "{} still asked for input after {MAX_ROUNDS} rounds; woollama gave up",
                what(&request)
            ),
        })
    }

    /// One exchange of [`Downstream::request`].
    async fn once(
        &self,
        request: ClientRequest,
        live: &Live,
        caller: Option<Caller>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<ServerResult, Error> {
        let peer = &live.peer;
        let stateless = caller.as_ref().is_some_and(|c| c.stateless);
        let mut options = PeerRequestOptions::no_options();
        options.meta = live.modern.then(|| per_request(caller.as_ref()));
        // Registered before sending: the server may answer with progress or
        // a request of its own before `send_request_with_option` returns.
        let registered = caller.map(|c| self.inflight.register(c));
        let exchange = async {
            let handle = peer.send_request_with_option(request, options).await?;
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
        let outcome = tokio::time::timeout_at(deadline, exchange).await;
        // A 2026-07-28 caller that lacked a capability the downstream asked
        // for gets -32021 for the whole call, whatever the downstream made
        // of the refusal (servers often turn it into a tool error).
        if stateless && let Some(required) = registered.as_ref().and_then(|r| r.missing()) {
            return Err(Error::MissingCapability {
                server: self.spec.name.clone(),
                required: Box::new(required),
            });
        }
        match outcome {
            Err(_) => Err(Error::Timeout { after: timeout }),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(self.failed(e, live)),
        }
    }

    pub async fn call(
        &self,
        params: CallToolRequestParams,
        timeout: Duration,
        caller: Option<Caller>,
    ) -> Result<CallToolResponse, Error> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        match self.request(request, timeout, caller).await? {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(Error::Unexpected {
                server: self.spec.name.clone(),
            }),
        }
    }
}

/// The `_meta` of a request on a 2026-07-28 connection: what its caller
/// can do and the log level it wants — a request woollama makes for itself
/// (a recipe's tool call) declares nothing, so the server refuses what
/// would need a client instead of asking.
fn per_request(caller: Option<&Caller>) -> RequestMetaObject {
    let mut meta = RequestMetaObject::default();
    meta.set_client_capabilities(
        caller
            .and_then(|c| c.capabilities.clone())
            .unwrap_or_default(),
    );
    if let Some(level) = caller.and_then(|c| c.log_level) {
        meta.set_log_level(level);
    }
    meta
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
            () = ds.stop.cancelled() => break,
        };
        let last_error = match attempt {
            Ok(Ok(Connected {
                session,
                catalog,
                group,
            })) => {
                tracing::info!(
                    server = %name,
                    protocol = %session.peer().peer_info().map(|i| i.protocol_version.to_string()).unwrap_or_default(),
                    tools = catalog.tools.len(),
                    prompts = catalog.prompts.len(),
                    resources = catalog.resources.len(),
                    "downstream connected"
                );
                failures = 0;
                delay = initial;
                let modern = session
                    .peer()
                    .peer_info()
                    .is_some_and(|i| !i.protocol_version.has_initialize());
                let live = Live {
                    peer: session.peer().clone(),
                    broken: Arc::new(Notify::new()),
                    modern,
                };
                ds.set(Health::Connected, Some(catalog), Some(live.clone()));
                reg.publish();
                let held = hold(&reg, &ds, session, &live).await;
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
        reg.settings.metrics.reconnect(&name);
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
            () = ds.stop.cancelled() => break,
        }
        delay = (delay * 2).min(settings.retry_max);
    }
}

enum Held {
    Shutdown,
    Lost(String),
}

/// A task's handle that aborts the task when dropped.
struct Aborting(tokio::task::JoinHandle<()>);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How opening a listen stream went.
enum Opened {
    Stream(Box<Subscription>),
    /// Nothing to hear (no list changes offered, no resource subscribed).
    Nothing,
    Failed,
}

/// Opens a 2026-07-28 connection's `subscriptions/listen` stream for the
/// list changes the server offers and the subscribed resources, bounded by
/// `limit` (a server that never acknowledges it does not hold this up).
async fn open_listen(ds: &Downstream, peer: &Peer<RoleClient>, limit: Duration) -> Opened {
    let capabilities = peer.peer_info().map(|i| i.capabilities.clone());
    let Some(filter) = ds.filter(capabilities.as_ref()) else {
        return Opened::Nothing;
    };
    match tokio::time::timeout(limit, peer.listen(filter)).await {
        Ok(Ok(s)) => Opened::Stream(Box::new(s)),
        Ok(Err(e)) => {
            tracing::warn!(server = %ds.spec.name, error = %e, "subscriptions/listen was refused; woollama tries again, and until then hears no list changes or resource updates from this server");
            Opened::Failed
        }
        Err(_) => {
            tracing::warn!(server = %ds.spec.name, "subscriptions/listen was not acknowledged within {}s; woollama tries again", limit.as_secs_f64());
            Opened::Failed
        }
    }
}

/// Keeps a 2026-07-28 connection's listen stream open for as long as the
/// connection lives (the task is aborted with it), in a task of its own so
/// a slow re-listing never stops it being read:
///
/// - reopened with backoff when the server ends it, it fails, or woollama
///   fell behind reading it (changes may have been missed then, so every
///   list is taken again and clients are told);
/// - reopened with the new set when clients subscribe or unsubscribe a
///   resource (the new stream before the old one goes; a refused one keeps
///   the old);
/// - the first one, opened after the first listing, takes the lists again
///   quietly (a change between the two reached no one).
async fn keep_listening(
    ds: Arc<Downstream>,
    peer: Peer<RoleClient>,
    events: tokio::sync::broadcast::Sender<super::Event>,
    limit: Duration,
) {
    const EVERYTHING: u8 = Refresh::TOOLS | Refresh::PROMPTS | Refresh::RESOURCES;
    let mut current: Option<Box<Subscription>> = None;
    let mut caught_up = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(stream) = current.as_mut() else {
            match open_listen(&ds, &peer, limit).await {
                Opened::Stream(s) => {
                    current = Some(s);
                    ds.refresh.changed(if caught_up { EVERYTHING } else { 0 });
                    caught_up = true;
                    backoff = Duration::from_secs(1);
                }
                Opened::Nothing => ds.resubscribe.notified().await,
                Opened::Failed => {
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = ds.resubscribe.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            continue;
        };
        tokio::select! {
            heard = stream.next() => match heard {
                Ok(Some(notification)) => on_change(&events, &ds, notification),
                Ok(None) => {
                    tracing::info!(server = %ds.spec.name, end = ?stream.end(), "the server's subscriptions/listen stream ended; woollama opens it again");
                    current = None;
                }
                Err(e) => {
                    tracing::warn!(server = %ds.spec.name, error = %e, "subscriptions/listen failed; woollama opens it again");
                    current = None;
                }
            },
            () = ds.resubscribe.notified() => match open_listen(&ds, &peer, limit).await {
                Opened::Stream(fresh) => {
                    // What the old stream heard while the new one opened
                    // is read before it goes: a change then came on it
                    // alone.
                    if let Some(mut old) = current.replace(fresh) {
                        while let Some(Ok(Some(n))) = old.next().now_or_never() {
                            on_change(&events, &ds, n);
                        }
                    }
                }
                Opened::Nothing => current = None,
                Opened::Failed => {}
            },
        }
    }
}

/// A notification heard on a listen stream.
fn on_change(
    events: &tokio::sync::broadcast::Sender<super::Event>,
    ds: &Downstream,
    notification: ServerNotification,
) {
    match notification {
        ServerNotification::ToolListChangedNotification(_) => ds.refresh.changed(Refresh::TOOLS),
        ServerNotification::PromptListChangedNotification(_) => {
            ds.refresh.changed(Refresh::PROMPTS);
        }
        ServerNotification::ResourceListChangedNotification(_) => {
            ds.refresh.changed(Refresh::RESOURCES);
        }
        ServerNotification::ResourceUpdatedNotification(n) => {
            let _ = events.send(super::Event::ResourceUpdated {
                server: ds.spec.name.clone(),
                uri: n.params.uri,
            });
        }
        _ => {}
    }
}

/// Serves one live session: refreshes the roster when told, and returns when
/// the session ends, a call found it broken, or woollama shuts down.
async fn hold(reg: &Inner, ds: &Arc<Downstream>, session: Session, live: &Live) -> Held {
    let stop = session.cancellation_token();
    let mut waiting = Box::pin(session.waiting());
    let graceful = Duration::from_secs(5);
    // Ends with this connection (aborted when dropped).
    let _listening = live.modern.then(|| {
        Aborting(tokio::spawn(keep_listening(
            Arc::clone(ds),
            live.peer.clone(),
            reg.events.clone(),
            reg.settings.connect_timeout,
        )))
    });
    loop {
        tokio::select! {
            r = &mut waiting => {
                return Held::Lost(match r {
                    Ok(reason) => format!("the connection closed ({reason:?})"),
                    Err(e) => format!("the session task failed: {e}"),
                });
            }
            () = ds.stop.cancelled() => {
                stop.cancel();
                let _ = tokio::time::timeout(graceful, &mut waiting).await;
                return Held::Shutdown;
            }
            () = live.broken.notified() => {
                stop.cancel();
                let _ = tokio::time::timeout(graceful, &mut waiting).await;
                return Held::Lost("a call failed at the transport".into());
            }
            () = ds.refresh.notify.notified() => {
                let lists = ds.refresh.pending.swap(0, Ordering::Relaxed);
                match tokio::time::timeout(reg.settings.connect_timeout, load_catalog(&ds.spec.name, &live.peer)).await {
                    Ok(Ok(mut catalog)) => {
                        catalog.generations = ds.lock().catalog.generations;
                        catalog.instructions = ds.lock().catalog.instructions.clone();
                        for (i, g) in catalog.generations.iter_mut().enumerate() {
                            if lists & (1 << i) != 0 {
                                *g += 1;
                            }
                        }
                        tracing::info!(server = %ds.spec.name, tools = catalog.tools.len(), prompts = catalog.prompts.len(), resources = catalog.resources.len(), "downstream lists changed");
                        ds.set(Health::Connected, Some(catalog), Some(live.clone()));
                        reg.publish();
                    }
                    Ok(Err(e)) => tracing::warn!(server = %ds.spec.name, error = %e, "could not refresh the lists"),
                    Err(_) => tracing::warn!(server = %ds.spec.name, "refreshing the lists timed out"),
                }
            }
        }
    }
}
