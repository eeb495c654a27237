//! One downstream server: its state (health, what it offers, the live
//! peer), the calls through it, and the supervisor that keeps it connected
//! (reconnecting with backoff, refreshing its lists when told).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientRequest, RequestId, ServerResult,
};
use rmcp::service::PeerRequestOptions;
use rmcp::{Peer, RoleClient, ServiceError};
use tokio::sync::Notify;

use super::catalog::{Catalog, Part, ServerStatus};
use super::connect::{Connected, Session, connect, load_catalog, stop_group};
use super::forward::{Caller, InFlight};
use super::{Error, Health, Inner};
use crate::config::ServerSpec;

pub(super) struct Downstream {
    pub spec: ServerSpec,
    state: Mutex<State>,
    /// The server said one of its lists changed.
    pub refresh: Arc<Notify>,
    /// Calls in flight, for forwarding what the server sends back.
    pub inflight: Arc<InFlight>,
    /// Cancelled when this server is taken out (a reload removed or changed
    /// it) or woollama shuts down: its supervisor stops it and ends.
    pub stop: tokio_util::sync::CancellationToken,
}

struct State {
    health: Health,
    catalog: Catalog,
    live: Option<Live>,
}

/// One connection's peer, and its own signal that a call found it broken.
/// The signal belongs to the connection: a call that failed on one that is
/// already gone (the server died mid-call, and the supervisor noticed first)
/// must not tear down the connection that replaced it — with one signal for
/// the server, every call that failed on a dead connection left a permit
/// that cut the next one, so a server that died once under load never
/// came back.
#[derive(Clone)]
struct Live {
    peer: Peer<RoleClient>,
    broken: Arc<Notify>,
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
            }),
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

    fn set(&self, health: Health, catalog: Option<Catalog>, live: Option<Live>) {
        let mut st = self.lock();
        st.health = health;
        if let Some(c) = catalog {
            st.catalog = c;
        }
        st.live = live;
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
        let live = self.live()?;
        let peer = &live.peer;
        let stateless = caller.as_ref().is_some_and(|c| c.stateless);
        // Registered before sending: the server may answer with progress or
        // a request of its own before `send_request_with_option` returns.
        let registered = caller.map(|c| self.inflight.register(c));
        let exchange = async {
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
        let outcome = tokio::time::timeout(timeout, exchange).await;
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
            Ok(Err(e)) => Err(self.failed(e, &live)),
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
                    tools = catalog.tools.len(),
                    prompts = catalog.prompts.len(),
                    resources = catalog.resources.len(),
                    "downstream connected"
                );
                failures = 0;
                delay = initial;
                let live = Live {
                    peer: session.peer().clone(),
                    broken: Arc::new(Notify::new()),
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

/// Serves one live session: refreshes the roster when told, and returns when
/// the session ends, a call found it broken, or woollama shuts down.
async fn hold(reg: &Inner, ds: &Downstream, session: Session, live: &Live) -> Held {
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
            () = ds.refresh.notified() => {
                match tokio::time::timeout(reg.settings.connect_timeout, load_catalog(&ds.spec.name, &live.peer)).await {
                    Ok(Ok(catalog)) => {
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
