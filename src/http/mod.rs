//! The axum application: one file per route family, one error type, and
//! the gate every request passes (`gate`).
//!
//! [`router`] builds the routes over an [`AppState`] with no auth (in-process
//! tests through `tower::ServiceExt::oneshot`); [`with_surface_auth`] puts
//! them behind the gate with surface auth for the TCP listener, and
//! [`unguarded`] behind the gate without it for the Unix socket. The gate
//! watches the request body (its deadline; `Connection: close` on an answer
//! given before it was read whole, so a keep-alive client never sends its
//! next request on a connection the server is about to drop), observes the
//! request (access log, metrics), and applies the header limit and auth.

pub mod access;
pub mod auth;
mod chat;
mod conversations;
pub mod error;
mod gate;
pub mod json;
mod keepalive;
pub mod limits;
mod messages;
mod models;
mod ops;
mod passthrough;
mod recipe;
mod responses;
mod tools;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::routing::{get, post};

pub use crate::app::{AppState, Live};
use error::{ApiError, RequestError};

/// The routes, without surface auth: the Unix socket serves them as they
/// are (its 0600 mode is the boundary); the TCP listener wraps them in
/// [`with_surface_auth`].
///
/// `mcp` serves `/mcp`: the MCP surface's Streamable HTTP service, handed
/// in by whoever assembles the listeners (the two surfaces never import
/// each other).
pub fn router(live: Live, mcp: Router) -> Router {
    Router::new()
        .nest_service("/mcp", mcp)
        .route("/v1/models", get(models::list))
        .route("/metrics", get(ops::metrics))
        .route("/status", get(ops::status))
        .route("/v1/tools", get(tools::list))
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/responses", post(responses::create))
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route(
            "/v1/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get)
                .post(conversations::update)
                .delete(conversations::delete),
        )
        .route("/v1/conversations/{id}/items", get(conversations::items))
        .route("/v1/embeddings", post(passthrough::embeddings))
        .route("/v1/images/generations", post(passthrough::images))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .with_state(live)
}

/// The routes behind surface auth, for the TCP listener: the token rule, and
/// requests from web pages (an `Origin` that is not local, or a `Host` that
/// is not this machine: DNS rebinding) refused — on every route.
pub fn with_surface_auth(router: Router, live: &Live) -> Router {
    let state = live.load();
    let settings = &state.config.settings;
    let auth = auth::SurfaceAuth::new(
        settings.token.clone(),
        settings,
        state.tools.grants().clone(),
    );
    guarded(router, live, auth)
}

/// The routes behind `auth`, through the gate (`gate`: the body watched,
/// the request observed, the header limit, then `auth`).
pub fn guarded(router: Router, live: &Live, auth: auth::SurfaceAuth) -> Router {
    let gate = gate::Gate::new(live, Some(auth));
    router.layer(gate::GateLayer::new(gate))
}

/// The Unix socket's app: through the gate with no auth (its 0600 mode is
/// the boundary).
pub fn unguarded(router: Router, live: &Live) -> Router {
    let gate = gate::Gate::new(live, None);
    router.layer(gate::GateLayer::new(gate))
}

/// The Messages translation, for the property tests.
#[cfg(test)]
pub(crate) fn messages_translate_for_tests(
    body: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    messages::translate_for_tests(body)
}

/// The Responses translation, for the property tests.
#[cfg(test)]
pub(crate) fn responses_translate_for_tests(
    body: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    responses::translate_for_tests(body)
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
