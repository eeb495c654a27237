//! `Connection: close` on an answer given before the request body was read.
//!
//! A handler may answer without reading the body (a 404 or 405 from the
//! fallbacks, a 401/403 from surface auth, a 413). hyper then cannot reuse
//! the connection — the rest of the body is still on the wire — and closes
//! it after the response, but nothing told the client, which sends its next
//! request on the dead connection and fails. Marking such answers
//! `Connection: close` makes every HTTP/1.1 client open a fresh one.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Hands `req` on with a body that notes when it has been read to its end
/// and, when `timeout` is not zero, fails once `timeout` passes before then
/// (`limits`: a body that never comes). The flag is `None` for a request
/// with no body, which is read as soon as it arrives.
pub fn watch(req: Request, timeout: Duration) -> (Request, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let deadline = (!timeout.is_zero()).then(|| (Box::pin(tokio::time::sleep(timeout)), timeout));
    let req = req.map(|body| {
        Body::new(Watched {
            inner: body,
            read: Arc::clone(&read),
            deadline,
        })
    });
    (req, Some(read))
}

/// Marks `resp` `Connection: close` if the body behind `read` was not read
/// to its end.
pub fn mark(mut resp: Response, read: Option<Arc<AtomicBool>>) -> Response {
    if read.is_some_and(|r| !r.load(Ordering::Acquire)) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body: notes its end, and keeps its deadline.
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
                self.read.store(true, Ordering::Release);
            }
            return polled;
        }
        if let Some((sleep, timeout)) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let e = super::limits::BodyTimeout(*timeout);
            return Poll::Ready(Some(Err(axum::Error::new(e))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
