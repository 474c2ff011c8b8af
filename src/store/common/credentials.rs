//! The files a server engine's settings name, read for its connect
//! options: the CA certificates that verify the server, the client
//! certificate and key, the password. Read here (see `crate::credentials`),
//! not by the driver, so that a missing or malformed one is refused by
//! name before any connection is tried, and so that reading them again
//! picks up a rotated password or key.

use secrecy::SecretString;

use crate::config::{DatabaseSettings, TlsFile};
use crate::credentials::{self, FileError, Sensitivity};
use crate::store::StoreError;
use crate::tls::{ServerRoots, TrustError};

/// The certificate authorities that verify the server: the CA file named
/// `ca_file` (its setting and its name), or the system's store.
pub(crate) fn server_roots(
    settings: &DatabaseSettings,
    ca_file: Option<&(String, String)>,
) -> Result<ServerRoots, StoreError> {
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
pub(crate) fn client_identity(settings: &DatabaseSettings) -> Result<Option<ClientIdentity>, StoreError> {
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
pub(crate) fn password(settings: &DatabaseSettings) -> Result<Option<SecretString>, StoreError> {
    if settings.password_file.is_empty() {
        return Ok(None);
    }
    Ok(Some(credentials::read_password("database.password_file", &settings.password_file)?))
}

/// Whether the connect options read any file named by the settings.
pub(crate) fn reads_files(settings: &DatabaseSettings) -> bool {
    !settings.password_file.is_empty() || TlsFile::ALL.into_iter().any(|file| settings.tls_file(file).is_some())
}
