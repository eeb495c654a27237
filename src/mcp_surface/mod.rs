//! woollama as an MCP server: one server that carries the recipes (as
//! prompts), the `chat` tool that runs a recipe, and everything the
//! downstream servers offer — tools, prompts, resources, resource templates
//! and completions — over stdio (`woollama mcp`) and Streamable HTTP at
//! `/mcp` on the daemon's own listeners. Every session shares the one
//! downstream registry.
//!
//! - Identity: `serverInfo` is `woollama` with our version; capabilities
//!   advertise tools and prompts with `listChanged`, logging, and — when
//!   `mcp.json` has servers — resources (with `subscribe` and `listChanged`)
//!   and completions.
//! - Names come from the registry's aggregated namespace (see
//!   `tools::catalog`): `mcp__<server>__<name>` and `woollama://<server>/<uri>`,
//!   or a server's own names when it is configured `"prefix": false`.
//! - Re-exported tools keep their downstream definitions verbatim (input and
//!   output schemas with `$schema`, `$defs`, `additionalProperties`), and
//!   results come back verbatim (`structuredContent`, `isError`). An unknown
//!   tool is a protocol error; a downstream that fails is a tool error; a
//!   downstream's own JSON-RPC error is forwarded as it came.
//! - A proxied request carries its caller along (`tools::Caller`): the
//!   downstream's progress (under the caller's token), log messages and
//!   sampling/elicitation/roots requests reach the client that made it;
//!   cancelling the request cancels it downstream.
//! - When a downstream's lists change, every connected client gets the
//!   matching `list_changed`; a resource update reaches the sessions that
//!   subscribed to it.
#![expect(
    deprecated,
    reason = "MCP logging, resources/subscribe and sampling (deprecated by SEP-2577) are still what 2025-11-25 clients use"
)]

mod chat;
mod clients;
mod errors;
mod handler;
mod parked;
mod prompts;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::app::Live;
use clients::Clients;
pub use handler::Surface;

/// woollama's MCP surface over one [`AppState`]: every session (stdio, each
/// `/mcp` session) shares the downstreams and the list of clients to tell of
/// changes.
#[derive(Clone)]
pub struct McpSurface {
    live: Live,
    clients: Clients,
    /// 2026-07-28 calls waiting for their clients' input (`parked`).
    parked: parked::Parked,
}

impl McpSurface {
    /// The surface, following the downstream registry from now on (ends with
    /// the app's shutdown token).
    pub fn start(live: Live) -> Self {
        let state = live.load();
        let clients = Clients::default();
        clients::follow(state.tools.clone(), clients.clone(), state.shutdown.clone());
        Self {
            live,
            clients,
            parked: parked::Parked::default(),
        }
    }

    fn session(&self) -> Surface {
        Surface::new(self.live.clone(), self.clients.clone(), self.parked.clone())
    }

    /// The Streamable HTTP service mounted at `/mcp`. Its `Host` check is
    /// the HTTP surface's, the same on every TCP route (`http::auth`), so
    /// rmcp's own is off.
    pub fn http_service(&self) -> StreamableHttpService<Surface, LocalSessionManager> {
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(self.live.load().shutdown.child_token())
            .disable_allowed_hosts();
        let surface = self.clone();
        StreamableHttpService::new(
            move || Ok(surface.session()),
            std::sync::Arc::new(LocalSessionManager::default()),
            config,
        )
    }

    /// The `/mcp` service as an axum router, its plain-text refusals made
    /// JSON (`errors::json_refusals`).
    pub fn http_router(&self) -> axum::Router {
        axum::Router::new()
            .fallback_service(self.http_service())
            .layer(axum::middleware::from_fn(errors::json_refusals))
    }

    /// Serves one session on stdin/stdout until the client closes it.
    pub async fn serve_stdio(self) -> Result<(), String> {
        let session = self.session();
        let transport = Watched {
            inner: rmcp::transport::IntoTransport::<rmcp::RoleServer, _, _>::into_transport(
                rmcp::transport::stdio(),
            ),
            gone: session.gone.clone(),
        };
        let service = session
            .serve(transport)
            .await
            .map_err(|e| format!("the MCP session could not start: {e}"))?;
        service
            .waiting()
            .await
            .map_err(|e| format!("the MCP session failed: {e}"))?;
        Ok(())
    }
}

/// A server transport that says when its client went away (end of input),
/// so long-lived handlers end with it: rmcp lets in-flight requests finish
/// before it closes, and a `subscriptions/listen` stream never would —
/// `woollama mcp` lingered five seconds after its client closed stdin.
struct Watched<T> {
    inner: T,
    gone: tokio_util::sync::CancellationToken,
}

impl<T: rmcp::transport::Transport<rmcp::RoleServer>> rmcp::transport::Transport<rmcp::RoleServer>
    for Watched<T>
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>> {
        let message = self.inner.receive().await;
        if message.is_none() {
            self.gone.cancel();
        }
        message
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
