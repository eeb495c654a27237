//! `claude-code/<model>` and `claude-resume` against a fake `claude`
//! (`tests/python/fake_claude.py`) that records its argv, environment,
//! working directory and prompt, and answers like the real CLI or fails on
//! cue — fast and deterministic. The real CLI is driven in
//! `tests/claude_cli.rs`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::fake_claude::{Fake, fake};
use common::mock::Mock;
use common::{JsonBody as _, Setup, TestApp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const RECIPES: &str = r#"
[recipes.cc-assistant]
inferencer = "claude-code/haiku"
system = "You are a concise, helpful assistant."
tools = []
"#;

fn setup(mock: &Mock, fake: &Fake) -> Setup {
    Setup::new(mock)
        .env("WOOLLAMA_CLAUDE_BIN", &fake.bin.to_string_lossy())
        .env("PATH", &std::env::var("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", "sk-must-not-leak")
        .env("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
        .recipes(RECIPES)
}

async fn chat(app: &TestApp, model: &str, content: &str) -> (StatusCode, Value) {
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": model, "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": content}]}),
        )
        .await;
    let status = r.status();
    (status, r.json().await.expect("json"))
}

fn argv(run: &Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .map(|a| a.as_str().expect("string").to_string())
        .collect()
}

#[tokio::test]
async fn a_tool_less_call_is_locked_down_and_leaks_no_key() {
    let (mock, fake) = (Mock::start().await, fake());
    let app = setup(&mock, &fake).start().await;
    let (status, body) = chat(&app, "claude-code/haiku", "- buy milk").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "fake claude: - buy milk"
    );
    assert_eq!(body["usage"]["total_tokens"], 7);

    let run = fake.last();
    // The prompt reached the model whole, though it starts with `-`: on
    // stdin, never as an argument the CLI could read as an option.
    assert_eq!(run["prompt"], "- buy milk");
    assert_eq!(
        argv(&run),
        [
            "-p",
            "--output-format",
            "json",
            "--max-turns",
            "1",
            "--no-session-persistence",
            "--strict-mcp-config",
            "--setting-sources",
            "project",
            "--permission-mode",
            "dontAsk",
            "--tools",
            "",
            "--disallowedTools",
            "Bash,Read,Write,Edit,NotebookEdit,WebFetch,WebSearch,Glob,Grep,Task,LSP",
            "--system-prompt",
            "Be terse.",
            "--model",
            "haiku",
        ]
    );
    // The child's environment, seen from its side: the allow-list and the
    // switches, no provider key.
    let env = run["env"].as_object().expect("env");
    assert!(!env.contains_key("OPENAI_API_KEY"), "{env:?}");
    assert!(!env.contains_key("ANTHROPIC_API_KEY"), "{env:?}");
    assert!(!env.contains_key("WOOLLAMA_CLAUDE_BIN"), "{env:?}");
    for (k, v) in [
        ("CLAUDE_CODE_MAX_RETRIES", "0"),
        ("ENABLE_TOOL_SEARCH", "false"),
        ("CLAUDE_CODE_DISABLE_CLAUDE_MDS", "1"),
        ("CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS", "1"),
    ] {
        assert_eq!(env.get(k).and_then(Value::as_str), Some(v), "{k}");
    }
    // A fresh directory under the state dir, gone after the call.
    let cwd = PathBuf::from(run["cwd"].as_str().expect("cwd"));
    let calls = app.config.settings.state_dir.join("claude/calls");
    assert_eq!(cwd.parent(), Some(calls.as_path()), "{}", cwd.display());
    assert!(!cwd.exists(), "the per-call directory was removed");
}

#[tokio::test]
async fn a_recipe_streams_and_the_responses_api_answers() {
    let (mock, fake) = (Mock::start().await, fake());
    let app = setup(&mock, &fake).start().await;
    let (status, body) = chat(&app, "woollama/cc-assistant", "hello").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = fake.last();
    let args = argv(&run);
    // The recipe's system prompt, then the caller's.
    let system = &args[args
        .iter()
        .position(|a| a == "--system-prompt")
        .expect("system")
        + 1];
    assert_eq!(system, "You are a concise, helpful assistant.\n\nBe terse.");

    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "woollama/cc-assistant", "stream": true,
                   "messages": [{"role": "user", "content": "stream me"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("body");
    let deltas: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(deltas, "fake claude: stream me");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let args = argv(&fake.last());
    assert!(
        args.join(" ")
            .contains("--output-format stream-json --verbose --include-partial-messages"),
        "{args:?}"
    );

    let r = app
        .post(
            "/v1/responses",
            json!({"model": "claude-code/sonnet", "input": "via responses"}),
        )
        .await;
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body["output"][0]["content"][0]["text"], "fake claude: via responses",
        "{body}"
    );
}

#[tokio::test]
async fn failures_carry_the_clis_own_words() {
    let (mock, fake) = (Mock::start().await, fake());
    let app = setup(&mock, &fake).start().await;
    for (cue, expected) in [
        (
            "FAIL-LOGIN",
            "claude-code backend: claude returned an error result: Not logged in · Please run /login",
        ),
        (
            "FAIL-APIKEY",
            "claude-code backend: claude returned an error result: Invalid API key (API status 401)",
        ),
        (
            "FAIL-CRASH",
            "claude-code backend: claude exited 2: boom: segfault",
        ),
        (
            "FAIL-GARBAGE",
            "claude-code backend: could not parse claude output",
        ),
        (
            "FAIL-NORESULT",
            "claude-code backend: no 'result' event in claude output",
        ),
    ] {
        let (status, body) = chat(&app, "claude-code/haiku", cue).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{cue}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with(expected), "{cue}: {message}");
        assert_eq!(body["error"]["type"], "server_error");
    }

    // Client tools are refused before anything runs.
    let before = fake.runs().len();
    let r = app
        .post(
            "/v1/chat/completions",
            json!({"model": "claude-code/haiku", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(fake.runs().len(), before);
    // Not a chat endpoint.
    let r = app
        .post(
            "/v1/embeddings",
            json!({"model": "claude-code/haiku", "input": "x"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_missing_binary_is_named() {
    let mock = Mock::start().await;
    let app = Setup::new(&mock)
        .env("WOOLLAMA_CLAUDE_BIN", "/nonexistent/claude")
        .start()
        .await;
    let (status, body) = chat(&app, "claude-code/haiku", "hi").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("claude-code backend: `/nonexistent/claude`: no such file;")
            && message.contains("WOOLLAMA_CLAUDE_BIN"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_hangs_is_killed_with_its_group() {
    let (mock, fake) = (Mock::start().await, fake());
    let timeouts = woollama::inference::Timeouts {
        claude: woollama::inference::claude::Timeouts {
            plain: Duration::from_secs(2),
            delegation: Duration::from_secs(2),
        },
        ..woollama::inference::Timeouts::default()
    };
    let app = setup(&mock, &fake).timeouts(timeouts).start().await;
    let (status, body) = chat(&app, "claude-code/haiku", "HANG").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        body["error"]["message"],
        "claude-code backend: claude timed out after 2s"
    );
    let pid = u32::try_from(fake.last()["pid"].as_u64().expect("pid")).expect("pid");
    let left = tokio::task::spawn_blocking(move || common::daemon::wait_gone(&[pid]))
        .await
        .expect("join");
    assert!(left.is_empty(), "the hung claude still runs: {left:?}");
}

#[tokio::test]
async fn a_conversation_resumes_claudes_session_in_its_own_directory() {
    let (mock, fake) = (Mock::start().await, fake());
    let state = tempfile::tempdir().expect("state");
    let shared = state.path().to_string_lossy().to_string();
    let app = setup(&mock, &fake)
        .env("WOOLLAMA_STATE_DIR", &shared)
        .start()
        .await;
    let first: Value = app
        .post(
            "/v1/responses",
            json!({"model": "claude-code/sonnet", "input": "first", "store": true,
                   "instructions": "Be brief."}),
        )
        .await
        .json()
        .await
        .expect("json");
    let conversation = first["conversation"]["id"].as_str().expect("conversation");
    let run1 = fake.last();
    let args1 = argv(&run1);
    assert!(!args1.contains(&"--resume".to_string()), "{args1:?}");
    assert!(!args1.contains(&"--no-session-persistence".to_string()));
    assert!(args1.join(" ").contains("--system-prompt Be brief."));
    let dir = app
        .config
        .settings
        .state_dir
        .join("claude/conversations")
        .join(conversation);
    assert_eq!(run1["cwd"], dir.to_string_lossy().as_ref());

    // The second turn, streamed, chained by previous_response_id.
    let r = app
        .post(
            "/v1/responses",
            json!({"model": "claude-code/sonnet", "input": "second", "stream": true,
                   "previous_response_id": first["id"]}),
        )
        .await;
    let text = r.text().await.expect("body");
    assert!(text.contains("response.completed"), "{text}");
    let run2 = fake.last();
    let args2 = argv(&run2);
    let session = &args2[args2.iter().position(|a| a == "--resume").expect("resume") + 1];
    // The session the first turn started (the fake made it up).
    assert_eq!(uuid::Uuid::parse_str(session).map(|_| ()), Ok(()));
    assert!(!args2.contains(&"--system-prompt".to_string()), "{args2:?}");
    assert_eq!(run2["prompt"], "second");
    assert_eq!(run2["cwd"], run1["cwd"]);

    let conv: Value = app
        .get(&format!("/v1/conversations/{conversation}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(conv["backend"], "claude-resume");

    // After a restart, the conversation goes on in the same session and
    // directory.
    let second_id = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .and_then(|e| e["response"]["id"].as_str().map(str::to_string))
        .expect("the second response's id");
    drop(app);
    let app = setup(&mock, &fake)
        .env("WOOLLAMA_STATE_DIR", &shared)
        .start()
        .await;
    let (status, third) = app
        .respond(json!({"model": "claude-code/sonnet", "input": "third",
                        "previous_response_id": second_id}))
        .await;
    assert_eq!(status, 200, "{third}");
    let run3 = fake.last();
    let args3 = argv(&run3);
    assert_eq!(
        &args3[args3.iter().position(|a| a == "--resume").expect("resume") + 1],
        session
    );
    assert_eq!(run3["cwd"], run1["cwd"]);

    // DELETE removes the working directory.
    assert!(dir.is_dir());
    let r = app
        .client
        .delete(app.url(&format!("/v1/conversations/{conversation}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!dir.exists());
}

/// A delegate's grant, from the outside: with `WOOLLAMA_TOKEN` set, the
/// grant's token opens `/mcp` (and nothing else), lists only the granted
/// tool, refuses any other, and stops working when the grant ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_opens_only_its_tools_on_mcp() {
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let mock = Mock::start().await;
    let bin = env!("CARGO_BIN_EXE_woollama");
    let app = Setup::new(&mock)
        .env("WOOLLAMA_TOKEN", "surface-secret")
        .mcp(&format!(
            r#"{{"mcpServers": {{"hello": {{"command": "{bin}", "args": ["example-server", "hello"]}}}}}}"#
        ))
        .start()
        .await;
    let grant = app
        .tools
        .grants()
        .grant(["mcp__hello__count_to".to_string()]);
    let token = grant.token().expose().to_string();

    // Not a key to the rest of the surface.
    let r = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("models");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let transport = StreamableHttpClientTransport::with_client(
        woollama::inference::build_client().expect("client"),
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")).auth_header(token.clone()),
    );
    let client = ().serve(transport).await.expect("MCP initialize with the grant");
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["mcp__hello__count_to"]);
    let ok = client
        .call_tool(
            CallToolRequestParams::new("mcp__hello__count_to")
                .with_arguments(json!({"n": 2}).as_object().cloned().expect("object")),
        )
        .await
        .expect("granted call");
    assert_ne!(ok.is_error, Some(true), "{ok:?}");
    for refused in ["mcp__hello__hello", "chat"] {
        let r = client.call_tool(CallToolRequestParams::new(refused)).await;
        assert!(r.is_err(), "{refused} was not refused: {r:?}");
    }
    let prompts = client.list_all_prompts().await.expect("prompts/list");
    assert!(prompts.is_empty());
    let _ = client.cancel().await;

    // The grant ended: its token opens nothing.
    drop(grant);
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json_body(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("mcp");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

/// A conversation made without a model (the SDK's bare `create()`) takes
/// its first turn's backend for good: its items and DELETE go there.
#[tokio::test]
async fn a_bare_conversation_takes_its_first_turns_backend() {
    let (mock, fake) = (Mock::start().await, fake());
    let app = setup(&mock, &fake).start().await;
    let (status, conv) = common::json(app.post("/v1/conversations", json!({})).await).await;
    assert_eq!(status, 201, "{conv}");
    assert_eq!(conv["backend"], Value::Null);
    let id = conv["id"].as_str().expect("id").to_string();
    let (status, r) = app
        .respond(json!({"model": "claude-code/haiku", "input": "hi", "conversation": id}))
        .await;
    assert_eq!(status, 200, "{r}");
    let (_, conv) = common::json(app.get(&format!("/v1/conversations/{id}")).await).await;
    assert_eq!(conv["backend"], "claude-resume");
    assert_eq!(conv["model"], "claude-code/haiku");
    let dir = app
        .config
        .settings
        .state_dir
        .join("claude/conversations")
        .join(&id);
    assert!(dir.is_dir());
    let r = app
        .client
        .delete(app.url(&format!("/v1/conversations/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !dir.exists(),
        "the conversation's directory was left behind"
    );
    assert_eq!(fake.runs().len(), 1);
}

/// `woollama mcp` serves delegates even when the first recipe that
/// delegates arrives by a reload: the `chat` tool runs it through Claude
/// (here the fake) with the recipe's tool granted, instead of answering that
/// there is no endpoint for delegates until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegating_recipe_added_by_reload_runs_from_woollama_mcp() {
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;

    #[derive(Clone)]
    struct Heard(tokio::sync::mpsc::UnboundedSender<()>);
    impl rmcp::ClientHandler for Heard {
        async fn on_prompt_list_changed(
            &self,
            _: rmcp::service::NotificationContext<rmcp::RoleClient>,
        ) {
            let _ = self.0.send(());
        }
    }

    let fake = fake();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::woollama_mcp(dir.path(), "");
    cmd.env("WOOLLAMA_CLAUDE_BIN", &fake.bin);
    let (tx, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let client = Heard(tx)
        .serve(TokioChildProcess::new(cmd).expect("spawn"))
        .await
        .expect("initialize over stdio");
    std::fs::write(
        dir.path().join("recipes.toml"),
        "[recipes.cc-late]\ninferencer = \"claude-code/haiku\"\ntools = [\"hello.count_to\"]\n",
    )
    .expect("write");
    tokio::time::timeout(common::LIMIT, changed.recv())
        .await
        .expect("no prompts/list_changed after the reload");
    let call = CallToolRequestParams::new("chat").with_arguments(
        json!({"recipe": "cc-late", "messages": [{"role": "user", "content": "count to 2"}]})
            .as_object()
            .cloned()
            .expect("object"),
    );
    let r = client.call_tool(call).await.expect("chat");
    let text = r.content[0]
        .as_text()
        .map(|t| t.text.clone())
        .unwrap_or_default();
    assert_ne!(r.is_error, Some(true), "{text}");
    let args = argv(&fake.last());
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--allowedTools" && w[1] == "mcp__woollama__mcp__hello__count_to"),
        "{args:?}"
    );
    let _ = client.cancel().await;
}
