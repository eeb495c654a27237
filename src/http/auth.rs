//! Surface auth on the TCP listener (contract §4.1).
//!
//! - With `WOOLLAMA_TOKEN` set, every request — loopback included — must send
//!   exactly `Authorization: Bearer <token>` (scheme case-sensitive, compared
//!   in constant time), or `x-api-key: <token>` as Anthropic's clients send
//!   their key (`ANTHROPIC_API_KEY=<token>`).
//! - Refusals on `/v1/messages` are in Anthropic's error shape, the rest in
//!   OpenAI's.
//! - Without a token, only loopback peers are served; hostnames are never
//!   resolved.
//!
//! - A `Host` header that does not name this machine is refused with 403 on
//!   every route (DNS rebinding: a page whose name now points at 127.0.0.1).
//! - A request carrying an `Origin` header that is not local (a web page in
//!   the user's browser) is refused with 403, token or not: woollama accepts
//!   any content type for JSON, so without this a page could POST to it
//!   without a CORS preflight. Non-browser clients send no `Origin`.
//!
//! - A live **grant**'s token (`tools::grants`: a delegate such as the
//!   `claude` CLI running a recipe) is admitted on `/mcp` only, with or
//!   without `WOOLLAMA_TOKEN`, and its scope is attached to the request: the
//!   MCP surface then serves exactly the granted tools. Any other route
//!   refuses it like a wrong token.
//!
//! The Unix socket carries no auth layer: its 0600 mode is the boundary. The
//! layer never reads bodies, so streams pass through untouched.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, RequestError};
use crate::config::Secret;
use crate::tools::Grants;

/// The token the TCP surface requires, if any, and the hosts a browser
/// `Origin` may name.
#[derive(Debug, Clone)]
pub struct SurfaceAuth {
    pub token: Option<Secret>,
    /// Hosts besides loopback (the configured `WOOLLAMA_ADDRESS` host).
    extra_hosts: Vec<String>,
    /// Delegates' per-call grants of `/mcp`.
    grants: Grants,
}

impl SurfaceAuth {
    pub fn new(token: Option<Secret>, settings: &crate::config::Settings, grants: Grants) -> Self {
        Self {
            token,
            extra_hosts: settings.explicit_host().into_iter().collect(),
            grants,
        }
    }
}

/// Whether a browser `Origin` is this machine (or the configured host).
fn origin_allowed(origin: &str, extra_hosts: &[String]) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false; // "null", or garbage
    };
    matches!(scheme, "http" | "https") && host_allowed(rest, extra_hosts)
}

/// Whether `authority` (`host[:port]`, IPv6 bracketed) names this machine:
/// `localhost`, a loopback address, or the configured host. A configured
/// unspecified address (`0.0.0.0`, `::`) serves every name the machine has,
/// behind the token that such a bind requires.
fn host_allowed(authority: &str, extra_hosts: &[String]) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(is_loopback)
        || extra_hosts.contains(&host)
        || extra_hosts.iter().any(|h| {
            h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified())
        })
}

/// The `Host` rule (DNS rebinding): a web page whose name was rebound to
/// 127.0.0.1 reaches woollama with its own name in `Host` — and a browser
/// sends no `Origin` on a same-origin GET. A request without `Host`
/// (HTTP/1.0 tools) is not a browser's.
fn check_host(auth: &SurfaceAuth, req: &Request) -> Result<(), ApiError> {
    let Some(host) = req.headers().get(HOST) else {
        return Ok(());
    };
    let host = host.to_str().unwrap_or("");
    if host_allowed(host, &auth.extra_hosts) {
        Ok(())
    } else {
        Err(RequestError::ForeignHost(host.to_string()).into())
    }
}

pub use crate::config::settings::is_loopback_ip as is_loopback;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A refusal, in the shape the route's clients read.
fn refuse(req: &Request, e: ApiError) -> Response {
    if req.uri().path().starts_with("/v1/messages") {
        e.anthropic_response()
    } else {
        e.into_response()
    }
}

/// The refusal for `req`, if it may not in: the `Host` and `Origin` rules,
/// then the token — or a delegate's grant, which opens `/mcp` only (its
/// scope is attached to the request for the MCP surface).
pub fn refusal(auth: &SurfaceAuth, req: &mut Request) -> Option<Response> {
    if let Err(e) = check_host(auth, req).and_then(|()| check_origin(auth, req)) {
        return Some(refuse(req, e));
    }
    if let Some(scope) = bearer(req).and_then(|t| auth.grants.scope(t)) {
        if req.uri().path() == "/mcp" {
            req.extensions_mut().insert(scope);
            return None;
        }
        return Some(refuse(
            req,
            RequestError::Unauthorized("a delegate's grant opens /mcp only").into(),
        ));
    }
    check(auth, req)
        .err()
        .map(|reason| refuse(req, RequestError::Unauthorized(reason).into()))
}

/// The middleware.
fn check_origin(auth: &SurfaceAuth, req: &Request) -> Result<(), ApiError> {
    match req.headers().get(ORIGIN) {
        None => Ok(()),
        Some(o) => {
            let origin = o.to_str().unwrap_or("");
            if origin_allowed(origin, &auth.extra_hosts) {
                Ok(())
            } else {
                Err(RequestError::ForeignOrigin(origin.to_string()).into())
            }
        }
    }
}

/// The bearer token a request presents, if any.
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn check(auth: &SurfaceAuth, req: &Request) -> Result<(), &'static str> {
    if let Some(token) = &auth.token {
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .or_else(|| req.headers().get("x-api-key").map(|v| v.as_bytes()));
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
    fn origins() {
        let extra = vec!["my-box.lan".to_string()];
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "https://[::1]:8443",
            "http://MY-BOX.lan:9",
        ] {
            assert!(origin_allowed(ok, &extra), "{ok}");
        }
        for bad in [
            "null",
            "https://evil.example",
            "http://127.0.0.1.evil.example",
            "file://",
            "chrome-extension://abc",
        ] {
            assert!(!origin_allowed(bad, &extra), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        let none: Vec<String> = Vec::new();
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9",
            "127.0.0.2",
        ] {
            assert!(host_allowed(ok, &none), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:80",
            "127.0.0.1.evil.example",
            "10.0.0.1:80",
            "",
        ] {
            assert!(!host_allowed(bad, &none), "{bad}");
        }
        assert!(host_allowed("my-box.lan:9", &["my-box.lan".to_string()]));
        assert!(host_allowed("192.168.1.5:9", &["0.0.0.0".to_string()]));
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
