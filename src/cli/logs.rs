//! Where the log goes: stderr, a line per event, written a batch at a time
//! while the daemon is busy.
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
//! starts, after it stops, the commands that do not serve), and a line that
//! would take the buffer past [`MOST`]. What is buffered when the batching
//! stops ([`Batched`] dropped, also when unwinding) is written then.

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use super::LogFormat;
use crate::config::Env;

/// The most bytes held back; a line past it is written at once.
const MOST: usize = 64 * 1024;

/// woollama's own events at info, its libraries' at warn (rmcp's session
/// dumps and per-notification lines are for debugging). `RUST_LOG` replaces it.
pub const DEFAULT_LOG: &str = "warn,woollama=info";

/// Sets the process's log up: `RUST_LOG` (else `default_filter`), text or
/// JSON lines, to stderr through [`SINK`].
pub fn init(format: LogFormat, env: &Env, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = env
        .non_empty("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(&SINK);
    // Err only if a subscriber is already set (embedding); keep theirs.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
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

/// Batching on `runtime` while this lives; dropped, it writes out what is
/// left and lines go straight to stderr again.
pub struct Batched(());

impl Batched {
    /// Starts batching the log on `runtime`.
    pub fn on(runtime: &tokio::runtime::Runtime) -> Self {
        SINK.lock().batching = true;
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

    #[test]
    fn warnings_and_errors_are_urgent_info_and_below_are_not() {
        assert!(urgent(Level::ERROR));
        assert!(urgent(Level::WARN));
        assert!(!urgent(Level::INFO));
        assert!(!urgent(Level::DEBUG));
        assert!(!urgent(Level::TRACE));
    }
}
