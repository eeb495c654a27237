//! `textops`: small text tools.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct TextOps {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Text {
    /// The text to work on.
    pub text: String,
}

impl Default for TextOps {
    fn default() -> Self {
        Self::new()
    }
}

fn counted(n: usize, field: &str) -> CallToolResult {
    let mut r = CallToolResult::success(vec![ContentBlock::text(n.to_string())]);
    r.structured_content = Some(json!({ field: n }));
    r
}

#[tool_router]
impl TextOps {
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Count the words (whitespace-separated) in a text.",
        output_schema = super::integer_output("words")
    )]
    async fn word_count(&self, Parameters(Text { text }): Parameters<Text>) -> CallToolResult {
        counted(text.split_whitespace().count(), "words")
    }

    #[tool(
        description = "Count the characters (Unicode scalar values) in a text.",
        output_schema = super::integer_output("characters")
    )]
    async fn char_count(&self, Parameters(Text { text }): Parameters<Text>) -> CallToolResult {
        counted(text.chars().count(), "characters")
    }

    #[tool(description = "Return the text in upper case.")]
    async fn uppercase(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text.to_uppercase()
    }

    #[tool(description = "Return the text with its characters in reverse order.")]
    async fn reverse(&self, Parameters(Text { text }): Parameters<Text>) -> String {
        text.chars().rev().collect()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TextOps {
    fn get_info(&self) -> ServerConfig {
        super::info(
            "textops",
            "A demo server bundled with woollama: small text tools.",
        )
    }
}
