//! A real `woollama` binary started as users start it: its own temp dirs, a
//! cleared environment, its stderr collected line by line; readiness is the
//! banner line, never a sleep.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_woollama");
/// A generous bound so a broken build fails instead of hanging; never a
/// condition a passing run waits on.
pub const LIMIT: Duration = Duration::from_secs(30);

pub struct Dirs {
    pub _tmp: TempDir,
    pub home: PathBuf,
    pub run: PathBuf,
    pub config: PathBuf,
}

pub fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let config = tmp.path().join("config");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::create_dir_all(&config).expect("mkdir");
    Dirs {
        run: tmp.path().join("run"),
        home,
        config,
        _tmp: tmp,
    }
}

pub fn command(d: &Dirs, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &d.home)
        .env("XDG_RUNTIME_DIR", &d.run)
        .env("WOOLLAMA_CONFIG_DIR", &d.config)
        .env("RUST_LOG", "info")
        // The single-threaded runtime a one-core machine gets (and the
        // benchmark measures); `woollama mcp` in the other tests keeps the
        // default, one worker per core, so both are exercised.
        .env("WOOLLAMA_WORKER_THREADS", "1")
        .stdin(Stdio::null());
    c
}

pub fn output(mut c: Command) -> (ExitStatus, String, String) {
    let out = c.output().expect("run woollama");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running daemon, with its stderr collected line by line.
pub struct Daemon {
    child: Option<Child>,
    pub pid: u32,
    pub base: String,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts the daemon and waits for its banner.
    pub fn start(c: Command) -> Result<Daemon, (ExitStatus, String)> {
        let mut d = Daemon::spawn(c, Stdio::null());
        match d.wait_line(|l| l.trim_start().starts_with("OpenAI base_url:")) {
            Some(line) => {
                let url = line.split_whitespace().last().expect("url");
                d.base = url.trim_end_matches("/v1").to_string();
                Ok(d)
            }
            None => {
                let status = d.wait_exit();
                Err((status, d.log()))
            }
        }
    }

    /// Starts `woollama mcp` with its stdin held open (a client that is
    /// connected but quiet); nothing is waited for.
    pub fn start_mcp(c: Command) -> Daemon {
        Daemon::spawn(c, Stdio::piped())
    }

    fn spawn(mut c: Command, stdin: Stdio) -> Daemon {
        let mut child = c
            .stdin(stdin)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log2.lock().expect("lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let pid = child.id();
        Daemon {
            child: Some(child),
            pid,
            base: String::new(),
            lines: rx,
            log,
        }
    }

    /// Waits for a stderr line matching `pred`; `None` if stderr closed.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        loop {
            match self.lines.recv_timeout(LIMIT) {
                Ok(l) if pred(&l) => return Some(l),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no such line within {LIMIT:?}; log:\n{}", self.log())
                }
            }
        }
    }

    /// Waits until the whole log so far satisfies `pred`.
    pub fn wait_logged(&mut self, pred: impl Fn(&[String]) -> bool) {
        loop {
            if pred(&self.log.lock().expect("lock")) {
                return;
            }
            match self.lines.recv_timeout(LIMIT) {
                Ok(_) => {}
                Err(_) => panic!("condition not met; log:\n{}", self.log()),
            }
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for the process to exit. A piped stdin stays open until then:
    /// the exit must come from what the test did, not from stdin closing.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let stdin = child.stdin.take();
            let _ = tx.send(child.wait());
            drop(stdin);
        });
        rx.recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("woollama did not exit within {LIMIT:?}"))
            .expect("wait")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every process below `pid` (children, their children, …).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Whether a process is still running (a zombie, dead but not yet reaped by
/// whoever inherited it, is not).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Waits, at most [`LIMIT`], until none of `pids` runs any more; returns
/// those still running then.
pub fn wait_gone(pids: &[u32]) -> Vec<u32> {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| running(*p)).collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids of a process's direct children (`/proc/<pid>/task/*/children`).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(list) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(
                    list.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}
