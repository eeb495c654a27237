//! `GET /v1/models`: every inferencer's models, then the recipes.
//!
//! Static `models` come first, then live discovery. Discovering providers are
//! queried concurrently, each bounded by `WOOLLAMA_DISCOVERY_TIMEOUT_SECS`
//! (3 s by default), so one slow or dead provider never stalls the list: it
//! just contributes nothing this time.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
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
    Json(json!({"object": "list", "data": data}))
}
