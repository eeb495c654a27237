//! The official Python `openai` SDK against the real app: the SDK validates
//! response and SSE shapes, so it catches wire mistakes a hand-written JSON
//! check would miss. Needs Python with `openai` (see
//! `tests/python/requirements.txt`; `scripts/install-peers` sets it up).

mod common;

use std::process::Command;

use common::Setup;
use common::mock::{Mock, Reply, completion, sse};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_works_against_woollama() {
    let py = common::python();
    let probe = Command::new(&py).args(["-c", "import openai"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "the Python openai SDK is not importable with {}: run scripts/install-peers (or set WOOLLAMA_TEST_PYTHON)",
        py.display()
    );

    let mock = Mock::start().await;
    mock.push(Reply::Json(StatusCode::OK, completion("hello from mock")));
    mock.push(sse(&["Hello", ", ", "world"]));
    mock.push(Reply::Json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"error": {"message": "slow down", "type": "rate_limit_error"}}),
    ));
    mock.push(Reply::Json(
        StatusCode::OK,
        json!({"object": "list", "model": "embed", "data": [{"object": "embedding", "index": 0, "embedding": [0.25, 0.5]}],
               "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    mock.push(Reply::Stream {
        content_type: "application/x-ndjson",
        chunks: vec![include_str!("golden/ollama/stream_in.ndjson").to_string()],
        gate: None,
    });
    let app = Setup::new(&mock).start().await;
    common::python_script("openai_sdk_client.py", app.url("/v1"), 10).await;
    assert_eq!(mock.requests().len(), 5);
}
