//! The external conversation store of the store-backed backend (contract
//! §8.4): where a conversation's messages live. Two protocols:
//!
//! - **MCP**, through the downstream registry: `create_thread`,
//!   `get_thread`, `append_turn`, `delete_thread`, each answering JSON text.
//!   The bundled `woollama example-server convstore` speaks it.
//! - **REST**: `PUT/GET/PATCH/DELETE <url>/threads/{id}`; woollama mints the
//!   ids (uuid hex); 30 s per call; any status but 2xx is a failure (a 404 on
//!   delete means already gone). This is the one place outside `inference`
//!   and `tools` that holds an HTTP client, because the store is neither an
//!   inferencer nor an MCP server.

use serde_json::{Value, json};

use super::Error;
use crate::tools::ToolRegistry;

/// A configured store.
#[derive(Debug, Clone)]
pub enum Store {
    Mcp(McpStore),
    Rest(RestStore),
}

impl Store {
    /// The store `mcp.json` configures, if any.
    pub fn from_config(
        spec: Option<&crate::config::StoreSpec>,
        tools: &ToolRegistry,
        http: &reqwest::Client,
    ) -> Option<Self> {
        Some(match spec? {
            crate::config::StoreSpec::Mcp { server } => {
                Store::Mcp(McpStore::new(server, tools.clone()))
            }
            crate::config::StoreSpec::Http { url } => {
                Store::Rest(RestStore::new(url, http.clone()))
            }
        })
    }

    /// A new thread's id.
    pub async fn create(&self) -> Result<String, Error> {
        match self {
            Store::Mcp(s) => s.create().await,
            Store::Rest(s) => s.create().await,
        }
    }

    /// A thread's messages.
    pub async fn get(&self, thread: &str) -> Result<Vec<Value>, Error> {
        match self {
            Store::Mcp(s) => s.get(thread).await,
            Store::Rest(s) => s.get(thread).await,
        }
    }

    /// Adds messages at the end of a thread.
    pub async fn append(&self, thread: &str, messages: Vec<Value>) -> Result<(), Error> {
        match self {
            Store::Mcp(s) => s.append(thread, messages).await,
            Store::Rest(s) => s.append(thread, messages).await,
        }
    }

    /// Deletes a thread (idempotent).
    pub async fn delete(&self, thread: &str) -> Result<(), Error> {
        match self {
            Store::Mcp(s) => s.delete(thread).await,
            Store::Rest(s) => s.delete(thread).await,
        }
    }
}

/// A store on an MCP server.
#[derive(Debug, Clone)]
pub struct McpStore {
    server: String,
    tools: ToolRegistry,
}

impl McpStore {
    /// The store on MCP server `server`.
    pub fn new(server: &str, tools: ToolRegistry) -> Self {
        Self {
            server: server.to_string(),
            tools,
        }
    }

    fn failed(&self, call: &str, detail: impl std::fmt::Display) -> Error {
        Error::Store {
            store: format!("'{}'", self.server),
            call: format!("'{call}'"),
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

/// A store behind a REST API.
#[derive(Debug, Clone)]
pub struct RestStore {
    base: String,
    http: reqwest::Client,
}

const REST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The most of a store's answer woollama reads: a thread is sent upstream
/// whole on every turn, so one longer than a request body could be is no
/// conversation an inferencer could take anyway.
const THREAD_LIMIT: usize = 64 * 1024 * 1024;

impl RestStore {
    pub fn new(url: &url::Url, http: reqwest::Client) -> Self {
        Self {
            base: url.as_str().trim_end_matches('/').to_string(),
            http,
        }
    }

    /// One call: `method /threads/{id}` with an optional JSON body; the
    /// answer's JSON (`None` when empty).
    async fn call(
        &self,
        method: reqwest::Method,
        id: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, Error> {
        let path = format!("/threads/{id}");
        let failed = |detail: String| Error::Store {
            store: format!("(http {})", self.base),
            call: format!("{method} {path}"),
            detail,
        };
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(REST_TIMEOUT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| failed(e.to_string()))?;
        let status = resp.status();
        if method == reqwest::Method::DELETE && status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = crate::bounded::whole(resp, THREAD_LIMIT)
            .await
            .map_err(|e| match e {
                crate::bounded::Read::TooLarge => failed(format!(
                    "the answer is longer than {} MiB",
                    THREAD_LIMIT >> 20
                )),
                crate::bounded::Read::Transport(e) => failed(e.to_string()),
            })?;
        if !status.is_success() {
            let text: String = String::from_utf8_lossy(&bytes).chars().take(300).collect();
            return Err(failed(format!("answered {status}: {text}")));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| failed(format!("the answer is not JSON: {e}")))
    }

    async fn create(&self) -> Result<String, Error> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.call(reqwest::Method::PUT, &id, None).await?;
        Ok(id)
    }

    async fn get(&self, thread: &str) -> Result<Vec<Value>, Error> {
        match self.call(reqwest::Method::GET, thread, None).await? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(m)) => Ok(m),
            Some(other) => Err(Error::Store {
                store: format!("(http {})", self.base),
                call: format!("GET /threads/{thread}"),
                detail: format!("expected an array of messages, got {other}"),
            }),
        }
    }

    async fn append(&self, thread: &str, messages: Vec<Value>) -> Result<(), Error> {
        self.call(reqwest::Method::PATCH, thread, Some(Value::Array(messages)))
            .await
            .map(|_| ())
    }

    async fn delete(&self, thread: &str) -> Result<(), Error> {
        self.call(reqwest::Method::DELETE, thread, None)
            .await
            .map(|_| ())
    }
}
