//! The command line: `woollama [serve]`, `woollama check-config`, and the
//! commands reserved for the MCP surface and the bundled example servers.
//!
//! `--help` and `--version` are answered by clap before anything else runs:
//! no config is read and no runtime directory is touched.

mod status;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::AppState;
use crate::config::{self, Env, Severity};
use crate::logging;
use crate::mcp_surface::McpSurface;
use crate::serve;

#[derive(Debug, Parser)]
#[command(
    name = "woollama",
    version,
    about = "A router between AI clients and AI backends: the OpenAI HTTP API in front, inference servers and MCP tool servers behind.",
    after_help = "Config: $WOOLLAMA_CONFIG_DIR, else $XDG_CONFIG_HOME/woollama, else ~/.config/woollama \
                  (mcp.json, recipes.toml, inferencers.toml; all optional).\n\
                  Logs go to stderr; RUST_LOG filters them (e.g. RUST_LOG=debug)."
)]
pub struct Cli {
    /// How log lines on stderr are written.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: OpenAI HTTP on loopback TCP and a Unix socket (the default).
    Serve,
    /// Validate mcp.json, recipes.toml and inferencers.toml; binds and connects nothing.
    CheckConfig {
        /// Also connect to every MCP server once: report what each offers and
        /// the names that collide under `"prefix": false`.
        #[arg(long)]
        connect: bool,
    },
    /// Serve MCP over stdio: the recipes as prompts, `chat`, and every downstream's tools.
    Mcp,
    /// Ask the running daemon (over its Unix socket) what it serves and how
    /// its downstreams are.
    Status {
        /// Print the daemon's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a bundled example MCP server over stdio (hello, textops).
    ExampleServer {
        /// `hello`, `textops` or `convstore`.
        name: String,
        /// `convstore`: the directory its threads are kept in (default
        /// `$CONVSTORE_DIR`, else `~/.local/state/woollama/convstore`).
        arg: Option<String>,
    },
    /// Internal: runs a stdio MCP server so that it dies with woollama
    /// (see `guard`).
    #[command(name = "child-guard", hide = true)]
    ChildGuard {
        /// The pid of the woollama that started it.
        parent: u32,
        /// The server's command and arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ChildGuard { parent, command }) = &cli.command {
        return crate::guard::run(*parent, command);
    }
    let env = captured_env();
    // A bundled example server is a child of woollama: its log is relayed
    // into woollama's, so by default it says only what is worth relaying.
    let default_filter = match cli.command {
        Some(Command::ExampleServer { .. }) => "warn",
        _ => logging::DEFAULT_LOG,
    };
    let format = match cli.log_format {
        LogFormat::Text => logging::Format::Text,
        LogFormat::Json => logging::Format::Json,
    };
    logging::init(format, &env, default_filter);
    crate::http::access::json_logs(cli.log_format == LogFormat::Json);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve_command(&env, cli.log_format == LogFormat::Json),
        Command::CheckConfig { connect } => check_config(&env, connect),
        Command::Mcp => mcp_command(&env),
        Command::Status { json } => {
            let mut diags = crate::config::Diagnostics::default();
            let settings = crate::config::Settings::from_env(&env, &mut diags);
            status::run(&settings.socket_path(), json)
        }
        Command::ExampleServer { name, arg } => example_server(&name, arg.as_deref()),
        Command::ChildGuard { .. } => ExitCode::from(2), // answered above
    }
}

/// The process environment, plus `WOOLLAMA_EXE` (this binary's path, used by
/// the bundled `mcp.json`) unless the user set it.
fn captured_env() -> Env {
    let env = Env::from_process();
    if env.non_empty("WOOLLAMA_EXE").is_some() {
        return env;
    }
    match std::env::current_exe() {
        Ok(p) => env.with("WOOLLAMA_EXE", p.to_string_lossy()),
        Err(_) => env,
    }
}

/// Runs a bundled example MCP server on stdio. stdout is the JSON-RPC
/// channel; logs stay on stderr.
fn example_server(name: &str, arg: Option<&str>) -> ExitCode {
    if !crate::examples::NAMES.contains(&name) {
        eprintln!(
            "woollama example-server: {}",
            crate::examples::Error::Unknown(name.to_string())
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("woollama example-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(crate::examples::serve_stdio(name, arg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama example-server {name}: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(env: &Env, connect: bool) -> ExitCode {
    let loaded = config::load(env);
    let report = config::check_report(&loaded);
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    let mut ok = report.ok;
    if connect && !loaded.diagnostics.has_fatal() {
        ok &= probe_servers(&loaded.config, env);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `check-config --connect`: connects every MCP server once (no retry),
/// prints what each offers, and the collisions of unprefixed names. `false`
/// when a server could not be reached.
fn probe_servers(config: &config::Config, env: &Env) -> bool {
    use crate::tools::Health;
    let Some(runtime) = runtime(config.settings.worker_threads) else {
        return false;
    };
    runtime.block_on(async {
        let options = crate::app::Options {
            reconnect: false,
            ..crate::app::Options::for_this_binary()
        };
        let state = match AppState::build(Arc::new(config.clone()), env, options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return false;
            }
        };
        let reg = &state.tools;
        let settled = |s: &Arc<crate::tools::Snapshot>| {
            s.servers.iter().all(|x| !matches!(x.health, Health::Connecting))
        };
        let deadline = config.settings.mcp_connect_timeout + std::time::Duration::from_secs(1);
        let snap = match tokio::time::timeout(deadline, reg.wait_for(settled)).await {
            Ok(Some(s)) => s,
            _ => reg.snapshot(),
        };
        let mut ok = true;
        println!("MCP servers (--connect):");
        for s in &snap.servers {
            let mut naming = if s.unprefixed { ", unprefixed" } else { "" }.to_string();
            if let Some(p) = &s.protocol {
                naming.push_str(&format!(", MCP {p}"));
            }
            match &s.health {
                Health::Connected => {
                    println!(
                        "  {}: connected ({}{naming}): {} tool(s), {} prompt(s), {} resource(s), {} template(s)",
                        s.name,
                        s.transport,
                        s.tools,
                        snap.prompts.iter().filter(|p| p.server == s.name).count(),
                        snap.resources.iter().filter(|r| r.server == s.name).count(),
                        snap.templates.iter().filter(|t| t.server == s.name).count(),
                    );
                }
                Health::Failed { reason } | Health::Retrying { last_error: reason, .. } => {
                    ok = false;
                    println!("  {}: unreachable ({}{naming})", s.name, s.transport);
                    eprintln!("error: mcp.json: server '{}' could not be reached: {reason}", s.name);
                }
                Health::Connecting => {
                    ok = false;
                    println!("  {}: no answer ({}{naming})", s.name, s.transport);
                    eprintln!(
                        "error: mcp.json: server '{}' did not finish connecting within {}s",
                        s.name,
                        deadline.as_secs_f64()
                    );
                }
            }
        }
        for c in &snap.collisions {
            eprintln!("warning: mcp.json: name collision: {c}");
        }
        if snap.collisions.is_empty() {
            println!("name collisions: none");
        } else {
            println!("name collisions: {} (see the warnings)", snap.collisions.len());
        }
        state.stop(std::time::Duration::from_secs(5)).await;
        ok
    })
}

/// Loads the config for a command that runs; `None` (after saying why on
/// stderr) when it cannot mean anything.
fn load_or_refuse(env: &Env) -> Option<config::Config> {
    let loaded = config::load(env);
    if loaded.diagnostics.has_fatal() {
        for d in loaded.diagnostics.of(Severity::Fatal) {
            eprintln!("woollama: {d}");
        }
        eprintln!("refusing to start. Run `woollama check-config` to verify a fix.");
        return None;
    }
    for d in loaded.diagnostics.iter() {
        match d.severity {
            Severity::Error => tracing::warn!("{d}"),
            _ => tracing::info!("{d}"),
        }
    }
    Some(loaded.config)
}

/// The async runtime for a command that serves: `threads` workers
/// (`WOOLLAMA_WORKER_THREADS`, by default one per core this process may run
/// on), or, for one, a runtime on the calling thread itself: with a single
/// core a work-stealing scheduler only adds its queues and wake-ups (the
/// pass-through's instructions per request, measured with `bench/profile`,
/// in `docs/performance.md`).
fn runtime(threads: usize) -> Option<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    match builder.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("woollama: cannot start the async runtime: {e}");
            None
        }
    }
}

/// `woollama mcp`: the MCP surface on stdin/stdout (stdout carries only
/// JSON-RPC; logs go to stderr). Downstreams connect in the background. The
/// process ends when the client closes stdin, or on SIGTERM, SIGINT or SIGHUP
/// (how MCP clients stop a stdio server) — either way after stopping every
/// downstream it started.
fn mcp_command(env: &Env) -> ExitCode {
    let Some(config) = load_or_refuse(env) else {
        return ExitCode::from(1);
    };
    let Some(runtime) = runtime(config.settings.worker_threads) else {
        return ExitCode::from(1);
    };
    let batched = logging::Batched::on(&runtime);
    let result = runtime.block_on(async {
        let mut signals = serve::Signals::new(true).map_err(|e| e.to_string())?;
        let state = AppState::build(
            Arc::new(config),
            env,
            crate::app::Options::for_this_binary(),
        )
        .map_err(|e| e.to_string())?;
        let live = crate::app::Live::new(state.clone(), env.clone());
        if let Err(e) = serve::delegates_only(&live).await {
            tracing::warn!("recipes that delegate their tools to Claude cannot run: {e}");
        }
        serve::reload::follow(&live, false);
        let served = tokio::select! {
            r = McpSurface::start(live.clone()).serve_stdio() => r,
            s = signals.recv() => {
                tracing::info!(signal = s, "stopping: MCP downstreams are shut down first");
                Ok(())
            }
        };
        state.stop(std::time::Duration::from_secs(10)).await;
        served
    });
    // Everything that needed stopping has been stopped; what is left is
    // the blocked read of stdin after a signal, which nothing needs.
    runtime.shutdown_background();
    drop(batched);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama mcp: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve_command(env: &Env, json_logs: bool) -> ExitCode {
    let Some(config) = load_or_refuse(env) else {
        return ExitCode::from(1);
    };
    let Some(runtime) = runtime(config.settings.worker_threads) else {
        return ExitCode::from(1);
    };
    let batched = logging::Batched::on(&runtime);
    let result = runtime.block_on(serve::run(
        Arc::new(config),
        env,
        crate::app::Options::for_this_binary(),
        json_logs,
    ));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(batched);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama: {e}");
            ExitCode::from(1)
        }
    }
}
