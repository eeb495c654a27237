//! `hello`: counting, with progress, and a greeting.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

/// The largest `n` `count_to` accepts.
const MAX_COUNT: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct Hello {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CountTo {
    /// The number to count to (0 to 10000).
    pub n: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Greet {
    /// Who to greet.
    pub name: String,
}

impl Default for Hello {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl Hello {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Count from 1 to n. Returns the final count; reports progress per step to callers that ask for it.",
        output_schema = super::integer_output("count")
    )]
    async fn count_to(
        &self,
        Parameters(CountTo { n }): Parameters<CountTo>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if n > MAX_COUNT {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "n must be at most {MAX_COUNT}, got {n}"
            ))]));
        }
        if let Some(token) = ctx.meta.get_progress_token() {
            for i in 1..=n {
                if ctx.ct.is_cancelled() {
                    return Err(ErrorData::internal_error("cancelled", None));
                }
                let p = ProgressNotificationParam::new(token.clone(), i as f64)
                    .with_total(n as f64)
                    .with_message(format!("{i}"));
                // A client that went away only loses its progress.
                let _ = ctx.peer.notify_progress(p).await;
            }
        }
        let mut result =
            CallToolResult::success(vec![ContentBlock::text(format!("counted to {n}"))]);
        result.structured_content = Some(json!({"count": n}));
        Ok(result)
    }

    #[tool(description = "Greet someone by name.")]
    async fn hello(&self, Parameters(Greet { name }): Parameters<Greet>) -> String {
        format!("Hello, {name}!")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        super::info(
            "hello",
            "A demo server bundled with woollama: count_to and hello.",
        )
    }
}
