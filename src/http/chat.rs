//! `POST /v1/chat/completions`: dispatch on the `model` field.
//!
//! - `<provider>/<model>`: pass-through (plain, streamed, or Ollama native
//!   when `options.num_ctx` asks for a context size);
//! - `woollama/<recipe>`: a recipe (404 for an unknown one);
//! - anything else: 400 naming the known namespaces.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::AppState;
use super::error::ApiError;
use super::json::{JsonObject, model_of};
use super::passthrough::{
    Target, bare_body, forward, forward_stream, resolve, sse_response, stream_error,
};
use crate::inference::{self, ollama, openai};
use crate::routing::{Route, route};

pub async fn chat_completions(
    State(state): State<AppState>,
    JsonObject(mut body): JsonObject,
) -> Result<Response, ApiError> {
    let model = model_of(&body)?.to_string();
    if let Route::Recipe(name) = route(&model, |p| state.inference.contains(p)) {
        return super::recipe::chat(&state, name, &model, &body).await;
    }
    let target = resolve(&state, &model, "chat")?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if ollama::wants_native(target.inf.name(), &body) {
        return native(&state, &target, &body, stream).await;
    }
    if stream {
        forward_stream(
            &state,
            &target,
            "chat/completions",
            bare_body(body, &target.model),
        )
        .await
    } else {
        body.insert("stream".into(), Value::Bool(false));
        let bytes = bare_body(body, &target.model);
        forward(&state, &target, "chat/completions", bytes).await
    }
}

/// An Ollama error body (`{"error": "…"}`) made OpenAI-shaped.
fn native_error(e: inference::Error) -> ApiError {
    match e {
        inference::Error::Upstream { status, body, .. } => ApiError::Upstream {
            status,
            content_type: Some("application/json".into()),
            body: Bytes::from(ollama::error_body(&body).to_string()),
        },
        other => other.into(),
    }
}

async fn native(
    state: &AppState,
    target: &Target,
    body: &Map<String, Value>,
    stream: bool,
) -> Result<Response, ApiError> {
    let url = format!(
        "{}/api/chat",
        ollama::native_root(&target.inf.spec.base_url)
    );
    let request = Value::Object(ollama::to_native_request(body, &target.model, stream));
    let bytes = serde_json::to_vec(&request).unwrap_or_default();
    let client = state.inference.client();
    let timeout = state.inference.timeouts().native;
    let resp = openai::post(
        client,
        &target.inf,
        "",
        Some(url.clone()),
        bytes,
        timeout,
        stream,
    )
    .await
    .map_err(native_error)?;
    let id = ollama::completion_id();
    let created = ollama::now();
    if !stream {
        let raw = openai::read_body(&target.inf, &url, resp, timeout).await?;
        let native: Value = serde_json::from_slice(&raw).map_err(|e| {
            ApiError::from(inference::Error::BadResponse {
                inferencer: target.inf.name().to_string(),
                detail: format!("{url} did not answer JSON: {e}"),
            })
        })?;
        let out = ollama::from_native_response(&native, &target.model, &id, created);
        return Ok(axum::Json(out).into_response());
    }
    let translator = ollama::SseTranslator::new(&target.model, id, created);
    let relay = Box::pin(openai::relay(&target.inf, resp, timeout));
    let frames = futures_util::stream::unfold(Some((relay, translator)), |state| async move {
        let (mut relay, mut t) = state?;
        loop {
            let out = match relay.next().await {
                Some(Ok(chunk)) => {
                    let out = t.push(&chunk);
                    if out.is_empty() {
                        continue;
                    }
                    return Some((
                        Ok::<_, std::convert::Infallible>(Bytes::from(out)),
                        Some((relay, t)),
                    ));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "native stream failed");
                    let mut out = stream_error(&e).to_vec();
                    out.extend(t.finish());
                    out
                }
                None => t.finish(),
            };
            return Some((Ok(Bytes::from(out)), None));
        }
    });
    Ok(sse_response(
        HeaderValue::from_static("text/event-stream"),
        Body::from_stream(frames),
    ))
}
