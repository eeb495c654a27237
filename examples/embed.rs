//! Embedding woollama in a Rust program: build it from a config directory,
//! serve the OpenAI API and MCP on a listener this program bound, list what
//! it offers, run a recipe as a stream of events, and shut down.
//!
//! ```sh
//! cargo run --example embed -- [CONFIG_DIR] [RECIPE] [MESSAGE]
//! ```
//!
//! With no arguments it uses the bundled defaults (the `hello` and
//! `textops` example servers start from this very program's sibling
//! `woollama` binary if `WOOLLAMA_EXE` names one) and runs `streamer`, which
//! needs Ollama; without it, the recipe's error says how to fix that.

use futures_util::StreamExt;
use woollama::config::Env;
use woollama::embed::{Event, Woollama};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "/nonexistent".into());
    let recipe = args.next().unwrap_or_else(|| "streamer".into());
    let message = args.next().unwrap_or_else(|| "Count to three.".into());

    let w = Woollama::from_dir(&dir, Env::from_process())?;
    println!("recipes: {}", w.recipes().join(", "));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("serving http://{}/v1 and /mcp", listener.local_addr()?);
    let shutdown = w.shutdown_handle();
    let server = tokio::spawn(w.clone().serve(listener));

    match w.recipe(&recipe, &message).await {
        Ok(mut events) => {
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Text(t)) => print!("{t}"),
                    Ok(Event::ToolCall { name, arguments }) => eprintln!("[{name} {arguments}]"),
                    Ok(Event::ToolResult { name, ok }) => eprintln!("[{name}: {ok}]"),
                    Ok(Event::Done { .. }) => println!(),
                    Err(e) => eprintln!("recipe failed: {e}"),
                }
            }
        }
        Err(e) => eprintln!("recipe cannot run: {e}"),
    }

    shutdown.shutdown();
    server.await??;
    w.stop().await;
    Ok(())
}
