//! TLS for the whole binary: one rustls crypto provider (ring, the one sqlx's
//! `tls-rustls-ring-native-roots` feature builds with), installed first thing
//! in `main`; the client configuration of the pushgateway; and TLS failures
//! told in plain words. Two providers in one binary would make rustls panic
//! when a configuration is built without naming one.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

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

/// A client configuration that trusts `authorities` only, or, when there are
/// none, the system's CA certificates (the `ca-certificates` bundle).
pub fn client_config(authorities: Option<Vec<CertificateDer<'static>>>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match authorities {
        Some(certificates) => {
            for certificate in certificates {
                roots.add(certificate).map_err(|error| format!("a CA certificate is not usable: {error}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no system CA certificates found (install ca-certificates, or name a CA file)".into());
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
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
