//! The Markdown report: the results `bench/run` wrote (one JSON object a line),
//! the machine they were taken on, and the issue's targets with ✓/✗.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::Deserialize;

use crate::stats::Summary;

/// How noisy a step's machine was.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Noise {
    /// CPU outside the benchmark's processes, % of one core.
    #[serde(default)]
    foreign: f64,
    /// Still above the threshold after the one re-run.
    #[serde(default)]
    noisy: bool,
    #[serde(default)]
    reran: bool,
}

#[derive(Debug, Deserialize)]
struct Run {
    date: String,
    mode: String,
    warmup_s: f64,
    duration_s: f64,
    mcp_calls: u64,
    mcp_warmup: u64,
    startup_runs: u64,
    chunks: u64,
    gap_ms: f64,
    threshold: f64,
    loadgen: String,
    /// The machine and commit, as `bench-tool machine` described them at the run.
    #[serde(default)]
    machine: Option<String>,
    #[serde(default)]
    peers: Vec<Peer>,
}

#[derive(Debug, Deserialize)]
struct Peer {
    name: String,
    cmd: String,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct WrkErrors {
    connect: u64,
    read: u64,
    write: u64,
    status: u64,
    timeout: u64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct WrkLatency {
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
}

/// What `bench/wrk/post.lua` prints.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Wrk {
    requests: u64,
    duration_us: u64,
    errors: WrkErrors,
    latency_us: WrkLatency,
}

impl Wrk {
    fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6).max(1e-9)
    }
    fn errors(&self) -> u64 {
        let e = self.errors;
        e.connect + e.read + e.write + e.status + e.timeout
    }
    fn ms(&self) -> Summary {
        let l = self.latency_us;
        Summary {
            p50: l.p50 / 1000.0,
            p90: l.p90 / 1000.0,
            p99: l.p99 / 1000.0,
            mean: l.mean / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Streams {
    errors: u64,
    per_sec: f64,
    ttfb_ms: Summary,
    total_ms: Summary,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Calls {
    calls: u64,
    errors: u64,
    secs: f64,
    latency_ms: Summary,
}

#[derive(Debug, Clone, Deserialize)]
struct Startup {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Record {
    Run(Run),
    Nonstream {
        target: String,
        c: u32,
        #[serde(flatten)]
        noise: Noise,
        r: Wrk,
        /// The router's own CPU over the step (its process tree), in
        /// `USER_HZ` ticks (10 ms); absent for `direct`.
        #[serde(default)]
        cpu_ticks: Option<u64>,
    },
    Stream {
        target: String,
        c: u32,
        #[serde(flatten)]
        noise: Noise,
        r: Streams,
    },
    Model {
        turn: u32,
        #[serde(flatten)]
        noise: Noise,
        r: Wrk,
    },
    Recipe {
        #[serde(flatten)]
        noise: Noise,
        r: Wrk,
    },
    Responses {
        mode: String,
        #[serde(flatten)]
        noise: Noise,
        r: Wrk,
    },
    Messages {
        #[serde(flatten)]
        noise: Noise,
        r: Wrk,
    },
    Mcp {
        target: String,
        #[serde(flatten)]
        noise: Noise,
        r: Calls,
    },
    Startup {
        target: String,
        #[serde(flatten)]
        noise: Noise,
        r: Startup,
    },
    Mem {
        target: String,
        phase: String,
        r: Mem,
    },
    Failed {
        step: String,
        target: String,
        error: String,
    },
}

/// Everything read from the results file.
#[derive(Default)]
struct Results {
    run: Option<Run>,
    records: Vec<Record>,
}

impl Results {
    fn targets(&self) -> Vec<String> {
        let mut t = vec!["direct".to_string(), "woollama".to_string()];
        if let Some(run) = &self.run {
            t.extend(run.peers.iter().map(|p| p.name.clone()));
        }
        t
    }

    fn nonstream(&self, target: &str, c: u32) -> Option<(&Wrk, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Nonstream {
                target: t,
                c: rc,
                noise,
                r,
                ..
            } if t == target && *rc == c => Some((r, *noise)),
            _ => None,
        })
    }

    /// A router's CPU per request in a non-streaming step, in µs.
    fn cpu_per_request(&self, target: &str, c: u32) -> Option<f64> {
        self.records.iter().find_map(|r| match r {
            Record::Nonstream {
                target: t,
                c: rc,
                r,
                cpu_ticks: Some(ticks),
                ..
            } if t == target && *rc == c && r.requests > 0 => {
                Some(*ticks as f64 * 10_000.0 / r.requests as f64)
            }
            _ => None,
        })
    }

    fn stream(&self, target: &str, c: u32) -> Option<(&Streams, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Stream {
                target: t,
                c: rc,
                noise,
                r,
            } if t == target && *rc == c => Some((r, *noise)),
            _ => None,
        })
    }

    fn model(&self, turn: u32) -> Option<(&Wrk, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Model { turn: t, noise, r } if *t == turn => Some((r, *noise)),
            _ => None,
        })
    }

    fn recipe(&self) -> Option<(&Wrk, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Recipe { noise, r } => Some((r, *noise)),
            _ => None,
        })
    }

    fn responses(&self, mode: &str) -> Option<(&Wrk, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Responses { mode: m, noise, r } if m == mode => Some((r, *noise)),
            _ => None,
        })
    }

    fn messages(&self) -> Option<(&Wrk, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Messages { noise, r } => Some((r, *noise)),
            _ => None,
        })
    }

    fn mcp(&self, target: &str) -> Option<(&Calls, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Mcp {
                target: t,
                noise,
                r,
            } if t == target => Some((r, *noise)),
            _ => None,
        })
    }

    fn startup(&self, target: &str) -> Option<(&Startup, Noise)> {
        self.records.iter().find_map(|r| match r {
            Record::Startup {
                target: t,
                noise,
                r,
            } if t == target => Some((r, *noise)),
            _ => None,
        })
    }

    fn mem(&self, target: &str, phase: &str) -> Option<&Mem> {
        self.records.iter().find_map(|r| match r {
            Record::Mem {
                target: t,
                phase: p,
                r,
            } if t == target && p == phase => Some(r),
            _ => None,
        })
    }

    /// The stream concurrencies measured, ascending (1 = sequential).
    fn stream_cs(&self) -> BTreeSet<u32> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Stream { c, .. } => Some(*c),
                _ => None,
            })
            .collect()
    }

    fn nonstream_cs(&self) -> BTreeSet<u32> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Nonstream { c, .. } => Some(*c),
                _ => None,
            })
            .collect()
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn signed_ms(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", ms(v))
    } else {
        format!("−{}", ms(-v))
    }
}

fn ratio(x: f64, of: f64) -> String {
    if of > 0.0 {
        format!("{:.2}×", x / of)
    } else {
        "—".into()
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn noise_cell(n: Noise) -> String {
    let mut s = format!("{:.1} %", n.foreign);
    if n.noisy {
        s.push_str(" ⚠ noisy");
    } else if n.reran {
        s.push_str(" (re-run)");
    }
    s
}

fn count(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(ch);
    }
    out
}

/// A check against a target: met, missed, or not measured; `(noisy)` when the
/// step it rests on stayed noisy.
struct Check {
    target: &'static str,
    measured: String,
    met: Option<bool>,
    noisy: bool,
}

fn checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |target, measured: Option<(String, bool, bool)>| {
        out.push(match measured {
            Some((measured, met, noisy)) => Check {
                target,
                measured,
                met: Some(met),
                noisy,
            },
            None => Check {
                target,
                measured: "not measured".into(),
                met: None,
                noisy: false,
            },
        })
    };

    let c1 = r.nonstream("woollama", 1);
    let d1 = r.nonstream("direct", 1);
    push(
        "pass-through p50 at c=1 ≤ 0.10 ms",
        c1.map(|(w, n)| {
            let added =
                d1.map(|(d, _)| format!(" ({} vs direct)", signed_ms(w.ms().p50 - d.ms().p50)));
            (
                format!("{} ms{}", ms(w.ms().p50), added.unwrap_or_default()),
                w.ms().p50 <= 0.10,
                n.noisy,
            )
        }),
    );
    let c64 = r.nonstream("woollama", 64);
    let d64 = r.nonstream("direct", 64);
    push(
        "≥ 20 k req/s at c=64",
        c64.map(|(w, n)| {
            (
                format!("{} req/s", count(w.rps())),
                w.rps() >= 20_000.0,
                n.noisy,
            )
        }),
    );
    push(
        "≥ 0.5× direct at c=64",
        c64.zip(d64).map(|((w, n), (d, dn))| {
            let x = w.rps() / d.rps().max(1e-9);
            (format!("{x:.2}×"), x >= 0.5, n.noisy || dn.noisy)
        }),
    );
    push(
        "p99 ≤ 5 ms at c=64",
        c64.map(|(w, n)| (format!("{} ms", ms(w.ms().p99)), w.ms().p99 <= 5.0, n.noisy)),
    );
    // Beside nginx, when the run had it (issue: a router at a plain proxy's cost).
    let n64 = r.nonstream("nginx", 64);
    push(
        "req/s at c=64 ≥ nginx's",
        c64.zip(n64).map(|((w, n), (x, xn))| {
            let ratio = w.rps() / x.rps().max(1e-9);
            (
                format!("{} vs {} ({ratio:.2}×)", count(w.rps()), count(x.rps())),
                ratio >= 1.0,
                n.noisy || xn.noisy,
            )
        }),
    );
    push(
        "router CPU per request ≤ 1.2× nginx's (c=64)",
        r.cpu_per_request("woollama", 64)
            .zip(r.cpu_per_request("nginx", 64))
            .map(|(w, x)| {
                let ratio = w / x.max(1e-9);
                (
                    format!("{w:.1} vs {x:.1} µs ({ratio:.2}×)"),
                    ratio <= 1.2,
                    false,
                )
            }),
    );
    push(
        "p50 at c=1 ≤ nginx's",
        c1.zip(r.nonstream("nginx", 1)).map(|((w, n), (x, xn))| {
            (
                format!("{} vs {} ms", ms(w.ms().p50), ms(x.ms().p50)),
                w.ms().p50 <= x.ms().p50,
                n.noisy || xn.noisy,
            )
        }),
    );
    push(
        "p99 at c=64 ≤ nginx's",
        c64.zip(n64).map(|((w, n), (x, xn))| {
            (
                format!("{} vs {} ms", ms(w.ms().p99), ms(x.ms().p99)),
                w.ms().p99 <= x.ms().p99,
                n.noisy || xn.noisy,
            )
        }),
    );
    push(
        "stream TTFB p50 within 0.1 ms of direct (sequential)",
        r.stream("woollama", 1)
            .zip(r.stream("direct", 1))
            .map(|((s, n), (d, dn))| {
                let added = s.ttfb_ms.p50 - d.ttfb_ms.p50;
                (
                    format!("+{} ms", ms(added)),
                    added <= 0.1,
                    n.noisy || dn.noisy,
                )
            }),
    );
    push(
        "stream TTFB p50 ≤ 0.45 ms (sequential)",
        r.stream("woollama", 1).map(|(s, n)| {
            (
                format!("{} ms", ms(s.ttfb_ms.p50)),
                s.ttfb_ms.p50 <= 0.45,
                n.noisy,
            )
        }),
    );
    push(
        "idle RSS ≤ 10 MiB",
        r.mem("woollama", "idle").map(|m| {
            (
                format!("{} MiB", mib(m.rss_kib)),
                m.rss_kib <= 10 * 1024,
                false,
            )
        }),
    );
    push(
        "RSS after load ≤ 16 MiB",
        r.mem("woollama", "after").map(|m| {
            (
                format!("{} MiB", mib(m.rss_kib)),
                m.rss_kib <= 16 * 1024,
                false,
            )
        }),
    );
    push(
        "start to first 200 ≤ 20 ms (median)",
        r.startup("woollama").map(|(s, n)| {
            (
                format!("{} ms", ms(s.median_ms)),
                s.median_ms <= 20.0,
                n.noisy,
            )
        }),
    );
    let direct = r.mcp("direct-stdio");
    for (target, label) in [
        (
            "woollama-http",
            "proxied MCP tool call ≤ 0.2 ms added at p50 (/mcp)",
        ),
        (
            "woollama-stdio",
            "proxied MCP tool call ≤ 0.2 ms added at p50 (stdio)",
        ),
    ] {
        push(
            label,
            r.mcp(target).zip(direct).map(|((w, n), (d, dn))| {
                let added = w.latency_ms.p50 - d.latency_ms.p50;
                (
                    format!("{} ms", signed_ms(added)),
                    added <= 0.2,
                    n.noisy || dn.noisy,
                )
            }),
        );
    }
    push(
        "loop overhead ≤ 0.5 ms per tool turn",
        loop_overhead(r).map(|(v, noisy)| (format!("{} ms", ms(v)), v <= 0.5, noisy)),
    );
    let (pass, stateless, stateful) = (
        r.nonstream("woollama", 1),
        r.responses("stateless"),
        r.responses("stateful"),
    );
    push(
        "stateless /v1/responses ≤ 0.05 ms over chat pass-through (p50)",
        stateless.zip(pass).map(|((s, n), (p, pn))| {
            let added = s.ms().p50 - p.ms().p50;
            (
                format!("{} ms", signed_ms(added)),
                added <= 0.05,
                n.noisy || pn.noisy,
            )
        }),
    );
    push(
        "`/v1/messages` translation ≤ 0.05 ms over chat pass-through (p50)",
        r.messages().zip(pass).map(|((m, n), (p, pn))| {
            let added = m.ms().p50 - p.ms().p50;
            (
                format!("{} ms", signed_ms(added)),
                added <= 0.05,
                n.noisy || pn.noisy,
            )
        }),
    );
    push(
        "stateful turn ≤ 1 ms over stateless (p50, the store's calls included)",
        stateful.zip(stateless).map(|((s, n), (l, ln))| {
            let added = s.ms().p50 - l.ms().p50;
            (
                format!("{} ms", signed_ms(added)),
                added <= 1.0,
                n.noisy || ln.noisy,
            )
        }),
    );
    out
}

/// The recipe's p50 less both model turns' and the tool call's direct p50s,
/// per tool turn (the recipe has one); whether any of them was noisy.
fn loop_overhead(r: &Results) -> Option<(f64, bool)> {
    let (recipe, rn) = r.recipe()?;
    let (m1, n1) = r.model(1)?;
    let (m2, n2) = r.model(2)?;
    let (tool, tn) = r.mcp("direct-stdio")?;
    let v = recipe.ms().p50 - m1.ms().p50 - m2.ms().p50 - tool.latency_ms.p50;
    Some((v, rn.noisy || n1.noisy || n2.noisy || tn.noisy))
}

fn read(results: &Path) -> anyhow::Result<Results> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("reading {}", results.display()))?;
    let mut out = Results::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: {line}", results.display(), i + 1))?;
        match rec {
            Record::Run(run) => out.run = Some(run),
            other => out.records.push(other),
        }
    }
    Ok(out)
}

fn first_line(program: &str, args: &[&str], dir: &Path) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        // Never take git's index lock: someone may be committing.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(if out.stdout.is_empty() {
        &out.stderr
    } else {
        &out.stdout
    })
    .into_owned();
    text.lines().next().map(|l| l.trim().to_string())
}

pub fn machine(repo: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    let rustc = first_line("rustc", &["--version"], repo).unwrap_or_else(|| "rustc ?".into());
    let commit = first_line("git", &["rev-parse", "--short=12", "HEAD"], repo)
        .unwrap_or_else(|| "unknown".into());
    let dirty = first_line(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        repo,
    )
    .is_some_and(|l| !l.is_empty());
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB; {os}, Linux {kernel}; {rustc}; woollama at `{commit}`{}",
        if dirty {
            " with uncommitted changes"
        } else {
            ""
        }
    )
}

fn render(r: &Results, machine: &str) -> String {
    let mut md = String::new();
    let Some(run) = &r.run else {
        return "No run recorded.\n".into();
    };
    let targets = r.targets();
    let _ = writeln!(md, "### Run of {} ({})\n", run.date, run.mode);
    let _ = writeln!(md, "**Machine:** {machine}.\n");
    let _ = writeln!(
        md,
        "**Setup:** the router on core 0; the load generator ({}), the mock upstream and the MCP \
         downstream on core 1. Each step: quiet-machine wait, {} s warm-up (discarded), {} s \
         measured. *Foreign CPU* is CPU time spent outside the benchmark's own processes during \
         the step, in % of one core; a step above {} % was re-run once, and ⚠ marks one that \
         stayed noisy.",
        run.loadgen, run.warmup_s, run.duration_s, run.threshold
    );
    if !run.peers.is_empty() {
        let _ = writeln!(md, "\n**Peers:**");
        for p in &run.peers {
            let _ = writeln!(md, "- `{}`: `{}`", p.name, p.cmd.replace('`', "'"));
        }
    }

    // Targets.
    let _ = writeln!(md, "\n#### Targets (woollama)\n");
    let _ = writeln!(md, "| target | measured | met |\n|---|---|---|");
    for c in checks(r) {
        let met = match c.met {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "—",
        };
        let noisy = if c.noisy { " (noisy)" } else { "" };
        let _ = writeln!(md, "| {} | {} | {met}{noisy} |", c.target, c.measured);
    }

    // Non-streaming.
    let _ = writeln!(
        md,
        "\n#### Non-streaming pass-through\n\n`POST /v1/chat/completions` answered by a fixed small \
         `chat.completion`; `c` keep-alive connections. *Added* is the p50 over direct.\n"
    );
    let _ = writeln!(
        md,
        "| c | target | req/s | × direct | p50 ms | p90 ms | p99 ms | added p50 ms | router CPU µs/req | errors | foreign CPU |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in r.nonstream_cs() {
        let direct = r.nonstream("direct", c).map(|(d, _)| *d);
        for t in &targets {
            if let Some((w, n)) = r.nonstream(t, c) {
                let s = w.ms();
                let (x, added) = match (t.as_str(), direct) {
                    ("direct", _) | (_, None) => ("—".to_string(), "—".to_string()),
                    (_, Some(d)) => (ratio(w.rps(), d.rps()), signed_ms(s.p50 - d.ms().p50)),
                };
                let cpu = r
                    .cpu_per_request(t, c)
                    .map_or_else(|| "—".to_string(), |us| format!("{us:.1}"));
                let _ = writeln!(
                    md,
                    "| {c} | {t} | {} | {x} | {} | {} | {} | {added} | {cpu} | {} | {} |",
                    count(w.rps()),
                    ms(s.p50),
                    ms(s.p90),
                    ms(s.p99),
                    w.errors(),
                    noise_cell(n)
                );
            }
        }
    }

    // Streaming.
    let _ = writeln!(
        md,
        "\n#### Streaming pass-through\n\n`\"stream\": true`: {} chunks, {} ms apart. *TTFB* is the time \
         to the first SSE event (headers included); *total* to `[DONE]`.\n",
        run.chunks, run.gap_ms
    );
    let _ = writeln!(
        md,
        "| mode | target | streams/s | TTFB p50 ms | TTFB p99 ms | TTFB p50 added | total p50 ms | total p99 ms | errors | foreign CPU |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in r.stream_cs() {
        let mode = if c == 1 {
            "sequential".to_string()
        } else {
            format!("c={c}")
        };
        let direct = r.stream("direct", c).map(|(d, _)| *d);
        for t in &targets {
            if let Some((s, n)) = r.stream(t, c) {
                let added = match (t.as_str(), direct) {
                    ("direct", _) | (_, None) => "—".to_string(),
                    (_, Some(d)) => signed_ms(s.ttfb_ms.p50 - d.ttfb_ms.p50),
                };
                let _ = writeln!(
                    md,
                    "| {mode} | {t} | {:.0} | {} | {} | {added} | {} | {} | {} | {} |",
                    s.per_sec,
                    ms(s.ttfb_ms.p50),
                    ms(s.ttfb_ms.p99),
                    ms(s.total_ms.p50),
                    ms(s.total_ms.p99),
                    s.errors,
                    noise_cell(n)
                );
            }
        }
    }

    // Recipe.
    let _ = writeln!(
        md,
        "\n#### Recipe with one tool turn\n\n`model: \"woollama/bench\"` (not streamed): the mock asks \
         for `hello.hello`, woollama calls it on the `hello` downstream, the mock answers. \
         woollama's own time is the recipe's p50 less the p50s of the same two model turns sent \
         straight to the mock and of a direct `hello` call (sequential, c=1).\n"
    );
    let _ = writeln!(
        md,
        "| | p50 ms | p90 ms | p99 ms | errors | foreign CPU |\n|---|---:|---:|---:|---:|---:|"
    );
    let wrk_row = |md: &mut String, label: &str, w: Option<(&Wrk, Noise)>| {
        if let Some((w, n)) = w {
            let s = w.ms();
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} |",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                w.errors(),
                noise_cell(n)
            );
        }
    };
    wrk_row(
        &mut md,
        "recipe through woollama (2 model turns + 1 tool call)",
        r.recipe(),
    );
    wrk_row(
        &mut md,
        "model turn 1 (asks for the tool), direct",
        r.model(1),
    );
    wrk_row(&mut md, "model turn 2 (final answer), direct", r.model(2));
    if let Some((t, n)) = r.mcp("direct-stdio") {
        let s = t.latency_ms;
        let _ = writeln!(
            md,
            "| tool call `hello`, direct over stdio | {} | {} | {} | {} | {} |",
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            t.errors,
            noise_cell(n)
        );
    }
    if let Some((v, noisy)) = loop_overhead(r) {
        let _ = writeln!(
            md,
            "| **woollama's own time per tool turn** | **{}** | | | | {} |",
            ms(v),
            if noisy { "⚠ noisy input" } else { "" }
        );
    }

    // Responses.
    let _ = writeln!(
        md,
        "\n#### Responses and Messages APIs\n\n`POST /v1/responses` with the pass-through's prompt as `input`, \
         sequential (c=1), beside the same chat pass-through. *Stateful* adds `store: true`: each \
         request starts a conversation on the bundled `convstore` (create the thread, read it, \
         append the turn, record the handle). `POST /v1/messages` sends the same prompt in \
         Anthropic's shape: translated to chat, the answer translated back.\n"
    );
    let _ = writeln!(
        md,
        "| | p50 ms | p90 ms | p99 ms | errors | foreign CPU |\n|---|---:|---:|---:|---:|---:|"
    );
    wrk_row(
        &mut md,
        "chat pass-through (c=1)",
        r.nonstream("woollama", 1),
    );
    wrk_row(
        &mut md,
        "`/v1/responses`, stateless",
        r.responses("stateless"),
    );
    wrk_row(
        &mut md,
        "`/v1/responses`, stateful (bundled store)",
        r.responses("stateful"),
    );
    wrk_row(
        &mut md,
        "`/v1/messages` (Anthropic, translated)",
        r.messages(),
    );

    // MCP.
    let _ = writeln!(
        md,
        "\n#### MCP tool call\n\n`tools/call` of `hello` ({} sequential calls after {} discarded), \
         the same rmcp client on every path. Direct: the bundled `hello` server over stdio. Through \
         woollama: `mcp__hello__hello` on the daemon's `/mcp` (Streamable HTTP) and on `woollama \
         mcp` (stdio), with `hello` as a downstream.\n",
        run.mcp_calls, run.mcp_warmup
    );
    let _ = writeln!(
        md,
        "| path | calls/s | p50 ms | p90 ms | p99 ms | added p50 ms | errors | foreign CPU |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let direct = r.mcp("direct-stdio").map(|(d, _)| *d);
    for (target, label) in [
        ("direct-stdio", "direct (stdio)"),
        ("woollama-http", "woollama `/mcp`"),
        ("woollama-stdio", "`woollama mcp` (stdio)"),
    ] {
        if let Some((c, n)) = r.mcp(target) {
            let added = match (target, direct) {
                ("direct-stdio", _) | (_, None) => "—".to_string(),
                (_, Some(d)) => signed_ms(c.latency_ms.p50 - d.latency_ms.p50),
            };
            let s = c.latency_ms;
            let _ = writeln!(
                md,
                "| {label} | {:.0} | {} | {} | {} | {added} | {} | {} |",
                c.calls as f64 / c.secs.max(1e-9),
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                c.errors,
                noise_cell(n)
            );
        }
    }

    // Memory and start-up.
    let _ = writeln!(
        md,
        "\n#### Memory, threads, start-up\n\nThe router process only (not the MCP servers it starts), \
         from `/proc/PID/status`: *idle* after start-up and downstream connection, *after load* \
         after every step, *peak* is `VmHWM`. *Start to first 200*: exec to the first 200 on \
         `GET /v1/models`, median of {} starts (min–max).\n",
        run.startup_runs
    );
    let _ = writeln!(
        md,
        "| target | RSS idle MiB | RSS after load MiB | peak RSS MiB | threads idle | threads after load | start to first 200 ms |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for t in targets.iter().filter(|t| *t != "direct") {
        let idle = r.mem(t, "idle");
        let after = r.mem(t, "after");
        let start = r.startup(t).map_or("—".to_string(), |(s, n)| {
            format!(
                "{} ({}–{}){}",
                ms(s.median_ms),
                ms(s.min_ms),
                ms(s.max_ms),
                if n.noisy { " ⚠" } else { "" }
            )
        });
        let cell = |m: Option<&Mem>, f: fn(&Mem) -> String| m.map_or("—".to_string(), f);
        let _ = writeln!(
            md,
            "| {t} | {} | {} | {} | {} | {} | {start} |",
            cell(idle, |m| mib(m.rss_kib)),
            cell(after, |m| mib(m.rss_kib)),
            cell(after.or(idle), |m| mib(m.hwm_kib)),
            cell(idle, |m| m.threads.to_string()),
            cell(after, |m| m.threads.to_string()),
        );
    }

    let failed: Vec<_> = r
        .records
        .iter()
        .filter_map(|x| match x {
            Record::Failed {
                step,
                target,
                error,
            } => Some((step, target, error)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n#### Steps that failed\n");
        for (step, target, error) in failed {
            let _ = writeln!(md, "- {step} / {target}: {}", error.replace('\n', " "));
        }
    }
    md
}

pub fn write(results: &Path, out: &Path, repo: &Path) -> anyhow::Result<()> {
    let r = read(results)?;
    let described = r.run.as_ref().and_then(|run| run.machine.clone());
    let mut md = render(&r, &described.unwrap_or_else(|| machine(repo)));
    // The chart beside the report (`<report>.svg`), linked from its top.
    if let Some((c, bars)) = chart_bars(&r) {
        let title = r.run.as_ref().map_or_else(String::new, |run| {
            format!("Run of {} ({})", run.date, run.mode)
        });
        let path = out.with_extension("svg");
        std::fs::write(&path, crate::chart::svg(&bars, c, &title))
            .with_context(|| format!("writing {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(end) = md.find('\n') {
            md.insert_str(
                end + 1,
                &format!("\n![req/s, CPU per request and latency by router]({name})\n"),
            );
        }
    }
    std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))
}

/// The chart's figures: the non-streaming step at the highest concurrency
/// every target ran, per target.
fn chart_bars(r: &Results) -> Option<(u32, Vec<crate::chart::Bar>)> {
    let targets = r.targets();
    let c = [64, 16, 1]
        .into_iter()
        .find(|c| targets.iter().all(|t| r.nonstream(t, *c).is_some()))?;
    let bars = targets
        .iter()
        .filter_map(|t| {
            let (w, _) = r.nonstream(t, c)?;
            let l = w.ms();
            Some(crate::chart::Bar {
                name: t.clone(),
                rps: w.rps(),
                cpu_us: r.cpu_per_request(t, c),
                latency_ms: [l.p50, l.p90, l.p99],
            })
        })
        .collect();
    Some((c, bars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_tables_and_checks_from_results() {
        let lines = [
            r#"{"kind":"run","date":"2026-01-01","mode":"quick","warmup_s":1,"duration_s":2,"mcp_calls":10,"mcp_warmup":2,"startup_runs":3,"chunks":20,"gap_ms":2,"threshold":10,"loadgen":"wrk","peers":[]}"#,
            r#"{"kind":"nonstream","target":"direct","c":1,"foreign":1.0,"noisy":false,"reran":false,"r":{"requests":1000,"duration_us":1000000,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"latency_us":{"p50":50,"p90":60,"p99":80,"mean":52,"max":100}}}"#,
            r#"{"kind":"nonstream","target":"woollama","c":1,"foreign":30.0,"noisy":true,"reran":true,"r":{"requests":500,"duration_us":1000000,"errors":{"connect":0,"read":0,"write":0,"status":2,"timeout":0},"latency_us":{"p50":120,"p90":130,"p99":200,"mean":125,"max":300}}}"#,
            r#"{"kind":"mem","target":"woollama","phase":"idle","r":{"rss_kib":8192,"hwm_kib":9000,"threads":4}}"#,
            r#"{"kind":"failed","step":"stream","target":"woollama","error":"boom"}"#,
        ];
        let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("r.jsonl");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let r = read(&path).expect("read");
        let md = render(&r, "a machine");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            md.contains("| 1 | woollama | 500 | 0.50× | 0.120 |"),
            "{md}"
        );
        assert!(md.contains("+0.070"), "{md}");
        assert!(md.contains("⚠ noisy"), "{md}");
        assert!(
            md.contains(
                "| pass-through p50 at c=1 ≤ 0.10 ms | 0.120 ms (+0.070 vs direct) | ✗ (noisy) |"
            ),
            "{md}"
        );
        assert!(md.contains("| idle RSS ≤ 10 MiB | 8.0 MiB | ✓ |"), "{md}");
        assert!(md.contains("stream / woollama: boom"), "{md}");
    }
}
