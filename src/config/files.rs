//! The files the configuration names (passwords, CA certificates, the
//! client certificate and its key), read and checked as the commands that
//! use them read them, without connecting anywhere: `check-config` reports
//! each one that is missing, unreadable, empty or malformed, by key and path.

use super::{ConfigError, Settings, TlsFile, UiSettings};
use crate::credentials::{self, FileError, Sensitivity};

/// Checks every file the settings name; every problem is reported.
pub fn check_files(settings: &Settings) -> Result<(), ConfigError> {
    let mut problems: Vec<FileError> = Vec::new();
    let db = &settings.database;
    if !db.password_file.is_empty() {
        problems.extend(credentials::read_password("database.password_file", &db.password_file).err());
    }
    for file in TlsFile::ALL {
        let Some((key, name)) = db.tls_file(file) else { continue };
        if file == TlsFile::RootCert && name == crate::tls::SYSTEM_ROOTS {
            continue;
        }
        let problem = match file {
            TlsFile::ClientKey => check_pem(&key, &name, Sensitivity::Secret, crate::tls::parse_private_key),
            _ => check_pem(&key, &name, Sensitivity::Public, |pem| crate::tls::parse_certificates(pem).map(drop)),
        };
        problems.extend(problem);
    }
    let metrics = &settings.metrics;
    if !metrics.pushgateway_ca_file.is_empty() {
        let problem =
            check_pem("metrics.pushgateway_ca_file", &metrics.pushgateway_ca_file, Sensitivity::Public, |pem| {
                crate::tls::parse_certificates(pem).map(drop)
            });
        problems.extend(problem);
    }
    if !metrics.pushgateway_password_file.is_empty() {
        let key = "metrics.pushgateway_password_file";
        problems.extend(credentials::read_password(key, &metrics.pushgateway_password_file).err());
    }
    if settings.ui.requires_password() {
        let password = credentials::read_long_password(
            "ui.password_file",
            &settings.ui.password_file,
            UiSettings::MIN_PASSWORD_CHARS,
        );
        problems.extend(password.err());
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ConfigError(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))),
    }
}

/// Reads the PEM file `name` that `key` names and checks its content with `parse`.
fn check_pem(
    key: &str,
    name: &str,
    sensitivity: Sensitivity,
    parse: impl Fn(&[u8]) -> Result<(), String>,
) -> Option<FileError> {
    match credentials::read(key, name, sensitivity) {
        Err(problem) => Some(problem),
        Ok((path, pem)) => parse(&pem).err().map(|reason| FileError { key: key.to_owned(), path, reason }),
    }
}
