//! One downstream server: connecting it, supervising the connection, and
//! calling through it.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    Implementation, Tool,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

use super::{Error, Health, Inner, ServerStatus};
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
    /// The server said its tool list changed.
    refresh: Arc<Notify>,
}

struct State {
    health: Health,
    tools: Vec<Tool>,
    peer: Option<Peer<RoleClient>>,
}

impl Downstream {
    pub fn new(spec: ServerSpec) -> Self {
        Self {
            spec,
            state: Mutex::new(State {
                health: Health::Connecting,
                tools: Vec::new(),
                peer: None,
            }),
            reconnect: Notify::new(),
            refresh: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is plain data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn status(&self) -> (ServerStatus, Vec<Tool>) {
        let st = self.lock();
        let tools = if st.health == Health::Connected {
            st.tools.clone()
        } else {
            Vec::new()
        };
        (
            ServerStatus {
                name: self.spec.name.clone(),
                transport: self.spec.transport.kind(),
                health: st.health.clone(),
                tools: 0,
            },
            tools,
        )
    }

    fn set(&self, health: Health, tools: Option<Vec<Tool>>, peer: Option<Peer<RoleClient>>) {
        let mut st = self.lock();
        st.health = health;
        if let Some(t) = tools {
            st.tools = t;
        }
        st.peer = peer;
    }

    pub async fn call(
        &self,
        params: CallToolRequestParams,
        timeout: Duration,
    ) -> Result<CallToolResult, Error> {
        let (peer, health) = {
            let st = self.lock();
            (st.peer.clone(), st.health.clone())
        };
        let server = self.spec.name.clone();
        let Some(peer) = peer else {
            let why = match health {
                Health::Retrying { last_error, .. } => format!("retrying: {last_error}"),
                Health::Failed { reason } => format!("failed: {reason}"),
                other => other.as_str().to_string(),
            };
            return Err(Error::Unavailable { server, why });
        };
        let tool = params.name.to_string();
        // Dropping the call future (timeout, or our caller went away) sends
        // the downstream a cancellation.
        match tokio::time::timeout(timeout, peer.call_tool_once(params)).await {
            Err(_) => Err(Error::Timeout { after: timeout }),
            Ok(Ok(CallToolResponse::Complete(r))) => Ok(r),
            Ok(Ok(_)) => Err(Error::InputRequired { server, tool }),
            Ok(Err(ServiceError::McpError(error))) => Err(Error::Protocol { server, error }),
            Ok(Err(e)) => {
                tracing::warn!(server = %server, error = %e, "a call failed at the transport; reconnecting");
                self.reconnect.notify_one();
                Err(Error::Transport {
                    server,
                    detail: e.to_string(),
                })
            }
        }
    }
}

/// The client side of one downstream session: learns of tool-list changes.
#[derive(Clone)]
struct DownstreamClient {
    refresh: Arc<Notify>,
}

impl ClientHandler for DownstreamClient {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.refresh.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("woollama", env!("CARGO_PKG_VERSION")),
        )
    }
}

type Session = RunningService<RoleClient, DownstreamClient>;

/// A live connection, and the process group of a stdio server.
struct Connected {
    session: Session,
    tools: Vec<Tool>,
    group: Option<u32>,
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
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if killpg(group, None).is_err() {
            return;
        }
    }
    tracing::warn!(server, pgid, "processes ignored SIGTERM; killing the group");
    let _ = killpg(group, Signal::SIGKILL);
}

async fn connect(
    ds: &Downstream,
    env: &BTreeMap<String, String>,
    http: &reqwest::Client,
) -> Result<Connected, String> {
    let handler = DownstreamClient {
        refresh: Arc::clone(&ds.refresh),
    };
    let name = ds.spec.name.clone();
    let mut group = None;
    let session = match &ds.spec.transport {
        Transport::Stdio {
            command,
            args,
            env: extra,
        } => {
            let mut cmd = CommandWrap::with_new(command, |c| {
                c.args(args)
                    .env_clear()
                    .envs(env.iter())
                    .envs(extra.iter().map(|(k, v)| (k.as_str(), v.expose())));
            });
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
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::info!(target: "woollama::downstream", server = %server, "{line}");
                    }
                });
            }
            handler
                .serve(transport)
                .await
                .map_err(|e| format!("MCP handshake failed: {e}"))?
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
                .serve(transport)
                .await
                .map_err(|e| format!("MCP handshake failed: {e}"))?
        }
    };
    let tools = match session.peer().list_all_tools().await {
        Ok(t) => t,
        Err(e) => {
            let _ = session.cancel().await;
            if let Some(g) = group {
                stop_group(&name, g).await;
            }
            return Err(format!("tools/list failed: {e}"));
        }
    };
    Ok(Connected {
        session,
        tools,
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
    let settings = reg.settings;
    let initial = Duration::from_secs(1).min(settings.retry_max);
    let mut delay = initial;
    let mut failures: u32 = 0;
    let name = ds.spec.name.clone();
    loop {
        let attempt = tokio::select! {
            r = tokio::time::timeout(settings.connect_timeout, connect(&ds, &env, &http)) => r,
            () = reg.shutdown.cancelled() => break,
        };
        let last_error = match attempt {
            Ok(Ok(Connected {
                session,
                tools,
                group,
            })) => {
                tracing::info!(server = %name, tools = tools.len(), "downstream connected");
                failures = 0;
                delay = initial;
                let peer = session.peer().clone();
                ds.set(Health::Connected, Some(tools), Some(peer.clone()));
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
                "no MCP handshake and tool list within {}s",
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
                match tokio::time::timeout(reg.settings.connect_timeout, peer.list_all_tools()).await {
                    Ok(Ok(tools)) => {
                        tracing::info!(server = %ds.spec.name, tools = tools.len(), "downstream tool list changed");
                        ds.set(Health::Connected, Some(tools), Some(peer.clone()));
                        reg.publish();
                    }
                    Ok(Err(e)) => tracing::warn!(server = %ds.spec.name, error = %e, "could not refresh the tool list"),
                    Err(_) => tracing::warn!(server = %ds.spec.name, "refreshing the tool list timed out"),
                }
            }
        }
    }
}
