//! TLS for the whole binary: one rustls crypto provider (ring, the one sqlx's
//! `tls-rustls-ring-webpki` feature builds with), installed first thing in
//! `main`; whom a database connection trusts ([`ServerRoots`]); the client
//! configuration of the pushgateway; and TLS failures told in plain words.
//! Two providers in one binary would make rustls panic when a configuration
//! is built without naming one.

use std::sync::Arc;

use base64::Engine;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::credentials::{self, FileError, Sensitivity};

/// Installs ring as the process-wide provider. A second call changes nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The process-wide provider (ring, also when `main` did not install it: a test).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default().cloned().unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Parses the certificates of a PEM file; at least one is required.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("is not a PEM certificate file: {error}"))?;
    if certificates.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certificates)
}

/// Checks that a PEM file holds a private key.
pub fn parse_private_key(pem: &[u8]) -> Result<(), String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map(drop)
        .map_err(|_| "holds no private key in PEM form (-----BEGIN PRIVATE KEY-----)".to_owned())
}

/// A client configuration that trusts `authorities` only, or, when there are
/// none, the system's CA certificates (the `ca-certificates` bundle).
pub fn client_config(authorities: Option<Vec<CertificateDer<'static>>>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let certificates = match authorities {
        Some(certificates) => certificates,
        None => system_certificates()?,
    };
    for certificate in certificates {
        roots.add(certificate).map_err(|error| format!("a CA certificate is not usable: {error}"))?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The value of a database's CA-file setting (`sslrootcert`, `ssl-ca`) that
/// asks for the system's CA certificates, as libpq's `sslrootcert=system`.
pub const SYSTEM_ROOTS: &str = "system";

/// The certificate authorities a database connection trusts, chosen as libpq
/// chooses them, for every engine: the CA file the settings name, alone;
/// the system's CA certificates for [`SYSTEM_ROOTS`] or when none is named.
/// The driver is given them as its CA file: it adds no roots of its own
/// (see `vendor/webpki-roots-none`).
#[derive(Debug)]
pub struct ServerRoots {
    /// Every trusted certificate, PEM-encoded.
    pub pem: Vec<u8>,
    /// Whom that is, for error messages: the file and its setting, or the system's store.
    pub described: String,
}

/// Why no [`ServerRoots`] could be chosen.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The CA file named is missing, unreadable or holds no certificate.
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}; name the server's CA file instead")]
    NoSystemCertificates(String),
}

impl ServerRoots {
    /// The roots for the CA file `ca_file` names (its setting's key and its
    /// value), if any.
    pub fn choose(ca_file: Option<(&str, &str)>) -> Result<ServerRoots, TrustError> {
        match ca_file {
            Some((key, name)) if name != SYSTEM_ROOTS => {
                let (path, pem) = credentials::read(key, name, Sensitivity::Public)?;
                parse_certificates(&pem).map_err(|reason| FileError {
                    key: key.to_owned(),
                    path: path.clone(),
                    reason,
                })?;
                Ok(ServerRoots { pem, described: format!("only the CA file {}, named by {key}", path.display()) })
            }
            _ => {
                let certificates = system_certificates().map_err(TrustError::NoSystemCertificates)?;
                Ok(ServerRoots { pem: encode_pem(&certificates), described: describe_system_store() })
            }
        }
    }
}

/// The system's CA certificates: the `ca-certificates` bundle, or the files
/// that `SSL_CERT_FILE` and `SSL_CERT_DIR` name.
fn system_certificates() -> Result<Vec<CertificateDer<'static>>, String> {
    let found = rustls_native_certs::load_native_certs().certs;
    if found.is_empty() {
        return Err(format!("no {} found (install ca-certificates)", describe_system_store()));
    }
    Ok(found)
}

fn describe_system_store() -> String {
    let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|variable| Some(format!("{variable}={}", std::env::var_os(variable)?.to_string_lossy())))
        .collect();
    match named.is_empty() {
        true => "the system's CA certificates".to_owned(),
        false => format!("the system's CA certificates, {}", named.join(" ")),
    }
}

/// Certificates as PEM text, the form the driver reads a CA file in.
fn encode_pem(certificates: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut pem = String::new();
    for certificate in certificates {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

/// The TLS failure inside `error` (anywhere in its chain of sources, or in
/// an I/O error it wraps) in plain words; `None` when it is not one.
/// `trusted` says which certificate authorities this client trusts.
pub fn explain(error: &(dyn std::error::Error + 'static), trusted: &str) -> Option<String> {
    let mut next = Some(error);
    while let Some(current) = next {
        let inner = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| inner?.downcast_ref::<rustls::Error>());
        if let Some(tls) = tls {
            return Some(explain_rustls(tls, trusted));
        }
        next = current.source();
    }
    None
}

fn explain_rustls(error: &rustls::Error, trusted: &str) -> String {
    let certificate = match error {
        rustls::Error::InvalidCertificate(certificate) => certificate,
        rustls::Error::AlertReceived(alert) => {
            return format!(
                "the server refused the TLS handshake (alert {alert:?}); it may want a client certificate it accepts"
            );
        }
        other => return format!("TLS handshake failed: {other}"),
    };
    let why = match certificate {
        CertificateError::UnknownIssuer => {
            format!("it is not signed by a certificate authority this client trusts ({trusted})")
        }
        CertificateError::NotValidForName => "it is not valid for the host name connected to".to_owned(),
        CertificateError::NotValidForNameContext { expected, presented } => {
            // rustls gives each name in its Debug form, `DnsName("db.example")`.
            let names: Vec<&str> = presented
                .iter()
                .map(|name| name.split_once("(\"").and_then(|(_, rest)| rest.strip_suffix("\")")).unwrap_or(name))
                .collect();
            let presented = if names.is_empty() { "no names".to_owned() } else { names.join(", ") };
            format!("it is not valid for the host name {}: it names {presented}", expected.to_str())
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "it has expired".to_owned(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (or this host's clock is wrong)".to_owned()
        }
        CertificateError::Revoked => "it has been revoked".to_owned(),
        CertificateError::BadSignature => "its signature does not verify".to_owned(),
        other => format!("{other:?}"),
    };
    format!("the server's TLS certificate was refused: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PEM written for the driver reads back as the same certificates.
    #[test]
    fn encoded_certificates_parse_back() {
        let certificates =
            vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]), CertificateDer::from(vec![7u8; 200])];
        assert_eq!(parse_certificates(&encode_pem(&certificates)).unwrap(), certificates);
    }
}
