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
    id: FileId,
}

/// Which file a path named: device and inode, and the inode's change time —
/// an inode number is reused as soon as its file is deleted, so another
/// process's socket bound at the same path can get ours (seen in a test);
/// its change time, to the nanosecond, is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
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

/// Creates `dir` (and its parents) if missing, the directory itself mode
/// 0700 whatever the umask; an existing directory is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

fn too_long(path: &Path) -> String {
    format!(
        "{} is {} bytes, longer than the {MAX_PATH} a Unix socket address holds; set XDG_RUNTIME_DIR to a shorter directory",
        path.display(),
        path.as_os_str().len()
    )
}

fn try_bind(path: &Path) -> Result<OwnedSocket, String> {
    if path.as_os_str().len() > MAX_PATH {
        return Err(too_long(path));
    }
    let dir = path.parent().ok_or("the socket path has no directory")?;
    private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))?;
            tracing::info!(socket = %path.display(), "replaced a stale socket");
        }
        Ok(_) => return Err("the path exists and is not a socket; remove it".into()),
        Err(_) => {}
    }
    // The staging path `<dir>/.wXXXXXXXX/s` is never longer than the final
    // `<dir>/woollama.sock`: a runtime directory whose final path fits gets
    // its socket.
    let staging = staging_dir(dir)?;
    let result = (|| {
        let tmp = staging.join("s");
        if tmp.as_os_str().len() > MAX_PATH {
            return Err(too_long(&tmp));
        }
        let listener = UnixListener::bind(&tmp).map_err(|e| format!("bind failed: {e}"))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set mode 0600: {e}"))?;
        fs::rename(&tmp, path).map_err(|e| format!("cannot move the socket into place: {e}"))?;
        let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        Ok(OwnedSocket {
            listener,
            path: path.to_path_buf(),
            id: FileId::of(&meta),
        })
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// A new private directory `.w<8 hex>` in `dir` (a name taken is retried).
fn staging_dir(dir: &Path) -> Result<PathBuf, String> {
    let mut last = None;
    for _ in 0..8 {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let staging = dir.join(format!(".w{}", &name[..8]));
        match fs::DirBuilder::new().mode(0o700).create(&staging) {
            Ok(()) => return Ok(staging),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(format!("cannot create {}: {e}", staging.display())),
        }
    }
    Err(format!(
        "cannot create a staging directory in {}: {}",
        dir.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

impl OwnedSocket {
    /// The parts `axum::serve` needs, and the guard that unlinks the file.
    pub fn split(self) -> (UnixListener, SocketGuard) {
        (
            self.listener,
            SocketGuard {
                path: self.path,
                id: self.id,
            },
        )
    }
}

/// Unlinks the socket at exit if the path still names the one we created.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    id: FileId,
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path)
            && FileId::of(&m) == self.id
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
        assert!(
            try_bind(&long)
                .is_err_and(|e| e.contains("longer than") && e.contains("XDG_RUNTIME_DIR"))
        );
    }

    /// Every runtime directory whose final socket path fits gets its socket
    /// (the staging path once needed ~50 bytes more than the final one).
    #[tokio::test]
    async fn a_long_runtime_dir_still_gets_its_socket() {
        let base = tempfile::tempdir().expect("tempdir");
        let base_len = base.path().as_os_str().len();
        for len in [90, MAX_PATH - "/woollama.sock".len()] {
            let dir = base.path().join("d".repeat(len - base_len - 1));
            assert_eq!(dir.as_os_str().len(), len);
            let path = dir.join("woollama.sock");
            let sock = try_bind(&path).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert!(is_live(&path).await);
            drop(sock);
            fs::remove_dir_all(&dir).expect("rm");
        }
    }

    #[test]
    fn a_created_runtime_dir_is_private() {
        let base = tempfile::tempdir().expect("tempdir");
        let dir = base.path().join("a/b");
        private_dir(&dir).expect("create");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // An existing directory keeps its mode.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&dir).expect("again");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o755);
    }
}
