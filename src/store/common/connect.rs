//! Sessions and schema, the parts every engine does alike: the pools'
//! options, the first connection that tells whether the server is there,
//! and the check that every migration the binary carries is applied.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Executor, IntoArguments};

use super::{Db, Driver, On, Purpose, TcpServer, nodelay_while};
use crate::config::{DatabaseSettings, format_duration};
use crate::store::StoreError;

/// A pooled session idle this long is pinged before it is used again: the
/// server or a firewall may have closed it since. One used moments ago (the
/// statements of one sweep follow each other within milliseconds) is not:
/// a ping per statement is a round trip each, a third of an idle sweep.
pub(crate) const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// The options every engine's pools share.
pub(crate) fn pool_options<DB: sqlx::Database>(settings: &DatabaseSettings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Ends the pool's idle sessions, so that the next statement runs on a new
/// one: a session the server ended moments ago (a restart, a failover, a
/// KILL) would be handed out without a ping ([`PING_AFTER_IDLE`]).
pub(crate) async fn close_idle<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) {
    while let Some(conn) = pool.try_acquire() {
        let _ = conn.close().await;
    }
}

/// Runs `statement` through `pool`; if it fails, once more on a new session
/// (see [`close_idle`]).
pub(crate) async fn once_more_on_a_new_session<DB, T, F>(
    pool: &sqlx::Pool<DB>,
    statement: impl Fn() -> F,
) -> Result<T, sqlx::Error>
where
    DB: sqlx::Database,
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match statement().await {
        Err(_) => {
            close_idle(pool).await;
            statement().await
        }
        done => done,
    }
}

/// Why [`first_connection`] got none.
pub(crate) enum NoConnection {
    /// Nothing within `database.connect_timeout`; says so in words.
    TimedOut(String),
    Failed(sqlx::Error),
}

/// Opens one connection within `timeout`, outside any pool. A refused or
/// failed connection is reported at once with its cause, where a pool would
/// keep retrying until its acquire timeout and then say only that it timed out.
pub(crate) async fn first_connection<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
) -> Result<C, NoConnection> {
    match tokio::time::timeout(timeout, C::connect_with(options)).await {
        Err(_) => Err(NoConnection::TimedOut(format!(
            "no connection within {} (database.connect_timeout)",
            format_duration(timeout)
        ))),
        Ok(Err(error)) => Err(NoConnection::Failed(error)),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// A failed first connection of a server engine in plain words: a TLS
/// failure says what was refused (the certificate's issuer, its host name)
/// and whom this client trusts (`trusted`), not only that it failed;
/// `refused` says what it means when the server will not speak TLS.
pub(crate) fn describe_connect_error(failure: NoConnection, trusted: &str, refused: &str) -> String {
    let error = match failure {
        NoConnection::TimedOut(reason) => return reason,
        NoConnection::Failed(error) => error,
    };
    if let Some(tls) = crate::tls::explain(&error, trusted) {
        return tls;
    }
    match error {
        // Not a handshake that failed (that is a rustls error) nor the
        // network (an I/O error): the server answered the TLS request with "no".
        sqlx::Error::Tls(inner) if inner.downcast_ref::<std::io::Error>().is_none() => refused.to_owned(),
        other => other.to_string(),
    }
}

/// The first session of a server engine ([`first_connection`]), with
/// TCP_NODELAY on when it goes to `server` ([`nodelay_while`]); a failure
/// says why in plain words ([`describe_connect_error`]), and what `hint` adds.
pub(crate) async fn first_session<C: sqlx::Connection>(
    settings: &DatabaseSettings,
    options: &C::Options,
    server: Option<TcpServer>,
    (trusted, refused): (&str, &str),
    hint: impl FnOnce(&NoConnection) -> &'static str,
) -> Result<C, StoreError> {
    let connecting = first_connection::<C>(options, settings.connect_timeout);
    nodelay_while(server.as_ref(), connecting).await.map_err(|failure| {
        let hint = hint(&failure);
        StoreError::unreachable(&settings.url, &(describe_connect_error(failure, trusted, refused) + hint))
    })
}

/// A new session of a server engine outside its pools, within `timeout`
/// (the pools' acquire timeout, `database.connect_timeout`), with
/// TCP_NODELAY on when it goes to `server` ([`nodelay_while`]).
pub(crate) async fn open_session<C: sqlx::Connection>(
    options: &C::Options,
    timeout: Duration,
    server: Option<TcpServer>,
) -> Result<C, StoreError> {
    let connecting = tokio::time::timeout(timeout, C::connect_with(options));
    let Ok(conn) = nodelay_while(server.as_ref(), connecting).await else {
        let waited = format_duration(timeout);
        return Err(StoreError::Database(format!("no new session within {waited} (database.connect_timeout)")));
    };
    Ok(conn?)
}

/// The options of a server engine's pools: each new session first runs
/// `setup`, if any (a statement and its one value), and gets TCP_NODELAY
/// when it goes to `server` (from its start where the pool's use is
/// watched, [`nodelay_while`]).
pub(crate) fn server_pool_options<DB: Db>(
    settings: &DatabaseSettings,
    server: Option<TcpServer>,
    setup: Option<(&'static str, i64)>,
) -> PoolOptions<DB>
where
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    pool_options::<DB>(settings).after_connect(move |conn, _| {
        let server = server.clone();
        Box::pin(async move {
            if let Some((statement, value)) = setup {
                DB::query(statement, &[value.into()]).execute(&mut *conn).await?;
            }
            if let Some(server) = server {
                server.set_nodelay_on_connections().await;
            }
            Ok(())
        })
    })
}

/// Fails with [`StoreError::NotMigrated`] unless every migration of the
/// engine is applied. No migrations table means none is; any other error
/// (no permission to read it, say) is reported as it is.
pub(crate) async fn check_migrated<D: Driver>(driver: &D) -> Result<(), StoreError> {
    let pool = driver.pool(Purpose::General);
    let tables = D::Db::fetch_one(On::Pool(pool), D::Db::query(D::SQL.migrations_table, &[])).await?;
    let mut applied = Vec::new();
    if D::Db::int(&tables, "tables")? > 0 {
        for row in D::Db::fetch_all(On::Pool(pool), D::Db::query(D::SQL.migration_versions, &[])).await? {
            applied.push(D::Db::int(&row, "version")?);
        }
    }
    let missing: Vec<String> = D::MIGRATOR
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(StoreError::NotMigrated(format!("missing {}", missing.join(", ")))) }
}
