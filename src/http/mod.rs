//! The axum application: one file per route family, one error type, the
//! surface-auth layer.
//!
//! [`router`] builds the routes over an [`AppState`] with no auth (the Unix
//! socket, and in-process tests through `tower::ServiceExt::oneshot`);
//! [`with_surface_auth`] wraps it for the TCP listener.

pub mod auth;
mod chat;
pub mod error;
pub mod json;
mod models;
mod passthrough;
mod recipe;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post};

use crate::config::{Config, Secret};
use tokio_util::sync::CancellationToken;

use crate::inference::Registry;
use crate::tools::ToolRegistry;
use error::ApiError;

/// What every handler shares: cheap-to-clone handles.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub inference: Registry,
    /// The MCP downstreams.
    pub tools: ToolRegistry,
    /// Process start, seconds since the epoch (the `created` of listed models).
    pub started: u64,
    /// Cancelled when the daemon shuts down: long-lived streams (MCP SSE)
    /// end so the drain does not wait on them.
    pub shutdown: CancellationToken,
    /// MCP clients connected to `/mcp` (and stdio), for `list_changed`.
    pub mcp_clients: crate::mcp_surface::Clients,
}

impl AppState {
    pub fn new(config: Arc<Config>, inference: Registry, tools: ToolRegistry) -> Self {
        Self {
            config,
            inference,
            tools,
            started: crate::inference::ollama::now(),
            shutdown: CancellationToken::new(),
            mcp_clients: crate::mcp_surface::Clients::default(),
        }
    }
}

/// The routes for the TCP listener (without auth: see [`with_surface_auth`]).
/// `/mcp` accepts loopback `Host` headers and the configured address's host.
pub fn router(state: AppState) -> Router {
    let hosts = crate::mcp_surface::HostCheck::for_tcp(&state);
    build(state, hosts)
}

/// The routes for the Unix socket: no browser can reach it, so `/mcp` does
/// not check `Host`.
pub fn unix_router(state: AppState) -> Router {
    build(state, crate::mcp_surface::HostCheck::Off)
}

fn build(state: AppState, hosts: crate::mcp_surface::HostCheck) -> Router {
    let mcp = crate::mcp_surface::http_service(&state, &state.mcp_clients, hosts);
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/v1/models", get(models::list))
        .route("/v1/tools", get(tools::list))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(passthrough::embeddings))
        .route("/v1/images/generations", post(passthrough::images))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .with_state(state)
}

/// The routes behind surface auth, for the TCP listener: the token rule, and
/// requests from web pages (an `Origin` that is not local) refused.
pub fn with_surface_auth(
    router: Router,
    token: Option<Secret>,
    settings: &crate::config::Settings,
) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        auth::SurfaceAuth::new(token, settings),
        auth::require,
    ))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {} (woollama serves /v1/models, /v1/tools, /v1/chat/completions, /v1/embeddings, /v1/images/generations, /mcp)",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
}
