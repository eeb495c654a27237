//! The one place where what went wrong becomes what an MCP client gets: a
//! JSON-RPC error (the request itself was wrong, or a downstream's own
//! JSON-RPC error, forwarded as it came) or a tool result with `isError`
//! (the tool ran, or tried to, and failed).

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::{inference, orchestrate, tools};

/// A downstream registry failure as the JSON-RPC error a client gets.
pub(super) fn protocol(e: tools::Error) -> ErrorData {
    match e {
        tools::Error::Protocol { error, .. } => *error,
        tools::Error::UnknownResource(_) => ErrorData::resource_not_found(e.to_string(), None),
        tools::Error::UnknownTool(_) | tools::Error::UnknownPrompt(_) => {
            ErrorData::invalid_params(e.to_string(), None)
        }
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// A proxied `tools/call` that failed: an unknown tool or the downstream's
/// own JSON-RPC error is a protocol error; anything else (down, timed out,
/// broke off) is the tool's failure.
pub(super) fn tool_call(e: tools::Error) -> Result<CallToolResult, ErrorData> {
    match e {
        tools::Error::UnknownTool(_) | tools::Error::Protocol { .. } => Err(protocol(e)),
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
