//! Listeners, start-up and graceful shutdown.
//!
//! Start-up order: refuse if a live daemon owns the socket; refuse a
//! non-loopback bind without a token; bind TCP (a random loopback port unless
//! `WOOLLAMA_ADDRESS`) and write the address file with the real port; bind the
//! Unix socket (best effort); print the banner; serve both until SIGINT or
//! SIGTERM. Shutdown stops accepting at once, lets in-flight requests and
//! streams finish for up to `WOOLLAMA_SHUTDOWN_GRACE_SECS` (10 s; a second
//! signal cuts it short), stops every MCP downstream (children reaped), then
//! removes the socket and address file if they are still ours.

pub mod conn;
pub mod reload;
pub mod socket;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;

use crate::app::{AppState, Live, Options};
use crate::config::settings::{BindHost, BindTarget};
use crate::config::{Config, Env};
use crate::http;
use crate::mcp_surface::McpSurface;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another woollama already owns {0}; refusing to start (stop it, or give this one its own XDG_RUNTIME_DIR)"
    )]
    AlreadyRunning(PathBuf),
    #[error(
        "refusing to bind non-loopback address {0} without an auth token: set WOOLLAMA_TOKEN to a secret, or bind 127.0.0.1"
    )]
    NoToken(BindTarget),
    #[error(
        "cannot listen on {addr}: {source} (is something else using the port? unset WOOLLAMA_ADDRESS for a random one)"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot resolve host '{host}': {detail}")]
    Resolve { host: String, detail: String },
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    App(#[from] crate::app::Error),
}

async fn bind_tcp(target: &BindTarget) -> Result<TcpListener, Error> {
    let addr: SocketAddr = match &target.host {
        BindHost::Ip(ip) => SocketAddr::new(*ip, target.port),
        BindHost::Name(name) => tokio::net::lookup_host((name.as_str(), target.port))
            .await
            .map_err(|e| Error::Resolve {
                host: name.clone(),
                detail: e.to_string(),
            })?
            .next()
            .ok_or_else(|| Error::Resolve {
                host: name.clone(),
                detail: "no addresses".into(),
            })?,
    };
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: target.to_string(),
        source,
    })
}

/// Writes `host:port\n` (IPv6 bracketed); best effort. The content goes to
/// a new file that is renamed into place, so a symlink planted at the path
/// (in a shared `/tmp`) is replaced, never written through.
fn write_addr_file(path: &Path, addr: SocketAddr) -> bool {
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = path.parent().unwrap_or(Path::new("."));
        socket::private_dir(dir)?;
        let tmp = dir.join(format!(".woollama.addr.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(format!("{addr}\n").as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    match write() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "could not write the address file");
            false
        }
    }
}

/// The two listeners' apps over one [`AppState`]: the same routes and one MCP
/// surface (one list of MCP clients) for both; the TCP one behind surface
/// auth (token, `Origin`, `Host`), the Unix socket's bare (its 0600 mode is
/// the boundary).
pub fn routers(live: &Live) -> (axum::Router, axum::Router) {
    let mcp = McpSurface::start(live.clone());
    let mcp = || mcp.http_router();
    let tcp = http::with_surface_auth(http::router(live.clone(), mcp()), live);
    let unix = http::unguarded(http::router(live.clone(), mcp()), live);
    (tcp, unix)
}

/// For `woollama mcp` on stdio: a loopback listener that serves `/mcp` to
/// **grants only** (`tools::grants`) — no other client, no other route — so
/// that a recipe delegating its tools to Claude (`claude-code/<model>` with
/// tools) can be reached by the Claude it runs. Bound when a recipe
/// delegates, or when the config is followed for changes (a config dir
/// exists): a reload may add the first delegating recipe, and a listener
/// cannot be added to a running `woollama mcp` later. Nothing is bound
/// otherwise.
pub async fn delegates_only(live: &Live) -> Result<(), Error> {
    let state = &live.load();
    let delegates = state.config.recipes.values().any(|r| {
        !r.tools.is_empty()
            && matches!(
                crate::routing::route(&r.inferencer, |p| state.inference.contains(p)),
                crate::routing::Route::ClaudeCode(_)
            )
    });
    if !delegates && state.config.dir.is_none() {
        return Ok(());
    }
    let addr = "127.0.0.1:0";
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let bound = tcp.local_addr().map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let mcp = McpSurface::start(live.clone());
    let only_mcp = axum::Router::new().nest_service("/mcp", mcp.http_router());
    // A token nobody holds: only a grant's opens anything.
    let nobody = crate::config::Secret::new(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ));
    let auth = http::auth::SurfaceAuth::new(
        Some(nobody),
        &state.config.settings,
        state.tools.grants().clone(),
    );
    let app = http::guarded(only_mcp, live, auth);
    state.listening_on(bound);
    tracing::debug!(%bound, "serving /mcp to delegates");
    let shutdown = state.shutdown.clone();
    tokio::spawn(conn::serve(tcp, app, shutdown));
    Ok(())
}

/// Serves the two listeners until the app's shutdown token is cancelled;
/// returns their tasks and the socket's guard.
fn spawn_servers(
    live: &Live,
    tcp: TcpListener,
    unix: Option<(tokio::net::UnixListener, socket::SocketGuard)>,
) -> (JoinSet<()>, Option<socket::SocketGuard>) {
    let (tcp_app, unix_app) = routers(live);
    let shutdown = &live.load().shutdown;
    let mut servers = JoinSet::new();
    servers.spawn(conn::serve(tcp, tcp_app, shutdown.clone()));
    let guard = unix.map(|(listener, guard)| {
        servers.spawn(conn::serve(listener, unix_app, shutdown.clone()));
        guard
    });
    (servers, guard)
}

/// Removes the address file if it still holds our address.
fn remove_addr_file(path: &Path, addr: SocketAddr) {
    if std::fs::read_to_string(path).is_ok_and(|s| s.trim() == addr.to_string()) {
        let _ = std::fs::remove_file(path);
    }
}

/// The signals that stop woollama (SIGINT, SIGTERM, and for `woollama mcp`
/// SIGHUP), registered early so none is missed.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// SIGINT and SIGTERM; with `hangup`, SIGHUP too (a stdio server whose
    /// client went away, or a terminal that closed).
    pub fn new(hangup: bool) -> Result<Self, Error> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
            term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
            hup: if hangup {
                Some(signal(SignalKind::hangup()).map_err(Error::Signals)?)
            } else {
                None
            },
        })
    }

    /// The next stop signal's name.
    pub async fn recv(&mut self) -> &'static str {
        let hup = async {
            match &mut self.hup {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = hup => "SIGHUP",
        }
    }
}

/// Runs the daemon until a signal, then drains and cleans up.
/// `json_logs`: the log is for machines, which get the listeners as a
/// `listening` event besides the banner (people get the banner alone).
pub async fn run(
    config: Arc<Config>,
    env: &Env,
    options: Options,
    json_logs: bool,
) -> Result<(), Error> {
    let settings = &config.settings;
    raise_fd_limit();
    let socket_path = settings.socket_path();
    if socket::is_live(&socket_path).await {
        return Err(Error::AlreadyRunning(socket_path));
    }
    if !settings.address.is_loopback() && settings.token.is_none() {
        return Err(Error::NoToken(settings.address.clone()));
    }
    let mut signals = Signals::new(false)?;

    let tcp = bind_tcp(&settings.address).await?;
    let addr = tcp.local_addr().map_err(|source| Error::Bind {
        addr: settings.address.to_string(),
        source,
    })?;
    let addr_file = settings.addr_file();
    let wrote_addr = write_addr_file(&addr_file, addr);
    let unix = socket::bind(&socket_path).map(socket::OwnedSocket::split);

    // Only now that the listeners are ours are children started.
    // Downstreams connect in the background; requests are served meanwhile.
    let state = AppState::build(Arc::clone(&config), env, options).map_err(Error::App)?;
    state.listening_on(addr);
    let shutdown = state.shutdown.clone();
    let live = Live::new(state.clone(), env.clone());
    let (mut servers, guard) = spawn_servers(&live, tcp, unix);
    reload::follow(&live, true);
    print_banner(
        addr,
        guard.as_ref().map(socket::SocketGuard::path),
        wrote_addr.then_some(&addr_file),
        settings.token.is_some(),
    );
    let socket = guard.as_ref().map(|g| g.path().display().to_string());
    if json_logs {
        tracing::info!(%addr, socket, "listening");
    } else {
        tracing::debug!(%addr, socket, "listening");
    }

    let signal = signals.recv().await;
    let grace = settings.shutdown_grace;
    tracing::info!(
        signal,
        grace_secs = grace.as_secs_f64(),
        "shutting down: no new connections; waiting for in-flight requests"
    );
    shutdown.cancel();
    let drained = tokio::select! {
        () = async { while servers.join_next().await.is_some() {} } => true,
        () = tokio::time::sleep(grace) => false,
        s = signals.recv() => { tracing::warn!(signal = s, "second signal: not waiting any longer"); false }
    };
    if !drained {
        tracing::warn!("in-flight requests were cut off at shutdown");
        servers.abort_all();
    }
    state.stop(std::time::Duration::from_secs(10)).await;
    drop(guard);
    if wrote_addr {
        remove_addr_file(&addr_file, addr);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Lifts the soft limit on open files to the hard one (at most 65,536): the
/// common soft default of 1,024 would let a thousand idle connections, plus
/// the MCP servers' pipes, starve everyone else.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(65_536);
        if soft < want {
            match setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
                Ok(()) => tracing::debug!(from = soft, to = want, "raised the open-file limit"),
                Err(e) => tracing::debug!("cannot raise the open-file limit: {e}"),
            }
        }
    }
}

fn print_banner(addr: SocketAddr, socket: Option<&Path>, addr_file: Option<&PathBuf>, token: bool) {
    let label = if addr.ip().is_loopback() {
        "HTTP loopback:"
    } else {
        "HTTP:"
    };
    let mut lines = vec![format!("woollama {} listening:", env!("CARGO_PKG_VERSION"))];
    if let Some(s) = socket {
        lines.push(format!(
            "  unix socket:     {} (local clients; no token needed)",
            s.display()
        ));
    }
    lines.push(format!("  {label:<16} http://{addr}"));
    lines.push(format!("  OpenAI base_url: http://{addr}/v1"));
    if let Some(f) = addr_file {
        lines.push(format!("  addr file:       {}", f.display()));
    }
    lines.push(if token {
        "  auth:            Authorization: Bearer $WOOLLAMA_TOKEN required on TCP".to_string()
    } else {
        "  auth:            none (loopback clients only; set WOOLLAMA_TOKEN to require a token)"
            .to_string()
    });
    let mut text = lines.join("\n");
    text.push('\n');
    crate::logging::print(&text);
}
