//! Where the log goes: stderr, a line per event, written a batch at a time
//! while the daemon is busy; and the access log's line, made here.
//!
//! Written as it comes, every access-log line is a `write(2)` of its own:
//! about a sixth of a pass-through's CPU on the bench machine (17.0 against
//! 20.1 µs per request with and without `WOOLLAMA_ACCESS_LOG`). So while a
//! runtime serves, lines go into a buffer and a task of the runtime
//! ([`Batched`]) writes the buffer out: woken by the first line into an
//! empty buffer, it yields once so that the tasks and I/O ready with it run
//! first. The lines of a burst leave in one write; the line of a quiet
//! daemon leaves within microseconds, as a person watching expects.
//!
//! Written at once, after whatever is buffered (the order is kept):
//! warnings and errors, every line when no runtime is batching (before it
//! starts, after it stops, the commands that do not serve), a line that
//! would take the buffer past [`MOST`], what woollama prints besides its log
//! ([`print`]: the banner), and a panic's message. What is buffered when the batching
//! stops ([`Batched`] dropped, also when unwinding) is written then.
//!
//! The access log's text line ([`access`]) is put together here rather than
//! by the `tracing` formatter, which escapes its message a character at a
//! time: with it, the access log was a fifth of a pass-through's
//! instructions (69.5k against 54.6k per request without it). The line is
//! the one that formatter writes (`<time>  INFO woollama::access: <line>`),
//! `RUST_LOG` decides as before, and it takes this path only when woollama
//! set the log up itself as plain text: a terminal (colours) and
//! `--log-format json` go through `tracing`. The line's values are made safe
//! by their maker (`http::access`: no control characters, no spaces).

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::config::Env;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Whether the access log's line is written here (see the module doc).
static DIRECT: AtomicBool = AtomicBool::new(false);

/// The most bytes held back; a line past it is written at once.
const MOST: usize = 64 * 1024;

/// woollama's own events at info, its libraries' at warn (rmcp's session
/// dumps and per-notification lines are for debugging). `RUST_LOG` replaces it.
pub const DEFAULT_LOG: &str = "warn,woollama=info";

/// Sets the process's log up: `RUST_LOG` (else `default_filter`), text or
/// JSON lines, to stderr through [`SINK`].
pub fn init(format: Format, env: &Env, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = env
        .non_empty("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(&SINK);
    // Err only if a subscriber is already set (embedding); keep theirs.
    let ansi = std::io::stderr().is_terminal();
    let ours = match format {
        Format::Json => builder.json().try_init(),
        Format::Text => builder.with_ansi(ansi).try_init(),
    }
    .is_ok();
    DIRECT.store(ours && format == Format::Text && !ansi, Ordering::Relaxed);
}

/// Writes an access-log `line` as the `tracing` formatter would (an INFO
/// event of target `woollama::access`), if `RUST_LOG` lets it through.
/// `false` when the log is not woollama's plain text: then the caller logs
/// it through `tracing`.
pub fn access(line: &str) -> bool {
    if !DIRECT.load(Ordering::Relaxed) {
        return false;
    }
    if tracing::enabled!(target: "woollama::access", Level::INFO) {
        let out = access_line(std::time::SystemTime::now(), line);
        let _ = Line { urgent: false }.write(&out);
    }
    true
}

/// The access log's text line at `now`, as the `tracing` formatter writes it.
fn access_line(now: std::time::SystemTime, line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 56);
    out.extend_from_slice(&rfc3339_micros(now));
    out.extend_from_slice(b"  INFO woollama::access: ");
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out
}

/// `t` as the `tracing` formatter writes a time: UTC, to the microsecond
/// (`2026-11-26T01:42:30.168412Z`).
fn rfc3339_micros(t: std::time::SystemTime) -> [u8; 27] {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::wire::civil_date(days);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    out
}

/// The one sink of the process's log.
static SINK: Sink = Sink {
    state: Mutex::new(State {
        held: Vec::new(),
        batching: false,
    }),
    wake: tokio::sync::Notify::const_new(),
};

struct Sink {
    state: Mutex<State>,
    /// Wakes the batching task: a first line went into an empty buffer.
    wake: tokio::sync::Notify,
}

struct State {
    /// Lines not yet written.
    held: Vec<u8>,
    /// Whether a runtime's task writes `held` out.
    batching: bool,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Writes out what is held, then `line`. A failing stderr (closed,
    /// full) loses the lines: there is nowhere else to say so.
    fn write_through(&mut self, line: &[u8]) {
        let mut err = std::io::stderr().lock();
        if !self.held.is_empty() {
            let _ = err.write_all(&self.held);
            self.held.clear();
        }
        if !line.is_empty() {
            let _ = err.write_all(line);
        }
    }
}

/// One event's writer: the formatter writes the whole line with one
/// `write_all`.
pub struct Line {
    urgent: bool,
}

impl std::io::Write for Line {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut state = SINK.lock();
        if self.urgent || !state.batching || state.held.len() + line.len() > MOST {
            state.write_through(line);
        } else {
            let first = state.held.is_empty();
            state.held.extend_from_slice(line);
            drop(state);
            if first {
                SINK.wake.notify_one();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for &'static Sink {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            urgent: urgent(*meta.level()),
        }
    }
}

/// Whether a line of this level is written at once: warnings and errors
/// (`Level` orders by verbosity, ERROR lowest).
fn urgent(level: Level) -> bool {
    level <= Level::WARN
}

/// Writes `text` to stderr now, after the log lines still waiting: for
/// what woollama prints besides its log (the banner), so that it keeps its
/// place among them.
pub fn print(text: &str) {
    SINK.lock().write_through(text.as_bytes());
}

/// Batching on `runtime` while this lives; dropped, it writes out what is
/// left and lines go straight to stderr again.
pub struct Batched(());

impl Batched {
    /// Starts batching the log on `runtime`.
    pub fn on(runtime: &tokio::runtime::Runtime) -> Self {
        SINK.lock().batching = true;
        // A panic's message comes after the lines logged before it.
        let earlier = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Not if the panic is this thread's, holding the sink.
            let state = match SINK.state.try_lock() {
                Ok(state) => Some(state),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            if let Some(mut state) = state {
                state.write_through(&[]);
            }
            earlier(info);
        }));
        runtime.spawn(async {
            loop {
                SINK.wake.notified().await;
                // Let the tasks and I/O that are ready run (and log) first.
                tokio::task::yield_now().await;
                SINK.lock().write_through(&[]);
            }
        });
        Batched(())
    }
}

impl Drop for Batched {
    fn drop(&mut self) {
        let mut state = SINK.lock();
        state.batching = false;
        state.write_through(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, micros: u64) -> String {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(secs * 1_000_000 + micros);
        String::from_utf8(rfc3339_micros(t).to_vec()).expect("ascii")
    }

    #[test]
    fn times_are_written_as_the_tracing_formatter_writes_them() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_795_657_350, 168_412), "2026-11-26T01:42:30.168412Z");
        assert_eq!(at(1_709_208_000, 7), "2024-02-29T12:00:00.000007Z");
        assert_eq!(at(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
    }

    /// The line written here is the one `tracing`'s formatter writes, but
    /// for the time (taken apart).
    #[test]
    fn the_access_line_is_the_tracing_formatters() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let line =
            "POST /v1/chat/completions 200 12.3ms model=ollama/qwen3 origin=relayed upstream=200";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "woollama::access", "{line}");
        });
        let theirs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
        let ours =
            String::from_utf8(access_line(std::time::SystemTime::now(), line)).expect("utf8");
        assert_eq!(theirs.len(), ours.len(), "{theirs:?} / {ours:?}");
        assert_eq!(theirs[27..], ours[27..]);
        for s in [&theirs, &ours] {
            assert!(
                s.as_bytes()[..27]
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| match i {
                        4 | 7 => b == b'-',
                        10 => b == b'T',
                        13 | 16 => b == b':',
                        19 => b == b'.',
                        26 => b == b'Z',
                        _ => b.is_ascii_digit(),
                    }),
                "{s:?}"
            );
        }
    }

    #[test]
    fn warnings_and_errors_are_urgent_info_and_below_are_not() {
        assert!(urgent(Level::ERROR));
        assert!(urgent(Level::WARN));
        assert!(!urgent(Level::INFO));
        assert!(!urgent(Level::DEBUG));
        assert!(!urgent(Level::TRACE));
    }
}
