//! Pass-through to an inferencer: `POST /v1/embeddings`,
//! `POST /v1/images/generations`, and the `<provider>/<model>` half of chat
//! (`claude-code/<model>` too: the `claude` CLI behind the same seam).
//!
//! The body goes upstream untouched except `model`, which becomes the bare
//! model. The answer is relayed as it arrives, with its status and content
//! type; an upstream error status with its body (see [`super::error`]). If
//! an event stream breaks off or goes quiet, the client gets one SSE error
//! frame rather than a silently truncated stream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use super::error::{ApiError, RequestError};
use super::json::{Forwardable, model_in};
use crate::inference::{Body as Forwarded, Endpoint, Inferencer, Relay};
use crate::routing::{Route, route};

/// A pass-through target: the inferencer and the bare model.
pub(crate) struct Target {
    pub inf: Arc<Inferencer>,
    pub model: String,
}

/// Resolves `model` for a pass-through endpoint.
pub(crate) fn resolve(
    state: &AppState,
    model: &str,
    endpoint: Endpoint,
) -> Result<Target, ApiError> {
    match route(model, |p| state.inference.contains(p)) {
        Route::Provider {
            provider,
            model: bare,
        } => {
            let Some(inf) = state.inference.get(provider) else {
                return Err(unknown_namespace(state, model));
            };
            let declared = inf.spec.endpoint_capabilities(bare);
            let capability = endpoint.capability();
            if !declared.is_empty() && !declared.contains(&capability) {
                return Err(RequestError::CapabilityMismatch {
                    model: model.to_string(),
                    provider: provider.to_string(),
                    declared: declared.iter().map(ToString::to_string).collect(),
                    capability,
                }
                .into());
            }
            inf.auth()?;
            Ok(Target {
                inf: Arc::clone(inf),
                model: bare.to_string(),
            })
        }
        Route::Recipe(name) if endpoint != Endpoint::Chat => {
            Err(RequestError::RecipeNotHere(name.to_string()).into())
        }
        // The `claude` CLI answers chat only.
        Route::ClaudeCode(bare) if endpoint == Endpoint::Chat => Ok(Target {
            inf: Arc::clone(state.inference.claude_code()),
            model: bare.to_string(),
        }),
        Route::ClaudeCode(_) | Route::ClaudeAgent(_) => {
            Err(RequestError::NotPassThrough(model.to_string()).into())
        }
        Route::Recipe(_) | Route::Unknown => Err(unknown_namespace(state, model)),
    }
}

fn unknown_namespace(state: &AppState, model: &str) -> ApiError {
    RequestError::UnknownNamespace {
        model: model.to_string(),
        known: state.inference.names().join(", "),
    }
    .into()
}

/// Forwards `body` to `target` and relays the answer.
pub(super) async fn forward(
    state: &AppState,
    target: &Target,
    endpoint: Endpoint,
    body: Forwarded,
) -> Result<Response, ApiError> {
    let relay = state
        .inference
        .relay(&target.inf, endpoint, &target.model, body)
        .await?;
    Ok(respond(relay))
}

/// The response for a relay: status, content type (and length), and the
/// body as it arrives.
pub(super) fn respond(relay: Relay) -> Response {
    let Relay {
        status,
        content_type,
        content_length,
        sse,
        body,
    } = relay;
    let chunks = body.map(move |item| match item {
        Ok(b) => Ok(b),
        Err(e) => {
            tracing::warn!(error = %e, "upstream answer broke off");
            if sse {
                // The client gets one error frame, and the stream ends.
                Ok(ApiError::from(e).stream_frame())
            } else {
                Err(std::io::Error::other(e.to_string()))
            }
        }
    });
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Body::from_stream(chunks),
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    if sse {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(n) = content_length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    r
}

/// A response carrying an event stream woollama composed.
pub(super) fn sse_response(body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn simple(
    state: AppState,
    body: Forwarded,
    endpoint: Endpoint,
) -> Result<Response, ApiError> {
    let model = model_in(&body)?.into_owned();
    let served = super::access::Served::new(&state, &model, "relayed");
    let result = match resolve(&state, &model, endpoint) {
        Ok(target) => forward(&state, &target, endpoint, body).await,
        Err(e) => Err(e),
    };
    Ok(served.answer(result, IntoResponse::into_response))
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    Forwardable(body): Forwardable,
) -> Result<Response, ApiError> {
    simple(state, body, Endpoint::Embeddings).await
}

/// `POST /v1/images/generations`.
pub async fn images(
    State(state): State<AppState>,
    Forwardable(body): Forwardable,
) -> Result<Response, ApiError> {
    simple(state, body, Endpoint::Images).await
}
