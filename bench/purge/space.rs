//! The space a purge leaves behind, read right after retentiond's purge of
//! the seeded store. Deleting rows does not shrink either store:
//!
//! * SQLite keeps the freed pages in the file's freelist (reused by later
//!   inserts) unless `auto_vacuum` is set; the figures are the file and WAL
//!   sizes, `page_count`, `freelist_count` and `auto_vacuum`.
//! * PostgreSQL leaves dead tuples until (auto)vacuum removes them; the
//!   figures are `pg_stat_user_tables`' live and dead tuples and autovacuum
//!   runs per table, right after the purge and again once autovacuum has
//!   processed `jobs` and `job_drives` (polled every 5 s, up to
//!   `--autovacuum-wait-seconds`).
//! * MariaDB (InnoDB) marks deleted rows and lets its purge threads remove
//!   them; freed pages stay in the tablespace. The figures are
//!   `information_schema.TABLES`' sizes and free space per table and the
//!   history list length (undo not yet purged).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection, PgConnection, SqliteConnection};

use super::error::{Context, Result};
use super::stores::{BenchStore, Conn, Location};

const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How long to wait for a finished purge's statistics to reach `pg_stat_user_tables`.
const STATS_FLUSH_WAIT: Duration = Duration::from_secs(5);

const TABLE_STATS: &str = "SELECT relname::text, n_live_tup, n_dead_tup, n_tup_del, last_autovacuum, autovacuum_count \
     FROM pg_stat_user_tables WHERE relname IN ('jobs', 'job_drives', 'retention_audit') ORDER BY relname";

/// MariaDB: the tables' sizes (estimates: InnoDB's statistics) and the history list.
const MARIADB_TABLES: &str = "SELECT TABLE_NAME AS name, CAST(TABLE_ROWS AS SIGNED) AS row_estimate, \
       CAST(DATA_LENGTH AS SIGNED) AS data_bytes, CAST(INDEX_LENGTH AS SIGNED) AS index_bytes, \
       CAST(DATA_FREE AS SIGNED) AS free_bytes \
     FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
       AND TABLE_NAME IN ('jobs', 'job_drives', 'retention_audit') ORDER BY TABLE_NAME";
const MARIADB_HISTORY: &str =
    "SELECT CAST(COUNT AS SIGNED) FROM information_schema.INNODB_METRICS WHERE NAME = 'trx_rseg_history_len'";

#[derive(Debug, Clone)]
pub enum Space {
    Sqlite(SqliteSpace),
    Postgres(PostgresSpace),
    MariaDb(MariaDbSpace),
}

#[derive(Debug, Clone)]
pub struct MariaDbSpace {
    /// (table, rows (estimate), data bytes, index bytes, free bytes).
    pub tables: Vec<(String, i64, i64, i64, i64)>,
    /// Undo records the purge threads have not removed yet (the whole server's).
    pub history_length: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SqliteSpace {
    pub file_bytes: u64,
    /// `None`: no WAL file (the last connection to close checkpointed and removed it).
    pub wal_bytes: Option<u64>,
    pub page_size: i64,
    pub page_count: i64,
    pub freelist_count: i64,
    /// 0 none, 1 full, 2 incremental.
    pub auto_vacuum: i64,
}

#[derive(Debug, Clone)]
pub struct PostgresSpace {
    /// The server's `autovacuum` setting; when off, nothing is waited for.
    pub autovacuum_on: bool,
    pub after_purge: Vec<TableStats>,
    /// `None` when there was no waiting (autovacuum off, or a wait of 0 s).
    pub after_wait: Option<AutovacuumWait>,
}

#[derive(Debug, Clone)]
pub struct AutovacuumWait {
    /// How long it waited: until autovacuum had processed both tables, or the whole allowance.
    pub waited: Duration,
    pub caught_up: bool,
    pub tables: Vec<TableStats>,
}

#[derive(Debug, Clone)]
pub struct TableStats {
    pub table: String,
    pub live: i64,
    pub dead: i64,
    pub last_autovacuum: Option<DateTime<Utc>>,
    pub autovacuum_count: i64,
}

/// Measures `store` right after a purge that deleted `deleted` jobs.
pub async fn measure(store: &BenchStore, deleted: u64, autovacuum_wait: Duration) -> Result<Space> {
    let space = match (&store.location, store.connect().await?) {
        (Location::Sqlite(path), Conn::Sqlite(conn)) => Space::Sqlite(sqlite(path, conn).await?),
        (Location::Postgres { .. }, Conn::Postgres(mut conn)) => {
            let space = postgres(&mut conn, deleted, autovacuum_wait).await?;
            conn.close().await.context("closing a connection")?;
            Space::Postgres(space)
        }
        (Location::MariaDb { .. }, Conn::MariaDb(mut conn)) => {
            let space = mariadb(&mut conn).await?;
            conn.close().await.context("closing a connection")?;
            Space::MariaDb(space)
        }
        _ => return Err("a store's connection does not match its location".into()),
    };
    Ok(space)
}

async fn sqlite(path: &Path, mut conn: SqliteConnection) -> Result<SqliteSpace> {
    // Sizes before this connection closes: the last connection to close checkpoints the WAL away.
    let size = |path: &Path| std::fs::metadata(path).map(|metadata| metadata.len());
    let file_bytes = size(path).with_context(|| format!("cannot stat {}", path.display()))?;
    let wal_bytes = size(&PathBuf::from(format!("{}-wal", path.display()))).ok();
    let mut pragma = async |name: &str| {
        let sql = format!("PRAGMA {name}");
        sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("{sql} failed"))
    };
    let space = SqliteSpace {
        file_bytes,
        wal_bytes,
        page_size: pragma("page_size").await?,
        page_count: pragma("page_count").await?,
        freelist_count: pragma("freelist_count").await?,
        auto_vacuum: pragma("auto_vacuum").await?,
    };
    conn.close().await.context("closing a connection")?;
    Ok(space)
}

async fn postgres(conn: &mut PgConnection, deleted: u64, autovacuum_wait: Duration) -> Result<PostgresSpace> {
    let purge_ended: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *conn).await.context("now()")?;
    // The purge's sessions report their deletions as they exit; wait for that.
    let flush_deadline = Instant::now() + STATS_FLUSH_WAIT;
    let after_purge = loop {
        let (stats, jobs_deleted) = table_stats(conn).await?;
        if jobs_deleted >= deleted as i64 || Instant::now() >= flush_deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let autovacuum_on: bool = sqlx::query_scalar("SELECT current_setting('autovacuum') = 'on'")
        .fetch_one(&mut *conn)
        .await
        .context("reading the autovacuum setting")?;
    if !autovacuum_on || autovacuum_wait.is_zero() {
        return Ok(PostgresSpace { autovacuum_on, after_purge, after_wait: None });
    }
    super::progress(format!("postgres: waiting up to {} s for autovacuum", autovacuum_wait.as_secs()));
    let started = Instant::now();
    loop {
        let (tables, _) = table_stats(conn).await?;
        let vacuumed = |table: &str| {
            tables.iter().any(|stats| stats.table == table && stats.last_autovacuum.is_some_and(|at| at > purge_ended))
        };
        let caught_up = vacuumed("jobs") && vacuumed("job_drives");
        let waited = started.elapsed();
        if caught_up || waited >= autovacuum_wait {
            let wait = AutovacuumWait { waited, caught_up, tables };
            return Ok(PostgresSpace { autovacuum_on, after_purge, after_wait: Some(wait) });
        }
        tokio::time::sleep(POLL_INTERVAL.min(autovacuum_wait - waited)).await;
    }
}

/// The statistics of the three tables, and the deletions counted on `jobs`.
async fn table_stats(conn: &mut PgConnection) -> Result<(Vec<TableStats>, i64)> {
    type Row = (String, i64, i64, i64, Option<DateTime<Utc>>, i64);
    let rows: Vec<Row> =
        sqlx::query_as(TABLE_STATS).fetch_all(&mut *conn).await.context("reading pg_stat_user_tables")?;
    let jobs_deleted = rows.iter().find(|row| row.0 == "jobs").map_or(0, |row| row.3);
    let stats = rows
        .into_iter()
        .map(|(table, live, dead, _, last_autovacuum, autovacuum_count)| TableStats {
            table,
            live,
            dead,
            last_autovacuum,
            autovacuum_count,
        })
        .collect();
    Ok((stats, jobs_deleted))
}

async fn mariadb(conn: &mut MySqlConnection) -> Result<MariaDbSpace> {
    let tables = sqlx::query_as(MARIADB_TABLES).fetch_all(&mut *conn).await.context("reading the tables' sizes")?;
    let history_length =
        sqlx::query_scalar(MARIADB_HISTORY).fetch_optional(&mut *conn).await.context("reading INNODB_METRICS")?;
    Ok(MariaDbSpace { tables, history_length })
}
