//! Where each measurement's store lives. Every variant gets a store of its
//! own, so no measurement sees what another one did: on SQLite a file in the
//! work directory, on PostgreSQL a database named
//! `retentiond_bench_<pid>_<variant>`, on MariaDB a database of the same
//! name. A copy of the seeded store is a file copy (SQLite; the seed's WAL
//! was folded into its file first), a `CREATE DATABASE … TEMPLATE`
//! (PostgreSQL), or on MariaDB, which has no template databases, a database
//! given its schema by `retentiond migrate` and every table's stored columns
//! by `INSERT … SELECT`, so every variant starts from the same rows. Every
//! store made here is removed again by [`Stores::remove_all`], which `run`
//! calls whether the measurements succeeded, failed or were interrupted by
//! SIGINT or SIGTERM: no database is left behind on the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, Row};

use super::error::{Context, Result};
use retentiond::store::Engine;

/// How long a SQLite connection of the benchmark waits for the write lock:
/// long enough that the writer queues behind a whole single-statement purge.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// PostgreSQL's SQLSTATE `object_in_use`: the template database still has a
/// session (a backend that has not quite exited, or an autovacuum worker).
const OBJECT_IN_USE: &str = "55006";

/// MariaDB's error for a `KILL` of a session that has ended.
const UNKNOWN_THREAD_ID: u16 = 1094;

/// MariaDB: the tables a copy fills, parents first.
const COPIED_TABLES: [&str; 4] = ["jobs", "job_drives", "retention_runs", "retention_audit"];

/// MariaDB: a table's stored (not generated) columns, quoted and comma-separated.
/// Binds: database, table.
const STORED_COLUMNS: &str = "SELECT GROUP_CONCAT(CONCAT('`', COLUMN_NAME, '`') ORDER BY ORDINAL_POSITION) \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND IS_GENERATED = 'NEVER'";

/// One store, used by one variant.
#[derive(Debug, Clone)]
pub struct BenchStore {
    /// The variant it serves, e.g. `baseline`.
    pub variant: String,
    /// The URL retentiond is given.
    pub url: String,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres { database: String },
    MariaDb { database: String },
}

/// A connection of the benchmark's own to a store.
pub enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
    MariaDb(MySqlConnection),
}

/// The options of every SQLite connection the benchmark opens: the same
/// journal and durability as retentiond's own (WAL, `synchronous=NORMAL`),
/// foreign keys on so drives go with their job.
pub fn sqlite_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
}

impl BenchStore {
    pub async fn connect(&self) -> Result<Conn> {
        let what = || format!("cannot connect to the {} store ({})", self.variant, self.describe());
        match &self.location {
            Location::Sqlite(path) => {
                SqliteConnection::connect_with(&sqlite_options(path)).await.map(Conn::Sqlite).with_context(what)
            }
            Location::Postgres { .. } => PgConnection::connect(&self.url).await.map(Conn::Postgres).with_context(what),
            Location::MariaDb { .. } => MySqlConnection::connect(&self.url).await.map(Conn::MariaDb).with_context(what),
        }
    }

    pub fn backend(&self) -> Engine {
        match self.location {
            Location::Sqlite(_) => Engine::Sqlite,
            Location::Postgres { .. } => Engine::Postgres,
            Location::MariaDb { .. } => Engine::MariaDb,
        }
    }

    /// The file or database, for messages (never the URL: it may hold a password).
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres { database } | Location::MariaDb { database } => format!("database {database}"),
        }
    }
}

impl Conn {
    /// Runs a `SELECT count(*) …` written the same for every backend.
    pub async fn count(&mut self, sql: &'static str) -> Result<u64> {
        let count: i64 = match self {
            Conn::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            Conn::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            Conn::MariaDb(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
        }
        .with_context(|| format!("query failed: {sql}"))?;
        Ok(count.max(0) as u64)
    }

    /// Leaves a freshly built store as a store that has run for a while
    /// would be: SQLite's WAL folded into the database file (which also makes
    /// the file complete for copying), PostgreSQL's tables vacuumed and
    /// analysed (what autovacuum would have done after the bulk insert) and
    /// written back by a checkpoint, so that what is measured next does not
    /// share the disk with the write-back of what the load and the vacuum
    /// dirtied; MariaDB's tables analysed (InnoDB's own statistics sample
    /// the table only after a tenth of it changed), the rows removed that
    /// earlier transactions deleted ([`history_purged`]), and the dirty
    /// pages written back for the same reason (`FLUSH TABLES … FOR EXPORT`;
    /// InnoDB writes pages back only as its redo log fills, so a copy's
    /// write-back otherwise falls inside the next measurement).
    pub async fn settle(&mut self) -> Result<()> {
        match self {
            Conn::Sqlite(conn) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(conn).await.context("WAL checkpoint")?;
            }
            Conn::Postgres(conn) => {
                sqlx::raw_sql("VACUUM ANALYZE").execute(&mut *conn).await.context("VACUUM ANALYZE")?;
                sqlx::raw_sql("CHECKPOINT")
                    .execute(conn)
                    .await
                    .context("CHECKPOINT (the role needs pg_checkpoint or superuser)")?;
            }
            Conn::MariaDb(conn) => {
                sqlx::raw_sql("ANALYZE TABLE jobs, job_drives, retention_runs, retention_audit")
                    .execute(&mut *conn)
                    .await
                    .context("ANALYZE TABLE")?;
                match history_purged(&mut *conn).await? {
                    Some(waited) if waited > Duration::from_secs(1) => super::progress(format!(
                        "mariadb: waited {:.1} s for InnoDB to remove earlier transactions' rows",
                        waited.as_secs_f64()
                    )),
                    Some(_) => {}
                    None => super::progress(format!(
                        "mariadb: InnoDB's history list was not empty after {} s; measuring anyway",
                        PURGE_WAIT_LIMIT.as_secs()
                    )),
                }
                sqlx::raw_sql(
                    "FLUSH TABLES jobs, job_drives, retention_runs, retention_audit FOR EXPORT; UNLOCK TABLES",
                )
                .execute(conn)
                .await
                .context("FLUSH TABLES … FOR EXPORT (the user needs RELOAD and LOCK TABLES)")?;
            }
        }
        Ok(())
    }

    pub async fn close(self) -> Result<()> {
        match self {
            Conn::Sqlite(conn) => conn.close().await,
            Conn::Postgres(conn) => conn.close().await,
            Conn::MariaDb(conn) => conn.close().await,
        }
        .context("closing a connection")
    }
}

/// How long [`history_purged`] waits at most.
const PURGE_WAIT_LIMIT: Duration = Duration::from_secs(120);

/// How often [`history_purged`] reads the history list's length.
const PURGE_POLL: Duration = Duration::from_millis(10);

/// MariaDB: waits until InnoDB has removed the rows that committed
/// transactions deleted, and says how long that took. A `DELETE` only
/// marks its rows; InnoDB's purge threads remove them and their index
/// entries in the background once it has committed, after a single
/// statement for half as long again as its own run (docs/operations.md,
/// "Where a MariaDB purge's time goes"). `None` when InnoDB's history list
/// is still not empty after [`PURGE_WAIT_LIMIT`] (another session's open
/// transaction keeps it). `SHOW ENGINE INNODB STATUS` (the PROCESS
/// privilege) gives the list's length without changing any global setting;
/// `SET GLOBAL innodb_max_purge_lag_wait = 0` would wait too, but it looks
/// only every 100 ms.
pub async fn history_purged(conn: &mut MySqlConnection) -> Result<Option<Duration>> {
    let started = std::time::Instant::now();
    while started.elapsed() < PURGE_WAIT_LIMIT {
        let row = sqlx::query("SHOW ENGINE INNODB STATUS")
            .fetch_one(&mut *conn)
            .await
            .context("SHOW ENGINE INNODB STATUS (the user needs PROCESS)")?;
        let status: String = row.try_get("Status").context("SHOW ENGINE INNODB STATUS: its Status column")?;
        if history_list_length(&status)? == 0 {
            return Ok(Some(started.elapsed()));
        }
        tokio::time::sleep(PURGE_POLL).await;
    }
    Ok(None)
}

/// The number after "History list length" in `SHOW ENGINE INNODB STATUS`.
fn history_list_length(status: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("History list length "))
        .and_then(|length| length.trim().parse().ok())
        .ok_or_else(|| "SHOW ENGINE INNODB STATUS gave no history list length".into())
}

/// The stores of one backend, made and removed here.
pub struct Stores {
    backend: Engine,
    work_dir: PathBuf,
    /// PostgreSQL or MariaDB: a URL whose user may create databases.
    admin_url: String,
    /// `retentiond_bench_<pid>`: the start of every database name.
    prefix: String,
    /// Made and not removed yet.
    live: Vec<BenchStore>,
}

impl Stores {
    pub fn new(backend: Engine, work_dir: &Path, admin_url: &str) -> Stores {
        Stores {
            backend,
            work_dir: work_dir.to_path_buf(),
            admin_url: admin_url.to_owned(),
            prefix: database_prefix(),
            live: Vec::new(),
        }
    }

    pub fn backend(&self) -> Engine {
        self.backend
    }

    /// A new empty store (no schema yet: `retentiond migrate` or `jobs seed` makes it).
    pub async fn empty(&mut self, variant: &str) -> Result<BenchStore> {
        let store = self.name(variant)?;
        match &store.location {
            Location::Sqlite(path) => remove_sqlite_files(path)?,
            Location::Postgres { database } => {
                self.admin(&format!("CREATE DATABASE \"{database}\"")).await?;
            }
            Location::MariaDb { database } => self.admin(&format!("CREATE DATABASE `{database}`")).await?,
        }
        self.live.push(store.clone());
        Ok(store)
    }

    /// A copy of `source` for `variant`. `source` must have been settled
    /// ([`Conn::settle`]) and have no open connection.
    pub async fn copy(&mut self, source: &BenchStore, variant: &str) -> Result<BenchStore> {
        let store = self.name(variant)?;
        match (&source.location, &store.location) {
            (Location::Sqlite(from), Location::Sqlite(to)) => {
                remove_sqlite_files(to)?;
                let (from, to) = (from.clone(), to.clone());
                self.live.push(store.clone());
                tokio::task::spawn_blocking(move || copy_file(&from, &to))
                    .await
                    .context("the file copy thread failed")??;
            }
            (Location::Postgres { database: from }, Location::Postgres { database: to }) => {
                self.copy_database(from, to).await?;
                self.live.push(store.clone());
                // A new database's activity statistics start at zero (no live
                // tuples in pg_stat_user_tables); ANALYZE counts them again.
                let mut conn =
                    PgConnection::connect(&store.url).await.with_context(|| format!("connecting to {to}"))?;
                sqlx::raw_sql("ANALYZE").execute(&mut conn).await.with_context(|| format!("ANALYZE of {to}"))?;
                conn.close().await.context("closing a connection")?;
            }
            (Location::MariaDb { database: from }, Location::MariaDb { database: to }) => {
                self.admin(&format!("CREATE DATABASE `{to}`")).await?;
                self.live.push(store.clone());
                copy_mariadb(from, &store).await.with_context(|| format!("copying {from} to {to}"))?;
            }
            _ => return Err("a store can only be copied within its backend".into()),
        }
        Ok(store)
    }

    /// Deletes a store's file(s) or drops its database.
    pub async fn remove(&mut self, store: &BenchStore) -> Result<()> {
        self.live.retain(|live| live.variant != store.variant);
        match &store.location {
            Location::Sqlite(path) => remove_sqlite_files(path),
            Location::Postgres { database } => {
                self.admin(&format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)")).await
            }
            Location::MariaDb { database } => self.drop_mariadb_database(database).await,
        }
    }

    /// `DROP DATABASE`, after ending the sessions still on it, as
    /// PostgreSQL's `WITH (FORCE)` does: the `DROP` would otherwise wait for
    /// them, such as the session of a `retentiond` an interrupted run left.
    async fn drop_mariadb_database(&self, database: &str) -> Result<()> {
        let mut conn = self.mariadb_admin_connection().await?;
        let sessions: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()")
                .bind(database)
                .fetch_all(&mut conn)
                .await
                .context("listing the sessions on the database")?;
        for session in sessions {
            let killed = sqlx::raw_sql(AssertSqlSafe(format!("KILL CONNECTION {session}"))).execute(&mut conn).await;
            let ended_meanwhile = matches!(&killed, Err(sqlx::Error::Database(error))
                if error.try_downcast_ref::<MySqlDatabaseError>().is_some_and(|error| error.number() == UNKNOWN_THREAD_ID));
            if !ended_meanwhile {
                killed.with_context(|| format!("KILL CONNECTION {session} failed"))?;
            }
        }
        let sql = format!("DROP DATABASE IF EXISTS `{database}`");
        sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut conn).await.with_context(|| format!("{sql} failed"))?;
        conn.close().await.context("closing the admin connection")
    }

    /// Removes every store still there; reports the first failure after trying all.
    pub async fn remove_all(&mut self) -> Result<()> {
        let mut first_error = None;
        for store in std::mem::take(&mut self.live) {
            if let Err(error) = self.remove(&store).await {
                eprintln!("purge benchmark: could not remove the {} store: {error}", store.variant);
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn name(&self, variant: &str) -> Result<BenchStore> {
        let location = match self.backend {
            Engine::Sqlite => Location::Sqlite(self.work_dir.join(format!("{variant}.db"))),
            Engine::Postgres => Location::Postgres { database: format!("{}_{variant}", self.prefix) },
            Engine::MariaDb => Location::MariaDb { database: format!("{}_{variant}", self.prefix) },
        };
        let url = match &location {
            Location::Sqlite(path) => format!("sqlite://{}", path.display()),
            Location::Postgres { database } | Location::MariaDb { database } => {
                let mut url = url::Url::parse(&self.admin_url).context("the server's URL is not a URL")?;
                url.set_path(&format!("/{database}"));
                url.to_string()
            }
        };
        Ok(BenchStore { variant: variant.to_owned(), url, location })
    }

    /// `CREATE DATABASE to TEMPLATE from`, retried for a few seconds while the
    /// template still has a session: a backend that has not finished exiting
    /// after its client left, or an autovacuum worker.
    async fn copy_database(&self, from: &str, to: &str) -> Result<()> {
        let sql = format!("CREATE DATABASE \"{to}\" TEMPLATE \"{from}\"");
        let mut attempts = 0;
        loop {
            let mut conn = self.admin_connection().await?;
            let result = sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut conn).await;
            let in_use = matches!(&result, Err(error)
                if error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == OBJECT_IN_USE));
            if in_use && attempts < 20 {
                attempts += 1;
                conn.close().await.context("closing the admin connection")?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            result.with_context(|| format!("{sql} failed"))?;
            // The copy wrote the whole database to the WAL; a checkpoint now
            // keeps that write-out from landing inside the next measurement.
            // Only a superuser (or pg_checkpoint) may; without it the
            // measurement is merely noisier, so it is not an error.
            if let Err(error) = sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await {
                super::progress(format!("postgres: CHECKPOINT after copying refused ({error}); continuing"));
            }
            return conn.close().await.context("closing the admin connection");
        }
    }

    async fn admin(&self, sql: &str) -> Result<()> {
        let statement = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()));
        if self.backend == Engine::MariaDb {
            let mut conn = self.mariadb_admin_connection().await?;
            statement.execute(&mut conn).await.with_context(|| format!("{sql} failed"))?;
            return conn.close().await.context("closing the admin connection");
        }
        let mut conn = self.admin_connection().await?;
        statement.execute(&mut conn).await.with_context(|| format!("{sql} failed"))?;
        conn.close().await.context("closing the admin connection")
    }

    async fn mariadb_admin_connection(&self) -> Result<MySqlConnection> {
        MySqlConnection::connect(&self.admin_url).await.with_context(|| {
            format!("cannot connect to MariaDB at {}", retentiond::config::redact_url(&self.admin_url))
        })
    }

    async fn admin_connection(&self) -> Result<PgConnection> {
        PgConnection::connect(&self.admin_url).await.with_context(|| {
            format!("cannot connect to PostgreSQL at {}", retentiond::config::redact_url(&self.admin_url))
        })
    }
}

/// `retentiond_bench_<pid>`: every database of this process starts with it.
pub fn database_prefix() -> String {
    format!("retentiond_bench_{}", std::process::id())
}

/// MariaDB: `to` (an empty database) gets the schema from `retentiond
/// migrate`, then every table's stored columns from the database `from`,
/// one `INSERT … SELECT` each (foreign keys unchecked: the rows are a
/// consistent copy), and is settled.
async fn copy_mariadb(from: &str, to: &BenchStore) -> Result<()> {
    super::cli::run(&to.url, &["migrate"]).await?;
    let Conn::MariaDb(mut conn) = to.connect().await? else {
        return Err("a MariaDB store without a MariaDB connection".into());
    };
    sqlx::raw_sql("SET SESSION foreign_key_checks = 0, unique_checks = 0, tx_isolation = 'READ-COMMITTED'")
        .execute(&mut conn)
        .await
        .context("setting up the copying session")?;
    for table in COPIED_TABLES {
        let columns: String = sqlx::query_scalar(STORED_COLUMNS)
            .bind(from)
            .bind(table)
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("reading the columns of {from}.{table}"))?;
        let sql = format!("INSERT INTO `{table}` ({columns}) SELECT {columns} FROM `{from}`.`{table}`");
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.with_context(|| format!("copying {table}"))?;
    }
    let mut conn = Conn::MariaDb(conn);
    conn.settle().await?;
    conn.close().await
}

/// Copies the file and flushes the copy, so the copy's write-back does not
/// land inside the measurement that follows.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let what = || format!("cannot copy {} to {}", from.display(), to.display());
    std::fs::copy(from, to).with_context(what)?;
    std::fs::File::open(to).and_then(|file| file.sync_all()).with_context(what)
}

/// Removes a SQLite database with its WAL and shared-memory files, if there.
fn remove_sqlite_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove {}: {error}", file.display()).into());
            }
            _ => {}
        }
    }
    Ok(())
}
