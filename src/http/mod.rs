//! The axum application: one file per route family, one error type, the
//! surface-auth layer.
//!
//! [`router`] builds the routes over an [`AppState`] with no auth (the Unix
//! socket, and in-process tests through `tower::ServiceExt::oneshot`);
//! [`with_surface_auth`] wraps it for the TCP listener. Every answer given
//! before the request body was read whole says `Connection: close`
//! (`keepalive`), so a keep-alive client never sends its next request on a
//! connection the server is about to drop.

pub mod access;
pub mod auth;
mod chat;
mod conversations;
pub mod error;
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

/// The routes behind `auth`, observed (access log and metrics, refusals
/// included) and with the keep-alive rule outermost.
pub fn guarded(router: Router, live: &Live, auth: auth::SurfaceAuth) -> Router {
    let router = router.layer(axum::middleware::from_fn_with_state(auth, auth::require));
    with_keepalive(observed(router, live))
}

/// The Unix socket's app: observed, no auth (its 0600 mode is the boundary).
pub fn unguarded(router: Router, live: &Live) -> Router {
    with_keepalive(observed(router, live))
}

/// Every answer logged and counted when it ends (`access`), after the
/// request limits (`limits`).
fn observed(router: Router, live: &Live) -> Router {
    let timeout = live.load().config.settings.body_timeout;
    router
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            live.clone(),
            access::observe,
        ))
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

/// The outermost layer of a listener's app: an answer given before the
/// request body was read says `Connection: close` (`keepalive`). Outermost,
/// so a refusal by surface auth is covered too.
fn with_keepalive(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(keepalive::close_if_unread))
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
