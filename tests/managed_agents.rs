//! `claude-agent/<model>` conversations (the `managed-agents` backend)
//! against a fake of Anthropic's managed-agents API, written here: the wire
//! calls of contract §8.3, the session event stream (SSE) and history, an
//! agent that stops to ask the user on cue, and one that fails.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::Setup;
use common::mock::Mock;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

/// What the fake API has seen and holds.
#[derive(Default)]
struct Fake {
    /// Every call: method, path, body.
    calls: Vec<(String, String, Value)>,
    /// Headers of the last call.
    headers: HashMap<String, String>,
    environments: Vec<String>,
    agents: Vec<String>,
    sessions: Vec<String>,
    /// Per session: the events of its history, and those the next stream sends.
    history: HashMap<String, Vec<Value>>,
    next: HashMap<String, Vec<Value>>,
    /// Told when a session has events for its stream.
    posted: Arc<tokio::sync::Notify>,
}

type Shared = Arc<Mutex<Fake>>;

fn seen(fake: &Shared, method: &str, path: &str, body: Value, headers: &HeaderMap) {
    let mut f = fake.lock().expect("lock");
    f.calls.push((method.into(), path.into(), body));
    f.headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
}

fn idle(stop: &str, ids: &[&str]) -> Value {
    json!({"type": "session.status_idle", "stop_reason": {"type": stop, "event_ids": ids}})
}

fn said(text: &str) -> Value {
    json!({"type": "agent.message", "content": [{"type": "text", "text": text}]})
}

async fn start_fake() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/v1/environments",
            post(|State(f): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                seen(&f, "POST", "/v1/environments", b, &h);
                let mut f = f.lock().expect("lock");
                let id = format!("env_{}", f.environments.len() + 1);
                f.environments.push(id.clone());
                Json(json!({"id": id}))
            }),
        )
        .route(
            "/v1/environments/{id}",
            get(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>| async move {
                seen(&f, "GET", &format!("/v1/environments/{id}"), Value::Null, &h);
                let known = f.lock().expect("lock").environments.contains(&id);
                if known { Json(json!({"id": id})).into_response() } else { StatusCode::NOT_FOUND.into_response() }
            }),
        )
        .route(
            "/v1/agents",
            post(|State(f): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                seen(&f, "POST", "/v1/agents", b, &h);
                let mut f = f.lock().expect("lock");
                let id = format!("agent_{}", f.agents.len() + 1);
                f.agents.push(id.clone());
                Json(json!({"id": id}))
            }),
        )
        .route(
            "/v1/agents/{id}",
            get(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>| async move {
                seen(&f, "GET", &format!("/v1/agents/{id}"), Value::Null, &h);
                let known = f.lock().expect("lock").agents.contains(&id);
                if known { Json(json!({"id": id})).into_response() } else { StatusCode::NOT_FOUND.into_response() }
            }),
        )
        .route(
            "/v1/sessions",
            post(|State(f): State<Shared>, h: HeaderMap, Json(b): Json<Value>| async move {
                seen(&f, "POST", "/v1/sessions", b, &h);
                let mut f = f.lock().expect("lock");
                let id = format!("sesn_{}", f.sessions.len() + 1);
                f.sessions.push(id.clone());
                Json(json!({"id": id}))
            }),
        )
        .route(
            "/v1/sessions/{id}",
            axum::routing::delete(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>| async move {
                seen(&f, "DELETE", &format!("/v1/sessions/{id}"), Value::Null, &h);
                f.lock().expect("lock").sessions.retain(|s| *s != id);
                Json(json!({"id": id, "type": "session_deleted"}))
            }),
        )
        .route(
            "/v1/sessions/{id}/events",
            post(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>, Json(b): Json<Value>| async move {
                seen(&f, "POST", &format!("/v1/sessions/{id}/events"), b.clone(), &h);
                let mut f = f.lock().expect("lock");
                let event = b["events"][0].clone();
                let text = event["content"][0]["text"].as_str().unwrap_or("").to_string();
                let reply = match event["type"].as_str() {
                    Some("user.custom_tool_result") => {
                        vec![said(&format!("You chose: {text}")), idle("end_turn", &[])]
                    }
                    _ if text.contains("FAIL") => {
                        vec![json!({"type": "session.error", "error": {"message": "the agent crashed"}})]
                    }
                    _ if text.contains("ASK") => vec![
                        said("I need to know something."),
                        json!({"type": "agent.custom_tool_use", "id": "sevt_ask", "name": "ask_user",
                               "input": {"question": "Which city?", "options": ["Paris", "Rome"]}}),
                        idle("requires_action", &["sevt_ask"]),
                    ],
                    _ => vec![said(&format!("agent says: {text}")), idle("end_turn", &[])],
                };
                let history = f.history.entry(id.clone()).or_default();
                history.push(event);
                history.extend(reply.iter().filter(|e| e["type"] == "agent.message").cloned());
                f.next.insert(id, reply);
                f.posted.notify_waiters();
                Json(json!({"data": []}))
            })
            .get(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>| async move {
                seen(&f, "GET", &format!("/v1/sessions/{id}/events"), Value::Null, &h);
                let data = f.lock().expect("lock").history.get(&id).cloned().unwrap_or_default();
                Json(json!({"data": data}))
            }),
        )
        .route(
            "/v1/sessions/{id}/events/stream",
            get(|State(f): State<Shared>, h: HeaderMap, Path(id): Path<String>| async move {
                seen(&f, "GET", &format!("/v1/sessions/{id}/events/stream"), Value::Null, &h);
                // Like the real stream: open at once (a ping), then the
                // events of the turn posted after it opened; nothing before.
                let posted = {
                    let mut fake = f.lock().expect("lock");
                    // What was sent before the stream opened is not replayed.
                    fake.next.remove(&id);
                    Arc::clone(&fake.posted)
                };
                let later = async move {
                    loop {
                        let notified = posted.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if let Some(events) = f.lock().expect("lock").next.remove(&id) {
                            let mut body = String::new();
                            for e in events {
                                body.push_str(&format!("event: message\ndata: {e}\n\n"));
                            }
                            return Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(body));
                        }
                        notified.await;
                    }
                };
                let chunks = futures_util::stream::once(async {
                    Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(": ping\n\n"))
                })
                .chain(futures_util::stream::once(later));
                let mut r: Response = axum::body::Body::from_stream(chunks).into_response();
                r.headers_mut().insert("content-type", "text/event-stream".parse().expect("ct"));
                r
            }),
        )
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, fake)
}

fn calls(fake: &Shared, method: &str, path: &str) -> Vec<Value> {
    fake.lock()
        .expect("lock")
        .calls
        .iter()
        .filter(|(m, p, _)| m == method && p == path)
        .map(|(_, _, b)| b.clone())
        .collect()
}

fn setup(mock: &Mock, url: &str, state: &std::path::Path) -> Setup {
    Setup::new(mock)
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("WOOLLAMA_STATE_DIR", &state.to_string_lossy())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_pauses_to_ask_the_user_and_resumes_with_the_answer() {
    let mock = Mock::start().await;
    let (url, fake) = start_fake().await;
    let state = tempfile::tempdir().expect("state");
    let app = setup(&mock, &url, state.path()).start().await;

    let (s, first) = app
        .respond(
            json!({"model": "claude-agent/sonnet", "input": "Plan a trip. ASK", "store": true}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["status"], "requires_action", "{first}");
    assert_eq!(
        first["required_action"],
        json!({"type": "ask_user", "question": {"question": "Which city?", "options": ["Paris", "Rome"]}})
    );
    assert_eq!(
        first["output"][0]["content"][0]["text"],
        "I need to know something."
    );
    let conversation = first["conversation"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, conv) = common::json(app.get(&format!("/v1/conversations/{conversation}")).await).await;
    assert_eq!(conv["status"], "awaiting_input");
    assert_eq!(conv["backend"], "managed-agents");

    // The wire: one environment, one agent for the resolved model with the
    // ask_user tool, one session; the three headers.
    let agent = calls(&fake, "POST", "/v1/agents")
        .pop()
        .expect("agent made");
    assert_eq!(agent["model"], "claude-sonnet-4-6");
    assert_eq!(agent["tools"][0]["name"], "ask_user");
    let session = calls(&fake, "POST", "/v1/sessions")
        .pop()
        .expect("session made");
    assert_eq!(
        session,
        json!({"agent": "agent_1", "environment_id": "env_1"})
    );
    {
        let f = fake.lock().expect("lock");
        assert_eq!(
            f.headers.get("x-api-key").map(String::as_str),
            Some("sk-ant-test")
        );
        assert_eq!(
            f.headers.get("anthropic-version").map(String::as_str),
            Some("2023-06-01")
        );
        assert_eq!(
            f.headers.get("anthropic-beta").map(String::as_str),
            Some("managed-agents-2026-04-01")
        );
    }

    // The answer goes back as the ask_user call's result.
    let (s, second) = app
        .respond(json!({"model": "claude-agent/sonnet", "input": "Paris",
                        "previous_response_id": first["id"]}))
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["status"], "completed");
    assert_eq!(
        second["output"][0]["content"][0]["text"],
        "You chose: Paris"
    );
    let posted = calls(&fake, "POST", "/v1/sessions/sesn_1/events")
        .pop()
        .expect("posted");
    assert_eq!(
        posted["events"][0],
        json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_ask",
               "content": [{"type": "text", "text": "Paris"}]})
    );
    let (_, conv) = common::json(app.get(&format!("/v1/conversations/{conversation}")).await).await;
    assert_eq!(conv["status"], "idle");

    // A plain third turn sends only the latest text.
    let (_, third) = app
        .respond(json!({"model": "claude-agent/sonnet", "conversation": conversation,
                        "input": [{"role": "user", "content": "old"}, {"role": "user", "content": "Thanks"}]}))
        .await;
    assert_eq!(
        third["output"][0]["content"][0]["text"],
        "agent says: Thanks"
    );

    // Items from the session's history.
    let (_, items) = common::json(
        app.get(&format!("/v1/conversations/{conversation}/items"))
            .await,
    )
    .await;
    let shown: Vec<(String, String)> = items["data"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["role"].as_str().unwrap_or("").to_string(),
                i["content"][0]["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("user", "Plan a trip. ASK"),
        ("assistant", "I need to know something."),
        ("assistant", "You chose: Paris"),
        ("user", "Thanks"),
        ("assistant", "agent says: Thanks"),
    ]
    .map(|(r, t)| (r.to_string(), t.to_string()));
    assert_eq!(shown, expected);

    // DELETE deletes the session.
    let r = app
        .client
        .delete(app.url(&format!("/v1/conversations/{conversation}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(calls(&fake, "DELETE", "/v1/sessions/sesn_1").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_and_agent_are_made_once_and_kept_across_restarts() {
    let mock = Mock::start().await;
    let (url, fake) = start_fake().await;
    let state = tempfile::tempdir().expect("state");
    for _ in 0..2 {
        let app = setup(&mock, &url, state.path()).start().await;
        for input in ["one", "two"] {
            let (s, r) = app
                .respond(json!({"model": "claude-agent/opus", "input": input, "store": true}))
                .await;
            assert_eq!(s, 200, "{r}");
            assert_eq!(
                r["output"][0]["content"][0]["text"],
                format!("agent says: {input}")
            );
        }
    }
    // Four conversations, four sessions — one environment, one agent; the
    // second process verified the kept ids once each.
    assert_eq!(calls(&fake, "POST", "/v1/sessions").len(), 4);
    assert_eq!(calls(&fake, "POST", "/v1/environments").len(), 1);
    assert_eq!(calls(&fake, "POST", "/v1/agents").len(), 1);
    assert_eq!(calls(&fake, "GET", "/v1/environments/env_1").len(), 1);
    assert_eq!(calls(&fake, "GET", "/v1/agents/agent_1").len(), 1);
    let kept = state.path().join("managed-agents.json");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&kept).expect("kept").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // An agent deleted in the console is made again, not failed on.
    fake.lock().expect("lock").agents.clear();
    let app = setup(&mock, &url, state.path()).start().await;
    let (s, r) = app
        .respond(json!({"model": "claude-agent/opus", "input": "three", "store": true}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(calls(&fake, "POST", "/v1/agents").len(), 2);
}

#[tokio::test]
async fn failures_and_refusals() {
    let mock = Mock::start().await;
    let (url, _fake) = start_fake().await;
    let state = tempfile::tempdir().expect("state");
    let app = setup(&mock, &url, state.path()).start().await;

    let (s, r) = app
        .respond(json!({"model": "claude-agent/opus", "input": "FAIL now", "store": true}))
        .await;
    assert_eq!(s, 502, "{r}");
    assert_eq!(
        r["error"]["message"],
        "managed-agents backend: the session reported an error: the agent crashed"
    );

    // A hosted agent holds the conversation: stateless calls and streams
    // are refused, saying what to send.
    let (s, r) = app
        .respond(json!({"model": "claude-agent/opus", "input": "hi"}))
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .expect("message")
            .contains("store: true")
    );
    let (s, r) = app
        .respond(
            json!({"model": "claude-agent/opus", "input": "hi", "store": true, "stream": true}),
        )
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .expect("message")
            .contains("stream: false")
    );

    // An API that cannot be reached: said, naming the call.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let app = setup(&mock, &closed, state.path()).start().await;
    let (s, r) = app
        .respond(json!({"model": "claude-agent/opus", "input": "hi", "store": true}))
        .await;
    assert_eq!(s, 502, "{r}");
    let message = r["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("managed-agents backend: POST /v1/environments failed: "),
        "{message}"
    );

    // No key: said before any call.
    let app = Setup::new(&mock)
        .env("ANTHROPIC_BASE_URL", &url)
        .env("WOOLLAMA_STATE_DIR", &state.path().to_string_lossy())
        .start()
        .await;
    let (s, r) = app
        .respond(json!({"model": "claude-agent/opus", "input": "hi", "store": true}))
        .await;
    assert_eq!(s, 502, "{r}");
    let message = r["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("managed-agents backend: ANTHROPIC_API_KEY is not set"),
        "{message}"
    );
}
