//! The shared database servers, for the benchmark smoke tests: where they
//! are and whether they answer. Standalone like `require.rs`, which they
//! include beside it: a server that does not answer skips that part of a
//! test with a notice, or fails the test when CI requires the server.

use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;

use crate::require::Requirement;

/// The servers at `RETENTIOND_TEST_POSTGRES_URL` and `RETENTIOND_TEST_MARIADB_URL`.
pub struct SharedServers {
    pub postgres_url: String,
    pub mariadb_url: String,
    /// Whether each one answered.
    pub postgres: bool,
    pub mariadb: bool,
}

impl SharedServers {
    /// Reads where the servers are and asks each whether it answers;
    /// `skipped` names the part of the test left out for one that does not.
    pub async fn reach(skipped: &str) -> SharedServers {
        let env_or = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_owned());
        let postgres_url = env_or("RETENTIOND_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres");
        let mariadb_url = env_or("RETENTIOND_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/");
        let postgres = reachable::<PgConnection>(&postgres_url, Requirement::Postgres, skipped).await;
        let mariadb = reachable::<MySqlConnection>(&mariadb_url, Requirement::MariaDb, skipped).await;
        SharedServers { postgres_url, mariadb_url, postgres, mariadb }
    }

    /// The names of the engines reached, SQLite (always there) first, in `--backend`'s spelling.
    pub fn engines(&self) -> Vec<&'static str> {
        let mut engines = vec!["sqlite"];
        engines.extend(self.postgres.then_some("postgres"));
        engines.extend(self.mariadb.then_some("mariadb"));
        engines
    }

    /// The databases of this process's benchmarks (`retentiond_bench_<pid>_…`)
    /// still on the servers reached: a benchmark removes all it made.
    pub async fn leftover_bench_databases(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if self.postgres {
            let mut conn = PgConnection::connect(&self.postgres_url).await.expect("connect to PostgreSQL");
            let sql = "SELECT datname::text FROM pg_database";
            names.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(&mut conn).await.expect(sql));
            let _ = conn.close().await;
        }
        if self.mariadb {
            let mut conn = MySqlConnection::connect(&self.mariadb_url).await.expect("connect to MariaDB");
            let sql = "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA";
            names.extend(sqlx::query_scalar::<_, String>(sql).fetch_all(&mut conn).await.expect(sql));
            let _ = conn.close().await;
        }
        let prefix = format!("retentiond_bench_{}_", std::process::id());
        names.retain(|name| name.starts_with(&prefix));
        names
    }
}

/// Whether the server at `url` answers within 5 s; `skipped` names the part
/// of the test that is skipped when it does not.
async fn reachable<C: Connection>(url: &str, requirement: Requirement, skipped: &str) -> bool {
    let answer = match tokio::time::timeout(Duration::from_secs(5), C::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    };
    match answer {
        Ok(()) => true,
        Err(reason) if requirement.is_required() => {
            panic!("{requirement:?} is required ({}=1) but unreachable: {reason}", requirement.var())
        }
        Err(reason) => {
            eprintln!("skipping {skipped}: {requirement:?} unreachable ({reason})");
            false
        }
    }
}
