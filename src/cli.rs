//! The command line: `woollama [serve]`, `woollama check-config`, and the
//! commands reserved for the MCP surface and the bundled example servers.
//!
//! `--help` and `--version` are answered by clap before anything else runs:
//! no config is read and no runtime directory is touched.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Env, Severity};
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
    CheckConfig,
    /// Serve MCP over stdio: the recipes as prompts, `chat`, and every downstream's tools.
    Mcp,
    /// Run a bundled example MCP server over stdio (hello, textops).
    ExampleServer {
        /// `hello` or `textops`.
        name: String,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = captured_env();
    init_logging(cli.log_format, &env);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve_command(&env),
        Command::CheckConfig => check_config(&env),
        Command::Mcp => mcp_command(&env),
        Command::ExampleServer { name } => example_server(&name),
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

fn init_logging(format: LogFormat, env: &Env) {
    use tracing_subscriber::EnvFilter;
    let filter = env
        .non_empty("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Err only if a subscriber is already set (embedding); keep theirs.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// Runs a bundled example MCP server on stdio. stdout is the JSON-RPC
/// channel; logs stay on stderr.
fn example_server(name: &str) -> ExitCode {
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
    match runtime.block_on(crate::examples::serve_stdio(name)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama example-server {name}: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(env: &Env) -> ExitCode {
    let loaded = config::load(env);
    let report = config::check_report(&loaded);
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("woollama: cannot start the async runtime: {e}");
            None
        }
    }
}

/// `woollama mcp`: the MCP surface on stdin/stdout (stdout carries only
/// JSON-RPC; logs go to stderr). Downstreams connect in the background; the
/// process ends when the client closes stdin.
fn mcp_command(env: &Env) -> ExitCode {
    let Some(config) = load_or_refuse(env) else {
        return ExitCode::from(1);
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(async {
        let client = crate::inference::build_client()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let config = Arc::new(config);
        let tools = crate::tools::ToolRegistry::start(
            &config.servers,
            crate::tools::McpSettings::from(&config.settings),
            crate::mcp_surface::reserved(&config),
            env,
            client.clone(),
        );
        let inference = crate::inference::Registry::new(&config.inferencers, env, client);
        let state = crate::http::AppState::new(Arc::clone(&config), inference, tools.clone());
        let served = crate::mcp_surface::serve_stdio(state.clone()).await;
        state.shutdown.cancel();
        tools.shutdown(std::time::Duration::from_secs(10)).await;
        served
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama mcp: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve_command(env: &Env) -> ExitCode {
    let Some(config) = load_or_refuse(env) else {
        return ExitCode::from(1);
    };
    let Some(runtime) = runtime() else {
        return ExitCode::from(1);
    };
    let result = runtime.block_on(serve::run(Arc::new(config), env));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("woollama: {e}");
            ExitCode::from(1)
        }
    }
}
