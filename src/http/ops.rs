//! Operator routes: `GET /metrics` (Prometheus, OpenMetrics text) and
//! `GET /status` (what `woollama status` prints: version, uptime,
//! listeners, config files, inferencers, recipes, and each downstream's
//! health, tools and last error). Both answer on both listeners, under the
//! same token rules as every other route; `woollama status` asks over the
//! Unix socket, which needs no token.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use crate::config::Source;
use crate::tools::Health;

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let snap = state.tools.snapshot();
    state.metrics.health(
        snap.servers
            .iter()
            .map(|s| (s.name.as_str(), s.health.as_str())),
    );
    let mut r = state.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

fn source(s: &Source) -> Value {
    match s {
        Source::User(p) => json!(p.display().to_string()),
        Source::Bundled => json!("(bundled default)"),
        Source::Absent => json!("(none: built-ins only)"),
    }
}

/// A URL with any `user:password@` taken out.
fn safe_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string().trim_end_matches('/').to_string()
        }
        _ => u.to_string(),
    }
}

/// `GET /status`.
pub async fn status(State(state): State<AppState>) -> Json<Value> {
    let c = &state.config;
    let snap = state.tools.snapshot();
    let inferencers: Vec<Value> = state
        .inference
        .iter()
        .map(|inf| {
            json!({
                "name": inf.name(),
                "base_url": safe_url(&inf.spec.base_url),
                "key": inf.spec.api_key_env.as_ref().map(|env| json!({
                    "env": env,
                    "set": inf.auth().is_ok(),
                })),
            })
        })
        .collect();
    let recipes: Vec<Value> = c
        .recipes
        .values()
        .map(|r| {
            json!({
                "name": r.name,
                "inferencer": r.inferencer,
                "tools": r.tools.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let downstreams: Vec<Value> = snap
        .servers
        .iter()
        .map(|s| {
            let (attempts, error) = match &s.health {
                Health::Retrying {
                    attempts,
                    last_error,
                } => (Some(*attempts), Some(last_error.clone())),
                Health::Failed { reason } => (None, Some(reason.clone())),
                _ => (None, None),
            };
            json!({
                "name": s.name,
                "transport": s.transport,
                "health": s.health.as_str(),
                "tools": s.tools,
                "protocol": s.protocol,
                "attempts": attempts,
                "last_error": error,
            })
        })
        .collect();
    let now = crate::wire::now();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "started": state.started,
        "uptime_secs": now.saturating_sub(state.started),
        "listeners": {
            "tcp": state.tools.grants().endpoint().map(|u| u.trim_end_matches("/mcp").to_string()),
            "socket": c.settings.socket_path().display().to_string(),
            "token_required": c.settings.token.is_some(),
        },
        "config": {
            "dir": c.dir.as_ref().map(|d| d.display().to_string()),
            "mcp.json": source(&c.mcp_source),
            "recipes.toml": source(&c.recipes_source),
            "inferencers.toml": source(&c.inferencers_source),
            "skipped_servers": c.skipped_servers,
        },
        "state_dir": c.settings.state_dir.display().to_string(),
        "inferencers": inferencers,
        "recipes": recipes,
        "downstreams": downstreams,
    }))
}
