//! How the settings become the driver's connect options: the URL without
//! its TLS parameters, then the TLS settings (`ssl-mode`, `ssl-ca`,
//! `ssl-cert`, `ssl-key`, or their `database.ssl*` settings) and the
//! password file, read by `common::credentials` each time, so a rotated
//! password or key takes effect on a reload.
//!
//! The server is verified against exactly the CA file named (the driver's
//! own root store is empty, see Cargo.toml), or the system's store with
//! `ssl-ca = "system"`; `required` with a CA file verifies the chain, as
//! PostgreSQL's `require` does (docs/security.md).

use sqlx::ConnectOptions;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

use crate::config::{DatabaseSettings, SslMode, TlsFile};
use crate::store::StoreError;
use crate::store::common::{self, ClientIdentity, StoreOptions, TlsOptions};
use crate::tls::SYSTEM_ROOTS;

pub(super) fn connect_options(settings: &DatabaseSettings) -> Result<StoreOptions<MySqlConnectOptions>, StoreError> {
    let unreachable = |reason: String| StoreError::unreachable(&settings.url, &reason);
    let mut url = url::Url::parse(settings.url.expose()).map_err(|e| unreachable(e.to_string()))?;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !name.to_ascii_lowercase().starts_with("ssl"))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let options = MySqlConnectOptions::from_url(&url)
        .map_err(|e| unreachable(e.to_string()))?
        .log_statements(tracing::log::LevelFilter::Trace);
    let ca_file = settings.tls_file(TlsFile::RootCert);
    let mode = match (settings.ssl_mode(), &ca_file) {
        (_, Some((_, name))) if name == SYSTEM_ROOTS => MySqlSslMode::VerifyIdentity,
        (Some(SslMode::Require), Some(_)) => MySqlSslMode::VerifyCa,
        (Some(mode), _) => driver_mode(mode),
        (None, _) => MySqlSslMode::Preferred,
    };
    let verifies = matches!(mode, MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity);
    let options = options.ssl_mode(mode);
    common::with_files(settings, options, ca_file.as_ref(), verifies, "ssl-mode", MySqlConnectOptions::password)
}

/// Whether the connection is encrypted but its server unverified: worth a
/// warning, since anyone on the path can pose as the server.
pub(super) fn is_unverified_tls(options: &MySqlConnectOptions) -> bool {
    matches!(options.get_ssl_mode(), MySqlSslMode::Required)
}

fn driver_mode(mode: SslMode) -> MySqlSslMode {
    match mode {
        SslMode::Disable => MySqlSslMode::Disabled,
        SslMode::Prefer => MySqlSslMode::Preferred,
        SslMode::Require => MySqlSslMode::Required,
        SslMode::VerifyCa => MySqlSslMode::VerifyCa,
        SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

impl TlsOptions for MySqlConnectOptions {
    fn trust(self, pem: Vec<u8>) -> Self {
        self.ssl_ca_from_pem(pem)
    }

    fn client_identity(self, identity: ClientIdentity) -> Self {
        self.ssl_client_cert_from_pem(identity.cert).ssl_client_key_from_pem(identity.key)
    }
}
