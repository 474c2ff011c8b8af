//! How the settings become the driver's connect options: the URL, then the
//! TLS settings and the password file (read by `common::credentials`), so
//! that [`connect_options`] called again picks up a rotated password or key.

use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::sql;
use crate::config::{DatabaseSettings, TlsFile};
use crate::store::StoreError;
use crate::store::common::{self, ClientIdentity, StoreOptions, TlsOptions};
use crate::tls::SYSTEM_ROOTS;

/// The options every connection of the store uses.
pub(super) fn connect_options(settings: &DatabaseSettings) -> Result<StoreOptions<PgConnectOptions>, StoreError> {
    let unreachable = |reason: String| StoreError::unreachable(&settings.url, &reason);
    let statement_timeout = format!("{}ms", settings.statement_timeout_ms());
    let mut options = PgConnectOptions::from_str(settings.url.expose())
        .map_err(|e| unreachable(e.to_string()))?
        .application_name("retentiond")
        // No statement of the store gains from JIT compilation, and a plan
        // costed without statistics can cross jit_above_cost and spend
        // hundreds of milliseconds compiling a one-millisecond batch.
        .options([("statement_timeout", statement_timeout.as_str()), ("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Trace);
    if let Some(mode) = settings.ssl_mode() {
        // The settings' modes are named as libpq names them.
        options = options.ssl_mode(mode.as_str().parse().map_err(|e: sqlx::Error| unreachable(e.to_string()))?);
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
    common::with_files(settings, options, ca_file.as_ref(), verifies, "sslmode", PgConnectOptions::password)
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

/// Whether the connection is encrypted but its server unverified: worth a
/// warning, since anyone on the path can pose as the server.
pub(super) fn is_unverified_tls(options: &PgConnectOptions) -> bool {
    matches!(options.get_ssl_mode(), PgSslMode::Require)
}

impl TlsOptions for PgConnectOptions {
    fn trust(self, pem: Vec<u8>) -> Self {
        self.ssl_root_cert_from_pem(pem)
    }

    fn client_identity(self, identity: ClientIdentity) -> Self {
        self.ssl_client_cert_from_pem(identity.cert).ssl_client_key_from_pem(identity.key)
    }
}
