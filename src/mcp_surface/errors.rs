//! The one place where what went wrong becomes what an MCP client gets: a
//! JSON-RPC error (the request itself was wrong, or a downstream's own
//! JSON-RPC error, forwarded as it came) or a tool result with `isError`
//! (the tool ran, or tried to, and failed).
//!
//! Also the HTTP refusals of `/mcp` itself: rmcp answers a request it cannot
//! take (no `Accept` for SSE, a missing session id, a body that is not
//! JSON) in plain text; [`json_refusals`] gives them a JSON body that both a
//! JSON-RPC client and an OpenAI-style one can read — `{"jsonrpc": "2.0",
//! "id": null, "error": {"code", "message", "type"}}` — and a malformed body
//! is a 400 with the JSON-RPC parse error, as the MCP spec has it, not 415.

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::{inference, orchestrate, tools};

/// The middleware around `/mcp`: plain-text refusals as JSON.
pub(super) async fn json_refusals(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let r = next.run(req).await;
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if r.status().is_success() || r.status().is_informational() || json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let (status, code, message) = match text.strip_prefix("fail to deserialize request body") {
        Some(why) if parts.status == StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            StatusCode::BAD_REQUEST,
            -32700,
            format!(
                "the request body is not a JSON-RPC message:{why}; send one JSON object with \"jsonrpc\": \"2.0\""
            ),
        ),
        _ => (parts.status, -32600, text),
    };
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message, "type": "invalid_request_error"},
    })
    .to_string();
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}

/// A downstream registry failure as the JSON-RPC error a client gets.
pub(super) fn protocol(e: tools::Error) -> ErrorData {
    match e {
        tools::Error::Protocol { error, .. } => *error,
        tools::Error::MissingCapability { ref required, .. } => ErrorData::new(
            rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
            e.to_string(),
            Some(serde_json::json!({ "requiredCapabilities": required })),
        ),
        tools::Error::UnknownResource(_) => ErrorData::resource_not_found(e.to_string(), None),
        tools::Error::UnknownTool(_)
        | tools::Error::UnknownPrompt(_)
        | tools::Error::UnknownState { .. } => ErrorData::invalid_params(e.to_string(), None),
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// A proxied `tools/call` that failed: an unknown tool or the downstream's
/// own JSON-RPC error is a protocol error; anything else (down, timed out,
/// broke off) is the tool's failure.
pub(super) fn tool_call(e: tools::Error) -> Result<CallToolResult, ErrorData> {
    match e {
        tools::Error::UnknownTool(_)
        | tools::Error::Protocol { .. }
        | tools::Error::UnknownState { .. }
        | tools::Error::MissingCapability { .. } => Err(protocol(e)),
        e => Ok(failure(format!("dispatch failed: {e}"))),
    }
}

/// A tool-level failure with `message`.
pub(super) fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A recipe run by `chat` that failed: always the tool's failure, worded for
/// a person (an upstream's own error message rather than its JSON).
pub(super) fn recipe(e: &orchestrate::Error) -> CallToolResult {
    if let orchestrate::Error::Inference(inference::Error::Upstream {
        inferencer,
        status,
        body,
        ..
    }) = e
    {
        let detail = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        return failure(format!(
            "inferencer '{inferencer}' answered {status}: {detail}"
        ));
    }
    failure(e.to_string())
}
