//! A fake `claude` CLI (`tests/python/fake_claude.py`) behind a wrapper
//! script woollama runs as `WOOLLAMA_CLAUDE_BIN`, and the record of its runs.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

/// A fake `claude`: a wrapper woollama runs, and the record it writes.
pub struct Fake {
    _dir: TempDir,
    pub bin: PathBuf,
    record: PathBuf,
}

pub fn fake() -> Fake {
    let dir = tempfile::tempdir().expect("tempdir");
    let record = dir.path().join("record.jsonl");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/fake_claude.py");
    let bin = dir.path().join("claude");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nexec '{}' '{}' '{}' \"$@\"\n",
            super::python().display(),
            script.display(),
            record.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Fake {
        _dir: dir,
        bin,
        record,
    }
}

impl Fake {
    pub fn runs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("record line"))
            .collect()
    }

    pub fn last(&self) -> Value {
        self.runs().pop().expect("claude ran")
    }
}
