//! The one place errors become an HTTP status and an OpenAI error body.
//!
//! Errors are named after their causes, in the layer that knows them: a
//! request the HTTP surface cannot take ([`RequestError`]), an upstream that
//! failed (`inference::Error`), a recipe that could not run or finish
//! (`orchestrate::Error`). [`ApiError`] carries any of them, and only this
//! file decides the status and the `type` (contract Appendix A): handlers
//! never pick a status.
//!
//! The Anthropic Messages surface (`/v1/messages`) gets the same statuses in
//! Anthropic's shape, `{"type":"error","error":{"type","message"}}`
//! ([`ApiError::anthropic_response`]).
//!
//! Everything woollama itself refuses is `{"error":{"message","type"}}`. An
//! upstream's own JSON error is relayed verbatim with its status; a non-JSON
//! upstream error is wrapped so the client still gets an OpenAI-shaped body
//! that says who failed. Inside a stream that already started, the same
//! error travels as one `data:` frame ([`ApiError::stream_frame`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::{conversations, inference, orchestrate, wire};

/// A request the HTTP surface refuses, by cause.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("could not read the request body: {0}")]
    BodyUnreadable(String),
    #[error("the request body is larger than the {} MiB limit", .limit / (1024 * 1024))]
    BodyTooLarge { limit: usize },
    #[error(
        "the request headers are {size} bytes, more than the {limit}-byte limit; send fewer or shorter headers"
    )]
    HeadersTooLarge { size: usize, limit: usize },
    #[error(
        "the request body did not arrive within {}s of its headers (WOOLLAMA_BODY_TIMEOUT_SECS)",
        .after.as_secs_f64()
    )]
    BodyTimeout { after: std::time::Duration },
    #[error("the request body is empty; send a JSON object")]
    EmptyBody,
    #[error("the path is not valid: {0}")]
    BadPath(String),
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the request body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error(
        "missing required field `model`: name a model like 'ollama/qwen3:8b' or 'woollama/<recipe>' (GET /v1/models lists them)"
    )]
    MissingModel,
    #[error("`model` is empty: name a model like 'ollama/qwen3:8b' or 'woollama/<recipe>'")]
    EmptyModel,
    #[error("`model` must be a string")]
    ModelNotAString,
    #[error(
        "unknown model namespace: '{model}'. Use 'woollama/<recipe>' or '<provider>/<model>' for a known inferencer ({known})."
    )]
    UnknownNamespace { model: String, known: String },
    #[error(
        "model '{model}' is declared as {} for this inferencer, not '{capability}' — call the endpoint for {}, or change [inferencers.{provider}.capabilities] in inferencers.toml",
        .declared.join(", "), .declared.join(" / ")
    )]
    CapabilityMismatch {
        model: String,
        provider: String,
        declared: Vec<String>,
        capability: &'static str,
    },
    #[error(
        "'woollama/{0}' is a recipe; recipes answer /v1/chat/completions only. Name a provider model like 'ollama/nomic-embed-text' here"
    )]
    RecipeNotHere(String),
    #[error(
        "'{0}' cannot answer here: claude-code/<model> answers chat (/v1/chat/completions, /v1/responses), and claude-agent/<model> stateful /v1/responses only; use '<provider>/<model>' here"
    )]
    NotPassThrough(String),
    #[error("`messages` must be an array of messages")]
    MessagesNotAnArray,
    #[error("`{field}` must be {expected}")]
    FieldType {
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "no stateful backend for model '{0}': conversations (store, conversation, previous_response_id, key) on a provider model or recipe need a `conversationStore` in mcp.json — the bundled `woollama example-server convstore` is one; `claude-code/<model>` and `claude-agent/<model>` keep their own. Or send the whole conversation in `input`"
    )]
    NoStatefulBackend(String),
    #[error(
        "'{0}' is a hosted agent, which holds its conversation itself: call it on /v1/responses with `store: true` (or a `conversation`, `previous_response_id` or `key`)"
    )]
    AgentNeedsState(String),
    #[error("'{0}' answers whole: a hosted agent's turn is not streamed; send `stream: false`")]
    AgentNotStreamed(String),
    #[error(
        "'woollama/{0}' is a recipe: it runs its own tools, and a client's `tools` cannot be added to it; drop `tools`, or name a provider model"
    )]
    ClientToolsWithRecipe(String),
    #[error(
        "no route for {method} {path} (woollama serves /v1/models, /v1/tools, /v1/chat/completions, /v1/responses, /v1/conversations, /v1/messages, /v1/embeddings, /v1/images/generations, /mcp, /metrics, /status)"
    )]
    NoRoute { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error(
        "forbidden: requests from the web page at {0:?} are refused; woollama serves local clients"
    )]
    ForeignOrigin(String),
    #[error(
        "forbidden: Host {0:?} does not name this machine; woollama answers requests for localhost, 127.0.0.1 and [::1] (and the host of WOOLLAMA_ADDRESS), so a web page whose DNS name points here is refused"
    )]
    ForeignHost(String),
}

/// Anything an HTTP request can end in.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Inference(#[from] inference::Error),
    #[error(transparent)]
    Recipe(#[from] orchestrate::Error),
    #[error(transparent)]
    Conversation(#[from] conversations::Error),
}

/// What an error is answered with.
enum Answer {
    /// woollama's own body.
    Own(StatusCode, &'static str),
    /// An upstream's body, relayed with `status` (wrapped if not JSON).
    Relayed {
        status: StatusCode,
        content_type: Option<String>,
        body: Bytes,
    },
}

const INVALID: &str = "invalid_request_error";
const SERVER: &str = "server_error";
const UPSTREAM: &str = "upstream_error";

fn request(e: &RequestError) -> Answer {
    use RequestError as R;
    match e {
        R::NoRoute { .. } => Answer::Own(StatusCode::NOT_FOUND, "not_found"),
        R::MethodNotAllowed { .. } => Answer::Own(StatusCode::METHOD_NOT_ALLOWED, INVALID),
        R::BodyTooLarge { .. } => Answer::Own(StatusCode::PAYLOAD_TOO_LARGE, INVALID),
        R::HeadersTooLarge { .. } => {
            Answer::Own(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, INVALID)
        }
        R::BodyTimeout { .. } => Answer::Own(StatusCode::REQUEST_TIMEOUT, INVALID),
        R::Unauthorized(_) => Answer::Own(StatusCode::UNAUTHORIZED, "authentication_error"),
        R::ForeignOrigin(_) | R::ForeignHost(_) => {
            Answer::Own(StatusCode::FORBIDDEN, "permission_error")
        }
        R::NoStatefulBackend(_) => Answer::Own(StatusCode::NOT_IMPLEMENTED, "not_implemented"),
        _ => Answer::Own(StatusCode::BAD_REQUEST, INVALID),
    }
}

fn upstream(e: &inference::Error) -> Answer {
    use inference::Error as E;
    match e {
        E::MissingKey { .. } | E::Refused(_) => Answer::Own(StatusCode::BAD_REQUEST, INVALID),
        E::Unreachable { .. }
        | E::BadResponse { .. }
        | E::TooLarge { .. }
        | E::Claude { .. }
        | E::Agents(_) => Answer::Own(StatusCode::BAD_GATEWAY, SERVER),
        E::Timeout { .. } => Answer::Own(StatusCode::GATEWAY_TIMEOUT, SERVER),
        E::Upstream {
            status,
            content_type,
            body,
            ..
        } => Answer::Relayed {
            status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            content_type: content_type.clone(),
            body: body.clone(),
        },
        E::StreamFailed { body, .. } => Answer::Relayed {
            status: StatusCode::BAD_GATEWAY,
            content_type: Some("application/json".into()),
            body: body.clone(),
        },
    }
}

fn recipe(e: &orchestrate::Error) -> Answer {
    use orchestrate::Error as E;
    match e {
        E::UnknownRecipe(_) => Answer::Own(StatusCode::NOT_FOUND, "not_found"),
        E::Unsupported { .. } | E::NotImplemented(_) | E::NoDelegateEndpoint(_) => {
            Answer::Own(StatusCode::NOT_IMPLEMENTED, "not_implemented")
        }
        E::Inference(i) => upstream(i),
        E::NoChoices { body, .. } => Answer::Relayed {
            status: StatusCode::BAD_GATEWAY,
            content_type: Some("application/json".into()),
            body: Bytes::from(body.to_string()),
        },
        E::MaxTurns(_) | E::NoAnswer(_) => Answer::Own(StatusCode::INTERNAL_SERVER_ERROR, SERVER),
    }
}

fn conversation(e: &conversations::Error) -> Answer {
    use conversations::Error as E;
    match e {
        E::UnknownConversation(_) | E::UnknownResponse(_) => {
            Answer::Own(StatusCode::NOT_FOUND, "not_found")
        }
        E::Store { .. } => Answer::Own(StatusCode::BAD_GATEWAY, UPSTREAM),
        E::UnknownCursor(_) => Answer::Own(StatusCode::BAD_REQUEST, INVALID),
        E::Storage { .. } | E::Corrupt { .. } | E::Unavailable(_) => {
            Answer::Own(StatusCode::INTERNAL_SERVER_ERROR, SERVER)
        }
    }
}

impl ApiError {
    fn answer(&self) -> Answer {
        match self {
            ApiError::Request(e) => request(e),
            ApiError::Inference(e) => upstream(e),
            ApiError::Recipe(e) => recipe(e),
            ApiError::Conversation(e) => conversation(e),
        }
    }

    /// Whether this relays an upstream's own error answer.
    pub fn relayed(&self) -> bool {
        matches!(self.answer(), Answer::Relayed { .. })
    }

    /// The error's `type` (`code` in a Responses `error` event).
    pub fn code(&self) -> &'static str {
        match self.answer() {
            Answer::Own(_, kind) => kind,
            Answer::Relayed { .. } => UPSTREAM,
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self.answer() {
            Answer::Own(s, _) | Answer::Relayed { status: s, .. } => s,
        }
    }

    /// The error as one SSE `data:` frame, for a stream that already
    /// started: an upstream's own JSON error as it came, else ours.
    pub fn stream_frame(&self) -> Bytes {
        let relayed = match self.answer() {
            Answer::Relayed { body, .. } => serde_json::from_slice::<serde_json::Value>(&body).ok(),
            Answer::Own(..) => None,
        };
        let payload = match (relayed, self.answer()) {
            // Written back compactly: a pretty-printed body would break the
            // one-line `data:` frame.
            (Some(json), _) => json.to_string().into_bytes(),
            (None, Answer::Own(StatusCode::INTERNAL_SERVER_ERROR, _)) => {
                wire::error_body(&self.to_string(), SERVER)
            }
            (None, _) => wire::error_body(&self.to_string(), UPSTREAM),
        };
        Bytes::from(wire::sse_raw(&payload))
    }
}

impl ApiError {
    /// The error's message: ours, or the one an upstream's JSON error body
    /// carries (OpenAI's `error.message`, Anthropic's, or a bare
    /// `message`), or its text.
    pub fn message(&self) -> String {
        match self.answer() {
            Answer::Own(..) => self.to_string(),
            Answer::Relayed { status, body, .. } => {
                let v = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
                let found = v
                    .pointer("/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(serde_json::Value::as_str);
                match found {
                    Some(m) => m.to_string(),
                    None => {
                        let text: String = String::from_utf8_lossy(&body)
                            .trim()
                            .chars()
                            .take(500)
                            .collect();
                        if text.is_empty() {
                            format!("the upstream answered {status} with an empty body")
                        } else {
                            format!("the upstream answered {status}: {text}")
                        }
                    }
                }
            }
        }
    }

    /// Anthropic's error `type` for this error's status.
    pub fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 405 | 415 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 | 503 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// The error as the Anthropic Messages API answers one: the same status,
    /// `{"type":"error","error":{"type","message"}}`. An Anthropic
    /// upstream's own error body is relayed as it came.
    pub fn anthropic_response(self) -> Response {
        let status = self.status();
        if let Answer::Relayed { body, .. } = self.answer()
            && serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v["type"] == "error" && v["error"].is_object())
        {
            return json_response(status, body);
        }
        let message = self.message();
        if status.is_server_error() {
            tracing::warn!(%status, error = %message, "request failed");
        } else {
            tracing::debug!(%status, error = %message, "request refused");
        }
        let body = serde_json::json!({"type": "error",
            "error": {"type": self.anthropic_type(), "message": message}});
        json_response(status, body.to_string())
    }
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
        match self.answer() {
            Answer::Relayed {
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
                    json_response(status, wire::error_body(&message, UPSTREAM))
                }
            }
            Answer::Own(status, kind) => {
                let message = self.to_string();
                if status.is_server_error() {
                    tracing::warn!(%status, error = %message, "request failed");
                } else {
                    tracing::debug!(%status, error = %message, "request refused");
                }
                let mut r = json_response(status, wire::error_body(&message, kind));
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract's statuses, decided here and only here.
    #[test]
    fn statuses_by_cause() {
        let cases: Vec<(ApiError, u16)> = vec![
            (RequestError::MissingModel.into(), 400),
            (RequestError::BodyTooLarge { limit: 1 << 25 }.into(), 413),
            (
                RequestError::NoRoute {
                    method: "GET".into(),
                    path: "/x".into(),
                }
                .into(),
                404,
            ),
            (
                RequestError::MethodNotAllowed {
                    method: "PUT".into(),
                    path: "/x".into(),
                }
                .into(),
                405,
            ),
            (RequestError::Unauthorized("no").into(), 401),
            (RequestError::ForeignHost("evil".into()).into(), 403),
            (orchestrate::Error::UnknownRecipe("r".into()).into(), 404),
            (orchestrate::Error::MaxTurns(8).into(), 500),
            (orchestrate::Error::NotImplemented("x".into()).into(), 501),
            (
                inference::Error::MissingKey {
                    inferencer: "groq".into(),
                    env: "GROQ_API_KEY".into(),
                }
                .into(),
                400,
            ),
            (
                inference::Error::Timeout {
                    inferencer: "o".into(),
                    url: "u".into(),
                    after: std::time::Duration::from_secs(1),
                }
                .into(),
                504,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status().as_u16(), status, "{e}");
        }
    }
}
