//! The embedding API (`woollama::embed`) as a Rust program uses it: built
//! from a config directory, serving on a listener the test bound, a recipe
//! run as a stream of events with a real tool turn, a reload, and a
//! shutdown that ends `serve`.

mod common;

use common::Setup;
use common::mock::{Mock, sse, sse_tool_calls};
use futures_util::StreamExt;
use serde_json::{Value, json};
use woollama::embed::{Event, Woollama};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_embeds_woollama() {
    let mock = Mock::start().await;
    let bin = env!("CARGO_BIN_EXE_woollama");
    let setup = Setup::new(&mock)
        .mcp(&format!(
            r#"{{"mcpServers": {{"hello": {{"command": "{bin}", "args": ["example-server", "hello"]}}}}}}"#
        ))
        .recipes("[recipes.counter]\ninferencer = \"mock/m\"\ntools = [\"hello.count_to\"]\n");
    let config = setup.config();
    let dir = setup.dir.path().to_path_buf();
    let env = woollama::config::Env::from_pairs([("HOME", dir.to_string_lossy().to_string())]);
    let w = Woollama::from_dir(&dir, env).expect("built");
    assert_eq!(w.recipes(), ["counter"]);
    drop(config);

    // Serving on a listener the program bound.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = w.shutdown_handle();
    let server = tokio::spawn(w.clone().serve(listener));
    let client = woollama::inference::build_client().expect("client");
    let models: Value = client
        .get(format!("http://{addr}/v1/models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert!(models.to_string().contains("woollama/counter"), "{models}");

    // A recipe run as events: the tool call and its result, then the answer.
    mock.push(sse_tool_calls(
        "",
        &[("c1", "mcp__hello__count_to", json!({"n": 2}))],
    ));
    mock.push(sse(&["I counted ", "to 2."]));
    let mut events = w.recipe("counter", "count to 2").await.expect("runs");
    let mut seen = Vec::new();
    while let Some(e) = events.next().await {
        seen.push(e.expect("event"));
    }
    assert!(
        seen.contains(&Event::ToolCall {
            name: "mcp__hello__count_to".into(),
            arguments: json!({"n": 2})
        }),
        "{seen:?}"
    );
    assert!(seen.contains(&Event::ToolResult {
        name: "mcp__hello__count_to".into(),
        ok: true
    }));
    assert!(seen.contains(&Event::Text("I counted ".into())), "{seen:?}");
    assert_eq!(
        seen.last(),
        Some(&Event::Done {
            text: "I counted to 2.".into()
        })
    );
    let unknown = w.recipe("nope", "x").await.err().expect("refused");
    assert_eq!(unknown.to_string(), "unknown recipe 'nope'");

    // A reload picks up a new recipe.
    std::fs::write(
        dir.join("recipes.toml"),
        "[recipes.counter]\ninferencer = \"mock/m\"\ntools = [\"hello.count_to\"]\n[recipes.more]\ninferencer = \"mock/m\"\n",
    )
    .expect("write");
    w.reload().expect("reloaded");
    assert_eq!(w.recipes(), ["counter", "more"]);

    // The shutdown handle ends `serve`.
    shutdown.shutdown();
    server.await.expect("join").expect("served");
    w.stop().await;
}
