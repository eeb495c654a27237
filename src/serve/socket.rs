//! The Unix socket `$XDG_RUNTIME_DIR/woollama.sock` (contract §1.3).
//!
//! - A socket a live daemon answers on is never touched: we refuse to start.
//! - A stale socket file is replaced; a path that exists but is *not* a
//!   socket is left alone (the socket is then skipped, TCP still serves).
//! - The socket is bound inside a private 0700 directory, set to 0600, and
//!   only then renamed into place, so it is never reachable with looser
//!   permissions (setting a umask would need `unsafe`, which we forbid).
//! - At exit it is unlinked only if the path still names *our* socket.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

/// `sockaddr_un.sun_path` holds 108 bytes including the terminating NUL.
const MAX_PATH: usize = 107;

/// A socket this process created, and how to recognise it at exit.
#[derive(Debug)]
pub struct OwnedSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    dev: u64,
    ino: u64,
}

/// Whether a daemon is answering on `path`.
pub async fn is_live(path: &Path) -> bool {
    if fs::symlink_metadata(path).is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(2), UnixStream::connect(path)).await,
        Ok(Ok(_))
    )
}

/// Binds the socket, or says why not and returns `None` (TCP still serves).
pub fn bind(path: &Path) -> Option<OwnedSocket> {
    match try_bind(path) {
        Ok(s) => Some(s),
        Err(why) => {
            tracing::warn!(socket = %path.display(), "no Unix socket: {why}; serving TCP only");
            None
        }
    }
}

fn try_bind(path: &Path) -> Result<OwnedSocket, String> {
    if path.as_os_str().len() > MAX_PATH {
        return Err(format!(
            "the path is longer than {MAX_PATH} bytes; set XDG_RUNTIME_DIR to a shorter directory"
        ));
    }
    let dir = path.parent().ok_or("the socket path has no directory")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))?;
            tracing::info!(socket = %path.display(), "replaced a stale socket");
        }
        Ok(_) => return Err("the path exists and is not a socket; remove it".into()),
        Err(_) => {}
    }
    let staging = dir.join(format!(
        ".woollama-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let result = (|| {
        let tmp = staging.join("woollama.sock");
        let listener = UnixListener::bind(&tmp).map_err(|e| format!("bind failed: {e}"))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set mode 0600: {e}"))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot move the socket into place: {e}"))?;
        let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        Ok(OwnedSocket {
            listener,
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

impl OwnedSocket {
    /// The parts `axum::serve` needs, and the guard that unlinks the file.
    pub fn split(self) -> (UnixListener, SocketGuard) {
        (
            self.listener,
            SocketGuard {
                path: self.path,
                dev: self.dev,
                ino: self.ino,
            },
        )
    }
}

/// Unlinks the socket at exit if the path still names the one we created.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path)
            && m.dev() == self.dev
            && m.ino() == self.ino
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_0600_and_unlinks_only_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("woollama.sock");
        let sock = bind(&path).expect("bind");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(is_live(&path).await);
        // No staging directory is left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
        let (listener, guard) = sock.split();
        drop(listener);
        // Someone else's socket now sits at the path: the guard leaves it.
        fs::remove_file(&path).expect("rm");
        let other = UnixListener::bind(&path).expect("bind other");
        drop(guard);
        assert!(path.exists());
        drop(other);
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_but_not_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("woollama.sock");
        drop(UnixListener::bind(&path).expect("bind"));
        assert!(path.exists() && !is_live(&path).await);
        assert!(bind(&path).is_some());

        let file = dir.path().join("not-a-socket");
        fs::write(&file, "keep me").expect("write");
        assert!(bind(&file).is_none());
        assert_eq!(fs::read_to_string(&file).expect("read"), "keep me");
    }

    #[test]
    fn refuses_an_overlong_path() {
        let long = PathBuf::from(format!("/tmp/{}/woollama.sock", "d".repeat(120)));
        assert!(try_bind(&long).is_err_and(|e| e.contains("longer than")));
    }
}
