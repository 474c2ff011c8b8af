//! The files a server engine's settings name, read for its connect
//! options: the CA certificates that verify the server, the client
//! certificate and key, the password. Read here (see `crate::credentials`),
//! not by the driver, so that a missing or malformed one is refused by
//! name before any connection is tried, and so that reading them again
//! picks up a rotated password or key.

use secrecy::{ExposeSecret, SecretString};

use crate::config::{DatabaseSettings, TlsFile};
use crate::credentials::{self, FileError, Sensitivity};
use crate::store::StoreError;
use crate::tls::{ServerRoots, TrustError};

/// What a server engine's connect options take from the files.
pub(crate) trait TlsOptions: Sized {
    /// Verifies the server with the CA certificates `pem`.
    fn trust(self, pem: Vec<u8>) -> Self;
    fn client_identity(self, identity: ClientIdentity) -> Self;
}

/// A server engine's connect options, and whom they trust.
pub(crate) struct StoreOptions<O> {
    pub options: O,
    /// The certificate authorities trusted ([`ServerRoots::described`]), for error messages.
    pub trusted: String,
}

/// `options` with the files the settings name: the CA certificates when
/// the TLS mode verifies the server (`verifies`) or a CA file is named
/// (`ca_file`), the client certificate, the password. `mode`: the name of
/// the engine's TLS mode setting, for the words of an unverified server;
/// `with_password`: the driver's setter.
pub(crate) fn with_files<O: TlsOptions>(
    settings: &DatabaseSettings,
    mut options: O,
    ca_file: Option<&(String, String)>,
    verifies: bool,
    mode: &str,
    with_password: impl FnOnce(O, &str) -> O,
) -> Result<StoreOptions<O>, StoreError> {
    let mut trusted = format!("nothing: {mode} does not verify the server");
    if verifies || ca_file.is_some() {
        let roots = server_roots(settings, ca_file)?;
        options = options.trust(roots.pem);
        trusted = roots.described;
    }
    if let Some(identity) = client_identity(settings)? {
        options = options.client_identity(identity);
    }
    if let Some(password) = password(settings)? {
        options = with_password(options, password.expose_secret());
    }
    Ok(StoreOptions { options, trusted })
}

/// The certificate authorities that verify the server: the CA file named
/// `ca_file` (its setting and its name), or the system's store.
fn server_roots(settings: &DatabaseSettings, ca_file: Option<&(String, String)>) -> Result<ServerRoots, StoreError> {
    ServerRoots::choose(ca_file.map(|(key, name)| (key.as_str(), name.as_str()))).map_err(|error| match error {
        TrustError::File(error) => StoreError::File(error),
        TrustError::NoSystemCertificates(_) => {
            StoreError::Unreachable { url: settings.url.redacted(), reason: error.to_string() }
        }
    })
}

/// A client certificate and its private key, in PEM form.
pub(crate) struct ClientIdentity {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

/// The client certificate and its key, each checked, when both are set.
fn client_identity(settings: &DatabaseSettings) -> Result<Option<ClientIdentity>, StoreError> {
    let mut files = Vec::new();
    for file in [TlsFile::ClientCert, TlsFile::ClientKey] {
        let Some((key, name)) = settings.tls_file(file) else {
            return Ok(None);
        };
        let sensitivity = if file == TlsFile::ClientKey { Sensitivity::Secret } else { Sensitivity::Public };
        let (path, pem) = credentials::read(&key, &name, sensitivity)?;
        let invalid = |reason: String| FileError { key: key.clone(), path: path.clone(), reason };
        if file == TlsFile::ClientKey {
            crate::tls::parse_private_key(&pem).map_err(invalid)?;
        } else {
            crate::tls::parse_certificates(&pem).map_err(invalid)?;
        }
        files.push(pem);
    }
    let key = files.pop().unwrap_or_default();
    Ok(Some(ClientIdentity { cert: files.pop().unwrap_or_default(), key }))
}

/// The password of `database.password_file`, if set.
fn password(settings: &DatabaseSettings) -> Result<Option<SecretString>, StoreError> {
    if settings.password_file.is_empty() {
        return Ok(None);
    }
    Ok(Some(credentials::read_password("database.password_file", &settings.password_file)?))
}

/// Whether the connect options read any file named by the settings.
pub(crate) fn reads_files(settings: &DatabaseSettings) -> bool {
    !settings.password_file.is_empty() || TlsFile::ALL.into_iter().any(|file| settings.tls_file(file).is_some())
}
