//! A `url` server (Streamable HTTP): its URL and its `headers`.
//!
//! Header values are usually credentials (`Authorization: Bearer ${TOKEN}`),
//! so they are checked closely — an empty value or a bare scheme usually
//! means an empty variable — and never echoed: messages name the header.

use http::header::{HeaderName, HeaderValue};
use url::Url;

use super::Transport;
use super::entry::{Entry, string_map};
use crate::config::diagnostics::Diagnostics;
use crate::config::env::Secret;
use crate::config::expand::KeyPath;
use crate::config::fields::{Reporter, Skipped};

/// The transport of an entry whose `url` is `raw_url`.
pub(super) fn transport(
    raw_url: &str,
    entry: &Entry<'_>,
    diags: &mut Diagnostics,
) -> Result<Transport, Skipped> {
    let path = entry.path;
    let url = parse_url(raw_url, entry.report, &path.key("url"), diags)?;
    let mut headers = Vec::new();
    for (name, value) in string_map(entry, "headers", diags)? {
        let hpath = path.key("headers").key(name);
        headers.push(header(name, value, entry.report, &hpath, diags)?);
    }
    if !headers.is_empty() && url.scheme() == "http" && !is_loopback_host(&url) {
        diags.warn(
            entry.report.file(),
            &path.key("headers"),
            format!(
                "headers are sent over plain http:// to the non-loopback host {}; anyone on the network can read them — use https://",
                url.host_str().unwrap_or("?")
            ),
        );
    }
    Ok(Transport::Http { url, headers })
}

fn parse_url(
    raw_url: &str,
    report: &Reporter<'_>,
    upath: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<Url, Skipped> {
    match Url::parse(raw_url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        Ok(u) => Err(report.say(
            diags,
            upath,
            format!(
                "expected an http:// or https:// URL, found scheme {:?}",
                u.scheme()
            ),
        )),
        Err(e) => Err(report.say(
            diags,
            upath,
            format!("not a valid URL ({e}); write it like http://127.0.0.1:9200/mcp"),
        )),
    }
}

/// One header, checked; the value is kept trimmed, as a [`Secret`].
fn header(
    name: &str,
    value: &str,
    report: &Reporter<'_>,
    hpath: &KeyPath,
    diags: &mut Diagnostics,
) -> Result<(HeaderName, Secret), Skipped> {
    let Ok(hname) = HeaderName::from_bytes(name.as_bytes()) else {
        return Err(report.say(diags, hpath, "not a valid HTTP header name"));
    };
    let trimmed = value.trim();
    let problem = if matches!(
        hname.as_str(),
        "accept" | "mcp-session-id" | "last-event-id"
    ) {
        Some("woollama sets this header itself for Streamable HTTP; remove it")
    } else if trimmed.is_empty() {
        Some(
            "the value is empty; set it (for a token from the environment write \"Bearer ${TOKEN}\") or remove the header",
        )
    } else if matches!(hname.as_str(), "authorization" | "proxy-authorization")
        && !trimmed.contains(char::is_whitespace)
        && ["bearer", "basic", "digest", "token"]
            .iter()
            .any(|s| trimmed.eq_ignore_ascii_case(s))
    {
        Some("the value is only a scheme with no credential (is the variable it references empty?)")
    } else if HeaderValue::from_str(trimmed).is_err() {
        Some(
            "the value has characters HTTP headers cannot carry (a newline or a control character)",
        )
    } else {
        None
    };
    match problem {
        Some(p) => Err(report.say(diags, hpath, p)),
        None => Ok((hname, Secret::new(trimmed))),
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host_str() {
        Some(h) => {
            h.eq_ignore_ascii_case("localhost")
                || h == "[::1]"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}
