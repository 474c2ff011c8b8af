//! How the settings become the driver's connect options: the URL, then the
//! TLS settings and the password file. The files are read here (see
//! `crate::credentials`), not by the driver, so that a missing or malformed
//! one is refused by name before any connection is tried, and so that
//! [`connect_options`] called again picks up a rotated password or key.

use std::str::FromStr;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use secrecy::ExposeSecret;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::sql;
use crate::config::{DatabaseSettings, SslMode, TlsFile};
use crate::credentials::{self, FileError, Sensitivity};
use crate::store::StoreError;

/// The options every connection of the store uses.
pub(super) fn connect_options(settings: &DatabaseSettings) -> Result<PgConnectOptions, StoreError> {
    let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
    let mut options = PgConnectOptions::from_str(settings.url.expose())
        .map_err(|e| StoreError::Unreachable {
            url: settings.url.redacted(),
            reason: settings.url.scrub(&e.to_string()),
        })?
        .application_name("retentiond")
        // No statement of the store gains from JIT compilation, and a plan
        // costed without statistics can cross jit_above_cost and spend
        // hundreds of milliseconds compiling a one-millisecond batch.
        .options([("statement_timeout", statement_timeout.as_str()), ("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Trace);
    if let Some(mode) = settings.ssl_mode() {
        options = options.ssl_mode(driver_mode(mode));
    }
    let mut has_root_cert = false;
    for file in TlsFile::ALL {
        let Some((key, name)) = settings.tls_file(file) else {
            continue;
        };
        let sensitivity = if file == TlsFile::ClientKey { Sensitivity::Secret } else { Sensitivity::Public };
        let (path, pem) = credentials::read(&key, &name, sensitivity)?;
        let invalid = |reason: String| FileError { key: key.clone(), path: path.clone(), reason };
        options = match file {
            TlsFile::RootCert => {
                crate::tls::parse_certificates(&pem).map_err(invalid)?;
                has_root_cert = true;
                options.ssl_root_cert_from_pem(pem)
            }
            TlsFile::ClientCert => {
                crate::tls::parse_certificates(&pem).map_err(invalid)?;
                options.ssl_client_cert_from_pem(pem)
            }
            TlsFile::ClientKey => {
                PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|_| invalid("holds no private key in PEM form (-----BEGIN PRIVATE KEY-----)".into()))?;
                options.ssl_client_key_from_pem(pem)
            }
        };
    }
    // As libpq does: `require` with a CA file verifies the chain, where the
    // driver alone would verify nothing (sqlx issue 879).
    if has_root_cert && matches!(options.get_ssl_mode(), PgSslMode::Require) {
        options = options.ssl_mode(PgSslMode::VerifyCa);
    }
    if !settings.password_file.is_empty() {
        let password = credentials::read_password("database.password_file", &settings.password_file)?;
        options = options.password(password.expose_secret());
    }
    Ok(options)
}

/// The options of the sessions that run the statements written for one
/// plan, under [`sql::INDEX_ORDER_SETTINGS`].
pub(super) fn index_order_options(options: PgConnectOptions) -> PgConnectOptions {
    options.options(sql::INDEX_ORDER_SETTINGS)
}

/// The options of the sessions outside the pools that hold run leases and
/// the singleton lead: index order, and commits that need not wait for the
/// WAL to reach the disk, since they write only run records (a crash may
/// lose the last one, never half of it; a run left `running` is marked
/// abandoned later). The deletions and their audit rows commit on the pool,
/// durably.
pub(super) fn run_record_options(options: PgConnectOptions) -> PgConnectOptions {
    index_order_options(options).options([sql::RUN_RECORDS_WITHOUT_SYNC])
}

/// Whether [`connect_options`] reads any file.
pub(super) fn reads_files(settings: &DatabaseSettings) -> bool {
    !settings.password_file.is_empty() || TlsFile::ALL.into_iter().any(|file| settings.tls_file(file).is_some())
}

/// Whether the connection is encrypted but its server unverified: worth a
/// warning, since anyone on the path can pose as the server.
pub(super) fn is_unverified_tls(options: &PgConnectOptions) -> bool {
    matches!(options.get_ssl_mode(), PgSslMode::Require)
}

fn driver_mode(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}
