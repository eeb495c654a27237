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
//! One layer, not four: each axum `from_fn` layer clones the service inside
//! it and boxes a future for every request, and four of them, with the
//! state cloned for each, were a tenth of a pass-through's instructions.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
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

/// The middleware.
pub async fn gate(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let state = gate.live.load();
    let (mut req, read) = keepalive::watch(req, gate.body_timeout);
    let watch = access::Watch::start(&state, &req);
    let refusal = limits::header_refusal(&req)
        .or_else(|| gate.auth.as_ref().and_then(|a| auth::refusal(a, &mut req)));
    let response = match refusal {
        None => next.run(req).await,
        Some(refusal) => refusal,
    };
    keepalive::mark(watch.finish(&state, response), read)
}
