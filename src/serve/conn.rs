//! Serving a router on a listener: HTTP/1.1 connections through hyper's
//! own connection builder, each in a task of its own, until shutdown; then
//! each connection finishes the request it is on and closes.
//!
//! In place of `axum::serve`, which serves every connection through
//! hyper-util's auto-detecting builder: it reads the first 24 bytes of a
//! connection on their own to tell HTTP/2's preface from HTTP/1 (a system
//! call more per connection), then reads everything after through a
//! rewinding wrapper (about 1.5 % of a pass-through's instructions) — and
//! woollama speaks HTTP/1.1 only. What `axum::serve` does besides is kept:
//! a failed `accept` (too many open files) is retried after a pause
//! (axum's own listener does it), `ConnectInfo<SocketAddr>` is the peer of
//! a TCP connection (surface auth reads it), TCP connections have
//! `TCP_NODELAY` (without it a response written in pieces — SSE, MCP's
//! Streamable HTTP — waits out the peer's delayed ACK, ~40 ms), and a
//! graceful shutdown waits for every connection to end.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A listener whose connections woollama serves.
pub trait Accepting: Listener {
    /// Readies an accepted connection; the peer address the routes see
    /// (`ConnectInfo`), if the listener has one.
    fn ready(io: &Self::Io, addr: &Self::Addr) -> Option<SocketAddr>;
}

impl Accepting for tokio::net::TcpListener {
    fn ready(io: &tokio::net::TcpStream, addr: &SocketAddr) -> Option<SocketAddr> {
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        Some(*addr)
    }
}

impl Accepting for tokio::net::UnixListener {
    fn ready(
        _io: &tokio::net::UnixStream,
        _addr: &tokio::net::unix::SocketAddr,
    ) -> Option<SocketAddr> {
        None
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting and returns once every connection has ended (each finishes
/// the request it is on; an idle keep-alive connection closes at once).
pub async fn serve<L: Accepting>(mut listener: L, app: Router, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let peer = L::ready(&io, &addr);
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(connection(io, peer, app, shutdown));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One connection, served until it ends or, after `shutdown`, until its
/// request in flight is answered.
async fn connection<I>(io: I, peer: Option<SocketAddr>, app: Router, shutdown: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        if let Some(peer) = peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        // A router is always ready; a clone per request is an `Arc` count.
        let mut app = app.clone();
        async move {
            Ok::<_, Infallible>(
                tower_service::Service::call(&mut app, req)
                    .await
                    .unwrap_or_else(|never| match never {}),
            )
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::trace!("connection ended: {e}");
            }
            return;
        }
        () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::trace!("connection ended: {e}");
    }
}
