//! `POST /v1/chat/completions`: dispatch on the `model` field.
//!
//! - `<provider>/<model>`: pass-through, plain or streamed (an Ollama
//!   request asking for a context size is translated by the backend);
//! - `woollama/<recipe>`: a recipe (404 for an unknown one);
//! - anything else: 400 naming the known namespaces.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::access::Served;
use super::error::{ApiError, RequestError};
use super::json::{Forwardable, model_in};
use super::passthrough::{forward, resolve};
use crate::inference::Endpoint;
use crate::routing::{Route, route};

pub async fn chat_completions(
    State(state): State<AppState>,
    Forwardable(body): Forwardable,
) -> Result<Response, ApiError> {
    let model = model_in(&body)?.into_owned();
    if let Route::Recipe(name) = route(&model, |p| state.inference.contains(p)) {
        let served = Served::new(&state, &model, "recipe");
        let body = body.into_tree().map_err(RequestError::NotJson)?;
        let result = super::recipe::chat(&state, name, &model, &body).await;
        return Ok(served.answer(result, IntoResponse::into_response));
    }
    let served = Served::new(&state, &model, "relayed");
    let result = match resolve(&state, &model, Endpoint::Chat) {
        Ok(target) => forward(&state, &target, Endpoint::Chat, body).await,
        Err(e) => Err(e),
    };
    Ok(served.answer(result, IntoResponse::into_response))
}
