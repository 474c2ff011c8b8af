//! What the store asks a MariaDB server before it uses it, and whether it
//! takes writes: MariaDB 10.6 or newer (`SKIP LOCKED`, `JSON_TABLE`), not
//! MySQL, told apart by `VERSION()`; a binary log in a format other than
//! `STATEMENT`, under which InnoDB refuses every write of a READ COMMITTED
//! session (docs/operations.md).

use sqlx::mysql::{MySql, MySqlConnection, MySqlRow};

use super::sql;
use crate::store::StoreError;
use crate::store::common::Db;

/// The oldest MariaDB the store runs on.
const OLDEST: (u32, u32) = (10, 6);

/// Why a MariaDB server refuses writes.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyServer {
    #[error(
        "the MariaDB server is a replica (read_only is on, replication is running); point database.url at the primary"
    )]
    Replica,
    #[error(
        "the MariaDB server runs with read_only on (SET GLOBAL read_only = OFF, or point database.url at the primary)"
    )]
    ReadOnly,
    #[error("the MariaDB server runs with innodb_read_only on: no table can change until it restarts without it")]
    InnodbReadOnly,
    #[error("new MariaDB sessions are read-only (tx_read_only is on)")]
    Sessions,
    /// The server refused a write, with its message.
    #[error("MariaDB refused a write: {0}")]
    Refused(String),
}

/// Refuses a server the store does not support, naming what it found.
pub(super) async fn check(conn: &mut MySqlConnection) -> Result<(), StoreError> {
    let row = MySql::query(sql::SERVER_CHECKS, &[]).fetch_one(&mut *conn).await?;
    let version = MySql::text(&row, "version")?;
    supported(&version).map_err(StoreError::UnsupportedServer)?;
    if MySql::flag(&row, "log_bin")? && MySql::text(&row, "binlog_format")?.eq_ignore_ascii_case("STATEMENT") {
        return Err(StoreError::UnsupportedServer(
            "binlog_format is STATEMENT, under which MariaDB refuses the writes of READ COMMITTED sessions \
             (error 1665), the isolation the store's sweeps use; set binlog_format = MIXED (the default) or ROW"
                .into(),
        ));
    }
    Ok(())
}

/// Whether `VERSION()` names a MariaDB the store runs on.
fn supported(version: &str) -> Result<(), String> {
    if !version.contains("MariaDB") {
        return Err(format!(
            "the server reports version {version:?}, which is not MariaDB; MySQL is not supported yet: use MariaDB \
             {}.{} or newer",
            OLDEST.0, OLDEST.1
        ));
    }
    let mut numbers = version.split(['.', '-']).map(|part| part.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) if (major, minor) >= OLDEST => Ok(()),
        _ => Err(format!("MariaDB {version} is too old: the store needs MariaDB {}.{} or newer", OLDEST.0, OLDEST.1)),
    }
}

/// Why the server refuses writes, from the row of [`sql::READ_ONLY`].
pub(super) fn read_only(row: &MySqlRow) -> Result<Option<ReadOnlyServer>, StoreError> {
    let replicating = MySql::optional_text(row, "replicas_running")?.is_some_and(|running| running != "0");
    Ok(if MySql::flag(row, "innodb_read_only")? {
        Some(ReadOnlyServer::InnodbReadOnly)
    } else if MySql::flag(row, "read_only")? {
        Some(if replicating { ReadOnlyServer::Replica } else { ReadOnlyServer::ReadOnly })
    } else if MySql::flag(row, "transaction_read_only")? {
        Some(ReadOnlyServer::Sessions)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::supported;

    #[test]
    fn mariadb_from_10_6_is_supported_and_mysql_or_older_is_not() {
        assert!(supported("10.11.19-MariaDB-0+deb12u1").is_ok());
        assert!(supported("10.6.0-MariaDB").is_ok());
        assert!(supported("11.4.2-MariaDB-ubu2404").is_ok());
        assert!(supported("10.5.23-MariaDB").unwrap_err().contains("too old"));
        assert!(supported("8.0.36").unwrap_err().contains("not MariaDB; MySQL is not supported"));
    }
}
