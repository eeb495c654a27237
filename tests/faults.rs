//! Faults (issue 14), each as a user would meet it: an upstream that resets
//! the connection in the middle of a stream, and a thousand idle
//! connections held open while another client is served.

mod common;

use common::Setup;
use common::mock::Mock;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An "upstream" that answers one streamed chat with a first chunk and then
/// drops the connection mid-body (no terminating chunk: a reset).
async fn resetting_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = s.read(&mut buf).await;
                let chunk = format!(
                    "data: {}\n\n",
                    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": null}]})
                );
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let body = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.flush().await;
                // Gone, mid-body.
                drop(s);
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn an_upstream_that_resets_mid_stream_gives_an_error_frame_and_an_end() {
    let mock = Mock::start().await;
    let upstream = resetting_upstream().await;
    let app = Setup::new(&mock)
        .inferencers(&format!("[inferencers.flaky]\nbase_url = \"{upstream}\"\n"))
        .start()
        .await;
    // Pass-through: the chunk that came, then one error frame.
    let text = app
        .post(
            "/v1/chat/completions",
            json!({"model": "flaky/m", "stream": true, "messages": []}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("partial"), "{text}");
    assert!(text.contains("\"error\""), "{text}");
    assert!(text.contains("broke off"), "{text}");
    // Responses: `error` and `response.failed`, never `response.completed`.
    let text = app
        .post(
            "/v1/responses",
            json!({"model": "flaky/m", "stream": true, "input": "x"}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("response.failed"), "{text}");
    assert!(!text.contains("response.completed"), "{text}");
    // Anthropic Messages: an `error` event.
    let text = app
        .post(
            "/v1/messages",
            json!({"model": "flaky/m", "stream": true, "max_tokens": 5, "messages": []}),
        )
        .await
        .text()
        .await
        .expect("the stream ends");
    assert!(text.contains("event: error"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_stop_others_being_served() {
    // Both ends are in this process: room for 2,000 descriptors and more
    // (a fresh machine's soft limit may be 1,024).
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let want = 4096.min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
    }
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(
            tokio::net::TcpStream::connect(app.addr)
                .await
                .expect("connect"),
        );
    }
    // Some send half a request and stop.
    for s in idle.iter_mut().take(100) {
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .expect("write");
    }
    let r = app.get("/v1/models").await;
    assert_eq!(r.status().as_u16(), 200);
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "mock/m", "messages": []}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    drop(idle);
}
