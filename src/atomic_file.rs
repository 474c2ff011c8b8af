//! Files replaced atomically (`purge --metrics-textfile`, `audit export
//! --output`): written to a temporary file beside the target, synced, renamed
//! over the target, and the directory synced, so a reader sees the old file
//! or the whole new one, never half of it. Until [`AtomicFile::commit`] the
//! target is untouched; a failure, or a drop before the commit, removes the
//! temporary file, so nothing is left behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file being written in place of `path`.
pub struct AtomicFile {
    path: PathBuf,
    temporary: PathBuf,
    /// `None` once committed.
    file: Option<File>,
}

impl AtomicFile {
    /// Starts the temporary file `.<name>.<pid>.tmp` in the target's
    /// directory (the same file system, so the rename is atomic), created
    /// with `mode` (less the umask).
    pub fn create(path: &Path, mode: u32) -> io::Result<AtomicFile> {
        let name = path.file_name().ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let temporary = path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        // One left by a process that died with the same pid is stale.
        let _ = std::fs::remove_file(&temporary);
        let file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&temporary)?;
        Ok(AtomicFile { path: path.to_owned(), temporary, file: Some(file) })
    }

    /// Syncs the data, renames the file over the target and syncs the
    /// directory, so the new file survives a crash once this returns.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("an uncommitted file");
        let committed = file.sync_all().and_then(|()| std::fs::rename(&self.temporary, &self.path));
        if committed.is_err() {
            let _ = std::fs::remove_file(&self.temporary);
            return committed;
        }
        match self.path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            Some(directory) => File::open(directory)?.sync_all(),
            None => File::open(".")?.sync_all(),
        }
    }

    fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("an uncommitted file")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Checks, before any work, that `path` names a file in a directory that
/// exists, so a typo fails at once rather than after the work. `option`
/// names the flag in the message.
pub fn check_target(option: &str, path: &Path) -> Result<(), String> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(format!("{option} {} does not name a file", path.display()));
    }
    if !directory.is_dir() {
        return Err(format!("{option} {}: directory {} does not exist", path.display(), directory.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_target_changes_only_at_the_commit() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("out.txt");
        std::fs::write(&path, "old").unwrap();
        let mut file = AtomicFile::create(&path, 0o600).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(entries(directory.path()), ["out.txt"], "no temporary file is left");
    }

    #[test]
    fn a_file_dropped_before_its_commit_leaves_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("out.txt");
        let mut file = AtomicFile::create(&path, 0o600).unwrap();
        file.write_all(b"half").unwrap();
        drop(file);
        assert!(entries(directory.path()).is_empty());
    }

    #[test]
    fn targets_are_checked_before_the_work() {
        let directory = tempfile::tempdir().unwrap();
        check_target("--output", &directory.path().join("x")).unwrap();
        let missing = check_target("--output", &directory.path().join("nope/x")).unwrap_err();
        assert!(missing.contains("--output") && missing.contains("does not exist"), "{missing}");
        assert!(check_target("--output", Path::new("/")).unwrap_err().contains("does not name a file"));
    }
}
