//! Reading a password from a file named by a setting (`ui.password_file`).
//! A relative name is looked up in `$CREDENTIALS_DIRECTORY`, where systemd's
//! `LoadCredential=` puts credentials. The content is a secret: it never
//! appears in an error, a log line or `check-config`; only the file's name does.

use std::path::PathBuf;

use secrecy::SecretString;

use super::ConfigError;

/// Where systemd passes a service its credentials.
const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The password in the file that setting `key` names: its content with one
/// trailing line break removed. A file that cannot be read, or holds no
/// password, is a configuration error naming the key and the file.
pub fn read_password_file(key: &str, name: &str) -> Result<SecretString, ConfigError> {
    let path = PathBuf::from(name);
    let path = if path.is_absolute() {
        path
    } else {
        match std::env::var_os(CREDENTIALS_DIRECTORY) {
            Some(directory) if !directory.is_empty() => PathBuf::from(directory).join(path),
            _ => {
                return Err(ConfigError(format!(
                    "{key} = {name:?} is a relative name, but ${CREDENTIALS_DIRECTORY} is not set \
                     (use an absolute path, or systemd's LoadCredential=)"
                )));
            }
        }
    };
    let content =
        std::fs::read(&path).map_err(|error| ConfigError(format!("{key}: cannot read {}: {error}", path.display())))?;
    let mut content =
        String::from_utf8(content).map_err(|_| ConfigError(format!("{key}: {} is not UTF-8 text", path.display())))?;
    if content.ends_with('\n') {
        content.pop();
        if content.ends_with('\r') {
            content.pop();
        }
    }
    if content.is_empty() {
        return Err(ConfigError(format!("{key}: {} holds no password", path.display())));
    }
    Ok(SecretString::from(content))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn reads_the_password_without_its_line_break_and_never_shows_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ui-password");
        std::fs::write(&file, "s3cret-Pa55\n").unwrap();
        let password = read_password_file("ui.password_file", file.to_str().unwrap()).unwrap();
        assert_eq!(password.expose_secret(), "s3cret-Pa55");

        std::fs::write(&file, "\n").unwrap();
        let error = read_password_file("ui.password_file", file.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("holds no password") && error.contains("ui.password_file"), "{error}");

        std::fs::write(&file, b"s3cret\xff").unwrap();
        let error = read_password_file("ui.password_file", file.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("not UTF-8") && !error.contains("s3cret"), "{error}");

        let missing = dir.path().join("missing");
        let error = read_password_file("ui.password_file", missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("cannot read") && error.contains("missing"), "{error}");
    }
}
