//! `GET /v1/models`: every inferencer's models, then the recipes.
//!
//! Static `models` come first, then live discovery. Discovering providers are
//! queried concurrently, each bounded by `WOOLLAMA_DISCOVERY_TIMEOUT_SECS`
//! (3 s by default), so one slow or dead provider never stalls the list: it
//! just contributes nothing this time.
//!
//! A request that carries `anthropic-version` (an Anthropic SDK, Claude Code)
//! gets the same models in Anthropic's list shape: `{data: [{type: "model",
//! id, display_name, created_at}], has_more, first_id, last_id}`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

pub async fn list(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Json<Value> {
    let timeout = state.config.settings.discovery_timeout;
    let registry = &state.inference;
    let discovered = futures_util::future::join_all(registry.iter().map(|inf| async move {
        if !inf.spec.discover {
            return Vec::new();
        }
        match tokio::time::timeout(timeout, registry.discover(inf, timeout)).await {
            Ok(Ok(ids)) => ids,
            Ok(Err(e)) => {
                tracing::debug!(inferencer = inf.name(), error = %e, "model discovery failed");
                Vec::new()
            }
            Err(_) => {
                tracing::debug!(inferencer = inf.name(), "model discovery timed out");
                Vec::new()
            }
        }
    }))
    .await;

    let mut data = Vec::new();
    for (inf, found) in state.inference.iter().zip(&discovered) {
        let mut seen = HashSet::new();
        let ids = inf
            .spec
            .models
            .iter()
            .chain(found.iter().filter(|id| inf.spec.admits(id)));
        for id in ids {
            if !seen.insert(id.as_str()) {
                continue;
            }
            let mut m = json!({
                "id": format!("{}/{id}", inf.name()),
                "object": "model",
                "created": state.started,
                "owned_by": inf.name(),
            });
            let caps = inf.spec.declared_capabilities(id);
            if !caps.is_empty() {
                m["capabilities"] = json!(caps);
            }
            data.push(m);
        }
    }
    for name in state.config.recipes.keys() {
        data.push(json!({
            "id": format!("woollama/{name}"),
            "object": "model",
            "created": state.started,
            "owned_by": "woollama",
        }));
    }
    if headers.contains_key("anthropic-version") {
        return Json(anthropic(&data, state.started));
    }
    Json(json!({"object": "list", "data": data}))
}

/// The list in Anthropic's shape.
fn anthropic(data: &[Value], started: u64) -> Value {
    let created = rfc3339(started);
    let models: Vec<Value> = data
        .iter()
        .map(|m| {
            json!({"type": "model", "id": m["id"], "display_name": m["id"], "created_at": created})
        })
        .collect();
    json!({
        "data": models,
        "has_more": false,
        "first_id": models.first().map(|m| m["id"].clone()),
        "last_id": models.last().map(|m| m["id"].clone()),
    })
}

/// Seconds since the epoch as an RFC 3339 UTC time.
fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::wire::civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_654_974), "2026-11-26T01:02:54Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
