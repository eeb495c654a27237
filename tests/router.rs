//! The HTTP surface in process, without a listener: `http::router` (and the
//! TCP listener's surface auth) driven through `tower::ServiceExt::oneshot`.
//! Every refusal is a table row: method, path, headers, body → status, error
//! type and a piece of the message that says what to fix.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::Setup;
use common::mock::Mock;

const RECIPES: &str = "[recipes.plain]\ninferencer = \"mock/m\"\n";

async fn app(mock: &Mock, token: Option<&str>) -> Router {
    let mut setup = Setup::new(mock).recipes(RECIPES);
    if let Some(t) = token {
        setup = setup.env("WOOLLAMA_TOKEN", t);
    }
    let state = setup.state();
    let live = woollama::app::Live::new(state.clone(), woollama::config::Env::default());
    let router = woollama::http::router(live.clone(), Router::new());
    match token {
        Some(_) => woollama::http::with_surface_auth(router, &live),
        None => router,
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, v)
}

#[tokio::test]
async fn refusals_are_openai_shaped_and_say_what_to_fix() {
    let mock = Mock::start().await;
    let app = app(&mock, None).await;
    let rows: &[(&str, &str, &str, u16, &str, &str)] = &[
        (
            "GET",
            "/v1/nothing",
            "",
            404,
            "not_found",
            "no route for GET /v1/nothing",
        ),
        (
            "GET",
            "/v1/chat/completions",
            "",
            405,
            "invalid_request_error",
            "GET is not allowed",
        ),
        (
            "POST",
            "/v1/chat/completions",
            "{not json",
            400,
            "invalid_request_error",
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/chat/completions",
            "[]",
            400,
            "invalid_request_error",
            "not an array",
        ),
        (
            "POST",
            "/v1/chat/completions",
            "",
            400,
            "invalid_request_error",
            "body is empty",
        ),
        (
            "POST",
            "/v1/chat/completions",
            "{}",
            400,
            "invalid_request_error",
            "missing required field `model`",
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model": 3}"#,
            400,
            "invalid_request_error",
            "`model` must be a string",
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model": "gpt-4o"}"#,
            400,
            "invalid_request_error",
            "unknown model namespace: 'gpt-4o'",
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model": "woollama/nope"}"#,
            404,
            "not_found",
            "unknown recipe 'nope'",
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model": "woollama/plain", "messages": 1}"#,
            400,
            "invalid_request_error",
            "`messages` must be an array",
        ),
        (
            "POST",
            "/v1/chat/completions",
            r#"{"model": "claude-agent/opus"}"#,
            400,
            "invalid_request_error",
            "stateful /v1/responses only",
        ),
        (
            "POST",
            "/v1/embeddings",
            r#"{"model": "woollama/plain"}"#,
            400,
            "invalid_request_error",
            "recipes answer /v1/chat/completions only",
        ),
        (
            "POST",
            "/v1/embeddings",
            r#"{"model": "keyed/e"}"#,
            400,
            "invalid_request_error",
            "requires $MOCK_KEY to be set",
        ),
    ];
    for (method, path, body, status, kind, says) in rows {
        let (s, _, v) = call(&app, method, path, &[], body).await;
        let what = format!("{method} {path} {body}: {v}");
        assert_eq!(s.as_u16(), *status, "{what}");
        assert_eq!(v["error"]["type"], *kind, "{what}");
        let message = v["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{what}");
    }
    assert!(mock.requests().is_empty(), "a refusal reached the upstream");
}

#[tokio::test]
async fn surface_auth_refuses_before_any_route() {
    let mock = Mock::start().await;
    let app = app(&mock, Some("s3cret")).await;
    type Row<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let rows: &[Row] = &[
        (&[], 401, "authentication_error"),
        (
            &[("authorization", "Bearer wrong")],
            401,
            "authentication_error",
        ),
        (
            &[("authorization", "bearer s3cret")],
            401,
            "authentication_error",
        ),
        (
            &[
                ("authorization", "Bearer s3cret"),
                ("host", "rebound.evil.example"),
            ],
            403,
            "permission_error",
        ),
        (
            &[
                ("authorization", "Bearer s3cret"),
                ("origin", "https://evil.example"),
            ],
            403,
            "permission_error",
        ),
    ];
    for (headers, status, kind) in rows {
        let (s, h, v) = call(&app, "GET", "/v1/models", headers, "").await;
        assert_eq!(s.as_u16(), *status, "{headers:?}: {v}");
        assert_eq!(v["error"]["type"], *kind, "{headers:?}");
        if *status == 401 {
            assert_eq!(h["www-authenticate"], "Bearer");
        }
    }
    let (s, _, v) = call(
        &app,
        "GET",
        "/v1/models",
        &[("authorization", "Bearer s3cret")],
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|m| m["id"] == "woollama/plain")),
        "{v}"
    );
}
