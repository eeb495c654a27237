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

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};

use super::error::{ApiError, RequestError};

/// The most header bytes (names and values) a request may carry.
pub const HEADER_LIMIT: usize = 32 * 1024;

/// The error a body that did not arrive in time fails with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {}s", .0.as_secs_f64())]
pub struct BodyTimeout(pub Duration);

/// The middleware: the header limit, and the body's deadline.
pub async fn enforce(State(timeout): State<Duration>, req: Request, next: Next) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if size > HEADER_LIMIT {
        return ApiError::from(RequestError::HeadersTooLarge {
            size,
            limit: HEADER_LIMIT,
        })
        .into_response();
    }
    if req.body().is_end_stream() || timeout.is_zero() {
        return next.run(req).await;
    }
    let req = req.map(|body| {
        Body::new(Deadline {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        })
    });
    next.run(req).await
}

/// A body that fails once its deadline passes before its end.
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(r) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(r);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(self.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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
