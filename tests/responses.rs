//! `POST /v1/responses` (stateless) with the official Python `openai` SDK as
//! the client: text, streams, a client function tool round trip, a recipe,
//! refusals, and a stream that breaks off — against the scripted mock; and
//! `/v1/conversations` handles, through the SDK and over raw HTTP.

mod common;

use common::Setup;
use common::mock::{Mock, Reply, completion, sse, sse_chunks, sse_tool_calls, tool_calls};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_holds_stateless_responses() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("hello from mock")));
    mock.push(sse(&["Hello", ", ", "world"]));
    mock.push(Reply::Json(
        StatusCode::OK,
        tool_calls(&[("call_1", "add", json!({"a": 2}))]),
    ));
    mock.push(Reply::Json(StatusCode::OK, completion("4")));
    mock.push(sse_tool_calls("", &[("call_2", "add", json!({"a": 1}))]));
    mock.push(Reply::Json(StatusCode::OK, completion("recipe answer")));
    let mut broken = sse_chunks(&["partial"]);
    broken.truncate(1);
    broken
        .push("data: {\"error\": {\"message\": \"boom\", \"type\": \"server_error\"}}\n\n".into());
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: broken,
        gate: None,
    });
    let app = Setup::new(&mock)
        .recipes("[recipes.plain]\ninferencer = \"mock/m\"\nsystem = \"You are plain.\"\n")
        .start()
        .await;
    common::python_script("openai_responses_client.py", app.url("/v1"), 23).await;

    // What the upstream was sent: instructions as the system message, the
    // tool round trip as chat tool calls and a tool message, usage asked for
    // on streams, the recipe's own system prompt.
    let sent = mock.requests();
    assert_eq!(sent.len(), 7, "{sent:#?}");
    assert_eq!(
        sent[0].body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(sent[0].body["model"], "m");
    assert_eq!(
        sent[1].body["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(sent[2].body["tools"][0]["function"]["name"], "add");
    let messages = &sent[3].body["messages"];
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["arguments"],
        "{\"a\":2}"
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "4"})
    );
    assert_eq!(sent[5].body["messages"][0]["content"], "You are plain.");
    assert!(sent[5].body.get("tools").is_none());
}

/// Handles live in the state dir: a second app on the same dir (a restart)
/// lists them in creation order, pages them, attaches by key; a conversation
/// that names a model is refused until a state-owning backend exists.
#[tokio::test]
async fn conversation_handles_page_attach_and_survive_a_restart() {
    let mock = Mock::start().await;
    let state = tempfile::tempdir().expect("state dir");
    let dir = state.path().to_string_lossy().to_string();
    let app = Setup::new(&mock)
        .env("WOOLLAMA_STATE_DIR", &dir)
        .start()
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, v) = common::json(
            app.post("/v1/conversations", json!({"title": format!("chat {i}")}))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    let (status, keyed) = common::json(
        app.post("/v1/conversations", json!({"key": "ticket-7"}))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, again) = common::json(
        app.post("/v1/conversations", json!({"key": "ticket-7"}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], keyed["id"]);
    let refused = app
        .post("/v1/conversations", json!({"model": "mock/m"}))
        .await;
    let msg = common::expect_error(refused, 501, "not_implemented").await;
    assert!(msg.contains("no stateful backend"), "{msg}");
    drop(app);

    let app = Setup::new(&mock)
        .env("WOOLLAMA_STATE_DIR", &dir)
        .start()
        .await;
    let (_, page) = common::json(app.get("/v1/conversations?limit=2").await).await;
    let listed: Vec<&str> = page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(listed, [ids[0].as_str(), ids[1].as_str()], "{page}");
    assert_eq!(page["has_more"], true);
    let (_, rest) = common::json(
        app.get(&format!("/v1/conversations?limit=2&after={}", ids[1]))
            .await,
    )
    .await;
    assert_eq!(rest["data"][0]["id"], ids[2].as_str());
    assert_eq!(rest["data"][1]["id"], keyed["id"]);
    assert_eq!(rest["has_more"], false);
    let (_, newest) = common::json(app.get("/v1/conversations?order=desc&limit=1").await).await;
    assert_eq!(newest["data"][0]["id"], keyed["id"]);
    let bad = app.get("/v1/conversations?limit=500").await;
    let msg = common::expect_error(bad, 400, "invalid_request_error").await;
    assert!(msg.contains("`limit`"), "{msg}");
    let gone = app.get("/v1/conversations/conv_nope").await;
    common::expect_error(gone, 404, "not_found").await;
}

/// A store-backed conversation with the bundled convstore: turns chained by
/// `previous_response_id` and by `conversation` carry the earlier messages,
/// items come from the store with stable ids, a restart keeps all of it,
/// and the refusals say what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_backed_conversations_hold_across_turns_and_restarts() {
    let mock = Mock::start().await;
    for answer in ["Hello Ada.", "You are Ada.", "Still Ada.", "Ada, again."] {
        mock.push(Reply::Json(StatusCode::OK, completion(answer)));
    }
    let state = tempfile::tempdir().expect("state");
    let threads = state.path().join("threads");
    let mcp = json!({
        "mcpServers": {"store": {"command": env!("CARGO_BIN_EXE_woollama"),
                                 "args": ["example-server", "convstore", threads]}},
        "conversationStore": "store",
    })
    .to_string();
    let dir = state.path().to_string_lossy().to_string();
    let setup = || Setup::new(&mock).env("WOOLLAMA_STATE_DIR", &dir).mcp(&mcp);
    let app = setup().start().await;

    let (s, first) = app
        .respond(json!({"model": "mock/m", "input": "My name is Ada.", "store": true}))
        .await;
    assert_eq!(s, 200, "{first}");
    let conv = first["conversation"]["id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (s, second) = app.respond(json!({"model": "mock/m", "input": "What is my name?", "previous_response_id": first["id"], "instructions": "Be brief."})).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["conversation"]["id"], conv.as_str());
    assert_eq!(
        second["output_text"]
            .as_str()
            .or(second["output"][0]["content"][0]["text"].as_str()),
        Some("You are Ada.")
    );
    let sent = mock.requests();
    assert_eq!(
        sent[1].body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"},
        ])
    );
    let (s, third) = app
        .respond(json!({"model": "mock/m", "input": "And now?", "conversation": conv}))
        .await;
    assert_eq!(s, 200, "{third}");
    assert_eq!(
        mock.requests()[2].body["messages"].as_array().map(Vec::len),
        Some(5)
    );

    let (_, items) = common::json(app.get(&format!("/v1/conversations/{conv}/items")).await).await;
    let (_, again) = common::json(app.get(&format!("/v1/conversations/{conv}/items")).await).await;
    assert_eq!(items["data"].as_array().map(Vec::len), Some(6), "{items}");
    assert_eq!(items, again, "item ids must be stable across reads");
    assert_eq!(items["data"][1]["content"][0]["text"], "Hello Ada.");

    // Refusals.
    let both = app.post("/v1/responses", json!({"model": "mock/m", "input": "x", "conversation": conv, "previous_response_id": first["id"]})).await;
    common::expect_error(both, 400, "invalid_request_error").await;
    let unknown = app
        .post(
            "/v1/responses",
            json!({"model": "mock/m", "input": "x", "previous_response_id": "resp_nope"}),
        )
        .await;
    let msg = common::expect_error(unknown, 404, "not_found").await;
    assert!(msg.contains("resp_nope"), "{msg}");
    // A model no store-backed turn can run makes no conversation.
    let (_, before) = common::json(app.get("/v1/conversations").await).await;
    let (s, refused) = app
        .respond(json!({"model": "claude-agent/sonnet", "input": "x", "store": true}))
        .await;
    // No ANTHROPIC_API_KEY here: said before any conversation is made.
    assert_eq!(s, 502, "{refused}");
    let (s, _) = app
        .respond(json!({"model": "nowhere/m", "input": "x", "store": true}))
        .await;
    assert_eq!(s, 400);
    let (_, after) = common::json(app.get("/v1/conversations").await).await;
    assert_eq!(before["data"], after["data"]);
    drop(app);

    // A restart: the handle table and the store's threads are on disk.
    let app = setup().start().await;
    let (s, fourth) = app
        .respond(
            json!({"model": "mock/m", "input": "Once more.", "previous_response_id": third["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{fourth}");
    assert_eq!(
        mock.requests()[3].body["messages"].as_array().map(Vec::len),
        Some(7)
    );

    // Deleting the conversation deletes its thread.
    let before = std::fs::read_dir(&threads).expect("threads").count();
    let resp = app
        .client
        .delete(app.url(&format!("/v1/conversations/{conv}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        std::fs::read_dir(&threads).expect("threads").count(),
        before - 1
    );
    common::expect_error(
        app.get(&format!("/v1/conversations/{conv}")).await,
        404,
        "not_found",
    )
    .await;
}

/// A store that is not one (a server without the store's tools) is a 502
/// naming the store and the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_store_is_a_502_naming_it() {
    let mock = Mock::start().await;
    let state = tempfile::tempdir().expect("state");
    let mcp = json!({
        "mcpServers": {"notastore": {"command": env!("CARGO_BIN_EXE_woollama"), "args": ["example-server", "hello"]}},
        "conversationStore": {"type": "mcp", "server": "notastore"},
    })
    .to_string();
    let app = Setup::new(&mock)
        .env("WOOLLAMA_STATE_DIR", &state.path().to_string_lossy())
        .mcp(&mcp)
        .start()
        .await;
    let resp = app
        .post(
            "/v1/responses",
            json!({"model": "mock/m", "input": "hi", "store": true}),
        )
        .await;
    let msg = common::expect_error(resp, 502, "upstream_error").await;
    assert!(
        msg.contains("conversation store 'notastore' failed on 'create_thread'"),
        "{msg}"
    );
    assert!(mock.requests().is_empty());
}

/// Two turns on one conversation never interleave: the second waits for the
/// first to be stored, so it sees the first's answer; a streamed stateful
/// turn is stored when its stream ends, before `response.completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_on_one_conversation_wait_for_each_other_and_stream() {
    use std::sync::Arc;
    use tokio::sync::Notify;
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: sse_chunks(&["first ", "answer"]),
        gate: Some(common::mock::Gate {
            hold_after: 1,
            release: Arc::clone(&release),
            dropped: None,
        }),
    });
    mock.push(Reply::Json(StatusCode::OK, completion("second answer")));
    let state = tempfile::tempdir().expect("state");
    let app = Setup::new(&mock).with_store(state.path()).start().await;
    let (_, conv) = common::json(
        app.post("/v1/conversations", json!({"model": "mock/m"}))
            .await,
    )
    .await;
    let id = conv["id"].as_str().expect("id").to_string();

    // Turn 1, streamed, holds at the gate after its first chunk.
    let first = app
        .post(
            "/v1/responses",
            json!({"model": "mock/m", "input": "one", "conversation": id, "stream": true}),
        )
        .await;
    assert_eq!(first.status(), 200);
    mock.wait_for_requests(1).await;
    // Turn 2 starts while turn 1 is still streaming.
    let (url, client, body) = (
        app.url("/v1/responses"),
        app.client.clone(),
        json!({"model": "mock/m", "input": "two", "conversation": id}),
    );
    let second =
        tokio::spawn(async move { client.post(url).json(&body).send().await.expect("turn 2") });
    release.notify_one();
    let text = first.text().await.expect("stream");
    let last = text.rsplit("data: ").next().unwrap_or("");
    let done: serde_json::Value = serde_json::from_str(last.trim()).expect("json");
    assert_eq!(done["type"], "response.completed", "{text}");
    assert_eq!(done["response"]["conversation"]["id"], id.as_str());
    let second = second.await.expect("join");
    assert_eq!(second.status(), 200);
    // Turn 2 went upstream only after turn 1 was stored: it carries turn 1.
    let sent = mock.requests();
    assert_eq!(
        sent[1].body["messages"],
        json!([
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "two"},
        ])
    );
    let (_, items) = common::json(app.get(&format!("/v1/conversations/{id}/items")).await).await;
    assert_eq!(items["data"].as_array().map(Vec::len), Some(4), "{items}");
}

/// A REST conversation store, as small as the protocol: threads in memory,
/// `PUT` (create, idempotent), `GET` (`[]` if absent), `PATCH` (append an
/// array), `DELETE`.
async fn rest_store() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::extract::{Path, State};
    use axum::routing::put;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    type Threads = Arc<Mutex<HashMap<String, Vec<serde_json::Value>>>>;
    let threads: Threads = Arc::default();
    let app = axum::Router::new()
        .route(
            "/threads/{id}",
            put(
                |State(t): State<Threads>, Path(id): Path<String>| async move {
                    t.lock().expect("lock").entry(id).or_default();
                    StatusCode::NO_CONTENT
                },
            )
            .get(
                |State(t): State<Threads>, Path(id): Path<String>| async move {
                    axum::Json(serde_json::Value::Array(
                        t.lock()
                            .expect("lock")
                            .get(&id)
                            .cloned()
                            .unwrap_or_default(),
                    ))
                },
            )
            .patch(
                |State(t): State<Threads>,
                 Path(id): Path<String>,
                 axum::Json(m): axum::Json<Vec<serde_json::Value>>| async move {
                    let mut all = t.lock().expect("lock");
                    let thread = all.entry(id).or_default();
                    thread.extend(m);
                    axum::Json(json!({"ok": true, "count": thread.len()}))
                },
            )
            .delete(
                |State(t): State<Threads>, Path(id): Path<String>| async move {
                    t.lock().expect("lock").remove(&id);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(threads);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// The REST store protocol: turns chain through it; a store that went away
/// is a 502 naming it and the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_store_holds_conversations_and_its_failure_is_named() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("Hi Bo.")));
    mock.push(Reply::Json(StatusCode::OK, completion("You are Bo.")));
    let (addr, store) = rest_store().await;
    let state = tempfile::tempdir().expect("state");
    let mcp = json!({"mcpServers": {}, "conversationStore": {"type": "http", "url": format!("http://{addr}")}}).to_string();
    let app = Setup::new(&mock)
        .env("WOOLLAMA_STATE_DIR", &state.path().to_string_lossy())
        .mcp(&mcp)
        .start()
        .await;
    let (s, first) = app
        .respond(json!({"model": "mock/m", "input": "I am Bo.", "store": true}))
        .await;
    assert_eq!(s, 200, "{first}");
    let (s, second) = app
        .respond(
            json!({"model": "mock/m", "input": "Who am I?", "previous_response_id": first["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(
        mock.requests()[1].body["messages"].as_array().map(Vec::len),
        Some(3)
    );
    let conv = second["conversation"]["id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (_, items) = common::json(app.get(&format!("/v1/conversations/{conv}/items")).await).await;
    assert_eq!(items["data"].as_array().map(Vec::len), Some(4), "{items}");

    // The store goes away.
    store.abort();
    let _ = store.await;
    let resp = app
        .post(
            "/v1/responses",
            json!({"model": "mock/m", "input": "Still there?", "conversation": conv}),
        )
        .await;
    let msg = common::expect_error(resp, 502, "upstream_error").await;
    assert!(
        msg.contains(&format!(
            "conversation store (http http://{addr}) failed on GET /threads/"
        )),
        "{msg}"
    );
    assert_eq!(mock.requests().len(), 2, "nothing reached the model");
}

/// A real `redis-server` (Debian package; `scripts/install-peers` installs
/// it) on a Unix socket in a temp dir, stopped when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("redis.sock");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is missing: run scripts/install-peers");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Redis {
            child,
            url: format!("redis+unix://{}", sock.display()),
            _dir: dir,
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two woollama instances sharing one Redis (and one store) hold one
/// conversation: a turn on the second follows a response of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_conversations_through_redis() {
    let redis = Redis::start();
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("Hello Cy.")));
    mock.push(Reply::Json(StatusCode::OK, completion("You are Cy.")));
    let threads = tempfile::tempdir().expect("threads");
    let mcp = json!({
        "mcpServers": {"store": {"command": env!("CARGO_BIN_EXE_woollama"),
                                 "args": ["example-server", "convstore", threads.path()]}},
        "conversationStore": "store",
    })
    .to_string();
    let instance = || {
        Setup::new(&mock)
            .env("WOOLLAMA_STATE_URL", &redis.url)
            .mcp(&mcp)
    };
    let (a, b) = (instance().start().await, instance().start().await);

    let (s, first) = a
        .respond(json!({"model": "mock/m", "input": "I am Cy.", "store": true}))
        .await;
    assert_eq!(s, 200, "{first}");
    let (s, second) = b
        .respond(
            json!({"model": "mock/m", "input": "Who am I?", "previous_response_id": first["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["conversation"]["id"], first["conversation"]["id"]);
    assert_eq!(
        mock.requests()[1].body["messages"],
        json!([
            {"role": "user", "content": "I am Cy."},
            {"role": "assistant", "content": "Hello Cy."},
            {"role": "user", "content": "Who am I?"},
        ])
    );
    let (_, listed) = common::json(a.get("/v1/conversations").await).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let (_, keyed_a) =
        common::json(a.post("/v1/conversations", json!({"key": "shared"})).await).await;
    let (s, keyed_b) =
        common::json(b.post("/v1/conversations", json!({"key": "shared"})).await).await;
    assert_eq!(s, 200);
    assert_eq!(keyed_a["id"], keyed_b["id"]);
    // Deleted through one, gone for the other (key freed with it).
    let resp = b
        .client
        .delete(b.url(&format!(
            "/v1/conversations/{}",
            keyed_a["id"].as_str().unwrap_or("")
        )))
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);
    let gone = a
        .get(&format!(
            "/v1/conversations/{}",
            keyed_a["id"].as_str().unwrap_or("")
        ))
        .await;
    common::expect_error(gone, 404, "not_found").await;
    let (s, fresh) =
        common::json(a.post("/v1/conversations", json!({"key": "shared"})).await).await;
    assert_eq!(s, 201, "{fresh}");
}

/// The README's stateful example, run by the official SDK against the
/// bundled store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_holds_a_stateful_conversation() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("Hello Ada.")));
    mock.push(Reply::Json(StatusCode::OK, completion("You are Ada.")));
    mock.push(sse(&["Still ", "Ada."]));
    let state = tempfile::tempdir().expect("state");
    let app = Setup::new(&mock).with_store(state.path()).start().await;
    common::python_script("openai_conversation_client.py", app.url("/v1"), 4).await;
    assert_eq!(
        mock.requests()[2].body["messages"].as_array().map(Vec::len),
        Some(5)
    );
}

/// A client function tool across stateful turns: a call the upstream gave no
/// id gets one, the stored turn and the response agree on it, the next
/// turn's `function_call_output` finds it, and the items show both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_call_round_trip_on_a_conversation() {
    let mock = Mock::start().await;
    let mut call = tool_calls(&[("", "add", json!({"a": 2}))]);
    call["choices"][0]["message"]["tool_calls"][0]
        .as_object_mut()
        .expect("call")
        .remove("id");
    mock.push(Reply::Json(StatusCode::OK, call));
    mock.push(Reply::Json(StatusCode::OK, completion("4")));
    let state = tempfile::tempdir().expect("state");
    let app = Setup::new(&mock).with_store(state.path()).start().await;
    let tools = json!([{"type": "function", "name": "add", "parameters": {"type": "object"}}]);
    let (s, first) = app
        .respond(json!({"model": "mock/m", "input": "add 2", "store": true, "tools": tools}))
        .await;
    assert_eq!(s, 200, "{first}");
    let call_id = first["output"][0]["call_id"]
        .as_str()
        .expect("call id")
        .to_string();
    assert!(call_id.starts_with("call_"), "{first}");
    let (s, second) = app
        .respond(json!({"model": "mock/m", "previous_response_id": first["id"], "tools": tools,
                        "input": [{"type": "function_call_output", "call_id": call_id, "output": "4"}]}))
        .await;
    assert_eq!(s, 200, "{second}");
    let sent = &mock.requests()[1].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], call_id.as_str(), "{sent}");
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": call_id, "content": "4"})
    );
    let conv = second["conversation"]["id"]
        .as_str()
        .expect("conversation")
        .to_string();
    let (_, items) = common::json(app.get(&format!("/v1/conversations/{conv}/items")).await).await;
    let kinds: Vec<&str> = items["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "function_call",
            "function_call_output",
            "message"
        ],
        "{items}"
    );
    assert_eq!(items["data"][1]["call_id"], call_id.as_str());
    let bad = app
        .get(&format!("/v1/conversations/{conv}/items?after=msg_nope"))
        .await;
    common::expect_error(bad, 400, "invalid_request_error").await;
}

/// A conversation's writer lock outlives its TTL while its turn runs (it
/// is renewed): another instance waits the whole time, and gets the lock
/// once the first lets go. The TTL here is 1 s; the first instance holds
/// the lock for 2.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_writer_lock_is_renewed_past_its_ttl() {
    use woollama::conversations::Table;
    let redis = Redis::start();
    let ttl = std::time::Duration::from_secs(1);
    let a = Table::redis_with_lock_ttl(&redis.url, ttl).expect("a");
    let b = Table::redis_with_lock_ttl(&redis.url, ttl).expect("b");
    let held = a.lock("conv_renewed").await.expect("lock");
    let mut waiting = tokio::spawn(async move { b.lock("conv_renewed").await.map(|_| ()) });
    let early = tokio::time::timeout(ttl * 5 / 2, &mut waiting).await;
    assert!(
        early.is_err(),
        "the second instance got the lock while the first held it"
    );
    drop(held);
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("the lock was never released")
        .expect("task")
        .expect("lock");
}
