//! Migrations on MariaDB, whose DDL commits statement by statement: the
//! runner of `common::migrate`, with a named lock (`GET_LOCK`) as the
//! migration lock. sqlx's MySQL migrator records a migration as started
//! before running its file as one multi-statement query, so a `migrate`
//! killed midway stops every later run with "dirty".

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnection};

use super::sql;
use crate::store::common::migrate::{self, MigrationStatements};
pub use crate::store::common::migrate::{MigrateError, statements};

/// The migrations of `migrations/mariadb/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mariadb");

const STATEMENTS: MigrationStatements = MigrationStatements {
    lock: sql::LOCK_MIGRATIONS,
    unlock: sql::UNLOCK_MIGRATIONS,
    table_exists: sql::TABLE_EXISTS,
    create_table: sql::CREATE_MIGRATIONS_TABLE,
    applied: sql::SELECT_APPLIED_MIGRATIONS,
    record: sql::RECORD_MIGRATION,
};

/// `GET_LOCK`'s timeout for "as long as it takes": a year. MariaDB 10.11
/// answers a negative timeout with NULL and a warning, and takes no lock
/// (sqlx's MySQL migrator passes -1 and ignores the answer, so on MariaDB
/// its migrations run unlocked).
const WAIT_FOR_EVER: u64 = 365 * 24 * 3600;

/// Applies the pending migrations on `conn`, holding the migration lock for
/// the whole run (waiting at most `lock_timeout` for it, `None`: for as
/// long as it takes). Returns the versions applied by this call.
pub async fn run(conn: &mut MySqlConnection, lock_timeout: Option<Duration>) -> Result<Vec<i64>, MigrateError> {
    let seconds = lock_timeout.map_or(WAIT_FOR_EVER, |timeout| timeout.as_secs().min(WAIT_FOR_EVER));
    migrate::run::<MySql>(conn, &STATEMENTS, &MIGRATOR, seconds as i64, lock_timeout).await
}
