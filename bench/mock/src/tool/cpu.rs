//! CPU accounting from `/proc`: what the machine spent outside the
//! benchmark's own process tree ("foreign CPU"), the quiet-machine wait, and
//! a process's memory and threads.
//!
//! Busy time is everything but idle and iowait in `/proc/stat`: user, nice,
//! system, irq, softirq and steal (a hypervisor that gave our cores to
//! someone else is noise too). Interrupt and softirq time must be in: the
//! kernel charges a softirq that runs in a process's context (loopback
//! traffic, mostly) to that process's `stime`, so leaving it out of the
//! machine's side would hide foreign CPU behind our own traffic. Softirq work
//! deferred to `ksoftirqd` counts as foreign, which errs on the safe side.
//! The tree's time is `utime + stime + cutime + cstime` of every live process
//! under the root: a finished child (a `wrk` run) is counted through its
//! parent's `cutime` once reaped. Both are in clock ticks (`USER_HZ`, 100 on
//! Linux), as is `/proc/uptime` × 100, so `ticks / elapsed centiseconds` is a
//! fraction of one core.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

/// One reading of the machine's and the tree's CPU.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    busy: u64,
    ours: u64,
    uptime_cs: u64,
}

impl Sample {
    pub fn take(root: i32) -> anyhow::Result<Sample> {
        Ok(Sample {
            busy: machine_busy()?,
            ours: tree_ticks(root),
            uptime_cs: uptime_cs()?,
        })
    }

    /// CPU spent outside the tree since `before`, in percent of one core,
    /// averaged over at least a second: ticks are 10 ms, so over a shorter
    /// step one stray tick would read as a noisy machine.
    pub fn foreign_since(&self, before: &Sample) -> f64 {
        let elapsed = self.uptime_cs.saturating_sub(before.uptime_cs).max(100) as f64;
        let busy = self.busy.saturating_sub(before.busy) as f64;
        let ours = self.ours.saturating_sub(before.ours) as f64;
        ((busy - ours).max(0.0) / elapsed * 100.0).max(0.0)
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.busy, self.ours, self.uptime_cs)
    }
}

impl FromStr for Sample {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Sample> {
        let n: Vec<u64> = s
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("not a CPU sample: {s:?}"))?;
        match n[..] {
            [busy, ours, uptime_cs] => Ok(Sample {
                busy,
                ours,
                uptime_cs,
            }),
            _ => bail!("a CPU sample is three numbers, got {s:?}"),
        }
    }
}

fn machine_busy() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no `cpu` line")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user)
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Ok(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

fn uptime_cs() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
    let secs: f64 = s
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .context("unreadable /proc/uptime")?;
    Ok((secs * 100.0).round() as u64)
}

/// `(ppid, utime + stime + cutime + cstime)` of a process; `None` if it is gone.
fn stat_of(pid: i32) -> Option<(i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: start after
    // its last `)`. Then: state ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime stime cutime cstime.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = (11..=14)
        .map(|i| f.get(i).and_then(|x| x.parse::<i64>().ok()).unwrap_or(0))
        .sum::<i64>();
    Some((ppid, ticks.max(0) as u64))
}

/// CPU ticks of `pid` and every live process under it.
pub fn ticks(pid: i32) -> u64 {
    tree_ticks(pid)
}

/// CPU ticks of `root` and every live process under it.
fn tree_ticks(root: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut ticks: HashMap<i32, u64> = HashMap::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some((ppid, t)) = stat_of(pid) {
            children.entry(ppid).or_default().push(pid);
            ticks.insert(pid, t);
        }
    }
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        total += ticks.get(&pid).copied().unwrap_or(0);
        if let Some(c) = children.get(&pid) {
            todo.extend(c);
        }
    }
    total
}

/// Waits for a quiet machine; see the `quiet` command.
pub fn wait_quiet(root: i32, threshold: f64, need: f64, cap: f64) -> anyhow::Result<String> {
    let window = Duration::from_secs(1);
    let start = Instant::now();
    let mut quiet_for = 0.0;
    let mut last;
    loop {
        let before = Sample::take(root)?;
        std::thread::sleep(window);
        let after = Sample::take(root)?;
        last = after.foreign_since(&before);
        if last < threshold {
            quiet_for += window.as_secs_f64();
        } else {
            quiet_for = 0.0;
        }
        let waited = start.elapsed().as_secs_f64();
        if quiet_for >= need {
            return Ok(format!("quiet {waited:.1}"));
        }
        if waited >= cap {
            return Ok(format!("busy {waited:.1} {last:.1}"));
        }
    }
}

/// RSS, peak RSS and threads of `pid`, as JSON.
pub fn proc_status(pid: i32) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(json!({
        "rss_kib": field("VmRSS:"),
        "hwm_kib": field("VmHWM:"),
        "threads": field("Threads:"),
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::Sample;

    #[test]
    fn foreign_is_busy_minus_ours_per_core() {
        let a: Sample = "1000 400 5000".parse().expect("sample");
        let b: Sample = "1150 500 5100".parse().expect("sample");
        // 150 busy ticks, 100 of them ours, over 100 cs: half a core.
        assert!((b.foreign_since(&a) - 50.0).abs() < 1e-9);
        // A 0.2 s step with one foreign tick: averaged over one second.
        let c: Sample = "1001 400 5020".parse().expect("sample");
        assert!((c.foreign_since(&a) - 1.0).abs() < 1e-9);
        assert!("1 2".parse::<Sample>().is_err());
    }

    #[test]
    fn the_tree_includes_this_process() {
        assert!(super::stat_of(std::process::id() as i32).is_some());
    }
}
