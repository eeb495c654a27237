//! Settings that come from environment variables rather than files: where to
//! listen, the surface token, and the timeouts a user may tune (contract
//! §1.2). A malformed value is fatal and named, never silently replaced by a
//! default.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::env::{Env, Secret};
use super::expand::KeyPath;

/// Where the TCP listener binds (`WOOLLAMA_ADDRESS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTarget {
    pub host: BindHost,
    /// 0 means a random free port.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindHost {
    Ip(IpAddr),
    /// A hostname, resolved at bind time.
    Name(String),
}

impl BindTarget {
    /// Whether binding here keeps the surface on this machine. Hostnames
    /// other than `localhost` are never assumed local.
    pub fn is_loopback(&self) -> bool {
        match &self.host {
            BindHost::Ip(ip) => is_loopback_ip(*ip),
            BindHost::Name(n) => n.eq_ignore_ascii_case("localhost"),
        }
    }
}

impl fmt::Display for BindTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            BindHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            BindHost::Ip(ip) => write!(f, "{ip}:{}", self.port),
            BindHost::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// Whether an address is on this machine: 127.0.0.0/8, `::1`, or an
/// IPv4-mapped 127.x. The one rule for binds and for peers.
pub fn is_loopback_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parses `WOOLLAMA_ADDRESS`: `host:port`, `[v6]:port`, `[v6]`, a bare IPv4
/// or IPv6 address or hostname (random port), or `:port` (loopback).
pub fn parse_address(raw: &str) -> Result<BindTarget, String> {
    let raw = raw.trim();
    let port_of = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("port {p:?} is not a number from 0 to 65535"))
    };
    if raw.is_empty() {
        return Err("it is empty; unset it or write host:port".into());
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address opened with `[` needs a closing `]`")?;
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
        let port = match after {
            "" => 0,
            p => port_of(p.strip_prefix(':').ok_or("expected `:port` after `]`")?)?,
        };
        return Ok(BindTarget {
            host: BindHost::Ip(ip),
            port,
        });
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(BindTarget {
            host: BindHost::Ip(ip),
            port: 0,
        });
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (h, port_of(p)?),
        None => (raw, 0),
    };
    let host = if host.is_empty() {
        BindHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        BindHost::Ip(ip)
    } else if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        BindHost::Name(host.to_string())
    } else {
        return Err(format!("{host:?} is not a host name or IP address"));
    };
    Ok(BindTarget { host, port })
}

/// Everything read from the environment besides `${VAR}` references.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: BindTarget,
    /// Whether `WOOLLAMA_ADDRESS` was set.
    pub address_explicit: bool,
    /// `WOOLLAMA_TOKEN`; unset or empty means none.
    pub token: Option<Secret>,
    /// `$XDG_RUNTIME_DIR`, else `/tmp`: the socket and the address file.
    pub runtime_dir: PathBuf,
    /// Where durable state (the conversation handle table) lives:
    /// `$WOOLLAMA_STATE_DIR`, else `$XDG_STATE_HOME/woollama`, else
    /// `~/.local/state/woollama` (DESIGN decision 4).
    pub state_dir: PathBuf,
    /// `WOOLLAMA_STATE_URL` (`redis://…`): the handle table in Redis, shared
    /// by every instance that names it.
    pub state_url: Option<crate::config::Secret>,
    /// How long `/v1/models` waits for a discovering provider.
    pub discovery_timeout: Duration,
    /// How long shutdown waits for in-flight requests and streams.
    pub shutdown_grace: Duration,
    pub mcp_connect_timeout: Duration,
    pub mcp_call_timeout: Duration,
    /// Backoff ceiling; zero disables reconnecting.
    pub mcp_retry_max: Duration,
    /// Federation nesting cap; zero disables it.
    pub mcp_max_nesting: u32,
    /// `WOOLLAMA_ACCESS_LOG`: one line per request on stderr (on unless
    /// `0`, `false`, `off` or `no`).
    pub access_log: bool,
    /// How long a declared request body may take to arrive; zero: no limit.
    pub body_timeout: Duration,
    /// `WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS` / `WOOLLAMA_UPSTREAM_IDLE_SECS`:
    /// every inferencer's first-byte and idle timeouts unless its own
    /// `inferencers.toml` entry sets them.
    pub upstream_first_byte: Option<Duration>,
    pub upstream_idle: Option<Duration>,
    /// `WOOLLAMA_WORKER_THREADS`: the threads that serve requests; by
    /// default as many as the cores this process may run on. One means a
    /// single-threaded runtime (no work stealing, no cross-thread wake-ups).
    pub worker_threads: usize,
}

/// The most `WOOLLAMA_WORKER_THREADS` may ask for.
const MAX_WORKER_THREADS: usize = 1024;

/// The cores this process may run on (its CPU affinity and cgroup quota).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Settings {
    pub fn from_env(env: &Env, diags: &mut Diagnostics) -> Self {
        const FILE: &str = "environment";
        let mut secs = |name: &str, default: f64| -> Duration {
            match env.non_empty(name) {
                None => Duration::from_secs_f64(default),
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(s) if s.is_finite() && (0.0..=86_400.0 * 365.0).contains(&s) => {
                        Duration::from_secs_f64(s)
                    }
                    _ => {
                        diags.fatal(
                            FILE,
                            &KeyPath::root().key(name),
                            format!("{v:?} is not a number of seconds (for example {default})"),
                        );
                        Duration::from_secs_f64(default)
                    }
                },
            }
        };
        let discovery_timeout = secs("WOOLLAMA_DISCOVERY_TIMEOUT_SECS", 3.0);
        let shutdown_grace = secs("WOOLLAMA_SHUTDOWN_GRACE_SECS", 10.0);
        let mcp_connect_timeout = secs("WOOLLAMA_MCP_CONNECT_TIMEOUT_SECS", 30.0);
        let mcp_call_timeout = secs("WOOLLAMA_MCP_CALL_TIMEOUT_SECS", 120.0);
        let mcp_retry_max = secs("WOOLLAMA_MCP_RETRY_MAX_SECS", 60.0);
        let body_timeout = secs("WOOLLAMA_BODY_TIMEOUT_SECS", 60.0);
        let upstream_first_byte = env
            .non_empty("WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS")
            .map(|_| secs("WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS", 180.0))
            .filter(|d| !d.is_zero());
        let upstream_idle = env
            .non_empty("WOOLLAMA_UPSTREAM_IDLE_SECS")
            .map(|_| secs("WOOLLAMA_UPSTREAM_IDLE_SECS", 180.0))
            .filter(|d| !d.is_zero());
        let mcp_max_nesting = match env.non_empty("WOOLLAMA_MCP_MAX_NESTING") {
            None => 2,
            Some(v) => v.trim().parse().unwrap_or_else(|_| {
                diags.fatal(
                    FILE,
                    &KeyPath::root().key("WOOLLAMA_MCP_MAX_NESTING"),
                    format!("{v:?} is not a whole number (the default is 2; 0 disables the cap)"),
                );
                2
            }),
        };
        let access_log = match env.non_empty("WOOLLAMA_ACCESS_LOG").map(str::trim) {
            None => true,
            Some(v) if ["0", "false", "off", "no"].contains(&v.to_ascii_lowercase().as_str()) => {
                false
            }
            Some(v) if ["1", "true", "on", "yes"].contains(&v.to_ascii_lowercase().as_str()) => {
                true
            }
            Some(v) => {
                diags.fatal(
                    FILE,
                    &KeyPath::root().key("WOOLLAMA_ACCESS_LOG"),
                    format!("{v:?} is not on or off (write 1 or 0)"),
                );
                true
            }
        };
        let worker_threads = match env.non_empty("WOOLLAMA_WORKER_THREADS").map(str::trim) {
            None => cores(),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_WORKER_THREADS).contains(&n) => n,
                _ => {
                    diags.fatal(
                        FILE,
                        &KeyPath::root().key("WOOLLAMA_WORKER_THREADS"),
                        format!(
                            "{v:?} is not a number of threads from 1 to {MAX_WORKER_THREADS} \
                             (leave it unset for one per core, {} here)",
                            cores()
                        ),
                    );
                    cores()
                }
            },
        };
        let (address, address_explicit) = match env.get("WOOLLAMA_ADDRESS") {
            Some(raw) if !raw.trim().is_empty() => match parse_address(raw) {
                Ok(t) => (t, true),
                Err(e) => {
                    diags.fatal(
                        FILE,
                        &KeyPath::root().key("WOOLLAMA_ADDRESS"),
                        format!("{raw:?} is not an address: {e} (for example 127.0.0.1:8080)"),
                    );
                    (default_address(), false)
                }
            },
            _ => (default_address(), false),
        };
        Settings {
            address,
            address_explicit,
            token: env.non_empty("WOOLLAMA_TOKEN").map(Secret::new),
            runtime_dir: PathBuf::from(env.non_empty("XDG_RUNTIME_DIR").unwrap_or("/tmp")),
            state_dir: state_dir(env),
            state_url: env
                .non_empty("WOOLLAMA_STATE_URL")
                .map(crate::config::Secret::new),
            discovery_timeout,
            shutdown_grace,
            mcp_connect_timeout,
            mcp_call_timeout,
            mcp_retry_max,
            mcp_max_nesting,
            access_log,
            body_timeout,
            upstream_first_byte,
            upstream_idle,
            worker_threads,
        }
    }

    /// The host named by an explicit `WOOLLAMA_ADDRESS` (lowercased), which
    /// browsers' `Origin` and `/mcp`'s `Host` may then use besides loopback.
    pub fn explicit_host(&self) -> Option<String> {
        self.address_explicit.then(|| match &self.address.host {
            BindHost::Ip(ip) => ip.to_string(),
            BindHost::Name(n) => n.to_ascii_lowercase(),
        })
    }

    pub fn socket_path(&self) -> PathBuf {
        self.runtime_dir.join("woollama.sock")
    }

    pub fn addr_file(&self) -> PathBuf {
        self.runtime_dir.join("woollama.addr")
    }
}

fn state_dir(env: &Env) -> PathBuf {
    if let Some(d) = env.non_empty("WOOLLAMA_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env.non_empty("XDG_STATE_HOME") {
        return PathBuf::from(d).join("woollama");
    }
    PathBuf::from(env.non_empty("HOME").unwrap_or("/tmp")).join(".local/state/woollama")
}

fn default_address() -> BindTarget {
    BindTarget {
        host: BindHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(raw: &str) -> String {
        parse_address(raw)
            .map(|t| t.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn address_forms() {
        assert_eq!(t("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(t("[::1]:8080"), "[::1]:8080");
        assert_eq!(t("[::1]"), "[::1]:0");
        assert_eq!(t("::1"), "[::1]:0");
        assert_eq!(t("10.1.2.3"), "10.1.2.3:0");
        assert_eq!(t(":7000"), "127.0.0.1:7000");
        assert_eq!(t("localhost"), "localhost:0");
        assert_eq!(t("my-host.lan:9"), "my-host.lan:9");
        assert!(t("127.0.0.1:http").starts_with("ERR port"));
        assert!(t("[::1").starts_with("ERR"));
        assert!(t("a b:1").starts_with("ERR"));
    }

    #[test]
    fn loopback_check_never_resolves_names() {
        assert!(parse_address("127.0.0.9:1").is_ok_and(|t| t.is_loopback()));
        assert!(parse_address("localhost").is_ok_and(|t| t.is_loopback()));
        assert!(parse_address("[::1]").is_ok_and(|t| t.is_loopback()));
        assert!(parse_address("[::ffff:127.0.0.1]:1").is_ok_and(|t| t.is_loopback()));
        assert!(!parse_address("[::ffff:10.0.0.1]:1").is_ok_and(|t| t.is_loopback()));
        assert!(parse_address("0.0.0.0:80").is_ok_and(|t| !t.is_loopback()));
        assert!(parse_address("myhost").is_ok_and(|t| !t.is_loopback()));
    }

    #[test]
    fn bad_values_are_fatal_and_named() {
        let mut d = Diagnostics::default();
        let env = Env::from_pairs([
            ("WOOLLAMA_MCP_CALL_TIMEOUT_SECS", "soon"),
            ("WOOLLAMA_ADDRESS", "host:99999"),
            ("XDG_RUNTIME_DIR", ""),
            ("WOOLLAMA_TOKEN", ""),
        ]);
        let s = Settings::from_env(&env, &mut d);
        let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("environment: WOOLLAMA_MCP_CALL_TIMEOUT_SECS: \"soon\""));
        assert!(msgs[1].contains("WOOLLAMA_ADDRESS"));
        assert_eq!(s.runtime_dir, PathBuf::from("/tmp"));
        assert!(s.token.is_none());
        assert_eq!(s.mcp_call_timeout, Duration::from_secs(120));
    }

    #[test]
    fn worker_threads_default_to_the_cores_and_refuse_nonsense() {
        let mut d = Diagnostics::default();
        let s = Settings::from_env(&Env::from_pairs([("HOME", "/h")]), &mut d);
        assert_eq!(s.worker_threads, cores());
        let s = Settings::from_env(
            &Env::from_pairs([("WOOLLAMA_WORKER_THREADS", " 1 ")]),
            &mut d,
        );
        assert_eq!(s.worker_threads, 1);
        assert!(!d.has_fatal());
        for bad in ["0", "two", "-1", "1025"] {
            let mut d = Diagnostics::default();
            let s =
                Settings::from_env(&Env::from_pairs([("WOOLLAMA_WORKER_THREADS", bad)]), &mut d);
            let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
            assert_eq!(msgs.len(), 1, "{bad}: {msgs:?}");
            assert!(
                msgs[0].contains("WOOLLAMA_WORKER_THREADS") && msgs[0].contains("from 1 to 1024"),
                "{msgs:?}"
            );
            assert_eq!(s.worker_threads, cores());
        }
    }
}
