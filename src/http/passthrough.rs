//! Pass-through to an inferencer: `POST /v1/embeddings`,
//! `POST /v1/images/generations`, and the forwarding that chat shares.
//!
//! The body goes upstream untouched except `model`, which becomes the bare
//! model. A success is relayed byte for byte with its content type; an
//! upstream error with its status and body (see [`super::error`]).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use super::json::{JsonObject, model_of};
use crate::inference::{self, Inferencer, openai};
use crate::routing::{Route, route};

/// A pass-through target: the inferencer and the bare model.
pub(super) struct Target {
    pub inf: Arc<Inferencer>,
    pub model: String,
}

/// Resolves `model` for a pass-through endpoint with capability `cap`
/// (`chat`, `embedding`, `image`).
pub(super) fn resolve(state: &AppState, model: &str, cap: &str) -> Result<Target, ApiError> {
    match route(model, |p| state.inference.contains(p)) {
        Route::Provider {
            provider,
            model: bare,
        } => {
            let Some(inf) = state.inference.get(provider) else {
                return Err(unknown_namespace(state, model));
            };
            let declared = inf.spec.endpoint_capabilities(bare);
            if !declared.is_empty() && !declared.contains(&cap) {
                return Err(ApiError::InvalidRequest(format!(
                    "model '{model}' is declared as {} for this inferencer, not '{cap}' — call the endpoint for {}, or change [inferencers.{provider}.capabilities] in inferencers.toml",
                    declared.join(", "),
                    declared.join(" / "),
                )));
            }
            inf.auth()?;
            Ok(Target {
                inf: Arc::clone(inf),
                model: bare.to_string(),
            })
        }
        Route::Recipe(name) if cap != "chat" => Err(ApiError::InvalidRequest(format!(
            "'woollama/{name}' is a recipe; recipes answer /v1/chat/completions only. Name a provider model like 'ollama/nomic-embed-text' here"
        ))),
        Route::ClaudeCode(_) | Route::ClaudeAgent(_) => Err(ApiError::InvalidRequest(format!(
            "'{model}' is not a pass-through model: claude-code/<model> runs as a recipe's inferencer, and claude-agent/<model> on stateful /v1/responses; use '<provider>/<model>' or 'woollama/<recipe>' here"
        ))),
        Route::Recipe(_) | Route::Unknown => Err(unknown_namespace(state, model)),
    }
}

pub(super) fn unknown_namespace(state: &AppState, model: &str) -> ApiError {
    ApiError::InvalidRequest(format!(
        "unknown model namespace: '{model}'. Use 'woollama/<recipe>' or '<provider>/<model>' for a known inferencer ({}).",
        state.inference.names().join(", ")
    ))
}

fn content_type(resp: &reqwest::Response, default: &'static str) -> HeaderValue {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static(default))
}

/// Rewrites `model` to the bare model and serializes the body.
pub(super) fn bare_body(mut body: Map<String, Value>, model: &str) -> Vec<u8> {
    body.insert("model".into(), Value::String(model.to_string()));
    // Serializing a Value cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Forwards a non-streaming request and relays the answer as it arrives:
/// nothing needs it whole, so nothing buffers it (the deadline set by
/// [`openai::post`] covers the body too).
pub(super) async fn forward(
    state: &AppState,
    target: &Target,
    path: &str,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let timeout = timeout_for(state, path);
    let client = state.inference.client();
    let resp = openai::post(client, &target.inf, path, None, body, timeout, false).await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::OK);
    let ct = content_type(&resp, "application/json");
    let length = resp.content_length();
    let chunks = openai::relay(&target.inf, resp, timeout).map(|item| {
        item.map_err(|e| {
            tracing::warn!(error = %e, "upstream answer broke off");
            std::io::Error::other(e.to_string())
        })
    });
    let mut r = (status, Body::from_stream(chunks)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, ct);
    if let Some(n) = length {
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(r)
}

/// Forwards a streaming request and relays the bytes as they arrive. If the
/// upstream breaks off or goes quiet, the client gets one SSE error frame
/// rather than a silently truncated stream.
pub(super) async fn forward_stream(
    state: &AppState,
    target: &Target,
    path: &str,
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let timeout = timeout_for(state, path);
    let client = state.inference.client();
    let resp = openai::post(client, &target.inf, path, None, body, timeout, true).await?;
    let ct = content_type(&resp, "text/event-stream");
    let is_sse = ct.as_bytes().starts_with(b"text/event-stream");
    let chunks = openai::relay(&target.inf, resp, timeout).map(move |item| match item {
        Ok(b) => Ok::<Bytes, std::convert::Infallible>(b),
        Err(e) => {
            tracing::warn!(error = %e, "upstream stream failed");
            Ok(if is_sse {
                stream_error(&e)
            } else {
                Bytes::new()
            })
        }
    });
    Ok(sse_response(ct, Body::from_stream(chunks)))
}

pub(super) fn sse_response(ct: HeaderValue, body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn timeout_for(state: &AppState, path: &str) -> Duration {
    let t = state.inference.timeouts();
    match path {
        "embeddings" => t.embeddings,
        "images/generations" => t.images,
        _ => t.chat,
    }
}

async fn simple(
    state: AppState,
    body: Map<String, Value>,
    path: &str,
    cap: &str,
) -> Result<Response, ApiError> {
    let model = model_of(&body)?.to_string();
    let target = resolve(&state, &model, cap)?;
    let bytes = bare_body(body, &target.model);
    forward(&state, &target, path, bytes).await
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    simple(state, body, "embeddings", "embedding").await
}

/// `POST /v1/images/generations`.
pub async fn images(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    simple(state, body, "images/generations", "image").await
}

/// Maps an inference error for use inside a response stream.
pub(super) fn stream_error(e: &inference::Error) -> Bytes {
    let mut f = b"data: ".to_vec();
    f.extend_from_slice(&super::error::error_body(&e.to_string(), "upstream_error"));
    f.extend_from_slice(b"\n\n");
    Bytes::from(f)
}
