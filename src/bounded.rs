//! Reading an HTTP answer whole, never more than a limit of it.
//!
//! Every answer woollama reads whole comes from a peer it does not control:
//! an inferencer's reply to parse, an error body to relay, a model list, a
//! conversation store's thread, a hosted agent's JSON. `reqwest`'s
//! `bytes()`/`text()` would buffer whatever arrives, so a peer that sends an
//! endless body would grow the daemon without bound. These read chunk by
//! chunk and stop at the limit: [`whole`] refuses what is longer (the caller
//! names the limit in its error), [`head`] keeps the first part (for error
//! bodies, where a prefix says enough). A `Content-Length` already over the
//! limit is refused before a byte is read.

use std::future::Future;

use bytes::Bytes;

/// A body read chunk by chunk: a `reqwest` response, or an inferencer's
/// answer whichever client fetched it (`inference::upstream`).
pub trait Source: Send {
    type Error;
    /// The declared length, if any.
    fn declared_length(&self) -> Option<u64>;
    /// The next chunk; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

impl Source for reqwest::Response {
    type Error = reqwest::Error;
    fn declared_length(&self) -> Option<u64> {
        self.content_length()
    }
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, reqwest::Error>> + Send {
        self.chunk()
    }
}

/// Why a bounded read failed.
#[derive(Debug)]
pub enum Read<E> {
    /// The connection failed, or the body broke off.
    Transport(E),
    /// The body is longer than the limit.
    TooLarge,
}

/// The whole body, or [`Read::TooLarge`] once it passes `limit` bytes.
pub async fn whole<S: Source>(mut body: S, limit: usize) -> Result<Bytes, Read<S::Error>> {
    let declared = body.declared_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Read::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(chunk) = body.next_chunk().await.map_err(Read::Transport)? {
        if buf.len() + chunk.len() > limit {
            return Err(Read::TooLarge);
        }
        if buf.is_empty() && declared == Some(chunk.len() as u64) {
            return Ok(chunk); // the common case: one chunk, no copy
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// At most the first `limit` bytes of the body; the rest is not read.
pub async fn head<S: Source>(mut body: S, limit: usize) -> Result<Bytes, S::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        let room = limit.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= limit {
            break;
        }
    }
    Ok(Bytes::from(buf))
}

/// The text of at most the first `limit` bytes (lossy), for error messages.
pub async fn text_head<S: Source>(body: S, limit: usize) -> String {
    head(body, limit)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
