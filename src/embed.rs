//! woollama as a library: the API a Rust program embeds it with, without a
//! process boundary (a desktop panel, an editor extension, a test harness).
//!
//! This module is the supported surface; the crate's other modules are
//! public for woollama's own binary and tests, and may change without
//! notice.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use woollama::embed::{Event, Woollama};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The config directory a daemon would read (or `from_config` with a
//! // `woollama::config::Config` built in memory).
//! let w = Woollama::from_dir("/home/me/.config/woollama", woollama::config::Env::from_process())?;
//!
//! // Serve the OpenAI API and /mcp on a listener you bound…
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = w.shutdown_handle();
//! let server = tokio::spawn(w.clone().serve(listener));
//!
//! // …and/or run a recipe directly, as a stream of events.
//! let mut events = w.recipe("streamer", "Count to three.").await?;
//! while let Some(event) = events.next().await {
//!     match event? {
//!         Event::Text(t) => print!("{t}"),
//!         Event::ToolCall { name, .. } => eprintln!("[calling {name}]"),
//!         Event::ToolResult { name, ok } => eprintln!("[{name}: {}]", if ok { "ok" } else { "failed" }),
//!         Event::Done { .. } => println!(),
//!     }
//! }
//!
//! shutdown.shutdown(); // ends `serve`
//! server.await??;
//! w.stop().await; // stops the MCP servers it started
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::{AppState, Live, Options};
use crate::config::{Config, Env, Severity};
use crate::orchestrate;

/// Why woollama could not be built or a recipe could not run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// An embedded woollama: cheap to clone, one set of MCP servers and
/// connections however many clones.
#[derive(Clone)]
pub struct Woollama {
    live: Live,
}

impl std::fmt::Debug for Woollama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Woollama")
    }
}

/// Ends [`Woollama::serve`] (in-flight requests finish first).
#[derive(Debug, Clone)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A recipe run's events (`Unpin`: `events.next().await` just works).
pub type Events = futures_util::stream::BoxStream<'static, Result<Event, Error>>;

/// What a recipe run reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Answer text as it arrives (every turn's).
    Text(String),
    /// The model called a tool (`mcp__<server>__<tool>`).
    ToolCall { name: String, arguments: Value },
    /// A tool call finished.
    ToolResult { name: String, ok: bool },
    /// The final answer.
    Done { text: String },
}

impl Woollama {
    /// Builds from a config directory (`mcp.json`, `recipes.toml`,
    /// `inferencers.toml`, each optional, as the daemon reads them) and an
    /// environment (`${VAR}` expansion, provider keys). The MCP servers
    /// start connecting at once, in the background.
    pub fn from_dir(dir: impl AsRef<Path>, env: Env) -> Result<Self, Error> {
        let loaded = crate::config::load_from(Some(dir.as_ref()), &env);
        let fatal: Vec<String> = loaded
            .diagnostics
            .of(Severity::Fatal)
            .map(ToString::to_string)
            .collect();
        if !fatal.is_empty() {
            return Err(Error(fatal.join("; ")));
        }
        Self::from_config(loaded.config, &env)
    }

    /// Builds from a config already in memory (for example one loaded with
    /// [`crate::config::load_from`] and then changed). Stdio MCP servers are
    /// started directly, in process groups of their own, and stopped by
    /// [`stop`](Self::stop) (this program is not a woollama binary, so there
    /// is no child guard to outlive a SIGKILL).
    pub fn from_config(config: Config, env: &Env) -> Result<Self, Error> {
        let state = AppState::build(Arc::new(config), env, Options::default())
            .map_err(|e| Error(e.to_string()))?;
        Ok(Self {
            live: Live::new(state, env.clone()),
        })
    }

    /// A handle that ends [`serve`](Self::serve).
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown(self.live.load().shutdown.clone())
    }

    /// The recipes' names.
    pub fn recipes(&self) -> Vec<String> {
        self.live.load().config.recipes.keys().cloned().collect()
    }

    /// Serves the OpenAI HTTP API, the Anthropic Messages API and MCP at
    /// `/mcp` on a listener the caller bound, with the daemon's surface
    /// auth (`WOOLLAMA_TOKEN`, `Host` and `Origin` rules), until the
    /// shutdown handle is used.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let state = self.live.load();
        state.listening_on(addr);
        let (app, _) = crate::serve::routers(&self.live);
        crate::serve::conn::serve(listener, app, state.shutdown.clone()).await;
        Ok(())
    }

    /// Runs recipe `name` on one user message.
    pub async fn recipe(&self, name: &str, message: &str) -> Result<Events, Error> {
        self.recipe_on(name, vec![json!({"role": "user", "content": message})])
            .await
    }

    /// Runs recipe `name` on a conversation (OpenAI chat messages), its
    /// events as they happen; dropping the stream stops the run.
    pub async fn recipe_on(&self, name: &str, messages: Vec<Value>) -> Result<Events, Error> {
        let state = self.live.load();
        let recipe = orchestrate::recipe(&state.config, name).map_err(|e| Error(e.to_string()))?;
        let prepared = orchestrate::prepare(recipe, &state.inference, &state.tools, messages, true)
            .await
            .map_err(|e| Error(e.to_string()))?;
        let run = orchestrate::run(prepared, state.inference.clone(), state.tools.clone());
        Ok(run
            .map(|e| match e {
                Ok(orchestrate::Event::Delta(t)) => Ok(Event::Text(t)),
                Ok(orchestrate::Event::ToolCall {
                    name, arguments, ..
                }) => Ok(Event::ToolCall { name, arguments }),
                Ok(orchestrate::Event::ToolResult { name, ok, .. }) => {
                    Ok(Event::ToolResult { name, ok })
                }
                Ok(orchestrate::Event::Final(completion)) => Ok(Event::Done {
                    text: completion
                        .pointer("/choices/0/message/content")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }),
                Err(e) => Err(Error(e.to_string())),
            })
            .boxed())
    }

    /// Reads the config files again (as the daemon does on `SIGHUP`).
    pub fn reload(&self) -> Result<(), Error> {
        self.live
            .reload()
            .map(|_| ())
            .map_err(|problems| Error(problems.join("; ")))
    }

    /// Stops the MCP servers woollama started, waiting at most ten seconds.
    pub async fn stop(self) {
        self.live.load().stop(Duration::from_secs(10)).await;
    }
}
