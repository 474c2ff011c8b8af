//! A fresh database per test on the shared PostgreSQL server named by
//! `RETENTIOND_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a role allowed to create
//! databases), dropped when the [`TestDb`] is. When the server cannot be
//! reached the test says so and passes, unless
//! `RETENTIOND_TEST_REQUIRE_POSTGRES=1` ([`Requirement::Postgres`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::require::Requirement;

/// The shared server's admin URL. Without an `sslmode` of its own it gets
/// `sslmode=disable`: the suite reaches the shared server in plain text, as
/// it did before TLS was built in, because a TLS session takes longer to
/// open, which would shift the moments the timing-calibrated tests aim at
/// (tests/crash.rs). TLS itself is tested by tests/tls.rs against servers
/// of its own.
pub fn admin_url() -> String {
    let url = std::env::var("RETENTIOND_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let mut parsed = url::Url::parse(&url).expect("RETENTIOND_TEST_POSTGRES_URL is a URL");
    if !parsed.query_pairs().any(|(name, _)| name == "sslmode") {
        parsed.query_pairs_mut().append_pair("sslmode", "disable");
    }
    parsed.to_string()
}

/// A database of its own on the shared server.
pub struct TestDb {
    pub name: String,
    /// The URL of the test's database.
    pub url: String,
}

impl TestDb {
    /// A new empty database, or `None` (after saying so) when the server
    /// cannot be reached.
    pub fn create(test: &str) -> Option<TestDb> {
        static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = admin_url();
        let reachable = REACHABLE.get_or_init(|| {
            runtime().block_on(async {
                let pool = pool(&admin, Duration::from_secs(3)).await?;
                sqlx::query("SELECT 1").execute(&pool).await.map_err(|e| e.to_string())?;
                pool.close().await;
                Ok(())
            })
        });
        if let Err(reason) = reachable {
            Requirement::Postgres.skip(&format!("PostgreSQL test {test}"), reason);
            return None;
        }
        let name = format!(
            "rtd_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        runtime().block_on(async {
            let pool = pool(&admin, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
            pool.close().await;
        });
        let mut url = url::Url::parse(&admin).expect("RETENTIOND_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(TestDb { name, url: url.to_string() })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread and a runtime of its own: the test's runtime may be the one dropping it.
        let dropped = std::thread::spawn(move || {
            runtime().block_on(async {
                let pool = pool(&admin_url(), Duration::from_secs(10)).await?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let dropped = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.map_err(|e| e.to_string());
                pool.close().await;
                dropped.map(|_| ())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

async fn pool(admin_url: &str, timeout: Duration) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect(admin_url)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", super::redact(admin_url)))
}
