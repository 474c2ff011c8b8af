//! Files that hand retentiond a secret or TLS material: password files
//! (`database.password_file`, `metrics.pushgateway_password_file`), the
//! client key and certificates of `database.ssl*` and the pushgateway's CA.
//! systemd's `LoadCredential=` and Kubernetes secret volumes deliver secrets
//! this way. A relative name is looked up in `$CREDENTIALS_DIRECTORY` when
//! systemd sets it, else in the working directory. A secret file that other
//! users can read is used, with a warning naming the path (never the content).

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// The directory systemd puts a service's `LoadCredential=` files in.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// A file named by a setting that cannot be used. Shows the path and the
/// reason, never the content.
#[derive(Debug, thiserror::Error)]
#[error("{key} {}: {reason}", path.display())]
pub struct FileError {
    /// The setting (or URL parameter) that names the file.
    pub key: String,
    pub path: PathBuf,
    pub reason: String,
}

/// Where the file `name` is: as given when absolute, else in
/// `$CREDENTIALS_DIRECTORY` when that is set (and not empty), else relative
/// to the working directory.
pub fn resolve(name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.to_owned();
    }
    match std::env::var_os(CREDENTIALS_DIRECTORY).filter(|dir| !dir.is_empty()) {
        Some(dir) => Path::new(&dir).join(path),
        None => path.to_owned(),
    }
}

/// Whether the file holds a secret: a secret readable by other users gets a
/// warning, a public certificate does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    Secret,
    Public,
}

/// Reads the file `name` (see [`resolve`]) named by `key`.
pub fn read(key: &str, name: &str, sensitivity: Sensitivity) -> Result<(PathBuf, Vec<u8>), FileError> {
    let path = resolve(name);
    let fail = |reason: String| FileError { key: key.to_owned(), path: path.clone(), reason };
    let content = std::fs::read(&path).map_err(|error| fail(describe_io(&error)))?;
    if content.is_empty() {
        return Err(fail("is empty".into()));
    }
    if sensitivity == Sensitivity::Secret {
        warn_if_others_can_read(key, &path);
    }
    Ok((path, content))
}

/// Reads a password file: its content, trailing line breaks removed, is the
/// password. It must be UTF-8 and not empty.
pub fn read_password(key: &str, name: &str) -> Result<SecretString, FileError> {
    let (path, content) = read(key, name, Sensitivity::Secret)?;
    let fail = |reason: &str| FileError { key: key.to_owned(), path: path.clone(), reason: reason.to_owned() };
    let text = String::from_utf8(content).map_err(|_| fail("is not UTF-8 text"))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(fail("is empty"));
    }
    Ok(SecretString::from(password.to_owned()))
}

/// Reads a password file ([`read_password`]) whose password must be at
/// least `min_chars` characters long.
pub fn read_long_password(key: &str, name: &str, min_chars: usize) -> Result<SecretString, FileError> {
    let password = read_password(key, name)?;
    if password.expose_secret().chars().count() < min_chars {
        return Err(FileError {
            key: key.to_owned(),
            path: resolve(name),
            reason: format!(
                "holds a password of fewer than {min_chars} characters, which could be guessed: use a longer one"
            ),
        });
    }
    Ok(password)
}

fn describe_io(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (cannot read it as this user)".into(),
        _ => format!("cannot read it: {error}"),
    }
}

/// A warning when users other than the owner and the group can read the
/// file. Group-readable is accepted: systemd credentials (0440 with an ACL)
/// and Kubernetes secret volumes with `fsGroup` look like that.
fn warn_if_others_can_read(key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;

    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            key,
            path = %path.display(),
            mode = format!("{:04o}", metadata.permissions().mode() & 0o7777),
            "a secret file is readable by every user on this host; make it 0600 or 0640 (chmod o-r)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_loses_its_trailing_line_breaks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        for (content, expected) in [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), (" s3 cret \n\n", " s3 cret ")] {
            std::fs::write(&path, content).unwrap();
            let password = read_password("database.password_file", path.to_str().unwrap()).unwrap();
            assert_eq!(password.expose_secret(), expected);
        }
        std::fs::write(&path, "\n").unwrap();
        let error = read_password("database.password_file", path.to_str().unwrap()).unwrap_err();
        assert_eq!(error.to_string(), format!("database.password_file {}: is empty", path.display()));
        let missing = dir.path().join("missing");
        let error = read_password("database.password_file", missing.to_str().unwrap()).unwrap_err();
        assert_eq!(error.to_string(), format!("database.password_file {}: no such file", missing.display()));
    }
}
