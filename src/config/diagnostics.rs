//! What config loading found wrong, said so a person can fix it.
//!
//! Every diagnostic names the file, the key path and what to do. Three
//! severities, because the daemon treats them differently:
//! - **fatal**: the config cannot mean anything (unparseable, an unset
//!   `${VAR}`); the daemon refuses to start and says to run `check-config`;
//! - **error**: one entry is unusable and is skipped (a bad server, a recipe
//!   without an inferencer); the daemon starts without it and logs a warning,
//!   `check-config` exits 1;
//! - **warning**: something is ignored or risky (an unknown key, headers over
//!   plain HTTP); reported, never a failure.

use std::fmt;

use super::expand::KeyPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// How the file is named to the user: its path, or `mcp.json (bundled default)`.
    pub file: String,
    pub path: KeyPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// The diagnostics of one load, in the order found.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(
        &mut self,
        severity: Severity,
        file: &str,
        path: &KeyPath,
        message: impl Into<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: file.to_string(),
            path: path.clone(),
            message: message.into(),
        });
    }

    pub fn fatal(&mut self, file: &str, path: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Fatal, file, path, message);
    }

    pub fn error(&mut self, file: &str, path: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Error, file, path, message);
    }

    pub fn warn(&mut self, file: &str, path: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Warning, file, path, message);
    }

    /// Records every `${VAR}` problem of a document as fatal; true if any.
    pub fn fatal_all(&mut self, file: &str, found: Vec<super::expand::Located>) -> bool {
        let any = !found.is_empty();
        for l in found {
            self.fatal(file, &l.path, l.problem.to_string());
        }
        any
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn of(&self, severity: Severity) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(move |d| d.severity == severity)
    }

    pub fn has_fatal(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Fatal)
    }

    /// Fatal and error diagnostics: what makes `check-config` exit 1.
    pub fn problems(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity != Severity::Warning)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
