//! Migrations on MariaDB, whose DDL commits statement by statement, so a
//! migration cannot be rolled back as a whole (docs/schema.md).
//!
//! sqlx's MySQL migrator records a migration as started (`success = FALSE`)
//! before running its file as one multi-statement query; a `migrate` killed
//! midway leaves that row, and every later run stops with "dirty" until an
//! operator repairs the schema by hand. Here, instead:
//! - every statement of `migrations/mariadb/` may run again (IF NOT EXISTS
//!   forms), so a migration interrupted anywhere is finished by running it
//!   again from its first statement;
//! - a migration's row is written once its last statement has run, so a
//!   row always means "applied whole";
//! - one session holds a named lock (`GET_LOCK`) for the whole run and
//!   releases it on every path, so two `migrate` at once take turns, and the
//!   second finds the work done.
//!
//! The rows go to `_sqlx_migrations`, in sqlx's layout, so the check that
//! the schema is up to date reads all three engines alike.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::mysql::MySqlConnection;

use super::sql;

/// The migrations of `migrations/mariadb/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mariadb");

/// The tables migration 1 creates: one of them in a database with no
/// migrations table means the database holds someone else's tables.
const STORE_TABLES: [&str; 4] = ["jobs", "job_drives", "retention_runs", "retention_audit"];

/// `GET_LOCK`'s timeout for "as long as it takes": a year. MariaDB 10.11
/// answers a negative timeout with NULL and a warning, and takes no lock
/// (sqlx's MySQL migrator passes -1 and ignores the answer, so on MariaDB
/// its migrations run unlocked).
const WAIT_FOR_EVER: u64 = 365 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("another process has held the migration lock for {0:?}; is a `retentiond migrate` still running?")]
    LockTimeout(Duration),
    #[error(
        "the database already has a table `{0}` but no record of retentiond's migrations: it was not created by \
         retentiond; use an empty database"
    )]
    ForeignTable(String),
    #[error(
        "migration {0} was applied from a different file than this binary carries (its checksum differs); the \
         schema and the code disagree"
    )]
    Changed(i64),
    #[error("migration {version} ({description}), statement {statement}: {source}")]
    Statement {
        version: i64,
        description: String,
        /// 1-based position of the statement in the migration's file.
        statement: usize,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The statements of a migration's text, in order: each ends with `;` at
/// the end of a line; lines that are comments (`--`) are left out, so a
/// comment may contain any text.
pub fn statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                statements.push(statement);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_owned());
    }
    statements
}

/// Applies the pending migrations on `conn`, holding the migration lock for
/// the whole run (waiting at most `lock_timeout` for it, `None`: for as
/// long as it takes). Returns the versions applied by this call.
pub async fn run(conn: &mut MySqlConnection, lock_timeout: Option<Duration>) -> Result<Vec<i64>, MigrateError> {
    let seconds = lock_timeout.map_or(WAIT_FOR_EVER, |timeout| timeout.as_secs().min(WAIT_FOR_EVER));
    let locked: Option<i64> = sqlx::query_scalar(sql::LOCK_MIGRATIONS).bind(seconds).fetch_one(&mut *conn).await?;
    if locked != Some(1) {
        return Err(MigrateError::LockTimeout(lock_timeout.unwrap_or_default()));
    }
    let applied = apply_pending(conn).await;
    let unlocked = sqlx::query(sql::UNLOCK_MIGRATIONS).execute(&mut *conn).await;
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending(conn: &mut MySqlConnection) -> Result<Vec<i64>, MigrateError> {
    let had_table: i64 = sqlx::query_scalar(sql::TABLE_EXISTS).bind("_sqlx_migrations").fetch_one(&mut *conn).await?;
    if had_table == 0 {
        for table in STORE_TABLES {
            let exists: i64 = sqlx::query_scalar(sql::TABLE_EXISTS).bind(table).fetch_one(&mut *conn).await?;
            if exists > 0 {
                return Err(MigrateError::ForeignTable(table.to_owned()));
            }
        }
        sqlx::query(sql::CREATE_MIGRATIONS_TABLE).execute(&mut *conn).await?;
    }
    let recorded: Vec<(i64, Vec<u8>)> = sqlx::query_as(sql::SELECT_APPLIED_MIGRATIONS).fetch_all(&mut *conn).await?;
    let mut applied_now = Vec::new();
    for migration in MIGRATOR.iter().filter(|migration| migration.migration_type.is_up_migration()) {
        if let Some((_, checksum)) = recorded.iter().find(|(version, _)| *version == migration.version) {
            if checksum.as_slice() != &*migration.checksum {
                return Err(MigrateError::Changed(migration.version));
            }
            continue;
        }
        let started = Instant::now();
        for (index, statement) in statements(migration.sql.as_str()).into_iter().enumerate() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *conn).await.map_err(|source| {
                MigrateError::Statement {
                    version: migration.version,
                    description: migration.description.to_string(),
                    statement: index + 1,
                    source,
                }
            })?;
        }
        sqlx::query(sql::RECORD_MIGRATION)
            .bind(migration.version)
            .bind(&*migration.description)
            .bind(&*migration.checksum)
            .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
        applied_now.push(migration.version);
    }
    Ok(applied_now)
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn statements_end_at_a_semicolon_at_the_end_of_a_line_and_leave_comments_out() {
        let text = "-- a comment; with a semicolon;\nCREATE TABLE a (\n  x INT -- inline\n);\n\n-- next\nCREATE INDEX i ON a (x);\nSELECT 1";
        assert_eq!(
            statements(text),
            vec!["CREATE TABLE a (\n  x INT -- inline\n)", "CREATE INDEX i ON a (x)", "SELECT 1"]
        );
    }

    #[test]
    fn every_migration_splits_into_statements_without_comment_lines() {
        for migration in super::MIGRATOR.iter() {
            let statements = statements(migration.sql.as_str());
            assert!(!statements.is_empty(), "migration {} has no statement", migration.version);
            for statement in statements {
                assert!(!statement.lines().any(|line| line.trim().starts_with("--")), "{statement}");
                assert!(!statement.ends_with(';'), "{statement}");
            }
        }
    }
}
