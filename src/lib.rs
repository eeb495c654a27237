//! woollama: one daemon between AI clients and AI backends.
//!
//! Clients speak the OpenAI HTTP API or MCP; behind woollama are
//! OpenAI-compatible inference servers and MCP tool servers. The model field
//! is the address: `<provider>/<model>` passes through to an inferencer,
//! `woollama/<recipe>` runs a recipe (a system prompt, a model and a tool
//! allow-list) with the tool loop out of sight.
//!
//! # Embedding
//!
//! A Rust program embeds woollama through [`embed`]: build from a config
//! directory or an in-memory config, serve on a listener it bound, run a
//! recipe as a stream of events, shut down. That module is the supported
//! API; the others are public for woollama's own binary and tests and may
//! change without notice.
//!
//! # Layout
//!
//! A module imports only from the layers below its own (the map, the flow
//! and where a new route, backend or surface goes: `docs/architecture.md`):
//!
//! 1. [`cli`]: argument parsing and the commands (`serve`, `mcp`,
//!    `status`, `check-config`, `example-server`, the hidden
//!    `child-guard`). [`embed`]: the same assembly as a library.
//! 2. [`serve`]: TCP and Unix-socket listeners, the banner, signals and
//!    shutdown; puts the two surfaces on the listeners.
//! 3. [`http`]: the OpenAI HTTP surface, one file per route family, surface
//!    auth, and the one mapping from errors to status + body.
//!    [`mcp_surface`]: woollama as an MCP server (stdio and `/mcp`): recipes
//!    as prompts, `chat`, and the aggregated downstream namespace. The two
//!    surfaces never import each other.
//! 4. [`app`]: the one assembly of the shared handles ([`app::AppState`]).
//!    [`orchestrate`]: the recipe loop, as a stream of events.
//! 5. [`conversations`]: the conversation handle table (a durable file, or
//!    Redis) and the external conversation store.
//!    [`inference`]: the inferencer registry and the backend seam (relay,
//!    typed answer, typed event stream), with the `claude` CLI among the
//!    backends. [`tools`]: the MCP client side — downstream connections,
//!    health, the aggregated
//!    namespace (`tools::catalog`) and what travels back up a proxied call
//!    (`tools::forward`).
//! 6. [`config`]: the three config files, `${VAR}` expansion, validation.
//!    [`guard`]: the child guard every child process (stdio MCP servers,
//!    `claude`) is started through, so none outlives woollama.
//!    [`metrics`]: the Prometheus metrics every layer records into.
//!    [`bounded`]: reading an HTTP answer whole, never past a limit.
//! 7. [`routing`]: a `model` string → a route, the only reader of one.
//!    [`wire`]: the OpenAI shapes woollama composes, and SSE framing.
//!    [`rawjson`]: a request body kept as bytes with its top-level fields
//!    located, so pass-through rewrites `model` in place. Pure.
//!
//! [`examples`]: the bundled demo MCP servers (`woollama example-server`).

pub mod app;
pub mod bounded;
pub mod cli;
pub mod config;
pub mod conversations;
pub mod embed;
pub mod examples;
pub mod guard;
pub mod http;
pub mod inference;
pub mod logging;
pub mod mcp_surface;
pub mod metrics;
pub mod orchestrate;
pub mod rawjson;
pub mod routing;
pub mod serve;
pub mod tools;
pub mod wire;

#[cfg(test)]
mod proptests;
