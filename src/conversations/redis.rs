//! The handle table in Redis (`WOOLLAMA_STATE_URL=redis://…`), so several
//! woollama instances behind one load balancer share conversations.
//!
//! Keys, under `woollama:`: `conv:<id>` (the handle as JSON), `order` (a
//! sorted set of ids by creation sequence), `seq` (the sequence counter),
//! `keys` (a hash of caller key → id, set with `HSETNX` so two instances
//! creating the same key agree on one conversation), `responses` (a hash of
//! response id → conversation id), and `lock:<id>` (the one-writer lock of a
//! conversation, shared by every instance: `SET NX PX` with a token,
//! released only by its holder). Calls are blocking (the sync client), made
//! from the blocking pool like the file table's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Commands as _;

use super::{Error, Handle, Order, Page};

const PREFIX: &str = "woollama:";
/// How long a writer lock lives if its holder dies without releasing it.
/// A live holder renews it every third of that (`Table::lock`), so a turn
/// that takes longer keeps its lock.
pub const LOCK_TTL: Duration = Duration::from_secs(10 * 60);

/// The shared handle table.
#[derive(Clone)]
pub struct RedisTable {
    url: String,
    client: redis::Client,
    conn: Arc<Mutex<Option<redis::Connection>>>,
    lock_ttl: Duration,
}

impl std::fmt::Debug for RedisTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTable")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn key(parts: &[&str]) -> String {
    let mut k = PREFIX.to_string();
    k.push_str(&parts.join(":"));
    k
}

impl RedisTable {
    /// The table at `url`. A URL that cannot mean anything is an error; a
    /// Redis that is down now is said (logged) and connected to later.
    pub fn open(url: &str) -> Result<Self, Error> {
        let shown = shown(url);
        let client = redis::Client::open(url).map_err(|e| unreachable(&shown, e))?;
        let conn = match connect(&client) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "{}; conversations will connect when asked",
                    unreachable(&shown, e)
                );
                None
            }
        };
        Ok(Self {
            url: shown,
            client,
            conn: Arc::new(Mutex::new(conn)),
            lock_ttl: LOCK_TTL,
        })
    }

    /// The same table with writer locks that live `ttl` unrenewed.
    #[must_use]
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How long a writer lock lives unrenewed.
    pub fn lock_ttl(&self) -> Duration {
        self.lock_ttl
    }

    /// Runs `f` on the connection, reconnecting once if it broke.
    fn with<T>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        let mut slot = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(connect(&self.client).map_err(|e| unreachable(&self.url, e))?);
            }
            if let Some(conn) = slot.as_mut() {
                match f(conn) {
                    Ok(v) => return Ok(v),
                    Err(e) if attempt == 0 && (e.is_io_error() || e.is_connection_dropped()) => {
                        *slot = None;
                    }
                    Err(e) => return Err(unreachable(&self.url, e)),
                }
            }
        }
        Err(Error::Unavailable(format!(
            "Redis at {} did not answer",
            self.url
        )))
    }

    fn read(&self, id: &str) -> Result<Option<Handle>, Error> {
        let text: Option<String> = self.with(|c| c.get(key(&["conv", id])))?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                Error::Unavailable(format!("conversation {id} in Redis is not a handle: {e}"))
            })
        })
        .transpose()
    }

    fn write(&self, h: &Handle) -> Result<(), Error> {
        let json = serde_json::to_string(h).unwrap_or_default();
        self.with(|c| c.set::<_, _, ()>(key(&["conv", &h.id]), &json))
    }

    pub fn create(&self, mut handle: Handle) -> Result<(Handle, bool), Error> {
        if let Some(k) = handle.key.clone() {
            let claimed: bool = self.with(|c| c.hset_nx(key(&["keys"]), &k, &handle.id))?;
            if !claimed {
                let existing: String = self.with(|c| c.hget(key(&["keys"]), &k))?;
                return self.get(&existing).map(|h| (h, false));
            }
        }
        handle.seq = self.with(|c| c.incr(key(&["seq"]), 1))?;
        // The handle and its place in the order appear together.
        let json = serde_json::to_string(&handle).unwrap_or_default();
        self.with(|c| {
            redis::pipe()
                .atomic()
                .set(key(&["conv", &handle.id]), &json)
                .zadd(key(&["order"]), &handle.id, handle.seq)
                .query::<()>(c)
        })?;
        Ok((handle, true))
    }

    pub fn get(&self, id: &str) -> Result<Handle, Error> {
        self.read(id)?
            .ok_or_else(|| Error::UnknownConversation(id.to_string()))
    }

    pub fn list(&self, order: Order, after: Option<&str>, limit: usize) -> Result<Page, Error> {
        let mut ids: Vec<String> = self.with(|c| c.zrange(key(&["order"]), 0, -1))?;
        if order == Order::Desc {
            ids.reverse();
        }
        let start = match after {
            None => 0,
            Some(a) => {
                ids.iter()
                    .position(|i| i == a)
                    .ok_or_else(|| Error::UnknownCursor(a.to_string()))?
                    + 1
            }
        };
        let rest = &ids[start.min(ids.len())..];
        let mut data = Vec::new();
        for id in rest.iter().take(limit) {
            if let Some(h) = self.read(id)? {
                data.push(h);
            }
        }
        Ok(Page {
            data,
            has_more: rest.len() > limit,
        })
    }

    pub fn update(&self, id: &str, change: impl FnOnce(&mut Handle)) -> Result<Handle, Error> {
        let mut h = self.get(id)?;
        change(&mut h);
        h.updated_at = crate::wire::now().max(h.updated_at);
        self.write(&h)?;
        Ok(h)
    }

    pub fn delete(&self, id: &str) -> Result<Handle, Error> {
        let h = self.get(id)?;
        // The handle, its place in the order and its key go together.
        self.with(|c| {
            let mut p = redis::pipe();
            p.atomic().del(key(&["conv", id])).zrem(key(&["order"]), id);
            if let Some(k) = &h.key {
                p.hdel(key(&["keys"]), k);
            }
            p.query::<()>(c)
        })?;
        Ok(h)
    }

    fn record_response(&self, response: &str, id: &str) -> Result<(), Error> {
        self.with(|c| c.hset::<_, _, _, ()>(key(&["responses"]), response, id))
    }

    pub fn record_turn(&self, response: &str, id: &str) -> Result<(), Error> {
        self.record_response(response, id)?;
        self.update(id, |_| {}).map(|_| ())
    }

    pub fn conversation_of(&self, response: &str) -> Result<Handle, Error> {
        let id: Option<String> = self.with(|c| c.hget(key(&["responses"]), response))?;
        let id = id.ok_or_else(|| Error::UnknownResponse(response.to_string()))?;
        self.get(&id)
    }

    /// Tries once to take conversation `id`'s writer lock with `token`.
    pub fn try_lock(&self, id: &str, token: &str) -> Result<bool, Error> {
        let set: Option<String> = self.with(|c| {
            redis::cmd("SET")
                .arg(key(&["lock", id]))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms(self.lock_ttl))
                .query(c)
        })?;
        if set.is_some() {
            return Ok(true);
        }
        // A SET that went through before the connection broke (and was
        // retried) left our own token: the lock is ours.
        let holder: Option<String> = self.with(|c| c.get(key(&["lock", id])))?;
        Ok(holder.as_deref() == Some(token))
    }

    /// Extends the lock's life if `token` still holds it; `false` if it
    /// does not (it expired and another instance took it).
    pub fn renew(&self, id: &str, token: &str) -> Result<bool, Error> {
        let script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let renewed: i64 = self.with(|c| {
            redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg(key(&["lock", id]))
                .arg(token)
                .arg(ttl_ms(self.lock_ttl))
                .query(c)
        })?;
        Ok(renewed == 1)
    }

    /// Releases the lock if `token` still holds it.
    pub fn unlock(&self, id: &str, token: &str) {
        let script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        let _ = self.with(|c| {
            redis::cmd("EVAL")
                .arg(script)
                .arg(1)
                .arg(key(&["lock", id]))
                .arg(token)
                .query::<i64>(c)
        });
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A connection whose every call is bounded (a half-open socket must not
/// hang every conversation call).
fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let c = client.get_connection_with_timeout(Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(c)
}

/// The URL as it may be shown: no password, no query (which may carry one).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(an unparseable URL)".to_string(),
    }
}

fn unreachable(url: &str, e: redis::RedisError) -> Error {
    Error::Unavailable(format!(
        "the conversation table in Redis at {url} is unreachable: {e} (check WOOLLAMA_STATE_URL, and that redis-server runs)"
    ))
}
