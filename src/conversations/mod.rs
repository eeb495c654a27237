//! Conversations: the handle table (DESIGN decisions 4 and 8).
//!
//! woollama never stores a conversation's messages: they live in the backend
//! that owns the conversation (an external store, Claude's session, a hosted
//! agent). What woollama keeps is a *handle* per conversation — which
//! backend, the backend's own id, status, the caller's key, title, metadata,
//! timestamps — and which conversation each response id belongs to, so that
//! `previous_response_id` resolves.
//!
//! The table is durable by default: files under the state dir (`file`:
//! the table and a journal of its latest changes, mode 0600), every
//! answered change flushed to disk, surviving a restart and a `kill -9`
//! mid-write. Listings are ordered by creation; ids are stable.
//! The table is an enum over its implementations (the file now; Redis, for
//! instances that share conversations, beside it), so callers never see
//! which one runs.

mod file;
mod redis;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use file::FileTable;
pub use redis::RedisTable;
pub use store::Store;

/// A conversation's state, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Idle,
    Busy,
    AwaitingInput,
    Dead,
}

/// One conversation's handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    /// `conv_<32 hex>`.
    pub id: String,
    /// The state-owning backend (`store-backed`, `claude-resume`,
    /// `managed-agents`); `None` until the first turn names a model.
    pub backend: Option<String>,
    /// The model as the client named it.
    pub model: Option<String>,
    /// The backend's own id for the conversation (created lazily).
    pub native_id: Option<String>,
    pub status: Status,
    /// The caller's own key (create-or-attach).
    pub key: Option<String>,
    pub title: Option<String>,
    pub metadata: Map<String, Value>,
    pub created_at: u64,
    pub updated_at: u64,
    /// Creation order (ties in `created_at` broken by it).
    pub seq: u64,
    /// What the backend waits for while `awaiting_input` (a hosted agent's
    /// pending `ask_user` call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl Handle {
    /// A new handle with a fresh id.
    pub fn new(model: Option<String>, backend: Option<String>) -> Self {
        let now = crate::wire::now();
        Self {
            id: format!("conv_{}", uuid::Uuid::new_v4().simple()),
            backend,
            model,
            native_id: None,
            status: Status::Idle,
            key: None,
            title: None,
            metadata: Map::new(),
            created_at: now,
            updated_at: now,
            seq: 0,
            pending: None,
        }
    }

    /// The conversation object clients get (OpenAI's fields, and ours).
    pub fn object(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
            "backend": self.backend,
            "model": self.model,
            "status": self.status,
            "title": self.title,
            "key": self.key,
        })
    }
}

/// Oldest or newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub data: Vec<Handle>,
    pub has_more: bool,
}

/// What to do about a failed read or write of the table.
fn storage_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "the disk is full: free space there; the table on disk is unchanged"
        }
        _ => "check that WOOLLAMA_STATE_DIR / XDG_STATE_HOME points at a writable directory",
    }
}

/// Why the table could not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown conversation '{0}'")]
    UnknownConversation(String),
    #[error("unknown `after` cursor '{0}': it names no conversation")]
    UnknownCursor(String),
    #[error(
        "cannot {what} the conversation table at {}: {source} ({})",
        .path.display(), storage_hint(source)
    )]
    Storage {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the conversation table at {} is not readable JSON: {detail}; move it aside to start afresh", .path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("conversations are unavailable: {0}")]
    Unavailable(String),
    #[error("unknown response '{0}': no conversation holds it")]
    UnknownResponse(String),
    /// The external store failed (502 `upstream_error`). `store` and `call`
    /// as shown: `'server'` and `'append_turn'`, or `(http <base>)` and
    /// `PATCH /threads/<id>`.
    #[error("conversation store {store} failed on {call}: {detail}")]
    Store {
        store: String,
        call: String,
        detail: String,
    },
}

/// Where the handles are kept.
#[derive(Debug, Clone)]
enum Backend {
    File(FileTable),
    Redis(RedisTable),
    /// The table could not be opened (why): every call says so.
    Unavailable(Arc<str>),
}

type Writers = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// The handle table: its backend, and this process's writer locks.
#[derive(Debug, Clone)]
pub struct Table {
    backend: Backend,
    writers: Arc<Mutex<Writers>>,
}

/// Calls `$method` on whichever backend holds the table.
macro_rules! each {
    ($self:ident, $t:ident => $call:expr) => {
        match &$self.backend {
            Backend::File($t) => $call,
            Backend::Redis($t) => $call,
            Backend::Unavailable(why) => Err(Error::Unavailable(why.to_string())),
        }
    };
}

/// A conversation's writer lock, held until dropped.
pub struct Writer {
    _local: tokio::sync::OwnedMutexGuard<()>,
    /// The lock every instance sees (Redis): the table, the id, our token.
    shared: Option<(RedisTable, String, String)>,
    /// Renews the shared lock while this is held.
    renewing: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(r) = self.renewing.take() {
            r.abort();
        }
        if let Some((t, id, token)) = self.shared.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || t.unlock(&id, &token))),
                Err(_) => t.unlock(&id, &token),
            }
        }
    }
}

impl Table {
    fn with(backend: Backend) -> Self {
        Self {
            backend,
            writers: Arc::default(),
        }
    }

    /// The durable default: `<state dir>/conversations.json` and
    /// `conversations.journal`.
    pub fn open(state_dir: &std::path::Path) -> Result<Self, Error> {
        Ok(Table::with(Backend::File(FileTable::open(state_dir)?)))
    }

    /// The table in Redis at `url`, shared by every instance that names it.
    pub fn redis(url: &str) -> Result<Self, Error> {
        Ok(Table::with(Backend::Redis(RedisTable::open(url)?)))
    }

    /// [`Table::redis`] with writer locks that live `ttl` unrenewed (the
    /// default is 10 minutes; tests shorten it).
    pub fn redis_with_lock_ttl(url: &str, ttl: std::time::Duration) -> Result<Self, Error> {
        Ok(Table::with(Backend::Redis(
            RedisTable::open(url)?.with_lock_ttl(ttl),
        )))
    }

    /// The table in Redis when `state_url` names it, else the file under
    /// `state_dir` — or a table that answers every call with why it could
    /// not be opened (logged once): woollama still starts.
    pub fn open_or_unavailable(state_dir: &std::path::Path, state_url: Option<&str>) -> Self {
        let opened = match state_url {
            Some(url) => Table::redis(url),
            None => Table::open(state_dir),
        };
        opened.unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Table::with(Backend::Unavailable(e.to_string().into()))
        })
    }

    /// Adds `handle`, or — when its `key` names an existing conversation —
    /// returns that one; `true` when it was created.
    pub fn create(&self, handle: Handle) -> Result<(Handle, bool), Error> {
        each!(self, t => t.create(handle))
    }

    pub fn get(&self, id: &str) -> Result<Handle, Error> {
        each!(self, t => t.get(id))
    }

    /// A page of at most `limit` handles after the one named `after`.
    pub fn list(&self, order: Order, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        each!(self, t => t.list(order, after, limit))
    }

    /// Changes a handle; its `updated_at` moves.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Handle)) -> Result<Handle, Error> {
        each!(self, t => t.update(id, change))
    }

    /// A turn ended: response `response` belongs to conversation `id`, whose
    /// `updated_at` moves — one write.
    pub fn record_turn(&self, response: &str, id: &str) -> Result<(), Error> {
        each!(self, t => t.record_turn(response, id))
    }

    /// The conversation a response belongs to.
    pub fn conversation_of(&self, response: &str) -> Result<Handle, Error> {
        each!(self, t => t.conversation_of(response))
    }

    /// Forgets a handle.
    pub fn delete(&self, id: &str) -> Result<Handle, Error> {
        let gone = each!(self, t => t.delete(id))?;
        self.writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        Ok(gone)
    }

    /// The one-writer lock of conversation `id`: a second turn waits for the
    /// first, never interleaves with it — in this process, and with Redis in
    /// every process that shares the table.
    pub async fn lock(&self, id: &str) -> Result<Writer, Error> {
        let local = {
            let mut w = self
                .writers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(w.entry(id.to_string()).or_default())
        };
        let local = local.lock_owned().await;
        let shared = match &self.backend {
            Backend::Redis(t) => {
                let token = uuid::Uuid::new_v4().simple().to_string();
                loop {
                    let (t2, id2, tok) = (t.clone(), id.to_string(), token.clone());
                    let got = tokio::task::spawn_blocking(move || t2.try_lock(&id2, &tok))
                        .await
                        .map_err(|e| Error::Unavailable(e.to_string()))??;
                    if got {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Some((t.clone(), id.to_string(), token))
            }
            _ => None,
        };
        let renewing = shared
            .clone()
            .map(|(t, id, token)| tokio::spawn(renew(t, id, token)));
        Ok(Writer {
            _local: local,
            shared,
            renewing,
        })
    }
}

/// Keeps a shared writer lock alive: a turn may outlast the lock's TTL (a
/// long `claude` run, a hosted agent), and another instance must not take
/// the conversation meanwhile. Renewed every third of the TTL; if the lock
/// was lost (Redis unreachable for longer than the TTL), says so and stops.
async fn renew(t: RedisTable, id: String, token: String) {
    let every = t.lock_ttl() / 3;
    loop {
        tokio::time::sleep(every).await;
        let (t2, id2, tok2) = (t.clone(), id.clone(), token.clone());
        match tokio::task::spawn_blocking(move || t2.renew(&id2, &tok2)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::warn!(conversation = %id, "the conversation's writer lock expired before its turn ended; another instance may write to it");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(conversation = %id, "cannot renew the conversation's writer lock: {e}")
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
