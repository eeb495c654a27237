//! The bundled demo MCP servers, built into the binary so a fresh install
//! has working tools with no Python or Node:
//!
//! - `woollama example-server hello`: `count_to(n)` (text plus structured
//!   `{"count": n}`, with an output schema; reports progress per step when
//!   the caller sends a progress token) and `hello(name)`;
//! - `woollama example-server textops`: `word_count`, `char_count`,
//!   `uppercase` and `reverse`;
//! - `woollama example-server convstore [DIR]`: a conversation store
//!   (`create_thread`, `get_thread`, `append_turn`, `delete_thread`) for
//!   store-backed conversations, threads kept in files.
//!
//! The bundled default `mcp.json` launches both over stdio through
//! `${WOOLLAMA_EXE}`. They are also the test suite's first real MCP peers.

mod convstore;
mod hello;
mod textops;

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{JsonObject, ServerCapabilities, ServerConfig};

pub use convstore::ConvStore;
pub use hello::Hello;
pub use textops::TextOps;

/// The example servers there are.
pub const NAMES: &[&str] = &["hello", "textops", "convstore"];

/// Error from running an example server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown example server '{0}' (there are: hello, textops, convstore)")]
    Unknown(String),
    #[error("the MCP session failed: {0}")]
    Session(String),
}

/// Serves one example over stdin/stdout until the client disconnects.
/// `arg` is the example's own argument (`convstore`'s directory).
pub async fn serve_stdio(name: &str, arg: Option<&str>) -> Result<(), Error> {
    match name {
        "hello" => run(Hello::new()).await,
        "textops" => run(TextOps::new()).await,
        "convstore" => run(ConvStore::new(convstore::dir_from(arg))).await,
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
