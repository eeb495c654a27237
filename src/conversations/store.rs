//! The external conversation store of the store-backed backend (contract
//! §8.4): where a conversation's messages live, reached over MCP through the
//! downstream registry (`create_thread`, `get_thread`, `append_turn`,
//! `delete_thread`; each answers JSON text). The bundled
//! `woollama example-server convstore` speaks it.

use serde_json::{Value, json};

use super::Error;
use crate::tools::ToolRegistry;

/// A configured store.
#[derive(Debug, Clone)]
pub struct Store {
    server: String,
    tools: ToolRegistry,
}

impl Store {
    /// The store `mcp.json` configures, if this build can use it (MCP
    /// stores; REST stores come later, and say so).
    pub fn from_config(
        spec: Option<&crate::config::StoreSpec>,
        tools: &ToolRegistry,
    ) -> Option<Self> {
        match spec? {
            crate::config::StoreSpec::Mcp { server } => Some(Store::mcp(server, tools.clone())),
            crate::config::StoreSpec::Http { url } => {
                tracing::warn!(
                    url = %url,
                    "an http conversationStore is not supported by this build yet; stateful conversations answer 501"
                );
                None
            }
        }
    }

    /// The store on MCP server `server`.
    pub fn mcp(server: &str, tools: ToolRegistry) -> Self {
        Self {
            server: server.to_string(),
            tools,
        }
    }

    fn failed(&self, call: &str, detail: impl std::fmt::Display) -> Error {
        Error::Store {
            store: self.server.clone(),
            call: call.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Calls one store tool and parses its JSON text answer.
    async fn call(&self, tool: &str, args: Value) -> Result<Value, Error> {
        let snap = self.tools.settled_for(&[self.server.as_str()]).await;
        let wire = snap
            .find(&self.server, tool)
            .map(|t| t.wire.clone())
            .ok_or_else(|| self.failed(tool, "the server does not offer this tool (is it connected, and a conversation store?)"))?;
        let args = match args {
            Value::Object(m) => Some(m),
            _ => None,
        };
        let result = self
            .tools
            .call(&wire, args)
            .await
            .map_err(|e| self.failed(tool, e))?;
        let text = crate::tools::render(&result);
        if result.is_error == Some(true) {
            return Err(self.failed(tool, text));
        }
        serde_json::from_str(&text)
            .map_err(|e| self.failed(tool, format!("the answer is not JSON ({e}): {text}")))
    }

    /// A new thread's id.
    pub async fn create(&self) -> Result<String, Error> {
        match self.call("create_thread", json!({})).await? {
            Value::String(id) => Ok(id),
            other => Err(self.failed(
                "create_thread",
                format!("expected an id string, got {other}"),
            )),
        }
    }

    /// A thread's messages.
    pub async fn get(&self, thread: &str) -> Result<Vec<Value>, Error> {
        match self
            .call("get_thread", json!({"thread_id": thread}))
            .await?
        {
            Value::Array(m) => Ok(m),
            Value::Null => Ok(Vec::new()),
            other => Err(self.failed(
                "get_thread",
                format!("expected an array of messages, got {other}"),
            )),
        }
    }

    /// Adds messages at the end of a thread.
    pub async fn append(&self, thread: &str, messages: Vec<Value>) -> Result<(), Error> {
        self.call(
            "append_turn",
            json!({"thread_id": thread, "messages": messages}),
        )
        .await
        .map(|_| ())
    }

    /// Deletes a thread (idempotent).
    pub async fn delete(&self, thread: &str) -> Result<(), Error> {
        self.call("delete_thread", json!({"thread_id": thread}))
            .await
            .map(|_| ())
    }
}
