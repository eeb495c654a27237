//! The bundled demo MCP servers, built into the binary so a fresh install
//! has working tools with no Python or Node:
//!
//! - `woollama example-server hello`: `count_to(n)` (text plus structured
//!   `{"count": n}`, with an output schema; reports progress per step when
//!   the caller sends a progress token) and `hello(name)`;
//! - `woollama example-server textops`: `word_count`, `char_count`,
//!   `uppercase` and `reverse`.
//!
//! The bundled default `mcp.json` launches both over stdio through
//! `${WOOLLAMA_EXE}`. They are also the test suite's first real MCP peers.

mod hello;
mod textops;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{JsonObject, ServerCapabilities, ServerConfig};

pub use hello::Hello;
pub use textops::TextOps;

/// The example servers there are.
pub const NAMES: &[&str] = &["hello", "textops"];

/// Error from running an example server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown example server '{0}' (there are: hello, textops)")]
    Unknown(String),
    #[error("the MCP session failed: {0}")]
    Session(String),
}

/// Serves one example over stdin/stdout until the client disconnects.
pub async fn serve_stdio(name: &str) -> Result<(), Error> {
    match name {
        "hello" => run(Hello::new()).await,
        "textops" => run(TextOps::new()).await,
        other => Err(Error::Unknown(other.to_string())),
    }
}

async fn run<S: rmcp::ServerHandler>(server: S) -> Result<(), Error> {
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Error::Session(e.to_string()))?;
    service
        .waiting()
        .await
        .map_err(|e| Error::Session(e.to_string()))?;
    Ok(())
}

fn info(name: &str, instructions: &str) -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(rmcp::model::Implementation::new(
            format!("woollama-{name}"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(instructions)
}

/// `{"type":"object","properties":{<field>:{"type":"integer"}},"required":[<field>]}`.
fn integer_output(field: &str) -> Arc<JsonObject> {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {field: {"type": "integer"}},
        "required": [field],
    });
    match schema {
        serde_json::Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}
