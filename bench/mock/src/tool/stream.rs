//! Streamed chat completions: for each stream, the time to the first body
//! byte (the first SSE event; headers included) and to its end.
//!
//! `--concurrency` connections (keep-alive, one stream at a time each) send
//! `"stream": true` requests back to back for `--warmup` seconds, whose streams
//! are discarded, then for `--duration` seconds. A stream counts as an error
//! unless it is a 200 that ends with `data: [DONE]`. One thread: `bench/run`
//! pins this to the load generator's core.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;

use crate::stats::Summary;

#[derive(clap::Args)]
pub struct Args {
    /// `host:port` of the router (or the mock, for direct).
    #[arg(long)]
    addr: String,
    /// The path to POST to.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// The `model` of each request.
    #[arg(long, default_value = "mock/bench")]
    model: String,
    /// Connections streaming at once (1 = sequential).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Seconds of discarded warm-up.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
}

#[derive(Default)]
struct Tally {
    ttfb_us: Vec<f64>,
    total_us: Vec<f64>,
    errors: u64,
}

/// One stream: `(ttfb, total)`, or why it failed.
async fn one(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    args: &Args,
    body: &Bytes,
) -> anyhow::Result<(Duration, Duration)> {
    let req = Request::post(&args.path)
        .header(HOST, &args.addr)
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, "Bearer bench")
        .body(Full::new(body.clone()))?;
    sender.ready().await?;
    let t0 = Instant::now();
    let mut resp = sender.send_request(req).await?;
    let status = resp.status();
    let mut ttfb = None;
    let mut tail: Vec<u8> = Vec::with_capacity(64);
    while let Some(frame) = resp.body_mut().frame().await {
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            ttfb.get_or_insert_with(|| t0.elapsed());
            tail.extend_from_slice(&data);
            let keep = tail.len().saturating_sub(32);
            tail.drain(..keep);
        }
    }
    let total = t0.elapsed();
    anyhow::ensure!(status.is_success(), "status {status}");
    let text = String::from_utf8_lossy(&tail);
    anyhow::ensure!(
        text.trim_end().ends_with("data: [DONE]"),
        "stream did not end with [DONE]"
    );
    Ok((ttfb.context("empty body")?, total))
}

async fn connect(addr: &str) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the peer closes.
        let _ = conn.await;
    });
    Ok(sender)
}

async fn worker(args: &Args, body: Bytes, measure_from: Instant, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut sender = None;
    while Instant::now() < until {
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(&args.addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    tally.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let result = one(s, args, &body).await;
        let counted = started >= measure_from;
        match result {
            Ok((ttfb, total)) if counted => {
                tally.ttfb_us.push(ttfb.as_secs_f64() * 1e6);
                tally.total_us.push(total.as_secs_f64() * 1e6);
            }
            Ok(_) => {}
            Err(_) => {
                if counted {
                    tally.errors += 1;
                }
                sender = None;
            }
        }
    }
    tally
}

async fn measure(args: &Args) -> anyhow::Result<String> {
    let body = Bytes::from(
        json!({
            "model": args.model,
            "stream": true,
            "messages": [{"role": "user", "content": "Stream a short answer, please."}]
        })
        .to_string(),
    );
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| worker(args, body.clone(), measure_from, until))
        .collect();
    let tallies = futures_util::future::join_all(workers).await;
    let secs = Instant::now().duration_since(measure_from).as_secs_f64();
    let mut all = Tally::default();
    for t in tallies {
        all.ttfb_us.extend(t.ttfb_us);
        all.total_us.extend(t.total_us);
        all.errors += t.errors;
    }
    let streams = all.ttfb_us.len();
    Ok(json!({
        "streams": streams,
        "errors": all.errors,
        "secs": secs,
        "per_sec": streams as f64 / secs.max(1e-9),
        "ttfb_ms": Summary::of_micros(&mut all.ttfb_us),
        "total_ms": Summary::of_micros(&mut all.total_us),
    })
    .to_string())
}

pub fn run(args: &Args) -> anyhow::Result<String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(measure(args))
}
