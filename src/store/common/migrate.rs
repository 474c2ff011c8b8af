//! A migration runner for an engine whose DDL commits statement by
//! statement, so that a migration cannot be rolled back as a whole
//! (docs/schema.md), and whose migrations are written to run again (IF NOT
//! EXISTS forms):
//! - a migration interrupted anywhere is finished by running it again from
//!   its first statement;
//! - a migration's row is written once its last statement has run, so a
//!   row always means "applied whole" (sqlx's migrators write it first, and
//!   a run killed midway leaves a "dirty" row that stops every later run);
//! - one session holds the engine's migration lock for the whole run and
//!   releases it on every path, so two `migrate` at once take turns, and the
//!   second finds the work done.
//!
//! The rows go to `_sqlx_migrations`, in sqlx's layout, so the check that
//! the schema is up to date reads every engine alike.

use std::time::{Duration, Instant};

use sqlx::Executor;
use sqlx::migrate::Migrator;

use super::{Arg, Db, On};
use crate::store::StoreError;

/// The tables migration 1 creates: one of them in a database with no
/// migrations table means the database holds someone else's tables.
const STORE_TABLES: [&str; 4] = ["jobs", "job_drives", "retention_runs", "retention_audit"];

/// The engine's statements of a run, with the columns each answers.
pub(crate) struct MigrationStatements {
    /// Takes the migration lock, waiting at most `$1` seconds (`locked`: 1 if taken).
    pub lock: &'static str,
    pub unlock: &'static str,
    /// Whether the table `$1` exists (`tables`: a count).
    pub table_exists: &'static str,
    pub create_table: &'static str,
    /// The migrations applied (`version`, `checksum`).
    pub applied: &'static str,
    /// Binds: version, description, checksum, execution time in nanoseconds.
    pub record: &'static str,
}

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
    Store(#[from] StoreError),
}

impl From<MigrateError> for StoreError {
    fn from(error: MigrateError) -> Self {
        StoreError::Database(format!("migration failed: {error}"))
    }
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

/// Applies the pending migrations of `migrator` on `conn`, holding the
/// migration lock for the whole run (waiting at most `lock_seconds` for it;
/// `lock_timeout`: what the error says was waited). Returns the versions
/// applied by this call.
pub(crate) async fn run<D: Db>(
    conn: &mut D::Connection,
    sql: &MigrationStatements,
    migrator: &Migrator,
    lock_seconds: i64,
    lock_timeout: Option<Duration>,
) -> Result<Vec<i64>, MigrateError>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    let locked = D::fetch_one(On::Connection(&mut *conn), D::query(sql.lock, &[lock_seconds.into()])).await?;
    if D::optional_int(&locked, "locked")? != Some(1) {
        return Err(MigrateError::LockTimeout(lock_timeout.unwrap_or_default()));
    }
    let applied = apply_pending::<D>(conn, sql, migrator).await;
    let unlocked = D::execute(On::Connection(&mut *conn), D::query(sql.unlock, &[])).await;
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

async fn apply_pending<D: Db>(
    conn: &mut D::Connection,
    sql: &MigrationStatements,
    migrator: &Migrator,
) -> Result<Vec<i64>, MigrateError>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    if !table_exists::<D>(conn, sql, "_sqlx_migrations").await? {
        for table in STORE_TABLES {
            if table_exists::<D>(conn, sql, table).await? {
                return Err(MigrateError::ForeignTable(table.to_owned()));
            }
        }
        D::execute(On::Connection(&mut *conn), D::query(sql.create_table, &[])).await?;
    }
    let mut recorded = Vec::new();
    for row in D::fetch_all(On::Connection(&mut *conn), D::query(sql.applied, &[])).await? {
        recorded.push((D::int(&row, "version")?, D::bytes(&row, "checksum")?));
    }
    let mut applied_now = Vec::new();
    for migration in migrator.iter().filter(|migration| migration.migration_type.is_up_migration()) {
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
        let took = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let args = [migration.version.into(), (&*migration.description).into(), Arg::Bytes(&migration.checksum)];
        let args = [args.as_slice(), &[took.into()]].concat();
        D::execute(On::Connection(&mut *conn), D::query(sql.record, &args)).await?;
        applied_now.push(migration.version);
    }
    Ok(applied_now)
}

async fn table_exists<D: Db>(
    conn: &mut D::Connection,
    sql: &MigrationStatements,
    table: &str,
) -> Result<bool, StoreError> {
    let row = D::fetch_one(On::Connection(&mut *conn), D::query(sql.table_exists, &[table.into()])).await?;
    Ok(D::int(&row, "tables")? > 0)
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
        for migration in crate::store::mariadb::migrate::MIGRATOR.iter() {
            let statements = statements(migration.sql.as_str());
            assert!(!statements.is_empty(), "migration {} has no statement", migration.version);
            for statement in statements {
                assert!(!statement.lines().any(|line| line.trim().starts_with("--")), "{statement}");
                assert!(!statement.ends_with(';'), "{statement}");
            }
        }
    }
}
