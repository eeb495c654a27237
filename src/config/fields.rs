//! The typed key readers all three config files validate with.
//!
//! Every file does the same walk: read a key, check its kind, and when it is
//! wrong say "expected X, found Y" with the file, the key path and what
//! becomes of the entry (`; server skipped`, `; recipe 'x' skipped`, `; the
//! setting is ignored`), then go on with the siblings. [`Reporter`] holds how
//! one kind of problem is reported, [`Fields`] reads one entry's keys with
//! it, and [`TopLevel`] walks a file's top-level keys. Each file then says
//! only what its keys mean, and no message is assembled by hand twice.

use std::fmt;

use super::diagnostics::{Diagnostics, Severity};
use super::expand::KeyPath;
use super::node::Node;

/// The value was reported, and the entry or setting it belongs to is left
/// out.
#[derive(Debug)]
pub struct Skipped;

/// How a problem is reported: in which file, how severely, and the tail that
/// ends every message (a hint and what becomes of the entry, or nothing).
pub struct Reporter<'a> {
    file: &'a str,
    severity: Severity,
    tail: String,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a str, severity: Severity, tail: impl Into<String>) -> Self {
        Self {
            file,
            severity,
            tail: tail.into(),
        }
    }

    /// How the file is named in messages.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// Reports `message` followed by the tail.
    pub fn say(
        &self,
        diags: &mut Diagnostics,
        path: &KeyPath,
        message: impl fmt::Display,
    ) -> Skipped {
        diags.push(
            self.severity,
            self.file,
            path,
            format!("{message}{}", self.tail),
        );
        Skipped
    }

    /// Reports "expected `expected`, found <the kind of `found`>".
    pub fn wrong<V: Node>(
        &self,
        diags: &mut Diagnostics,
        path: &KeyPath,
        expected: &str,
        found: &V,
    ) -> Skipped {
        self.say(
            diags,
            path,
            format_args!("expected {expected}, found {}", found.kind()),
        )
    }

    /// `value` as `pick` reads it, or the report that it is not `expected`.
    pub fn expect<'v, V: Node, T>(
        &self,
        diags: &mut Diagnostics,
        path: &KeyPath,
        value: &'v V,
        expected: &str,
        pick: impl FnOnce(&'v V) -> Option<T>,
    ) -> Result<T, Skipped> {
        pick(value).ok_or_else(|| self.wrong(diags, path, expected, value))
    }
}

/// The keys of one entry (a server, a recipe), read against a [`Reporter`].
pub struct Fields<'a, V: Node> {
    map: &'a V::Map,
    pub path: &'a KeyPath,
    pub report: &'a Reporter<'a>,
}

impl<'a, V: Node> Fields<'a, V> {
    pub fn new(map: &'a V::Map, path: &'a KeyPath, report: &'a Reporter<'a>) -> Self {
        Self { map, path, report }
    }

    pub fn get(&self, key: &str) -> Option<&'a V> {
        V::get(self.map, key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// `key` as `pick` reads it: `Ok(None)` when absent, reported (and
    /// `Err`) when it is not `expected`.
    pub fn opt<T>(
        &self,
        diags: &mut Diagnostics,
        key: &str,
        expected: &str,
        pick: impl FnOnce(&'a V) -> Option<T>,
    ) -> Result<Option<T>, Skipped> {
        self.get(key)
            .map(|v| {
                self.report
                    .expect(diags, &self.path.key(key), v, expected, pick)
            })
            .transpose()
    }

    pub fn opt_string(
        &self,
        diags: &mut Diagnostics,
        key: &str,
        expected: &str,
    ) -> Result<Option<&'a str>, Skipped> {
        self.opt(diags, key, expected, V::text)
    }

    pub fn opt_table(
        &self,
        diags: &mut Diagnostics,
        key: &str,
        expected: &str,
    ) -> Result<Option<&'a V::Map>, Skipped> {
        self.opt(diags, key, expected, V::table)
    }

    /// Warns about every key that is neither in `known` nor documentation
    /// (`_`-prefixed).
    pub fn warn_unknown(&self, diags: &mut Diagnostics, known: &[&str], message: &str) {
        for (key, _) in V::entries(self.map) {
            if !known.contains(&key.as_str()) && !key.starts_with('_') {
                diags.warn(self.report.file, &self.path.key(key), message);
            }
        }
    }
}

/// A file's top level: one key holding the named entries, keys other tools
/// accept that this version ignores, `_`-prefixed documentation, and
/// anything else (a warning).
pub struct TopLevel<'a> {
    /// `mcpServers`, `recipes` or `inferencers`.
    pub entries: &'a str,
    /// What the entries key must hold, for the fatal message when it does not.
    pub expected: &'a str,
    /// Whether `_`-named entries are documentation (not under `mcpServers`,
    /// where every server name is checked).
    pub doc_entries: bool,
    /// Keys read by the file's own parser, beside the entries.
    pub handled: &'a [&'a str],
    /// Keys that mean something to other tools but not to this version.
    pub unsupported: &'a [&'a str],
    /// The warning for an unsupported key.
    pub unsupported_why: &'a str,
    /// The warning for any other key.
    pub unknown: &'a str,
}

impl TopLevel<'_> {
    /// Walks `doc` in file order, calling `each` with every entry's name,
    /// value and path.
    pub fn walk<V: Node>(
        &self,
        doc: &V::Map,
        file: &str,
        diags: &mut Diagnostics,
        mut each: impl FnMut(&str, &V, &KeyPath, &mut Diagnostics),
    ) {
        let fatal = Reporter::new(file, Severity::Fatal, "");
        for (key, value) in V::entries(doc) {
            let path = KeyPath::root().key(key);
            if key == self.entries {
                let Ok(entries) = fatal.expect(diags, &path, value, self.expected, V::table) else {
                    continue;
                };
                for (name, entry) in V::entries(entries) {
                    if !(self.doc_entries && name.starts_with('_')) {
                        each(name, entry, &path.key(name), diags);
                    }
                }
            } else if self.handled.contains(&key.as_str()) {
            } else if self.unsupported.contains(&key.as_str()) {
                diags.warn(file, &path, self.unsupported_why);
            } else if !key.starts_with('_') {
                diags.warn(file, &path, self.unknown);
            }
        }
    }
}
