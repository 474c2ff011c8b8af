//! The machine and database versions the figures were measured on, for the
//! report: without them the numbers cannot be compared with another run.

use sqlx::{Connection, MySqlConnection, PgConnection, SqliteConnection};

use super::error::{Context, Result};
use retentiond::store::Engine;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    /// `SELECT version()`; `None` when PostgreSQL is not measured.
    pub postgres: Option<String>,
    /// `VERSION()` and the durability settings; `None` when MariaDB is not measured.
    pub mariadb: Option<String>,
    /// `sqlite_version()` of the SQLite library retentiond is built with.
    pub sqlite: String,
}

/// MariaDB's version and what decides a commit's cost: the redo log's flush
/// per commit, the binary log and its sync, the buffer pool.
const MARIADB_SETTINGS: &str = "SELECT CONCAT(VERSION(), '; innodb_flush_log_at_trx_commit=', \
     @@innodb_flush_log_at_trx_commit, ', log_bin=', @@log_bin, ', sync_binlog=', @@sync_binlog, \
     ', innodb_buffer_pool_size=', @@innodb_buffer_pool_size DIV 1048576, ' MiB, innodb_doublewrite=', \
     @@innodb_doublewrite)";

pub async fn describe(backends: &[Engine], postgres_url: &str, mariadb_url: &str) -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|line| line.split_once(':').filter(|(key, _)| key.trim() == name))
            .map_or_else(|| "unknown".to_owned(), |(_, value)| value.trim().to_owned())
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |text| format!("Linux {}", text.trim()));
    let postgres = if backends.contains(&Engine::Postgres) {
        let mut conn = PgConnection::connect(postgres_url).await.with_context(|| {
            format!("cannot connect to PostgreSQL at {}", retentiond::config::redact_url(postgres_url))
        })?;
        let version: String = sqlx::query_scalar("SELECT version()").fetch_one(&mut conn).await.context("version()")?;
        conn.close().await.context("closing a connection")?;
        Some(version)
    } else {
        None
    };
    let mariadb = if backends.contains(&Engine::MariaDb) {
        let mut conn = MySqlConnection::connect(mariadb_url)
            .await
            .with_context(|| format!("cannot connect to MariaDB at {}", retentiond::config::redact_url(mariadb_url)))?;
        let settings: String =
            sqlx::query_scalar(MARIADB_SETTINGS).fetch_one(&mut conn).await.context("MariaDB's settings")?;
        conn.close().await.context("closing a connection")?;
        Some(settings)
    } else {
        None
    };
    let mut sqlite = SqliteConnection::connect("sqlite::memory:").await.context("opening an in-memory SQLite")?;
    let sqlite_version: String =
        sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&mut sqlite).await.context("sqlite_version()")?;
    sqlite.close().await.context("closing a connection")?;
    Ok(Machine {
        cpu: field(&cpuinfo, "model name"),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory: field(&meminfo, "MemTotal"),
        kernel,
        postgres,
        mariadb,
        sqlite: sqlite_version,
    })
}
