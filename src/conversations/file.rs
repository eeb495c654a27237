//! The handle table in a file: `<state dir>/conversations.json`.
//!
//! The whole table is held in memory and written whole after every change:
//! to a new file (mode 0600, `O_EXCL`, so nothing planted at that path is
//! written through), flushed to disk, then renamed over the old one — a
//! reader, a restart or a `kill -9` mid-write sees the old table or the new
//! one, never half of either. The state dir is created 0700. A table is a
//! person's conversations: small, so writing it whole is cheaper than it
//! sounds, and the writes are short enough to do under the lock. (They are
//! blocking I/O: whoever wires the table to a route calls it from
//! `spawn_blocking` or keeps to small tables.) A state dir woollama creates
//! is 0700; an existing one keeps its mode.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{Error, Handle, Order, Page};

const FILE: &str = "conversations.json";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct State {
    /// In creation order.
    handles: Vec<Handle>,
    next_seq: u64,
    /// Response id → conversation id.
    #[serde(default)]
    responses: std::collections::BTreeMap<String, String>,
}

impl State {
    /// Where conversation `id` is.
    fn position(&self, id: &str) -> Result<usize, Error> {
        self.handles
            .iter()
            .position(|h| h.id == id)
            .ok_or_else(|| Error::UnknownConversation(id.to_string()))
    }
}

/// The durable handle table.
#[derive(Debug, Clone)]
pub struct FileTable {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

fn storage(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Storage { what, path, source }
}

impl FileTable {
    /// Opens (or starts) the table in `dir`, creating `dir` 0700 if needed.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(storage("create", dir))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(storage("create", dir))?;
        }
        let path = dir.join(FILE);
        let state = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(storage("read", &path)(e)),
            Ok(m) if !m.file_type().is_file() => {
                return Err(storage("read", &path)(std::io::Error::other(
                    "it is not a regular file (a symlink is never followed)",
                )));
            }
            Ok(_) => {
                let text = fs::read(&path).map_err(storage("read", &path))?;
                serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
                    path: path.clone(),
                    detail: e.to_string(),
                })?
            }
        };
        Ok(Self {
            path,
            state: Arc::new(Mutex::new(state)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is data.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the table: a new file, flushed, renamed into place.
    fn persist(&self, state: &State) -> Result<(), Error> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{FILE}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let bytes = serde_json::to_vec(state).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            // Flushed before the rename: after a power loss the table is the
            // old one or the new one, never an empty file. (The directory is
            // not flushed: at worst the last change is lost, never the table.)
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(storage("write", &self.path))
    }

    /// Runs `change` on the state and persists it; on a failed write the
    /// in-memory state is put back, so memory never claims what disk lost.
    fn commit<T>(&self, change: impl FnOnce(&mut State) -> Result<T, Error>) -> Result<T, Error> {
        let mut state = self.lock();
        let before = state.clone();
        let out = change(&mut state)?;
        if *state == before {
            return Ok(out); // nothing changed: nothing to write
        }
        if let Err(e) = self.persist(&state) {
            *state = before;
            return Err(e);
        }
        Ok(out)
    }

    pub fn create(&self, mut handle: Handle) -> Result<(Handle, bool), Error> {
        self.commit(|state| {
            if let Some(key) = &handle.key
                && let Some(found) = state.handles.iter().find(|h| h.key.as_ref() == Some(key))
            {
                return Ok((found.clone(), false));
            }
            handle.seq = state.next_seq;
            state.next_seq += 1;
            state.handles.push(handle.clone());
            Ok((handle, true))
        })
    }

    pub fn get(&self, id: &str) -> Result<Handle, Error> {
        self.lock()
            .handles
            .iter()
            .find(|h| h.id == id)
            .cloned()
            .ok_or_else(|| Error::UnknownConversation(id.to_string()))
    }

    pub fn list(&self, order: Order, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        let state = self.lock();
        let mut all: Vec<&Handle> = state.handles.iter().collect();
        if order == Order::Desc {
            all.reverse();
        }
        let start = match after {
            None => 0,
            Some(id) => {
                all.iter()
                    .position(|h| h.id == id)
                    .ok_or_else(|| Error::UnknownCursor(id.to_string()))?
                    + 1
            }
        };
        let rest = &all[start.min(all.len())..];
        Ok(Page {
            data: rest.iter().take(limit).map(|h| (*h).clone()).collect(),
            has_more: rest.len() > limit,
        })
    }

    pub fn update(&self, id: &str, change: impl FnOnce(&mut Handle)) -> Result<Handle, Error> {
        self.commit(|state| {
            let h = state.position(id).map(|p| &mut state.handles[p])?;
            change(h);
            h.updated_at = crate::wire::now().max(h.updated_at);
            Ok(h.clone())
        })
    }

    pub fn delete(&self, id: &str) -> Result<Handle, Error> {
        self.commit(|state| {
            let pos = state.position(id)?;
            state.responses.retain(|_, c| c != id);
            Ok(state.handles.remove(pos))
        })
    }

    pub fn record_turn(&self, response: &str, id: &str) -> Result<(), Error> {
        self.commit(|state| {
            let h = state.position(id).map(|p| &mut state.handles[p])?;
            h.updated_at = crate::wire::now().max(h.updated_at);
            state.responses.insert(response.to_string(), id.to_string());
            Ok(())
        })
    }

    pub fn conversation_of(&self, response: &str) -> Result<Handle, Error> {
        let id = self
            .lock()
            .responses
            .get(response)
            .cloned()
            .ok_or_else(|| Error::UnknownResponse(response.to_string()))?;
        self.get(&id)
    }
}
