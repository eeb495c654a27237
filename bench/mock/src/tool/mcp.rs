//! Sequential MCP `tools/call`s, each timed, with rmcp's client — the same
//! client over every path, so the differences are the server side:
//!
//! - `--stdio -- CMD...`: spawn CMD and speak MCP on its stdin/stdout
//!   (direct: `woollama example-server hello`; through woollama: `woollama mcp`);
//! - `--http URL`: Streamable HTTP (woollama's `/mcp`).
//!
//! It waits (bounded) until `--tool` is listed, makes `--warmup` calls that are
//! discarded, then `--calls` measured ones. A call that fails or returns
//! `isError` is counted as an error.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceError};
use serde_json::{Map, Value, json};

use crate::stats::Summary;

#[derive(clap::Args)]
pub struct Args {
    /// Streamable HTTP endpoint (e.g. `http://127.0.0.1:PORT/mcp`).
    #[arg(long, conflicts_with = "stdio")]
    http: Option<String>,
    /// Spawn the command after `--` and speak MCP over its stdio.
    #[arg(long)]
    stdio: bool,
    /// The tool to call (its name on this server).
    #[arg(long)]
    tool: String,
    /// The call's arguments, a JSON object.
    #[arg(long, default_value = "{\"name\":\"bench\"}")]
    arguments: String,
    /// Discarded calls first.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Measured calls.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Seconds to wait for the tool to be listed.
    #[arg(long, default_value_t = 30.0)]
    wait: f64,
    /// The stdio server's command and arguments.
    #[arg(last = true)]
    command: Vec<String>,
}

type Client = RunningService<RoleClient, ()>;

async fn connect(args: &Args) -> anyhow::Result<Client> {
    if let Some(url) = &args.http {
        // Plain HTTP on loopback; reqwest still wants a TLS provider chosen.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
        let transport = StreamableHttpClientTransport::with_client(
            http,
            StreamableHttpClientTransportConfig::with_uri(url.as_str()),
        );
        return ().serve(transport).await.context("MCP initialize over HTTP");
    }
    if !args.stdio {
        bail!("give --http URL or --stdio -- CMD...");
    }
    let (program, rest) = args
        .command
        .split_first()
        .context("--stdio needs a command after --")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    let transport = TokioChildProcess::new(cmd).with_context(|| format!("starting {program}"))?;
    ().serve(transport)
        .await
        .context("MCP initialize over stdio")
}

async fn wait_for_tool(client: &Client, tool: &str, wait: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let tools = client.list_all_tools().await?;
        if tools.iter().any(|t| t.name == tool) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
            bail!("tool {tool:?} not listed after {wait:?}; listed: {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(client: &Client, tool: &str, arguments: &Map<String, Value>) -> bool {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.clone());
    let r: Result<_, ServiceError> = client.call_tool(params).await;
    matches!(r, Ok(r) if r.is_error != Some(true))
}

async fn measure(args: &Args) -> anyhow::Result<String> {
    let arguments: Map<String, Value> = match serde_json::from_str(&args.arguments)? {
        Value::Object(m) => m,
        other => bail!("--arguments must be a JSON object, got {other}"),
    };
    let client = connect(args).await?;
    wait_for_tool(&client, &args.tool, Duration::from_secs_f64(args.wait)).await?;
    for _ in 0..args.warmup {
        call(&client, &args.tool, &arguments).await;
    }
    let mut micros = Vec::with_capacity(args.calls);
    let mut errors = 0u64;
    let start = Instant::now();
    for _ in 0..args.calls {
        let t0 = Instant::now();
        let ok = call(&client, &args.tool, &arguments).await;
        micros.push(t0.elapsed().as_secs_f64() * 1e6);
        if !ok {
            errors += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // Closing the client closes the child's stdin; it exits (or is killed).
    let _ = client.cancel().await;
    Ok(json!({
        "calls": micros.len(),
        "errors": errors,
        "secs": secs,
        "latency_ms": Summary::of_micros(&mut micros),
    })
    .to_string())
}

pub fn run(args: &Args) -> anyhow::Result<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(measure(args))
}
