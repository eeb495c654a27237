//! `bench-tool`: the measuring side of `bench/run`.
//!
//! `bench/run` is the one command; it calls this binary for everything a shell
//! script cannot measure well:
//!
//! - `cpu`, `quiet`, `proc`: CPU accounting from `/proc` (how much CPU the
//!   machine spent outside the benchmark's own process tree, per step), the
//!   quiet-machine wait, and a process's RSS and threads.
//! - `first-200`: time from exec to the first `200` on a path, repeated.
//! - `stream`: streamed chat completions, time to first byte and total.
//! - `mcp`: sequential MCP `tools/call`s over stdio or Streamable HTTP.
//! - `report`: the Markdown table from the results `bench/run` collected.
//!
//! Every measuring command prints one JSON object on stdout.

mod chart;
mod cpu;
mod mcp;
mod report;
mod start;
mod stats;
mod stream;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Measuring tools for woollama's bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a free loopback TCP port.
    FreePort,
    /// Print a CPU sample (`busy ours uptime_cs`) for the process tree under
    /// `--root`; with `--since SAMPLE`, print instead the CPU spent outside
    /// that tree since the sample, in percent of one core.
    Cpu {
        #[arg(long)]
        root: i32,
        #[arg(long)]
        since: Option<String>,
    },
    /// Wait until the CPU spent outside the tree under `--root` stays below
    /// `--threshold` percent of one core for `--need` seconds, at most `--cap`
    /// seconds. Prints `quiet WAITED` or `busy WAITED LAST_PERCENT`.
    Quiet {
        #[arg(long)]
        root: i32,
        #[arg(long, default_value_t = 10.0)]
        threshold: f64,
        #[arg(long, default_value_t = 2.0)]
        need: f64,
        #[arg(long, default_value_t = 60.0)]
        cap: f64,
    },
    /// Print the CPU ticks (`USER_HZ`) of a process and every process under
    /// it: a router's own CPU (nginx's master and worker together).
    Ticks {
        #[arg(long)]
        pid: i32,
    },
    /// Print `{"rss_kib", "hwm_kib", "threads"}` of a process.
    Proc {
        #[arg(long)]
        pid: i32,
    },
    /// Start a command `--runs` times and time each start to the first 200.
    #[command(name = "first-200")]
    First200(start::Args),
    /// Streamed chat completions: TTFB and total per stream.
    Stream(stream::Args),
    /// Sequential MCP tool calls over stdio or Streamable HTTP.
    Mcp(mcp::Args),
    /// Print a one-line description of this machine and the repository's commit.
    Machine {
        #[arg(long)]
        repo: PathBuf,
    },
    /// Render the results file as the Markdown report.
    Report {
        /// JSON lines written by bench/run.
        #[arg(long)]
        results: PathBuf,
        /// Where to write the Markdown.
        #[arg(long)]
        out: PathBuf,
        /// The repository, for the commit line (when the results do not name the machine).
        #[arg(long)]
        repo: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::FreePort => println!("{}", start::free_port()?),
        Command::Cpu { root, since } => match since {
            None => println!("{}", cpu::Sample::take(root)?),
            Some(s) => {
                let before: cpu::Sample = s.parse()?;
                let now = cpu::Sample::take(root)?;
                println!("{:.1}", now.foreign_since(&before));
            }
        },
        Command::Quiet {
            root,
            threshold,
            need,
            cap,
        } => println!("{}", cpu::wait_quiet(root, threshold, need, cap)?),
        Command::Proc { pid } => println!("{}", cpu::proc_status(pid)?),
        Command::Ticks { pid } => println!("{}", cpu::ticks(pid)),
        Command::First200(args) => println!("{}", start::run(&args)?),
        Command::Stream(args) => println!("{}", stream::run(&args)?),
        Command::Mcp(args) => println!("{}", mcp::run(&args)?),
        Command::Machine { repo } => println!("{}", report::machine(&repo)),
        Command::Report { results, out, repo } => report::write(&results, &out, &repo)?,
    }
    Ok(())
}
