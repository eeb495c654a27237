//! Reading a JSON request body, with errors that stay OpenAI-shaped.
//!
//! axum's own `Json` extractor answers a malformed body with plain text and
//! a missing content type with 415. OpenAI clients always send JSON, and
//! `curl -d` users often forget the header, so this extractor reads the body
//! whatever the content type says and turns every failure into an
//! [`ApiError`] that names what is wrong.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::error::{ApiError, RequestError};
use crate::inference::Body;
use crate::rawjson::{RawObject, Refused};
use std::borrow::Cow;

/// The request body limit (base64 images are large).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

/// The request body's bytes: bounded, on time, not empty.
async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, RequestError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RequestError::BodyTooLarge { limit: BODY_LIMIT }
        } else if let Some(after) = super::limits::timed_out(&e) {
            RequestError::BodyTimeout { after }
        } else {
            RequestError::BodyUnreadable(e.body_text())
        }
    })?;
    if bytes.is_empty() {
        return Err(RequestError::EmptyBody);
    }
    Ok(bytes)
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        Ok(JsonObject(object_of(&bytes)?))
    }
}

/// A request body to pass through: a JSON object kept as its bytes with
/// its top-level fields located ([`crate::rawjson`]), so forwarding rewrites
/// `model` in place instead of parsing and re-writing the whole body. The
/// same refusals as [`JsonObject`].
#[derive(Debug)]
pub struct Forwardable(pub Body);

impl<S: Send + Sync> FromRequest<S> for Forwardable {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(req, state).await?;
        let body = match RawObject::parse(bytes.clone()) {
            Ok(raw) => Body::Raw(raw),
            // A repeated field: its meaning is the tree's (the last wins).
            Err(Refused::Repeated) => Body::Tree(object_of(&bytes)?),
            Err(Refused::NotAnObject(what)) => return Err(RequestError::NotAnObject(what).into()),
            Err(Refused::NotJson(e)) => return Err(RequestError::NotJson(e).into()),
        };
        Ok(Forwardable(body))
    }
}

/// The `model` field of a body to pass through.
pub fn model_in(body: &Body) -> Result<Cow<'_, str>, RequestError> {
    match body {
        Body::Tree(m) => model_of(m).map(Cow::Borrowed),
        Body::Raw(r) => match (r.field("model"), r.string("model")) {
            (None | Some("null"), _) => Err(RequestError::MissingModel),
            (_, Some(m)) if m.is_empty() => Err(RequestError::EmptyModel),
            (_, Some(m)) => Ok(m),
            (Some(_), None) => Err(RequestError::ModelNotAString),
        },
    }
}

/// The `{id}` of a route's path. axum's own `Path` answers an id that is
/// not valid UTF-8 (`/v1/conversations/%a0`) in plain text; this one keeps
/// it OpenAI-shaped.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| PathId(id))
            .map_err(|e| RequestError::BadPath(e.body_text()).into())
    }
}

/// A request body that must be a JSON object.
pub fn object_of(bytes: &[u8]) -> Result<Map<String, Value>, RequestError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(RequestError::NotAnObject(match other {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        })),
        Err(e) => Err(RequestError::NotJson(e.to_string())),
    }
}

/// The `model` field of a request body.
pub fn model_of(body: &Map<String, Value>) -> Result<&str, RequestError> {
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => Ok(m),
        None | Some(Value::Null) => Err(RequestError::MissingModel),
        Some(Value::String(_)) => Err(RequestError::EmptyModel),
        Some(_) => Err(RequestError::ModelNotAString),
    }
}
