//! A stdio server's stderr, relayed into woollama's log.
//!
//! The pipe is drained to its end whatever comes through it: bytes, not
//! text (a line of invalid UTF-8 is decoded lossily — stopping would close
//! the pipe, and the server's next write to stderr would kill it), and a line
//! is kept only up to [`LINE_CAP`] bytes (a server that writes megabytes with
//! no newline costs no memory and floods no log).
//!
//! Each line is logged once, under `woollama::downstream` with the server's
//! name. A line that starts with a log record's own timestamp and level (as
//! the bundled example servers, and most `tracing` or `log` users, write
//! them) is logged at that level without them, so it does not carry two
//! timestamps; ANSI colour codes are removed.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most of one line that reaches the log.
pub const LINE_CAP: usize = 4096;

/// The level a relayed line is logged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Reads `stderr` to its end, handing each line to `sink`.
pub async fn drain(mut stderr: impl AsyncRead + Unpin, mut sink: impl FnMut(Level, &str)) {
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = 0usize;
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for part in buf[..n].split_inclusive(|b| *b == b'\n') {
            let complete = part.last() == Some(&b'\n');
            let body = if complete {
                &part[..part.len() - 1]
            } else {
                part
            };
            let room = LINE_CAP - line.len();
            let kept = body.len().min(room);
            line.extend_from_slice(&body[..kept]);
            cut += body.len() - kept;
            if complete {
                emit(&line, cut, &mut sink);
                line.clear();
                cut = 0;
            }
        }
    }
    if !line.is_empty() || cut > 0 {
        emit(&line, cut, &mut sink);
    }
}

fn emit(raw: &[u8], cut: usize, sink: &mut impl FnMut(Level, &str)) {
    let text = strip_ansi(&String::from_utf8_lossy(raw));
    let text = text.trim_end();
    if text.is_empty() && cut == 0 {
        return;
    }
    let (level, message) = parse(text);
    if cut > 0 {
        sink(level, &format!("{message} … ({cut} more bytes not logged)"));
    } else {
        sink(level, message);
    }
}

/// Splits off a leading `<timestamp> <LEVEL>` (either part optional) and
/// returns the level it names (info when none) and the rest.
fn parse(line: &str) -> (Level, &str) {
    let mut rest = line.trim_start();
    if let Some((first, after)) = rest.split_once(' ')
        && looks_like_timestamp(first)
    {
        rest = after.trim_start();
    }
    let word_end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let level = match &rest[..word_end] {
        "TRACE" | "DEBUG" => Some(Level::Debug),
        "INFO" => Some(Level::Info),
        "WARN" | "WARNING" => Some(Level::Warn),
        "ERROR" | "CRITICAL" | "FATAL" => Some(Level::Error),
        _ => None,
    };
    match level {
        Some(l) => {
            let after = rest[word_end..].trim_start_matches(':').trim_start();
            (l, after)
        }
        None => (Level::Info, line.trim_start()),
    }
}

/// `2026-11-25T22:44:33.123456Z`, `2026-11-25`, `22:44:33,123` and the like.
fn looks_like_timestamp(s: &str) -> bool {
    s.len() >= 8
        && s.starts_with(|c: char| c.is_ascii_digit())
        && (s.contains('-') || s.contains(':'))
        && s.chars()
            .all(|c| c.is_ascii_digit() || "-:.,TZ+".contains(c))
}

/// Removes ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: Vec<u8>) -> Vec<(Level, String)> {
        let mut out = Vec::new();
        drain(&input[..], |l, s| out.push((l, s.to_string()))).await;
        out
    }

    #[tokio::test]
    async fn invalid_utf8_is_decoded_and_draining_goes_on() {
        let mut input = b"before\n\xff\xfe bad bytes\n".to_vec();
        input.extend_from_slice(b"after\n");
        let got = lines_of(input).await;
        let texts: Vec<&str> = got.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(texts, ["before", "\u{fffd}\u{fffd} bad bytes", "after"]);
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_and_the_rest_still_read() {
        let mut input = vec![b'x'; 3 * 1024 * 1024];
        input.extend_from_slice(b"\nnext line\n");
        let got = lines_of(input).await;
        assert_eq!(got.len(), 2);
        assert!(got[0].1.len() < LINE_CAP + 64, "{}", got[0].1.len());
        assert!(got[0].1.ends_with(&format!(
            "({} more bytes not logged)",
            3 * 1024 * 1024 - LINE_CAP
        )));
        assert_eq!(got[1].1, "next line");
        // A last line without a newline is still logged.
        assert_eq!(lines_of(b"tail".to_vec()).await[0].1, "tail");
    }

    #[test]
    fn a_records_own_timestamp_and_level_are_not_repeated() {
        let cases = [
            (
                "2026-11-25T22:44:33.123456Z  INFO serve_inner: rmcp::service: Service initialized",
                Level::Info,
                "serve_inner: rmcp::service: Service initialized",
            ),
            (
                "\u{1b}[2m2026-11-25T22:44:33Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x: careful",
                Level::Warn,
                "x: careful",
            ),
            ("ERROR:root:it broke", Level::Error, "root:it broke"),
            ("DEBUG details", Level::Debug, "details"),
            (
                "Starting server on stdio",
                Level::Info,
                "Starting server on stdio",
            ),
            (
                "INFORMATION is not a level",
                Level::Info,
                "INFORMATION is not a level",
            ),
            ("2026 was a year", Level::Info, "2026 was a year"),
        ];
        for (line, level, rest) in cases {
            let text = strip_ansi(line);
            assert_eq!(parse(&text), (level, rest), "{line:?}");
        }
    }
}
