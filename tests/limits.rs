//! Request limits, as a client that misbehaves meets them: headers past the
//! limit (431), and a body that is declared but never sent (408 once its
//! deadline passes, the connection closed) — both with OpenAI-shaped JSON.

mod common;

use common::Setup;
use common::mock::Mock;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes and reads until the server closes the connection.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(common::daemon::LIMIT, s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {response}"))
}

#[tokio::test]
async fn headers_past_the_limit_are_refused() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let big = "x".repeat(40 * 1024);
    let r = app
        .client
        .get(app.url("/v1/models"))
        .header("x-padding", &big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 431);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("32768-byte limit")),
        "{e}"
    );
    // Just under the limit is fine.
    let r = app
        .client
        .get(app.url("/v1/models"))
        .header("x-padding", "x".repeat(30 * 1024))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_body_that_never_comes_is_answered_408_and_the_connection_closed() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("WOOLLAMA_BODY_TIMEOUT_SECS", "0.5")
        .start()
        .await;
    let response = exchange(
        app.addr,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\": ",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    let e = body_of(&response);
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not arrive within 0.5s")),
        "{e}"
    );
    assert!(mock.requests().is_empty());
}

/// `/mcp`'s own refusals are JSON a JSON-RPC client and an OpenAI-style one
/// can both read, and a body that is not JSON is a 400 parse error.
#[tokio::test]
async fn mcp_refusals_are_json() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let post = |accept: &'static str, body: &'static str| {
        app.client
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body)
            .send()
    };
    let r = post("application/json, text/event-stream", "{bad")
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["jsonrpc"], "2.0");
    assert_eq!(e["error"]["code"], -32700);
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the request body is not a JSON-RPC message")),
        "{e}"
    );
    let r = post("application/json", "{}").await.expect("send");
    assert_eq!(r.status().as_u16(), 406);
    let e: Value = r.json().await.expect("json");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("text/event-stream")),
        "{e}"
    );
}
