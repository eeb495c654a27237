//! The child guard: every stdio MCP server is started as
//! `woollama child-guard <woollama pid> -- <command> [args…]` (a hidden
//! command of this binary), so that it dies with woollama even when woollama
//! itself is killed with SIGKILL and gets no chance to stop it.
//!
//! Why a guard process and not `PR_SET_PDEATHSIG` set in the server itself:
//! setting it between `fork` and `exec` needs `pre_exec`, which is `unsafe`
//! (forbidden in this crate), and it would reach only the direct child, not
//! an `npx` tree's grandchildren. The guard sets the parent-death signal on
//! itself, checks woollama is still its parent (it may have died before the
//! `prctl`), then runs the server as its own child, in the process group
//! woollama made it lead. When a stop signal comes — from woollama's
//! shutdown, from the kernel because woollama died, or from anyone — the
//! guard passes SIGTERM to the whole group; if woollama is gone it also
//! gives the group two seconds and then SIGKILLs it, since nobody else will.
//! The same sweep follows the server's exit, always: woollama's death
//! closes the server's stdin before the kernel reparents the guard, so
//! whether woollama still lives cannot be told then, and what the server
//! started may not care that it ended. The server's own exit status becomes
//! the guard's.
//!
//! Linux delivers the parent-death signal when the *thread* that spawned the
//! child exits, not the process: woollama spawns servers from its runtime's
//! worker threads, which live as long as the runtime.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp, getpid, getppid};

/// The hidden subcommand's name.
pub const COMMAND: &str = "child-guard";

/// The arguments that start `program args…` through the guard at `guard`.
pub fn argv(program: &Path, args: &[String]) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        COMMAND.into(),
        std::process::id().to_string().into(),
        "--".into(),
        program.as_os_str().to_owned(),
    ];
    v.extend(args.iter().map(OsString::from));
    v
}

/// How long an orphaned group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Runs the guard: `parent` is woollama's pid, `command` the server's argv.
pub fn run(parent: u32, command: &[OsString]) -> ExitCode {
    let Some((program, args)) = command.split_first() else {
        eprintln!("woollama {COMMAND}: no command to run");
        return ExitCode::from(2);
    };
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        eprintln!("woollama {COMMAND}: cannot set the parent-death signal: {e}");
        return ExitCode::from(1);
    }
    // woollama may have died before the prctl: then nothing would tell us.
    if u32::try_from(getppid().as_raw()).ok() != Some(parent) {
        return ExitCode::from(1);
    }
    // The stop signals are caught (not blocked: a blocked mask would be
    // inherited by the server and what it starts, since `spawn` does not
    // reset it) and taken by the thread below. Handlers end at `exec`, so
    // the server starts with the default actions.
    let mut stops = match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("woollama {COMMAND}: cannot handle signals: {e}");
            return ExitCode::from(1);
        }
    };
    let mut child = match std::process::Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "woollama {COMMAND}: cannot start `{}`: {e}",
                program.to_string_lossy()
            );
            return ExitCode::from(127);
        }
    };
    let group = getpgrp();
    let orphaned = move || u32::try_from(getppid().as_raw()).ok() != Some(parent);
    std::thread::spawn(move || {
        if stops.forever().next().is_none() {
            return;
        }
        // Passing it on to our own group signals us too: the handler takes
        // it, and nobody acts on it again.
        let _ = killpg(group, Signal::SIGTERM);
        if orphaned() {
            // Nobody else will stop a server that ignores SIGTERM.
            sweep(group);
        }
    });
    let status = child.wait();
    // The server is gone; whatever it started goes with it. (woollama would
    // stop the group too if it lives — but it may be dying: its death closed
    // the server's stdin, and the kernel reparents us only after that, so
    // "is woollama still our parent?" cannot be trusted here.)
    let _ = killpg(group, Signal::SIGTERM);
    sweep(group);
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt as _;
            let code = s
                .code()
                .or_else(|| s.signal().map(|n| 128 + n))
                .unwrap_or(1);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Gives the rest of `group` [`GRACE`] to end after a SIGTERM, then kills it.
fn sweep(group: Pid) {
    let me = getpid().as_raw();
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && group_runs(group.as_raw(), me) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if group_runs(group.as_raw(), me) {
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// Whether a process other than `except` still runs in `group` (read from
/// `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`). Zombies do not count:
/// they are dead, and where PID 1 does not reap (some containers) they
/// would otherwise hold a stop for its whole grace period.
pub fn group_runs(group: i32, except: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            return false;
        };
        if pid == except {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|s| s.parse::<i32>().ok());
        !matches!(state, Some("Z" | "X")) && pgrp == Some(group)
    })
}

/// Finds `command` as `exec` would with the child's `PATH`, so a missing
/// program is reported by name before anything is spawned.
pub fn resolve(command: &str, path: Option<&str>) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        return if runnable(&p) {
            Ok(p)
        } else if p.exists() {
            Err(format!(
                "cannot start `{command}`: it is not an executable file"
            ))
        } else {
            Err(format!("cannot start `{command}`: no such file"))
        };
    }
    let path = path.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    std::env::split_paths(path)
        .map(|d| d.join(command))
        .find(|p| runnable(p))
        .ok_or_else(|| {
            format!(
                "cannot start `{command}`: not found on PATH ({path}); give the full path in mcp.json, or add `PATH` to the server's `env`"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_exec() {
        assert_eq!(
            resolve("sh", Some("/nonexistent:/bin")),
            Ok(PathBuf::from("/bin/sh"))
        );
        assert!(
            resolve("sh", Some("/nonexistent")).is_err_and(|e| e.contains("not found on PATH"))
        );
        assert!(resolve("/nonexistent/x", None).is_err_and(|e| e.contains("no such file")));
        let not_runnable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(resolve(not_runnable, None).is_err_and(|e| e.contains("not an executable")));
    }

    #[test]
    fn argv_names_the_parent_and_passes_the_command_whole() {
        let v = argv(Path::new("/bin/sh"), &["-c".into(), "--x".into()]);
        let s: Vec<String> = v.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            s,
            [
                COMMAND,
                &std::process::id().to_string(),
                "--",
                "/bin/sh",
                "-c",
                "--x"
            ]
        );
    }
}
