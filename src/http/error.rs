//! The one place errors become an HTTP status and an OpenAI error body.
//!
//! Everything woollama itself refuses is `{"error":{"message","type"}}` with
//! the contract's status and type (Appendix A). An upstream's own JSON error
//! is relayed verbatim with its status; a non-JSON upstream error is wrapped
//! so the client still gets an OpenAI-shaped body that says who failed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::inference;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Server(String),
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    /// An upstream error status with its body, relayed.
    #[error("upstream answered {status}")]
    Upstream {
        status: StatusCode,
        content_type: Option<String>,
        body: Bytes,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error")
            }
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error")
            }
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_error"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error"),
            ApiError::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            ApiError::Server(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "server_error"),
            ApiError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "server_error"),
            ApiError::Upstream { status, .. } => (*status, "upstream_error"),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

/// `{"error":{"message":…,"type":…}}`.
pub fn error_body(message: &str, kind: &str) -> Vec<u8> {
    json!({"error": {"message": message, "type": kind}})
        .to_string()
        .into_bytes()
}

fn json_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.parts();
        match self {
            ApiError::Upstream {
                status,
                content_type,
                body,
            } => {
                if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                    tracing::debug!(%status, "relaying upstream error");
                    let mut r = json_response(status, body);
                    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                        r.headers_mut().insert(header::CONTENT_TYPE, ct);
                    }
                    r
                } else {
                    let text = String::from_utf8_lossy(&body);
                    let text: String = text.trim().chars().take(500).collect();
                    let message = if text.is_empty() {
                        format!("the upstream answered {status} with an empty body")
                    } else {
                        format!("the upstream answered {status}: {text}")
                    };
                    tracing::debug!(%status, "relaying non-JSON upstream error");
                    json_response(status, error_body(&message, kind))
                }
            }
            ApiError::Unauthorized(reason) => {
                let mut r =
                    json_response(status, error_body(&format!("unauthorized: {reason}"), kind));
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            other => {
                let message = other.to_string();
                if status.is_server_error() {
                    tracing::warn!(%status, error = %message, "request failed");
                } else {
                    tracing::debug!(%status, error = %message, "request refused");
                }
                json_response(status, error_body(&message, kind))
            }
        }
    }
}

impl From<inference::Error> for ApiError {
    fn from(e: inference::Error) -> Self {
        use inference::Error as E;
        match e {
            E::MissingKey { .. } => ApiError::InvalidRequest(e.to_string()),
            E::Unreachable { .. } | E::BadResponse { .. } | E::TooLarge { .. } => {
                ApiError::BadGateway(e.to_string())
            }
            E::Timeout { .. } => ApiError::GatewayTimeout(e.to_string()),
            E::Upstream {
                status,
                content_type,
                body,
                ..
            } => ApiError::Upstream {
                status,
                content_type,
                body,
            },
        }
    }
}
