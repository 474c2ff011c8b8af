//! A fresh database per test on the shared MariaDB server named by
//! `RETENTIOND_TEST_MARIADB_URL` (default `mysql://root@127.0.0.1:3306/`),
//! dropped when the [`TestDb`] is. When the server is unreachable the test
//! says so and passes, unless `RETENTIOND_TEST_REQUIRE_MARIADB=1`
//! ([`Requirement::MariaDb`]), where it fails.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};

use super::require::Requirement;

pub const URL_ENV: &str = "RETENTIOND_TEST_MARIADB_URL";

/// The server's URL without a database.
pub fn admin_url() -> String {
    std::env::var(URL_ENV).unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/".to_owned())
}

pub struct TestDb {
    pub name: String,
    /// The URL of the test's database.
    pub url: String,
}

impl TestDb {
    /// A new empty database, or `None` (after saying so) when the server
    /// cannot be reached.
    pub async fn create(test: &str) -> Option<TestDb> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = admin_url();
        let mut conn = match MySqlConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(error) => {
                Requirement::MariaDb
                    .skip(&format!("MariaDB test {test}"), &format!("{admin} is unreachable ({error})"));
                return None;
            }
        };
        let name = format!("retentiond_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let url = format!("{}{name}", admin.trim_end_matches('/').to_owned() + "/");
        Some(TestDb { name, url })
    }

    pub fn options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::from_str(&self.url).expect("the test database's URL").disable_statement_logging()
    }

    /// A session as the store opens them: UTC, READ COMMITTED, no statement time limit.
    pub async fn session(&self) -> MySqlConnection {
        let mut conn = self.options().connect().await.expect("connect to the test database");
        sqlx::query(retentiond::store::mariadb::sql::with_question_marks(
            retentiond::store::mariadb::sql::SESSION_SETTINGS,
        ))
        .bind(0_i64)
        .execute(&mut conn)
        .await
        .expect("session settings");
        conn
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: a test's runtime may be the one dropping it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut conn = MySqlConnection::connect(&admin_url()).await.ok()?;
                // With the login of its own, if the test made one (`TestEnv::url_with_password`).
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}; DROP USER IF EXISTS '{name}'@'%'"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}
