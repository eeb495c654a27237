//! `convstore`: a conversation store over MCP (contract §8.4), so
//! store-backed conversations work with nothing else installed.
//!
//! Threads are JSON files (`<id>.json`, mode 0600) in a directory: the first
//! argument after the name, else `$CONVSTORE_DIR`, else
//! `~/.local/state/woollama/convstore`. Each is written whole to a temp file
//! and renamed into place. Ids are minted here (`thread-<32 hex>`); an id
//! that could name another file (anything but `[A-Za-z0-9_-]`) is refused.
//! The tools answer JSON text, as the store protocol says: `create_thread` →
//! the id, `get_thread` → the messages (`[]` when fresh), `append_turn` →
//! `{"ok": true, "count": N}` (creating a missing thread), `delete_thread` →
//! `{"ok": true}` (idempotent).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerConfig};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
pub struct ConvStore {
    dir: Arc<PathBuf>,
    /// One writer at a time (appends read, then rewrite).
    lock: Arc<Mutex<()>>,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Thread {
    /// The thread's id, as `create_thread` returned it.
    pub thread_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Append {
    /// The thread's id.
    pub thread_id: String,
    /// Chat messages to add at the end, in order.
    pub messages: Vec<Value>,
}

/// The directory from the arguments and environment.
pub fn dir_from(arg: Option<&str>) -> PathBuf {
    if let Some(d) = arg.filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("CONVSTORE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".local/state/woollama/convstore")
}

fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn answer(v: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(v.to_string())])
}

impl ConvStore {
    fn path(&self, id: &str) -> Result<PathBuf, String> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "invalid thread id {id:?}: use the id create_thread returned"
            ));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    fn read(path: &Path) -> Result<Vec<Value>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a thread: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn write(&self, path: &Path, messages: &[Value]) -> Result<(), String> {
        let write = || -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.dir.as_path())?;
            let tmp = self
                .dir
                .join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec(messages).unwrap_or_default())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[tool_router]
impl ConvStore {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir: Arc::new(dir),
            lock: Arc::new(Mutex::new(())),
            tool_router: Self::tool_router(),
        }
    }

    /// The thread's file is written by its first `append_turn` (until then
    /// it reads as empty): creating one costs no write.
    #[tool(description = "Create an empty conversation thread; returns its id as a JSON string.")]
    async fn create_thread(&self) -> CallToolResult {
        answer(&json!(format!("thread-{}", uuid::Uuid::new_v4().simple())))
    }

    #[tool(
        description = "The messages of a thread, as a JSON array ([] for a new or unknown thread)."
    )]
    async fn get_thread(
        &self,
        Parameters(Thread { thread_id }): Parameters<Thread>,
    ) -> CallToolResult {
        match self.path(&thread_id).and_then(|p| Self::read(&p)) {
            Ok(messages) => answer(&Value::Array(messages)),
            Err(e) => failure(e),
        }
    }

    #[tool(
        description = "Append messages to a thread (created if missing); returns {\"ok\": true, \"count\": N}."
    )]
    async fn append_turn(
        &self,
        Parameters(Append {
            thread_id,
            messages,
        }): Parameters<Append>,
    ) -> CallToolResult {
        let _one = self.lock.lock().await;
        let result = self.path(&thread_id).and_then(|p| {
            let mut all = Self::read(&p)?;
            all.extend(messages);
            self.write(&p, &all)?;
            Ok(all.len())
        });
        match result {
            Ok(count) => answer(&json!({"ok": true, "count": count})),
            Err(e) => failure(e),
        }
    }

    #[tool(description = "Delete a thread; returns {\"ok\": true} (also when it did not exist).")]
    async fn delete_thread(
        &self,
        Parameters(Thread { thread_id }): Parameters<Thread>,
    ) -> CallToolResult {
        let _one = self.lock.lock().await;
        match self.path(&thread_id) {
            Ok(p) => match std::fs::remove_file(&p) {
                Ok(()) => answer(&json!({"ok": true})),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => answer(&json!({"ok": true})),
                Err(e) => failure(format!("cannot delete {}: {e}", p.display())),
            },
            Err(e) => failure(e),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ConvStore {
    fn get_info(&self) -> ServerConfig {
        super::info(
            "convstore",
            "A conversation store bundled with woollama: threads of chat messages kept in files, for store-backed conversations.",
        )
    }
}
