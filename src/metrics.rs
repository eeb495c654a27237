//! Prometheus metrics (`GET /metrics`, OpenMetrics text, via
//! `prometheus-client`): one [`Metrics`] per process, cheap to clone, that
//! the HTTP surface, the inference registry, the MCP downstreams and the
//! recipe loop record into.
//!
//! Cardinality is bounded by construction: no label ever carries a raw
//! string from a request. Routes are the router's own patterns
//! (`/v1/conversations/{id}`), a model is reduced to its namespace — a
//! configured inferencer's name, `woollama` (a recipe), `claude-code`,
//! `claude-agent`, or `unknown` — and servers, recipes and inferencers are
//! names from the config files.
//!
//! `docs/operations.md` lists every metric.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Static strings where the values are known in advance: a request's labels
/// cost no allocation but its namespace's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub method: &'static str,
    /// `2xx`, `4xx`, `5xx`.
    pub status: &'static str,
    /// A model's namespace (never the raw model): see the module doc.
    pub namespace: std::borrow::Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InferencerLabels {
    pub inferencer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub server: String,
    /// `ok`, `error` (the tool said so), `failed` (no answer: down, timed
    /// out, unknown tool).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HealthLabels {
    pub server: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecipeLabels {
    pub recipe: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: String,
}

type Timing<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 0.1 ms to ~100 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Timing<RouteLabels>,
    first_byte: Timing<RouteLabels>,
    in_flight: Gauge,
    streams: Gauge,
    upstream: Timing<InferencerLabels>,
    upstream_errors: Family<InferencerLabels, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    tool_duration: Timing<ServerLabels>,
    health: Family<HealthLabels, Gauge>,
    reconnects: Family<ServerLabels, Counter>,
    recipe_turns: Family<RecipeLabels, Counter>,
    conversations: Family<BackendLabels, Counter>,
    /// The request series met so far, with their handles: a request finds
    /// its counter and histogram with a few string comparisons instead of
    /// two label sets hashed with SipHash under the families' locks.
    seen: std::sync::RwLock<Vec<Seen>>,
}

/// A request label set and its series (see `Inner::seen`).
struct Seen {
    labels: RequestLabels,
    count: Counter,
    took: Histogram,
}

/// The most label sets kept in `Inner::seen` (past it, the families are
/// asked directly; the label values are bounded anyway).
const SEEN_MAX: usize = 64;

/// The process's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The downstream states a health gauge is kept for.
/// One inferencer's upstream time-to-headers and failures: handles onto
/// the families' series (a clone counts into the same series).
#[derive(Clone, Debug)]
pub struct Upstream {
    timing: Histogram,
    errors: Counter,
}

impl Upstream {
    /// The upstream answered a call's headers (`ok`), or failed.
    pub fn answered(&self, took: Duration, ok: bool) {
        if ok {
            self.timing.observe(took.as_secs_f64());
        } else {
            self.errors.inc();
        }
    }
}

pub const HEALTH_STATES: &[&str] = &["connecting", "connected", "retrying", "failed"];

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("woollama");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: Timing<RouteLabels> = Family::new_with_constructor(latency);
        let first_byte: Timing<RouteLabels> = Family::new_with_constructor(latency);
        let in_flight = Gauge::default();
        let streams = Gauge::default();
        let upstream: Timing<InferencerLabels> = Family::new_with_constructor(latency);
        let upstream_errors = Family::<InferencerLabels, Counter>::default();
        let tool_calls = Family::<ToolLabels, Counter>::default();
        let tool_duration: Timing<ServerLabels> = Family::new_with_constructor(latency);
        let health = Family::<HealthLabels, Gauge>::default();
        let reconnects = Family::<ServerLabels, Counter>::default();
        let recipe_turns = Family::<RecipeLabels, Counter>::default();
        let conversations = Family::<BackendLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method, status class and model namespace",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to the end of its answer (a stream's last byte)",
            duration.clone(),
        );
        registry.register(
            "http_first_byte_seconds",
            "Time from a request to the first byte of its answer's body",
            first_byte.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests whose answer has not ended",
            in_flight.clone(),
        );
        registry.register(
            "http_streams_in_flight",
            "Event streams (SSE) being sent",
            streams.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time an inference upstream took to answer a call's headers",
            upstream.clone(),
        );
        registry.register(
            "upstream_errors",
            "Inference calls that failed (unreachable, timed out, an error status, a broken stream, the claude CLI)",
            upstream_errors.clone(),
        );
        registry.register(
            "tool_calls",
            "MCP tool calls on downstream servers, by outcome",
            tool_calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "MCP tool call latency by server",
            tool_duration.clone(),
        );
        registry.register(
            "downstream_health",
            "1 for the state each MCP downstream is in, 0 for the others",
            health.clone(),
        );
        registry.register(
            "downstream_reconnects",
            "MCP downstream reconnection attempts",
            reconnects.clone(),
        );
        registry.register(
            "recipe_turns",
            "Model turns run by recipes",
            recipe_turns.clone(),
        );
        registry.register(
            "conversations_created",
            "Conversations created, by backend",
            conversations.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            requests,
            duration,
            first_byte,
            in_flight,
            streams,
            upstream,
            upstream_errors,
            tool_calls,
            tool_duration,
            health,
            reconnects,
            recipe_turns,
            conversations,
            seen: std::sync::RwLock::default(),
        }))
    }

    /// The exposition (OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }

    /// A request ended.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        let seconds = took.as_secs_f64();
        {
            let seen = self
                .0
                .seen
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = seen.iter().find(|s| s.labels == labels) {
                s.count.inc();
                s.took.observe(seconds);
                return;
            }
        }
        let count = self.0.requests.get_or_create(&labels).clone();
        let took = self
            .0
            .duration
            .get_or_create(&RouteLabels {
                route: labels.route,
            })
            .clone();
        count.inc();
        took.observe(seconds);
        let mut seen = self
            .0
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() < SEEN_MAX && !seen.iter().any(|s| s.labels == labels) {
            seen.push(Seen {
                labels,
                count,
                took,
            });
        }
    }

    /// The first byte of a route's answer body went out.
    pub fn first_byte(&self, route: &'static str, took: Duration) {
        self.0
            .first_byte
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// A gauge that goes down when the returned guard is dropped.
    fn hold(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }

    /// A request is in flight until the guard is dropped.
    pub fn in_flight(&self) -> Held {
        Self::hold(&self.0.in_flight)
    }

    /// A stream is being sent until the guard is dropped.
    pub fn stream(&self) -> Held {
        Self::hold(&self.0.streams)
    }

    /// One inferencer's upstream series, looked up once (an inferencer
    /// keeps them, so a call hashes no label set; see [`Upstream`]).
    pub fn upstream_series(&self, inferencer: &str) -> Upstream {
        let labels = InferencerLabels {
            inferencer: inferencer.to_string(),
        };
        Upstream {
            timing: self.0.upstream.get_or_create(&labels).clone(),
            errors: self.0.upstream_errors.get_or_create(&labels).clone(),
        }
    }

    /// An inference call failed after its headers (a broken stream).
    pub fn upstream_error(&self, inferencer: &str) {
        self.0
            .upstream_errors
            .get_or_create(&InferencerLabels {
                inferencer: inferencer.to_string(),
            })
            .inc();
    }

    /// A tool call on `server` ended.
    pub fn tool_call(&self, server: &str, outcome: &str, took: Duration) {
        self.0
            .tool_calls
            .get_or_create(&ToolLabels {
                server: server.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.0
            .tool_duration
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Sets each downstream's health gauges (at scrape time); a server a
    /// reload removed has none any more.
    pub fn health<'a>(&self, servers: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.0.health.clear();
        for (server, state) in servers {
            for s in HEALTH_STATES {
                self.0
                    .health
                    .get_or_create(&HealthLabels {
                        server: server.to_string(),
                        state: (*s).to_string(),
                    })
                    .set(i64::from(*s == state));
            }
        }
    }

    /// A downstream is reconnecting.
    pub fn reconnect(&self, server: &str) {
        self.0
            .reconnects
            .get_or_create(&ServerLabels {
                server: server.to_string(),
            })
            .inc();
    }

    /// A recipe ran one model turn.
    pub fn recipe_turn(&self, recipe: &str) {
        self.0
            .recipe_turns
            .get_or_create(&RecipeLabels {
                recipe: recipe.to_string(),
            })
            .inc();
    }

    /// A conversation was created on `backend`.
    pub fn conversation(&self, backend: &str) {
        self.0
            .conversations
            .get_or_create(&BackendLabels {
                backend: backend.to_string(),
            })
            .inc();
    }
}

/// Holds a gauge up until dropped.
pub struct Held(Gauge);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_labels() {
        let m = Metrics::new();
        m.request(
            RequestLabels {
                route: "/v1/chat/completions",
                method: "POST",
                status: "2xx",
                namespace: "ollama".into(),
            },
            Duration::from_millis(3),
        );
        let held = m.in_flight();
        m.health([("hello", "connected")]);
        let text = m.encode();
        assert!(
            text.contains(
                r#"woollama_http_requests_total{route="/v1/chat/completions",method="POST",status="2xx",namespace="ollama"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("woollama_http_requests_in_flight 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"woollama_downstream_health{server="hello",state="connected"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"woollama_downstream_health{server="hello",state="failed"} 0"#),
            "{text}"
        );
        drop(held);
        assert!(m.encode().contains("woollama_http_requests_in_flight 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
