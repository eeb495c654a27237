//! The handle table in files: `<state dir>/conversations.json`, the table
//! as it was at the last compaction, and `conversations.journal`, the
//! changes since, one JSON line each.
//!
//! The whole table is held in memory. A change is appended to the journal
//! and flushed to disk (`fdatasync`) before memory takes it — so memory
//! never claims what disk lost — and costs the size of the change, not of
//! the table: writing the whole table after every change made a stored
//! `/v1/responses` turn cost more the more conversations there were (a copy
//! and a serialisation of the whole table per turn; +3.8 ms per turn and
//! +9 MiB of memory over the benchmark's few thousand turns). Once the
//! journal holds more entries than the table has handles (1024 at least),
//! the table is written whole again (compacted): to a new file (mode 0600,
//! `O_EXCL`, so nothing planted at that path is written through), flushed,
//! renamed over the old one, and only then is the journal emptied. Replaying
//! a journal over a table that already holds its changes gives the same
//! table, so a crash between the two loses nothing; a journal line that a
//! crash left half-written was never acknowledged and is dropped. A reader,
//! a restart or a `kill -9` sees the last acknowledged change, never half of
//! one. (One exception: a change whose flush failed and whose bytes could
//! not be taken back off the journal is refused, yet a restart may find it.)
//! Neither path is followed through a symlink, nor opened if it is not a
//! regular file. (The writes are
//! blocking I/O: the routes call the table from `spawn_blocking`.) A state
//! dir woollama creates is 0700; an existing one keeps its mode.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{Error, Handle, Order, Page};

const FILE: &str = "conversations.json";
const JOURNAL: &str = "conversations.journal";
/// The journal is folded into the table once it holds more entries than
/// the table has handles, and never before this many.
const COMPACT_AFTER: usize = 1024;

/// One change, as a journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    /// A handle created or changed (the whole handle).
    Put(Box<Handle>),
    /// A conversation deleted, with its responses.
    Delete { id: String },
    /// A response recorded as a turn of conversation `id`, at `at`.
    Turn {
        response: String,
        id: String,
        at: u64,
    },
}

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
    /// Takes `entry` in. Applying a journal again over a table that already
    /// holds it gives the same table (see the module doc).
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Put(h) => {
                let h = *h;
                self.next_seq = self.next_seq.max(h.seq + 1);
                match self.handles.iter_mut().find(|x| x.id == h.id) {
                    Some(x) => *x = h,
                    None => self.handles.push(h),
                }
            }
            Entry::Delete { id } => {
                self.responses.retain(|_, c| *c != id);
                self.handles.retain(|h| h.id != id);
            }
            Entry::Turn { response, id, at } => {
                if let Some(h) = self.handles.iter_mut().find(|h| h.id == id) {
                    h.updated_at = h.updated_at.max(at);
                }
                self.responses.insert(response, id);
            }
        }
    }

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
    journal_path: PathBuf,
    inner: Arc<Mutex<Inner>>,
    compact_after: usize,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// The journal's entries.
    entries: usize,
    /// The journal may end in bytes that are not a whole entry (a failed
    /// append that could not be taken back, a crash): the table must be
    /// written whole before the journal is appended to again.
    torn: bool,
    /// After a failed compaction, the journal's entries at which to try
    /// again (not at every change while the disk is full).
    retry_at: usize,
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
        let journal_path = dir.join(JOURNAL);
        let mut state: State = match regular(&path)? {
            None => State::default(),
            Some(text) => serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?,
        };
        let (mut entries, mut torn) = (0, false);
        if let Some(text) = regular(&journal_path)? {
            let lines: Vec<&[u8]> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            for (n, line) in lines.iter().enumerate() {
                match serde_json::from_slice::<Entry>(line) {
                    Ok(entry) => {
                        state.apply(entry);
                        entries += 1;
                    }
                    // The last line, cut short or garbled by a crash, was
                    // never acknowledged: dropped. Nothing is written here
                    // (another process may be appending); the next change
                    // writes the table whole first.
                    Err(_) if n + 1 == lines.len() => torn = true,
                    Err(e) => {
                        return Err(Error::Corrupt {
                            path: journal_path.clone(),
                            detail: format!("line {}: {e}", n + 1),
                        });
                    }
                }
            }
        }
        Ok(Self {
            path,
            journal_path,
            inner: Arc::new(Mutex::new(Inner {
                state,
                entries,
                torn,
                retry_at: 0,
            })),
            compact_after: COMPACT_AFTER,
        })
    }

    /// The same table, compacted after `n` journal entries at least (tests).
    #[cfg(test)]
    pub(super) fn compacting_after(mut self, n: usize) -> Self {
        self.compact_after = n;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the state is data.
        self.inner
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
            // old one or the new one, never an empty file; and the rename is
            // flushed (the directory) before the journal is emptied.
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            sync_dir(dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(storage("write", &self.path))
    }

    /// Makes the change `plan` works out from the table: its entries are
    /// appended to the journal and flushed, then taken into memory; on a
    /// failed write nothing changes, in memory or on disk.
    fn commit<T>(
        &self,
        plan: impl FnOnce(&State) -> Result<(T, Vec<Entry>), Error>,
    ) -> Result<T, Error> {
        let mut inner = self.lock();
        let (out, entries) = plan(&inner.state)?;
        if entries.is_empty() {
            return Ok(out); // nothing changed: nothing to write
        }
        if inner.torn || self.lost(&inner.state) {
            self.compact(&mut inner)?;
        }
        let mut line = Vec::with_capacity(256);
        for e in &entries {
            serde_json::to_writer(&mut line, e).map_err(|e| Error::Corrupt {
                path: self.journal_path.clone(),
                detail: e.to_string(),
            })?;
            line.push(b'\n');
        }
        self.append(&mut inner, &line)?;
        inner.entries += entries.len();
        for e in entries {
            inner.state.apply(e);
        }
        if inner.entries > self.compact_after.max(inner.state.handles.len())
            && inner.entries >= inner.retry_at
        {
            // The change is on disk already; a failed compaction is tried
            // again after as many changes again.
            if let Err(e) = self.compact(&mut inner) {
                inner.retry_at = inner.entries + self.compact_after;
                tracing::warn!("{e}; the journal keeps every change until it can be");
            }
        }
        Ok(out)
    }

    /// Whether the files lost what memory holds: no table and no journal on
    /// disk, yet handles in memory (the state dir was replaced by an empty
    /// one). A journal started there would make a restart find only what
    /// came after; the table is written whole first.
    fn lost(&self, state: &State) -> bool {
        !state.handles.is_empty()
            && fs::symlink_metadata(&self.path).is_err()
            && fs::symlink_metadata(&self.journal_path).map_or(true, |m| m.len() == 0)
    }

    /// Appends `bytes` to the journal and flushes them to disk. A failure
    /// takes back what was written of them. The journal is opened by its
    /// path each time (a state dir moved or replaced is noticed, and a
    /// symlink put there refused).
    fn append(&self, inner: &mut Inner, bytes: &[u8]) -> Result<(), Error> {
        let path = &self.journal_path;
        let mut f = open_journal(path).map_err(storage("write", path))?;
        let meta = f.metadata().map_err(storage("write", path))?;
        if !meta.file_type().is_file() {
            return Err(storage("write", path)(std::io::Error::other(
                "it is not a regular file",
            )));
        }
        let before = meta.len();
        let mut written = f.write_all(bytes).and_then(|()| f.sync_data());
        if written.is_ok() && before == 0 {
            // A journal just made: its name reaches the disk too.
            written = sync_dir(path.parent().unwrap_or(Path::new(".")));
        }
        if let Err(e) = written {
            if f.set_len(before).is_err() {
                inner.torn = true;
            }
            return Err(storage("write", path)(e));
        }
        Ok(())
    }

    /// Writes the table whole, then empties the journal.
    fn compact(&self, inner: &mut Inner) -> Result<(), Error> {
        self.persist(&inner.state)?;
        open_journal(&self.journal_path)
            .and_then(|f| {
                f.set_len(0)?;
                f.sync_data()
            })
            .map_err(storage("write", &self.journal_path))?;
        inner.entries = 0;
        inner.torn = false;
        inner.retry_at = 0;
        Ok(())
    }

    pub fn create(&self, mut handle: Handle) -> Result<(Handle, bool), Error> {
        self.commit(|state| {
            if let Some(key) = &handle.key
                && let Some(found) = state.handles.iter().find(|h| h.key.as_ref() == Some(key))
            {
                return Ok(((found.clone(), false), Vec::new()));
            }
            handle.seq = state.next_seq;
            Ok(((handle.clone(), true), vec![Entry::Put(Box::new(handle))]))
        })
    }

    pub fn get(&self, id: &str) -> Result<Handle, Error> {
        self.lock()
            .state
            .handles
            .iter()
            .find(|h| h.id == id)
            .cloned()
            .ok_or_else(|| Error::UnknownConversation(id.to_string()))
    }

    pub fn list(&self, order: Order, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        let inner = self.lock();
        let mut all: Vec<&Handle> = inner.state.handles.iter().collect();
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
            let old = &state.handles[state.position(id)?];
            let mut h = old.clone();
            change(&mut h);
            h.updated_at = crate::wire::now().max(h.updated_at);
            let entries = if h == *old {
                Vec::new()
            } else {
                vec![Entry::Put(Box::new(h.clone()))]
            };
            Ok((h, entries))
        })
    }

    pub fn delete(&self, id: &str) -> Result<Handle, Error> {
        self.commit(|state| {
            let h = state.handles[state.position(id)?].clone();
            Ok((h, vec![Entry::Delete { id: id.to_string() }]))
        })
    }

    pub fn record_turn(&self, response: &str, id: &str) -> Result<(), Error> {
        self.commit(|state| {
            state.position(id)?;
            Ok((
                (),
                vec![Entry::Turn {
                    response: response.to_string(),
                    id: id.to_string(),
                    at: crate::wire::now(),
                }],
            ))
        })
    }

    pub fn conversation_of(&self, response: &str) -> Result<Handle, Error> {
        let id = self
            .lock()
            .state
            .responses
            .get(response)
            .cloned()
            .ok_or_else(|| Error::UnknownResponse(response.to_string()))?;
        self.get(&id)
    }
}

/// The bytes of the regular file at `path`; `None` if there is none. A
/// symlink or anything else at the path is refused, never followed.
fn regular(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage("read", path)(e)),
        Ok(m) if !m.file_type().is_file() => Err(storage("read", path)(std::io::Error::other(
            "it is not a regular file (a symlink is never followed)",
        ))),
        Ok(_) => fs::read(path).map(Some).map_err(storage("read", path)),
    }
}

/// The journal, opened to append (created 0600; a symlink is not followed).
fn open_journal(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        // A FIFO put there would block the open (and the table) for good.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Flushes `dir`'s entries (a rename, a new file) to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}
