//! woollama: one daemon between AI clients and AI backends.
//!
//! Clients speak the OpenAI HTTP API or MCP; behind woollama are
//! OpenAI-compatible inference servers and MCP tool servers. The model field
//! is the address: `<provider>/<model>` passes through to an inferencer,
//! `woollama/<recipe>` runs a recipe (a system prompt, a model and a tool
//! allow-list) with the tool loop out of sight.
//!
//! # Layout
//!
//! Data flows one way: [`cli`] → [`config`] → ([`inference`], [`tools`]) →
//! [`orchestrate`] → ([`http`], [`mcp_surface`]), with
//! [`serve`] owning the listeners. [`routing`], [`config`] and [`orchestrate`]
//! know nothing of axum or rmcp's server side.
//!
//! - [`cli`]: argument parsing and the commands (`serve`, `mcp`,
//!   `check-config`, `example-server`).
//! - [`config`]: the three config files, `${VAR}` expansion, validation.
//! - [`routing`]: a `model` string → a route. Pure.
//! - [`inference`]: the inferencer registry and the upstream calls.
//! - [`http`]: the axum router, one file per route family, the error type.
//! - [`serve`]: TCP and Unix-socket listeners, the banner, shutdown.
//! - [`orchestrate`]: the recipe loop, as a stream of events.
//! - [`mcp_surface`]: woollama as an MCP server (stdio and `/mcp`): recipes
//!   as prompts, `chat`, and the aggregated downstream namespace.
//! - [`tools`]: the MCP client side: downstream connections, health, the
//!   aggregated namespace (`tools::catalog`: tools, prompts, resources under
//!   exposed names) and what travels back up a proxied call
//!   (`tools::forward`: progress, logs, sampling/elicitation/roots).
//! - [`examples`]: the bundled demo MCP servers (`woollama example-server`).

pub mod app;
pub mod cli;
pub mod config;
pub mod examples;
pub mod http;
pub mod inference;
pub mod mcp_surface;
pub mod orchestrate;
pub mod routing;
pub mod serve;
pub mod tools;
pub mod wire;
