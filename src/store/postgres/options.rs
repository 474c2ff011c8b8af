//! How the settings become the driver's connect options: the URL, then the
//! TLS settings and the password file. The files are read here (see
//! `crate::credentials`), not by the driver, so that a missing or malformed
//! one is refused by name before any connection is tried, and so that
//! [`connect_options`] called again picks up a rotated password or key.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::sql;
use crate::config::{DatabaseSettings, SslMode, TlsFile};
use crate::credentials::{self, FileError, Sensitivity};
use crate::store::StoreError;
use crate::tls::{SYSTEM_ROOTS, ServerRoots, TrustError};

/// The options every connection of the store uses, and whom they trust.
pub(super) struct StoreOptions {
    pub options: PgConnectOptions,
    /// The certificate authorities trusted ([`ServerRoots::described`]), for error messages.
    pub trusted: String,
}

/// The options every connection of the store uses.
pub(super) fn connect_options(settings: &DatabaseSettings) -> Result<StoreOptions, StoreError> {
    let unreachable =
        |reason: String| StoreError::Unreachable { url: settings.url.redacted(), reason: settings.url.scrub(&reason) };
    let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
    let mut options = PgConnectOptions::from_str(settings.url.expose())
        .map_err(|e| unreachable(e.to_string()))?
        .application_name("retentiond")
        // No statement of the store gains from JIT compilation, and a plan
        // costed without statistics can cross jit_above_cost and spend
        // hundreds of milliseconds compiling a one-millisecond batch.
        .options([("statement_timeout", statement_timeout.as_str()), ("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Trace);
    if let Some(mode) = settings.ssl_mode() {
        options = options.ssl_mode(driver_mode(mode));
    }
    let ca_file = ca_file(settings);
    // As libpq does: `system` trusts every public CA, so only a certificate
    // for the host connected to will do (validation refuses a weaker sslmode
    // set beside it); and `require` with a CA file verifies the chain, where
    // the driver alone would verify nothing.
    match &ca_file {
        Some((_, name)) if name == SYSTEM_ROOTS => options = options.ssl_mode(PgSslMode::VerifyFull),
        Some(_) if matches!(options.get_ssl_mode(), PgSslMode::Require) => {
            options = options.ssl_mode(PgSslMode::VerifyCa);
        }
        _ => {}
    }
    let verifies = matches!(options.get_ssl_mode(), PgSslMode::VerifyCa | PgSslMode::VerifyFull);
    let mut trusted = "nothing: sslmode does not verify the server".to_owned();
    if verifies || ca_file.is_some() {
        let roots = ServerRoots::choose(ca_file.as_ref().map(|(key, name)| (key.as_str(), name.as_str()))).map_err(
            |error| match error {
                TrustError::File(error) => StoreError::File(error),
                TrustError::NoSystemCertificates(_) => unreachable(error.to_string()),
            },
        )?;
        options = options.ssl_root_cert_from_pem(roots.pem);
        trusted = roots.described;
    }
    for file in [TlsFile::ClientCert, TlsFile::ClientKey] {
        let Some((key, name)) = settings.tls_file(file) else {
            continue;
        };
        let sensitivity = if file == TlsFile::ClientKey { Sensitivity::Secret } else { Sensitivity::Public };
        let (path, pem) = credentials::read(&key, &name, sensitivity)?;
        let invalid = |reason: String| FileError { key: key.clone(), path: path.clone(), reason };
        options = if file == TlsFile::ClientKey {
            crate::tls::parse_private_key(&pem).map_err(invalid)?;
            options.ssl_client_key_from_pem(pem)
        } else {
            crate::tls::parse_certificates(&pem).map_err(invalid)?;
            options.ssl_client_cert_from_pem(pem)
        };
    }
    if !settings.password_file.is_empty() {
        let password = credentials::read_password("database.password_file", &settings.password_file)?;
        options = options.password(password.expose_secret());
    }
    Ok(StoreOptions { options, trusted })
}

/// The CA file the server is verified with, and where it was named: the
/// setting or the URL, else libpq's `PGSSLROOTCERT` (which the driver would
/// read itself).
fn ca_file(settings: &DatabaseSettings) -> Option<(String, String)> {
    settings.tls_file(TlsFile::RootCert).or_else(|| {
        let name = std::env::var("PGSSLROOTCERT").ok().filter(|name| !name.is_empty())?;
        Some(("PGSSLROOTCERT".to_owned(), name))
    })
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

/// Whether [`connect_options`] reads any file named by the settings.
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
