//! `GET /v1/tools` (contract §4.5): every downstream tool, and every
//! configured server with its health — a server that is down is listed with
//! its reason, never omitted. Health and tools come from one snapshot.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use crate::tools::Health;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let snap = state.tools.snapshot();
    let listed: Vec<_> = snap.listed().collect();
    let dotted: Vec<String> = listed.iter().map(|t| t.dotted()).collect();
    let data: Vec<Value> = listed
        .iter()
        .map(|t| json!({"name": t.wire, "server": t.server, "tool": t.tool.name}))
        .collect();
    let servers: Vec<Value> = snap
        .servers
        .iter()
        .map(|s| {
            let mut v = json!({
                "name": s.name,
                "transport": s.transport,
                "health": s.health.as_str(),
                "tools": s.tools,
            });
            match &s.health {
                Health::Retrying {
                    attempts,
                    last_error,
                } => {
                    v["attempts"] = json!(attempts);
                    v["last_error"] = json!(last_error);
                }
                Health::Failed { reason } => v["reason"] = json!(reason),
                Health::Connecting => {}
                Health::Connected => v["protocol"] = json!(s.protocol),
            }
            v
        })
        .collect();
    Json(json!({"tools": dotted, "data": data, "servers": servers}))
}
