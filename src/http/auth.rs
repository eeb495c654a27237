//! Surface auth on the TCP listener (contract §4.1).
//!
//! - With `WOOLLAMA_TOKEN` set, every request — loopback included — must send
//!   exactly `Authorization: Bearer <token>` (scheme case-sensitive, compared
//!   in constant time).
//! - Without a token, only loopback peers are served; hostnames are never
//!   resolved.
//!
//! The Unix socket carries no auth layer: its 0600 mode is the boundary. The
//! layer never reads bodies, so streams pass through untouched.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::config::Secret;

/// The token the TCP surface requires, if any.
#[derive(Debug, Clone)]
pub struct SurfaceAuth {
    pub token: Option<Secret>,
}

pub use crate::config::settings::is_loopback_ip as is_loopback;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware.
pub async fn require(State(auth): State<SurfaceAuth>, req: Request, next: Next) -> Response {
    match check(&auth, &req) {
        Ok(()) => next.run(req).await,
        Err(reason) => ApiError::Unauthorized(reason).into_response(),
    }
}

fn check(auth: &SurfaceAuth, req: &Request) -> Result<(), &'static str> {
    if let Some(token) = &auth.token {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        return match presented {
            Some(p) if constant_time_eq(p, token.expose().as_bytes()) => Ok(()),
            _ => Err("missing or invalid bearer token"),
        };
    }
    match req.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(addr)) if is_loopback(addr.ip()) => Ok(()),
        Some(_) => Err(
            "no WOOLLAMA_TOKEN is configured, so only local (loopback / unix socket) clients are served",
        ),
        None => Err("could not determine peer address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms() {
        assert!(is_loopback("127.0.0.1".parse().expect("ip")));
        assert!(is_loopback("127.8.9.10".parse().expect("ip")));
        assert!(is_loopback("::1".parse().expect("ip")));
        assert!(is_loopback("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!is_loopback("192.168.1.2".parse().expect("ip")));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
