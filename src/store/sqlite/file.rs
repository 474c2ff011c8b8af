//! The database file itself: created readable by its owner only, checked
//! for writes with access(2), and locked with flock(2) while migrating.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Why this process cannot write a SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyFile {
    #[error("the SQLite file {0} is not writable by this process (permissions or a read-only mount)")]
    File(String),
    #[error(
        "the directory {0} of the SQLite file is not writable by this process (SQLite keeps its -wal and -shm \
         files there)"
    )]
    Directory(String),
}

/// Creates the database file with mode 0600 if it does not exist yet, so job
/// data is never world-readable, not even for the moment before a chmod.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            Err(std::io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Why this process cannot write the database file `file` (or create the
/// journal files beside it), if it cannot.
pub fn read_only(file: &Path) -> Result<Option<ReadOnlyFile>, StoreError> {
    let directory = file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(if !writable(file)? {
        Some(ReadOnlyFile::File(file.display().to_string()))
    } else if !writable(directory)? {
        Some(ReadOnlyFile::Directory(directory.display().to_string()))
    } else {
        None
    })
}

/// Whether this process may write `path`, asked with access(2): it sees
/// permissions, read-only mounts and immutable files, and opens nothing (a
/// descriptor of the database file closed by this process would drop the
/// POSIX locks SQLite holds on it).
fn writable(path: &Path) -> Result<bool, StoreError> {
    use rustix::io::Errno;
    match rustix::fs::access(path, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Ok(true),
        Err(Errno::ACCESS | Errno::ROFS | Errno::PERM | Errno::TXTBSY) => Ok(false),
        Err(errno) => Err(StoreError::Database(format!(
            "cannot tell whether {} is writable: {}",
            path.display(),
            std::io::Error::from(errno)
        ))),
    }
}

/// Waits for an exclusive advisory lock on `path`, released when the file is dropped.
pub async fn lock_exclusively(path: PathBuf) -> Result<File, StoreError> {
    let locked = tokio::task::spawn_blocking(move || {
        let file = File::open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StoreError::Database(format!("migration lock: {e}")))?;
    locked.map_err(|e| StoreError::Database(format!("cannot lock the database file for migrating: {e}")))
}
