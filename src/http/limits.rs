//! Limits on what a client can hold open or send before a handler runs:
//!
//! - **Headers**: at most [`HEADER_LIMIT`] bytes of names and values in all
//!   (nginx's default is 32 KiB too); beyond, 431 with a JSON body that says
//!   so. (hyper bounds what it buffers to read them at all.)
//! - **A body that does not come**: a request that declares a body must
//!   deliver it within `WOOLLAMA_BODY_TIMEOUT_SECS` (60 s) of its headers;
//!   otherwise reading it fails, the handler answers 408, and the
//!   connection is closed — a client cannot hold a connection and a task
//!   forever by promising bytes it never sends.

use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, RequestError};

/// The most header bytes (names and values) a request may carry.
pub const HEADER_LIMIT: usize = 32 * 1024;

/// The error a body that did not arrive in time fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {}s", .0.as_secs_f64())]
pub struct BodyTimeout(pub Duration);

/// The header limit: the refusal for a request whose header names and
/// values come to more than [`HEADER_LIMIT`] bytes. (The body's deadline is
/// kept by the body the gate hands on: `keepalive::watch`.)
pub fn header_refusal(req: &Request) -> Option<Response> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    (size > HEADER_LIMIT).then(|| {
        ApiError::from(RequestError::HeadersTooLarge {
            size,
            limit: HEADER_LIMIT,
        })
        .into_response()
    })
}

/// The body's deadline, if `e` (a body read error) is that.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> Option<Duration> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<BodyTimeout>() {
            return Some(t.0);
        }
        cause = c.source();
    }
    None
}
