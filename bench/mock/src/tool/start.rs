//! Start to first 200: exec a router, poll `GET <path>` until it answers
//! 200, stop it (SIGTERM, then SIGKILL after 10 s), repeat.
//!
//! The router runs on `--router-cpu` without an extra exec in between: this
//! process pins itself there, spawns (the child inherits the mask), and moves
//! itself to `--client-cpu` to poll. Each run gets a fresh free port, given
//! to the command through `--env K=V` values where `{port}` stands for it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::stats::Summary;

#[derive(clap::Args)]
pub struct Args {
    /// How many starts to time.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The path polled on 127.0.0.1:{port}.
    #[arg(long, default_value = "/v1/models")]
    path: String,
    /// Environment for the command, `K=V`; `{port}` in V is the run's port.
    #[arg(long = "env")]
    env: Vec<String>,
    /// The core the command runs on.
    #[arg(long)]
    router_cpu: Option<usize>,
    /// The core this poller runs on.
    #[arg(long)]
    client_cpu: Option<usize>,
    /// Give up on one start after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    limit: f64,
    /// Append the command's stdout and stderr here (default: discard).
    #[arg(long)]
    log: Option<std::path::PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn pin(cpu: Option<usize>) -> anyhow::Result<()> {
    if let Some(cpu) = cpu {
        let mut set = CpuSet::new();
        set.set(cpu).with_context(|| format!("cpu {cpu}"))?;
        sched_setaffinity(Pid::from_raw(0), &set)
            .with_context(|| format!("pinning to cpu {cpu}"))?;
    }
    Ok(())
}

/// One `GET`; true on a 200.
fn get_200(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    let mut got = 0;
    while got < head.len() {
        match s.read(&mut head[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200")
}

fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn one_start(args: &Args) -> anyhow::Result<f64> {
    let port = free_port()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (program, rest) = args.command.split_first().context("no command given")?;
    let mut cmd = Command::new(program);
    cmd.args(rest).stdin(Stdio::null());
    for kv in &args.env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--env wants K=V, got {kv:?}"))?;
        cmd.env(k, v.replace("{port}", &port.to_string()));
    }
    match &args.log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            cmd.stdout(f.try_clone()?).stderr(f);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }

    pin(args.router_cpu)?;
    let t0 = Instant::now();
    let spawned = cmd.spawn();
    pin(args.client_cpu)?;
    let mut child = spawned.with_context(|| format!("starting {program}"))?;

    let limit = Duration::from_secs_f64(args.limit);
    loop {
        if get_200(addr, &args.path) {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            stop(&mut child);
            return Ok(ms);
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{program} exited ({status}) before answering 200 on {addr}");
        }
        if t0.elapsed() > limit {
            stop(&mut child);
            bail!("{program} did not answer 200 on {addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub fn run(args: &Args) -> anyhow::Result<String> {
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs.max(1) {
        runs.push(one_start(args)?);
    }
    let mut micros: Vec<f64> = runs.iter().map(|ms| ms * 1000.0).collect();
    let s = Summary::of_micros(&mut micros);
    let max = runs.iter().copied().fold(0.0, f64::max);
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(json!({"runs_ms": runs, "median_ms": s.p50, "min_ms": min, "max_ms": max}).to_string())
}
