//! The one middleware every request passes through, on both listeners, in
//! this order:
//!
//! 1. the request body is watched (`keepalive`): its end is noted, and its
//!    deadline kept (`limits`: a declared body that never comes);
//! 2. the request is counted and timed (`access`), refusals included;
//! 3. the header limit (`limits`);
//! 4. surface auth (`auth`), on the TCP listener only: `Host`, `Origin`,
//!    the token or a delegate's grant;
//! 5. the routes; then the answer's body is wrapped to log and count the
//!    request when it ends, and an answer given before the request body was
//!    read says `Connection: close`.
//!
//! One layer, not four, and a tower service of its own rather than an axum
//! `from_fn` one: each `from_fn` layer boxes the service inside it and a
//! future for every request, and four of them, with the state cloned for
//! each, were a tenth of a pass-through's instructions.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;

use super::{access, auth, keepalive, limits};
use crate::app::Live;

/// What the gate needs: the live state, surface auth (none on the Unix
/// socket, whose 0600 mode is the boundary), and the body deadline.
#[derive(Clone)]
pub struct Gate {
    live: Live,
    auth: Option<auth::SurfaceAuth>,
    body_timeout: Duration,
}

impl Gate {
    pub fn new(live: &Live, auth: Option<auth::SurfaceAuth>) -> Self {
        let body_timeout = live.load().config.settings.body_timeout;
        Self {
            live: live.clone(),
            auth,
            body_timeout,
        }
    }
}

/// The gate as a tower layer, around the routes.
#[derive(Clone)]
pub struct GateLayer(Gate);

impl GateLayer {
    pub fn new(gate: Gate) -> Self {
        Self(gate)
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            gate: self.0.clone(),
            inner,
        }
    }
}

/// The routes behind the gate. Written out rather than through
/// `axum::middleware::from_fn`, which boxes the inner service again and
/// boxes a second future for every request (~3 % of a pass-through's
/// instructions between them).
#[derive(Clone)]
pub struct Gated<S> {
    gate: Gate,
    inner: S,
}

impl<S> tower_service::Service<Request> for Gated<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let state = self.gate.live.load();
        let (mut req, read) = keepalive::watch(req, self.gate.body_timeout);
        let watch = access::Watch::start(&state, &req);
        let refusal = limits::header_refusal(&req).or_else(|| {
            self.gate
                .auth
                .as_ref()
                .and_then(|a| auth::refusal(a, &mut req))
        });
        // The service that was made ready goes with this request; a clone
        // stays for the next (tower's rule for a service called later).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = match refusal {
                None => match inner.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Some(refusal) => refusal,
            };
            Ok(keepalive::mark(watch.finish(&state, response), read))
        })
    }
}
