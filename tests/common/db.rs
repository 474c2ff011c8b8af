//! SQL straight to the test's store, beside the binary: to set up what the
//! commands cannot (triggers, clock skew, planner statistics) and to check
//! what they did, row by row. Values come back as JSON, whatever the engine.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::mysql::{MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteRow};
use sqlx::{Column, ColumnIndex, PgPool, Row, SqlitePool, TypeInfo, ValueRef};

use super::engines::Engine;
use super::env::TestEnv;
use super::{TABLES, quote, ts};

/// One connection to the test's store, of its engine's driver.
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MariaDb(MySqlPool),
}

/// `$body` with `$pool` bound to the driver's pool, whichever it is.
macro_rules! with_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
            Pool::MariaDb($p) => $body,
        }
    };
}

impl Pool {
    async fn connect(engine: Engine, url: &str) -> Pool {
        match engine {
            Engine::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .expect("sqlite URL")
                    .create_if_missing(false)
                    .busy_timeout(Duration::from_secs(30));
                let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await;
                Pool::Sqlite(pool.unwrap_or_else(|e| panic!("test connection to {url}: {e}")))
            }
            Engine::Postgres => {
                let pool = PgPoolOptions::new().max_connections(1).connect(url).await;
                Pool::Postgres(pool.unwrap_or_else(|e| panic!("test connection to {url}: {e}")))
            }
            Engine::MariaDb => {
                let pool =
                    MySqlPoolOptions::new().max_connections(1).connect(&url.replacen("mariadb:", "mysql:", 1)).await;
                Pool::MariaDb(pool.unwrap_or_else(|e| panic!("test connection to {url}: {e}")))
            }
        }
    }

    pub async fn close(self) {
        with_pool!(self, p => p.close().await)
    }
}

impl TestEnv {
    fn pool(&self) -> &Pool {
        self.pool.get_or_init(|| self.rt.block_on(Pool::connect(self.engine, &self.url)))
    }

    /// Runs one or more statements (no results), e.g. to install a trigger.
    #[track_caller]
    pub fn execute(&self, sql: &str) {
        self.try_execute(sql).unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    /// Runs one or more statements that may be refused; the error's text if so.
    pub fn try_execute(&self, sql: &str) -> Result<(), String> {
        let statements = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()));
        let pool = self.pool();
        let done = self.rt.block_on(async { with_pool!(pool, p => statements.execute(p).await.map(|_| ())) });
        done.map_err(|error| error.to_string())
    }

    /// All rows of a query, each as (column name, value) pairs: integers,
    /// floats, strings, booleans; timestamptz as RFC 3339 strings; NULL as null.
    #[track_caller]
    fn named_rows(&self, sql: &str) -> Vec<Vec<(String, Value)>> {
        let query = sqlx::AssertSqlSafe(sql.to_string());
        let pool = self.pool();
        let result = self.rt.block_on(async {
            match pool {
                Pool::Sqlite(p) => sqlx::query(query)
                    .fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(|row| row_values(row, sqlite_value)).collect()),
                Pool::Postgres(p) => sqlx::query(query)
                    .fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(|row| row_values(row, pg_value)).collect()),
                Pool::MariaDb(p) => sqlx::query(query)
                    .fetch_all(p)
                    .await
                    .map(|rows| rows.iter().map(|row| row_values(row, mariadb_value)).collect()),
            }
        });
        result.unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// All rows of a query, each column as JSON (see `named_rows`).
    #[track_caller]
    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        self.named_rows(sql).into_iter().map(|row| row.into_iter().map(|(_, value)| value).collect()).collect()
    }

    /// Rows as maps column name → value.
    #[track_caller]
    pub fn records(&self, sql: &str) -> Vec<BTreeMap<String, Value>> {
        self.named_rows(sql).into_iter().map(|row| row.into_iter().collect()).collect()
    }

    /// The first column of the first row as an integer.
    #[track_caller]
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.rows(sql);
        let value = rows.first().and_then(|r| r.first()).unwrap_or_else(|| panic!("no row from: {sql}"));
        value.as_i64().unwrap_or_else(|| panic!("not an integer: {value} from: {sql}"))
    }

    /// `SELECT count(*) FROM <from>`, e.g. `count("jobs WHERE state = 'Closed'")`.
    #[track_caller]
    pub fn count(&self, from: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {from}"))
    }

    /// The first column of every row, as strings.
    #[track_caller]
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|r| match r.into_iter().next() {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect()
    }

    /// Every row of `table`, each as one string, in primary key order.
    #[track_caller]
    pub fn dump(&self, table: &str) -> Vec<String> {
        self.rows(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .into_iter()
            .map(|r| Value::Array(r).to_string())
            .collect()
    }

    /// [`dump`](Self::dump) of all four tables.
    #[track_caller]
    pub fn dump_all(&self) -> BTreeMap<&'static str, Vec<String>> {
        TABLES.iter().map(|t| (*t, self.dump(t))).collect()
    }

    /// The audit rows (as records) of one job name.
    #[track_caller]
    pub fn audit_rows(&self, job_name: &str) -> Vec<BTreeMap<String, Value>> {
        self.records(&format!("SELECT * FROM retention_audit WHERE job_name = {} ORDER BY id", quote(job_name)))
    }

    /// Whether a stored boolean column value is true (SQLite 0/1, PostgreSQL bool).
    pub fn truthy(value: &Value) -> bool {
        match value {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64() != Some(0),
            other => panic!("not a boolean: {other}"),
        }
    }

    /// This store's URL with its port replaced (its server through a [`super::TcpProxy`]).
    pub fn url_with_port(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).expect("database URL");
        url.set_port(Some(port)).expect("URL takes a port");
        url.to_string()
    }

    /// The address of this store's server.
    pub fn server_address(&self) -> SocketAddr {
        let url = url::Url::parse(&self.url).expect("database URL");
        let host = url.host_str().expect("URL with a host");
        let port = url.port().unwrap_or(match self.engine {
            Engine::Sqlite => panic!("an SQLite store has no server"),
            Engine::Postgres => 5432,
            Engine::MariaDb => 3306,
        });
        (host, port).to_socket_addrs().expect("resolve host").next().expect("an address")
    }
}

/// Each column of `row` with its name; NULL as null, any other value as
/// `value` decodes it from the column's type name (upper case).
fn row_values<R: Row>(row: &R, value: fn(&R, usize, &str) -> Value) -> Vec<(String, Value)>
where
    usize: ColumnIndex<R>,
{
    let decode = |i: usize| {
        let raw = row.try_get_raw(i).expect("column");
        if raw.is_null() { Value::Null } else { value(row, i, &raw.type_info().name().to_ascii_uppercase()) }
    };
    row.columns().iter().enumerate().map(|(i, column)| (column.name().to_string(), decode(i))).collect()
}

fn sqlite_value(row: &SqliteRow, i: usize, type_name: &str) -> Value {
    match type_name {
        "INTEGER" | "BOOLEAN" | "INT" | "BIGINT" => json!(row.try_get_unchecked::<i64, _>(i).expect("integer")),
        "REAL" => json!(row.try_get_unchecked::<f64, _>(i).expect("real")),
        "BLOB" => {
            let bytes: Vec<u8> = row.try_get_unchecked(i).expect("blob");
            json!(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
        _ => json!(row.try_get_unchecked::<String, _>(i).expect("text")),
    }
}

/// Integers (booleans are TINYINT(1)), floats, text (a `_bin` collation's
/// comes as binary: text when it is UTF-8); DATETIME (UTC) as RFC 3339.
fn mariadb_value(row: &MySqlRow, i: usize, type_name: &str) -> Value {
    match type_name {
        "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "BOOLEAN" => {
            json!(row.try_get_unchecked::<i64, _>(i).expect("integer"))
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" => {
            json!(row.try_get_unchecked::<u64, _>(i).expect("integer"))
        }
        "DOUBLE" | "FLOAT" => json!(row.try_get_unchecked::<f64, _>(i).expect("float")),
        "DECIMAL" => json!(row.try_get_unchecked::<String, _>(i).expect("decimal").parse::<f64>().expect("number")),
        "DATETIME" | "TIMESTAMP" => {
            json!(ts(row.try_get_unchecked::<chrono::NaiveDateTime, _>(i).expect("datetime").and_utc()))
        }
        "BLOB" | "VARBINARY" | "BINARY" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            let bytes: Vec<u8> = row.try_get_unchecked(i).expect("blob");
            match String::from_utf8(bytes) {
                Ok(text) => json!(text),
                Err(bytes) => json!(bytes.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>()),
            }
        }
        _ => json!(row.try_get_unchecked::<String, _>(i).expect("text")),
    }
}

fn pg_value(row: &PgRow, i: usize, type_name: &str) -> Value {
    match type_name {
        "INT8" => json!(row.try_get::<i64, _>(i).expect("int8")),
        "INT4" => json!(row.try_get::<i32, _>(i).expect("int4")),
        "INT2" => json!(row.try_get::<i16, _>(i).expect("int2")),
        "BOOL" => json!(row.try_get::<bool, _>(i).expect("bool")),
        "FLOAT8" => json!(row.try_get::<f64, _>(i).expect("float8")),
        "FLOAT4" => json!(row.try_get::<f32, _>(i).expect("float4")),
        "TIMESTAMPTZ" => json!(ts(row.try_get::<DateTime<Utc>, _>(i).expect("timestamptz"))),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => json!(row.try_get::<String, _>(i).expect("text")),
        "JSON" | "JSONB" => row.try_get::<Value, _>(i).expect("json"),
        other => panic!("harness cannot decode PostgreSQL type {other} (cast it to text in the query)"),
    }
}
