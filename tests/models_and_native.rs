//! `GET /v1/models` (static lists, live discovery, patterns, recipes, a
//! stalled provider) and the Ollama native `num_ctx` route end to end.

mod common;

use common::mock::{Mock, Reply};
use common::{Setup, expect_error, json};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn models_lists_static_then_discovered_then_recipes() {
    let mock = Mock::start().await;
    mock.set_models(&["qwen3:8b", "llama3", "static-a", "nomic-embed"]);
    let app = Setup::new(&mock)
        .env("MOCK_KEY", "k1")
        .inferencers(
            "[inferencers.keyed.capabilities]\nembedding = [\"*embed*\"]\n\
             [inferencers.mock2]\nbase_url = \"MOCKURL\"\nmodels = [\"static-a\"]\ndiscover = true\nmodel_patterns = [\"qwen*\", \"static-a\", \"*embed*\"]\napi_key_env = \"MOCK_KEY\"\n"
                .replace("MOCKURL", &mock.base_url())
                .as_str(),
        )
        .recipes("[recipes.zeta]\ninferencer = \"mock/m\"\n[recipes.alpha]\ninferencer = \"mock/m\"\n")
        .start()
        .await;
    let (status, v) = json(app.get("/v1/models").await).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "list");
    assert_eq!(
        ids(&v),
        vec![
            "mock2/static-a",
            "mock2/qwen3:8b",
            "mock2/nomic-embed",
            "woollama/alpha",
            "woollama/zeta"
        ]
    );
    let first = &v["data"][0];
    assert_eq!(first["object"], "model");
    assert_eq!(first["owned_by"], "mock2");
    assert!(first["created"].is_u64());
    assert_eq!(v["data"][3]["owned_by"], "woollama");
    // Only the discovering provider was asked, with its key.
    let r = mock.only_request();
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/v1/models"));
    assert_eq!(r.headers["authorization"], "Bearer k1");
}

#[tokio::test]
async fn a_stalled_provider_does_not_stall_the_list() {
    let good = Mock::start().await;
    good.set_models(&["fast-model"]);
    let stalled = Mock::start().await;
    stalled.stall_models();
    let app = Setup::new(&good)
        .env("WOOLLAMA_DISCOVERY_TIMEOUT_SECS", "0.3")
        .inferencers(&format!(
            "[inferencers.aaa-slow]\nbase_url = \"{}\"\ndiscover = true\n\
             [inferencers.zzz-fast]\nbase_url = \"{}\"\ndiscover = true\n",
            stalled.base_url(),
            good.base_url()
        ))
        .recipes("")
        .start()
        .await;
    let (status, v) = json(app.get("/v1/models").await).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&v), vec!["zzz-fast/fast-model"]);
}

const NATIVE_ANSWER: &str = include_str!("golden/ollama/response_in.json");

#[tokio::test]
async fn num_ctx_goes_to_the_native_api_and_back() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::OK,
        serde_json::from_str(NATIVE_ANSWER).expect("golden"),
    ));
    let app = Setup::new(&mock).start().await;
    let (status, v) = json(
        app.post(
            "/v1/chat/completions",
            json!({
                "model": "ollama/qwen3:14b",
                "messages": [{"role": "user", "content": "summarise"}],
                "max_tokens": 64,
                "options": {"num_ctx": 16384}
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "qwen3:14b");
    assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["content"], "A short summary.");
    assert_eq!(v["usage"]["total_tokens"], 12005);

    let r = mock.only_request();
    assert_eq!(r.path, "/api/chat");
    assert_eq!(
        r.body,
        json!({
            "model": "qwen3:14b",
            "messages": [{"role": "user", "content": "summarise"}],
            "stream": false,
            "options": {"num_ctx": 16384, "num_predict": 64}
        })
    );
}

#[tokio::test]
async fn num_ctx_streams_ndjson_as_openai_sse() {
    let mock = Mock::start().await;
    let lines = include_str!("golden/ollama/stream_in.ndjson");
    // Split the NDJSON mid-line, as a network would (byte-level splits inside
    // a character are covered by the translator's unit tests).
    let mut safe = Vec::new();
    let mut cur = String::new();
    for ch in lines.chars() {
        cur.push(ch);
        if cur.len() >= 17 {
            safe.push(std::mem::take(&mut cur));
        }
    }
    safe.push(cur);
    assert!(safe.len() > 3);
    mock.push(Reply::Stream {
        content_type: "application/x-ndjson",
        chunks: safe,
        gate: None,
    });
    let app = Setup::new(&mock).start().await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "ollama/qwen3:14b", "stream": true, "messages": [], "options": {"num_ctx": 8192}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.expect("body");
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 4, "{text}");
    assert_eq!(frames[3], "data: [DONE]");
    let first: Value = serde_json::from_str(&frames[0][6..]).expect("json");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "Grüß"})
    );
    let last: Value = serde_json::from_str(&frames[2][6..]).expect("json");
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(first["id"], last["id"]);
    assert_eq!(mock.only_request().body["stream"], true);
}

#[tokio::test]
async fn native_errors_keep_their_status_and_become_openai_shaped() {
    let mock = Mock::start().await;
    mock.push(Reply::Json(
        StatusCode::NOT_FOUND,
        json!({"error": "model 'nope' not found"}),
    ));
    let app = Setup::new(&mock).start().await;
    let msg = expect_error(
        app.post(
            "/v1/chat/completions",
            json!({"model": "ollama/nope", "messages": [], "options": {"num_ctx": 4096}}),
        )
        .await,
        404,
        "upstream_error",
    )
    .await;
    assert_eq!(msg, "model 'nope' not found");
}

#[tokio::test]
async fn requests_with_tools_stay_on_the_openai_endpoint() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock).start().await;
    let resp = app
        .post(
            "/v1/chat/completions",
            json!({"model": "ollama/q", "messages": [], "options": {"num_ctx": 4096},
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let r = mock.only_request();
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.body["options"], json!({"num_ctx": 4096}));
}
