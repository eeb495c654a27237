//! OpenAI pass-through against the real app on loopback and the scripted
//! mock upstream: chat (plain and streamed), embeddings, images, and every
//! error the contract gives these routes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mock::{Gate, Mock, Reply, completion, sse_chunks};
use common::{JsonBody, Setup, expect_error, json};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::{Notify, oneshot};

/// A bound that turns a hang into a failure; passing runs never wait on it.
const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn chat_is_forwarded_with_the_bare_model_and_relayed() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("hello back")));
    let app = Setup::new(&mock).start().await;

    let body = json!({
        "model": "mock/Qwen/Qwen3-8B",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.7,
        "max_tokens": 12,
        "x_custom": {"kept": [1, 2.5, "three"]}
    });
    let (status, v) = json(app.post("/v1/chat/completions", body).await).await;
    assert_eq!(status, 200);
    assert_eq!(v, completion("hello back"));

    let r = mock.only_request();
    assert_eq!(r.path, "/v1/chat/completions");
    // model made bare (keeping its own slash), stream:false added, the rest untouched.
    assert_eq!(
        r.body,
        json!({
            "model": "Qwen/Qwen3-8B",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.7,
            "max_tokens": 12,
            "x_custom": {"kept": [1, 2.5, "three"]},
            "stream": false
        })
    );
    assert!(r.headers.get("authorization").is_none());
}

#[tokio::test]
async fn the_provider_key_is_sent_as_a_bearer_token() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("MOCK_KEY", "sk-test-123")
        .start()
        .await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "keyed/m", "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let r = mock.only_request();
    assert_eq!(r.headers["authorization"], "Bearer sk-test-123");
}

#[tokio::test]
async fn a_missing_key_fails_fast_naming_the_variable() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).env("MOCK_KEY", "").start().await;
    let msg = expect_error(
        app.post(
            "/v1/chat/completions",
            json!({"model": "keyed/m", "messages": []}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(msg, "inferencer 'keyed' requires $MOCK_KEY to be set");
    assert!(mock.requests().is_empty(), "nothing may reach the upstream");
}

#[tokio::test]
async fn streaming_relays_each_chunk_as_it_arrives() {
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    let chunks = sse_chunks(&["Hel", "lo"]);
    let expected: String = chunks.concat();
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: chunks.clone(),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::clone(&release),
            dropped: None,
        }),
    });
    let app = Setup::new(&mock).start().await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    // The upstream is holding after its first chunk: we must already have it.
    let mut got = Vec::new();
    while got.len() < chunks[0].len() {
        got.extend_from_slice(&body.next().await.expect("a chunk").expect("ok"));
    }
    assert_eq!(String::from_utf8_lossy(&got), chunks[0]);
    release.notify_one();
    while let Some(c) = body.next().await {
        got.extend_from_slice(&c.expect("ok"));
    }
    assert_eq!(
        String::from_utf8(got).expect("utf8"),
        expected,
        "bytes relayed verbatim"
    );
    assert_eq!(mock.only_request().body["stream"], true);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream() {
    let mock = Mock::start().await;
    let (tx, rx) = oneshot::channel();
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: sse_chunks(&["one", "two", "three"]),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::new(Notify::new()),
            dropped: Some(tx),
        }),
    });
    let app = Setup::new(&mock).start().await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "stream": true, "messages": []}),
        )
        .await;
    let mut body = resp.bytes_stream();
    body.next().await.expect("first chunk").expect("ok");
    drop(body);
    // The upstream stream is dropped once woollama notices the client left.
    tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .expect("the upstream stream was not cancelled")
        .expect("sender dropped without signalling");
}

#[tokio::test]
async fn upstream_errors_are_relayed_with_status_and_body() {
    let mock = Mock::start().await;
    let err =
        json!({"error": {"message": "rate limited", "type": "rate_limit_error", "code": "429"}});
    mock.push(Reply::Json(StatusCode::TOO_MANY_REQUESTS, err.clone()));
    mock.push(Reply::Json(
        StatusCode::BAD_REQUEST,
        json!({"error": {"message": "bad stream", "type": "x"}}),
    ));
    let app = Setup::new(&mock).start().await;

    let (s, v) = json(
        app.post("/v1/chat/completions", json!({"model": "mock/m"}))
            .await,
    )
    .await;
    assert_eq!((s, v), (429, err));

    // A streaming request gets the upstream error as JSON, never an empty 200 stream.
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "stream": true}),
        )
        .await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    let (s, v) = json(resp).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["message"], "bad stream");
}

#[tokio::test]
async fn a_non_json_upstream_error_is_wrapped_openai_style() {
    let mock = Mock::start().await;
    mock.push(Reply::Raw(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/html",
        "<h1>overloaded</h1>".into(),
    ));
    let app = Setup::new(&mock).start().await;
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "mock/m"}))
            .await,
        503,
        "upstream_error",
    )
    .await;
    assert!(
        msg.contains("503") && msg.contains("<h1>overloaded</h1>"),
        "{msg}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_naming_it() {
    // A port that was just free: nothing listens there.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .inferencers(&format!(
            "[inferencers.dead]\nbase_url = \"http://127.0.0.1:{port}/v1\"\n"
        ))
        .start()
        .await;
    let msg = expect_error(
        app.post(
            "/v1/chat/completions",
            json!({"model": "dead/m", "messages": []}),
        )
        .await,
        502,
        "server_error",
    )
    .await;
    assert!(
        msg.starts_with("inferencer 'dead' is unreachable at http://127.0.0.1:"),
        "{msg}"
    );
    // …and says how to fix it.
    assert!(
        msg.contains("fix `base_url` under [inferencers.dead] in inferencers.toml"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_hung_upstream_times_out_with_a_504() {
    let mock = Mock::start().await;
    mock.push(Reply::Stall);
    mock.push(Reply::Stall);
    let app = Setup::new(&mock)
        .short_timeouts(Duration::from_millis(300))
        .start()
        .await;
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "mock/m"}))
            .await,
        504,
        "server_error",
    )
    .await;
    assert!(
        msg.starts_with("inferencer 'mock' did not answer within"),
        "{msg}"
    );
    // Streaming too: the deadline for the response headers applies.
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 504);
}

#[tokio::test]
async fn a_stream_that_goes_quiet_ends_with_an_error_frame() {
    let mock = Mock::start().await;
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: sse_chunks(&["partial", "never"]),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::new(Notify::new()),
            dropped: None,
        }),
    });
    let app = Setup::new(&mock)
        .short_timeouts(Duration::from_millis(300))
        .start()
        .await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "stream": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 2, "{text}");
    assert!(frames[0].contains("partial"));
    let err: serde_json::Value =
        serde_json::from_str(frames[1].strip_prefix("data: ").expect("data frame")).expect("json");
    assert_eq!(err["error"]["type"], "upstream_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("did not answer within")
    );
}

#[tokio::test]
async fn request_errors_are_openai_shaped() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .recipes("[recipes.known]\ninferencer = \"nowhere/m\"\n")
        .start()
        .await;
    let post_raw = |body: &'static str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .body(body)
            .send()
    };

    let msg = expect_error(
        post_raw("{not json").await.expect("req"),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        msg.starts_with("the request body is not valid JSON"),
        "{msg}"
    );
    let msg = expect_error(
        post_raw("[1, 2]").await.expect("req"),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(msg.contains("must be a JSON object"), "{msg}");
    let msg = expect_error(
        post_raw("").await.expect("req"),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(msg.contains("empty"), "{msg}");
    let msg = expect_error(
        post_raw(r#"{"messages": []}"#).await.expect("req"),
        400,
        "invalid_request_error",
    )
    .await;
    assert!(msg.starts_with("missing required field `model`"), "{msg}");

    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "gpt-4o"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(
        msg,
        "unknown model namespace: 'gpt-4o'. Use 'woollama/<recipe>' or '<provider>/<model>' for a known inferencer (anthropic, groq, keyed, mock, ollama, openai, openrouter, together)."
    );
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "woollama/nope"}))
            .await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(msg, "unknown recipe 'nope'");
    expect_error(
        app.post("/v1/chat/completions", json!({"model": "woollama/known"}))
            .await,
        501,
        "not_implemented",
    )
    .await;
    let msg = expect_error(
        app.post("/v1/embeddings", json!({"model": "claude-code/haiku"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(msg.contains("claude-code/<model> answers chat"), "{msg}");

    expect_error(app.get("/v1/nothing").await, 404, "not_found").await;
    expect_error(
        app.get("/v1/chat/completions").await,
        405,
        "invalid_request_error",
    )
    .await;
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn bodies_over_32_mib_are_refused_with_413() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let send_padded = |mib: usize| {
        let body = format!(
            r#"{{"model": "mock/m", "pad": "{}"}}"#,
            "x".repeat(mib * 1024 * 1024)
        );
        app.client
            .post(app.url("/v1/chat/completions"))
            .body(body)
            .send()
    };
    expect_error(
        send_padded(33).await.expect("req"),
        413,
        "invalid_request_error",
    )
    .await;
    // Just under the limit is accepted.
    assert_eq!(send_padded(31).await.expect("req").status(), 200);
}

#[tokio::test]
async fn embeddings_and_images_pass_through() {
    let mock = Mock::start().await;
    let emb = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], "model": "e"});
    mock.push(Reply::Json(StatusCode::OK, emb.clone()));
    let img = json!({"created": 1, "data": [{"b64_json": "aGk="}]});
    mock.push(Reply::Json(StatusCode::OK, img.clone()));
    let app = Setup::new(&mock).start().await;

    let (s, v) = json(
        app.post(
            "/v1/embeddings",
            json!({"model": "mock/nomic-embed", "input": "hi"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, v), (200, emb));
    let (s, v) = json(
        app.post(
            "/v1/images/generations",
            json!({"model": "mock/sd", "prompt": "a cat", "n": 1}),
        )
        .await,
    )
    .await;
    assert_eq!((s, v), (200, img));

    let reqs = mock.requests();
    assert_eq!(reqs[0].path, "/v1/embeddings");
    assert_eq!(reqs[0].body, json!({"model": "nomic-embed", "input": "hi"}));
    assert_eq!(reqs[1].path, "/v1/images/generations");
    assert_eq!(
        reqs[1].body,
        json!({"model": "sd", "prompt": "a cat", "n": 1})
    );

    let msg = expect_error(
        app.post(
            "/v1/embeddings",
            json!({"model": "woollama/x", "input": "hi"}),
        )
        .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        msg.contains("recipes answer /v1/chat/completions only"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_declared_capability_mismatch_is_refused() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .inferencers("[inferencers.mock.capabilities]\nembedding = [\"*embed*\"]\n")
        .start()
        .await;
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "mock/nomic-embed"}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert!(
        msg.starts_with(
            "model 'mock/nomic-embed' is declared as embedding for this inferencer, not 'chat'"
        ),
        "{msg}"
    );
    // Undeclared models stay eligible everywhere.
    assert_eq!(
        app.post("/v1/chat/completions", json!({"model": "mock/qwen"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post("/v1/embeddings", json!({"model": "mock/nomic-embed"}))
            .await
            .status(),
        200
    );
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn surface_auth_requires_the_exact_bearer_token() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("WOOLLAMA_TOKEN", "s3cret")
        .start()
        .await;
    let resp = app.get("/v1/models").await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let msg = expect_error(resp, 401, "authentication_error").await;
    assert_eq!(msg, "unauthorized: missing or invalid bearer token");
    for bad in [
        "Bearer wrong",
        "bearer s3cret",
        "Bearer  s3cret",
        "Bearer s3cret2",
        "s3cret",
    ] {
        let resp = app
            .client
            .get(app.url("/v1/models"))
            .header("authorization", bad)
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status(), 401, "{bad:?}");
    }
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("authorization", "Bearer s3cret")
        .json_body(&json!({"model": "mock/m"}))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status(), 200);
    // The surface token is never forwarded upstream.
    assert!(mock.only_request().headers.get("authorization").is_none());
}

/// A non-streaming answer is relayed as it arrives, not read whole first: the
/// client has the first bytes while the upstream is still sending.
#[tokio::test]
async fn a_plain_answer_is_relayed_without_buffering() {
    let mock = Mock::start().await;
    let release = Arc::new(Notify::new());
    let whole = completion("relayed in pieces").to_string();
    let (head, tail) = whole.split_at(whole.len() / 2);
    mock.push(Reply::Stream {
        content_type: "application/json",
        chunks: vec![head.to_string(), tail.to_string()],
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::clone(&release),
            dropped: None,
        }),
    });
    let app = Setup::new(&mock).start().await;
    let resp = tokio::time::timeout(
        LIMIT,
        app.post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "messages": []}),
        ),
    )
    .await
    .expect("the answer's head came before its end");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while got.len() < head.len() {
        let chunk = tokio::time::timeout(LIMIT, body.next())
            .await
            .expect("head");
        got.extend_from_slice(&chunk.expect("chunk").expect("ok"));
    }
    release.notify_one();
    while let Some(c) = body.next().await {
        got.extend_from_slice(&c.expect("ok"));
    }
    assert_eq!(String::from_utf8(got).expect("utf8"), whole);
}

/// What woollama must read whole (a recipe's turn, an Ollama native answer
/// to translate) is bounded: beyond the limit, a 502 that names it.
#[tokio::test]
async fn an_answer_too_large_to_read_whole_is_a_502_naming_the_limit() {
    let mock = Mock::start().await;
    let huge = "x".repeat(woollama::inference::RESPONSE_LIMIT + 1);
    mock.push(Reply::Json(StatusCode::OK, completion(&huge)));
    mock.push(Reply::Json(
        StatusCode::OK,
        json!({"model": "m", "message": {"role": "assistant", "content": huge}, "done": true}),
    ));
    let app = Setup::new(&mock)
        .recipes("[recipes.big]\ninferencer = \"mock/m\"\n")
        .start()
        .await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/big", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    let msg = expect_error(resp, 502, "server_error").await;
    assert!(msg.contains("more than 32 MiB"), "{msg}");
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "ollama/m", "messages": [], "options": {"num_ctx": 4096}}),
        )
        .await;
    let msg = expect_error(resp, 502, "server_error").await;
    assert!(msg.contains("more than 32 MiB"), "{msg}");
}

/// An answer given before the request body was read (404, 405, 401) closes
/// the connection and says so, so a keep-alive client's next request goes
/// on a fresh one instead of failing on a dead one.
#[tokio::test]
async fn an_early_refusal_does_not_break_a_keep_alive_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let body = "x".repeat(2000);
    for (method, path, status) in [
        ("POST", "/v1/zz", 404),
        ("PUT", "/v1/models", 405),
        ("POST", "/v1/tools", 405),
    ] {
        // On the wire: the answer says `connection: close`.
        let mut s = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tokio::time::timeout(LIMIT, s.read_to_end(&mut raw))
            .await
            .expect("the server closes the connection")
            .expect("read");
        let raw = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        assert!(raw.starts_with(&format!("http/1.1 {status}")), "{raw}");
        assert!(raw.contains("connection: close"), "{method} {path}: {raw}");
        // Through a pooling client: the next request on it succeeds.
        let client = woollama::inference::build_client().expect("client");
        let url = app.url(path);
        let r = client
            .request(method.parse().expect("method"), &url)
            .body(body.clone())
            .send()
            .await
            .expect("refusal");
        assert_eq!(r.status().as_u16(), status);
        let r = client
            .get(app.url("/v1/models"))
            .send()
            .await
            .expect("next request");
        assert_eq!(r.status(), 200);
    }
}

/// The first-byte and idle timeouts a user sets: per inferencer in
/// `inferencers.toml`, or for all through the environment.
#[tokio::test]
async fn upstream_timeouts_are_settings() {
    let mock = Mock::start().await;
    mock.push(Reply::Stall);
    mock.push(Reply::Stream {
        content_type: "text/event-stream",
        chunks: sse_chunks(&["partial", "never"]),
        gate: Some(Gate {
            hold_after: 1,
            release: Arc::new(Notify::new()),
            dropped: None,
        }),
    });
    mock.push(Reply::Stall);
    let base = mock.base_url();
    let app = Setup::new(&mock)
        .inferencers(&format!(
            "[inferencers.quick]\nbase_url = \"{base}\"\nfirst_byte_timeout_secs = 0.3\nidle_timeout_secs = 0.3\n"
        ))
        .env("WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS", "0.4")
        .start()
        .await;
    // Headers that never come: its own 0.3 s.
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "quick/m"}))
            .await,
        504,
        "server_error",
    )
    .await;
    assert!(msg.contains("did not answer within 0.3s"), "{msg}");
    // A stream that goes quiet after its first chunk: an error frame.
    let text = app
        .post(
            "/v1/chat/completions",
            json!({"model": "quick/m", "stream": true}),
        )
        .await
        .text()
        .await
        .expect("body");
    assert!(text.contains("partial") && text.contains("error"), "{text}");
    // Every other inferencer: the environment's 0.4 s.
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "mock/m"}))
            .await,
        504,
        "server_error",
    )
    .await;
    assert!(msg.starts_with("inferencer 'mock' did not answer"), "{msg}");
}

/// A non-streamed call's whole deadline bounds its headers too, even when
/// the first-byte allowance is longer (the exchange is over at the
/// deadline, not after it).
#[tokio::test]
async fn a_long_first_byte_allowance_does_not_outlast_the_call() {
    let mock = Mock::start().await;
    mock.push(Reply::Stall);
    let app = Setup::new(&mock)
        .short_timeouts(Duration::from_millis(300))
        .env("WOOLLAMA_UPSTREAM_FIRST_BYTE_SECS", "600")
        .start()
        .await;
    let msg = expect_error(
        app.post("/v1/chat/completions", json!({"model": "mock/m"}))
            .await,
        504,
        "server_error",
    )
    .await;
    assert!(msg.contains("did not answer within 0.3s"), "{msg}");
}

/// Credentials in a plain-http base URL become Basic auth, as reqwest does
/// (such an upstream is not called through the fast client, which would
/// drop them).
#[tokio::test]
async fn credentials_in_a_base_url_are_sent() {
    let mock = Mock::start().await;
    let base = mock.base_url().replace("http://", "http://user:pw@");
    let app = Setup::new(&mock)
        .inferencers(&format!("[inferencers.locked]\nbase_url = \"{base}\"\n"))
        .start()
        .await;
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "locked/m", "messages": []}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let seen = mock.only_request();
    assert_eq!(
        seen.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Basic dXNlcjpwdw==")
    );
}

/// A body whose JSON text is well formed but holds a string that is not
/// text (a lone surrogate) is refused where woollama needs it as a tree (a
/// recipe), never run as an empty request.
#[tokio::test]
async fn a_string_that_is_not_text_is_refused_where_the_body_is_read() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .recipes("[recipes.plain]\ninferencer = \"mock/m\"\n")
        .start()
        .await;
    let body = r#"{"model":"woollama/plain","messages":[{"role":"user","content":"\ud800"}]}"#;
    let r = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let msg = expect_error(r, 400, "invalid_request_error").await;
    assert!(msg.contains("not valid JSON"), "{msg}");
    assert!(mock.requests().is_empty(), "the recipe ran");
}
