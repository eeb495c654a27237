//! The axum application: one file per route family, one error type, the
//! surface-auth layer.
//!
//! [`router`] builds the routes over an [`AppState`] with no auth (the Unix
//! socket, and in-process tests through `tower::ServiceExt::oneshot`);
//! [`with_surface_auth`] wraps it for the TCP listener. Every answer given
//! before the request body was read whole says `Connection: close`
//! (`keepalive`), so a keep-alive client never sends its next request on a
//! connection the server is about to drop.

pub mod auth;
mod chat;
pub mod error;
pub mod json;
mod keepalive;
mod models;
mod passthrough;
mod recipe;
mod tools;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post};

pub use crate::app::AppState;
use crate::config::Secret;
use error::{ApiError, RequestError};

/// The routes, without surface auth: the Unix socket serves them as they
/// are (its 0600 mode is the boundary); the TCP listener wraps them in
/// [`with_surface_auth`].
///
/// `mcp` serves `/mcp`: the MCP surface's Streamable HTTP service, handed
/// in by whoever assembles the listeners (the two surfaces never import
/// each other).
pub fn router(state: AppState, mcp: Router) -> Router {
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
        .layer(axum::middleware::from_fn(keepalive::close_if_unread))
        .with_state(state)
}

/// The routes behind surface auth, for the TCP listener: the token rule, and
/// requests from web pages (an `Origin` that is not local, or a `Host` that
/// is not this machine: DNS rebinding) refused — on every route.
pub fn with_surface_auth(
    router: Router,
    token: Option<Secret>,
    settings: &crate::config::Settings,
) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            auth::SurfaceAuth::new(token, settings),
            auth::require,
        ))
        // Outermost, so a refusal by auth that leaves the body unread also
        // closes the connection.
        .layer(axum::middleware::from_fn(keepalive::close_if_unread))
}

async fn not_found(req: Request) -> ApiError {
    RequestError::NoRoute {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    }
    .into()
}

async fn method_not_allowed(req: Request) -> ApiError {
    RequestError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
    }
    .into()
}
