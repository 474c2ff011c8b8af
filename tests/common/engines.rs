//! The engines the tests run on (the product's own [`Engine`]), what each
//! can do that a scenario may need ([`Capability`]), and the SQL in which
//! they differ. Every function here matches on the engine exhaustively, so
//! a new engine is a compile error until each says what it does for it.

use chrono::{DateTime, Utc};
pub use retentiond::store::Engine;

use super::env::TestEnv;

/// The test files whose scenarios run on MariaDB: the others' own SQL is
/// not yet written for it (string concatenation, series, sessions of the
/// server), so their scenarios say so and pass there; MariaDB's store is
/// tested by tests/mariadb_*.rs meanwhile.
pub const MARIADB_SCENARIO_FILES: &[&str] = &["cli", "clock", "lifecycle"];

/// What a scenario may need that not every engine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Sweeps from several processes at once against one store (replicas,
    /// overlapping one-shot runs), each job deleted once.
    ConcurrentSweeps,
    /// `schedule.singleton`: a lease that replicas contend for.
    LeaseBetweenProcesses,
    /// A server reached over TCP, which a test can cut off (through a
    /// [`super::TcpProxy`]) and whose sessions it can end.
    NetworkServer,
    /// Logins with a password, and roles with grants of their own.
    Roles,
    /// Statements the server cancels at `database.statement_timeout`.
    StatementTimeout,
    /// A database the test can make refuse writes, then take them again.
    ReadOnlySwitch,
    /// The plan checks of tests/plans.rs and tests/audit_trail.rs know
    /// how to read its plans and bind its statements (MariaDB's plans are
    /// checked by tests/mariadb_sql.rs).
    SharedPlanChecks,
}

impl Capability {
    /// Whether `engine` has it.
    pub fn on(self, engine: Engine) -> bool {
        let has = Has::of(engine);
        match self {
            Capability::ConcurrentSweeps => has.concurrent_sweeps,
            Capability::LeaseBetweenProcesses => has.lease_between_processes,
            Capability::NetworkServer => has.network_server,
            Capability::Roles => has.roles,
            Capability::StatementTimeout => has.statement_timeout,
            Capability::ReadOnlySwitch => has.read_only_switch,
            Capability::SharedPlanChecks => has.shared_plan_checks,
        }
    }
}

/// Which [`Capability`]s one engine has: a field each, so that every engine
/// says so for a new capability, and a new engine for every capability.
struct Has {
    concurrent_sweeps: bool,
    lease_between_processes: bool,
    network_server: bool,
    roles: bool,
    statement_timeout: bool,
    read_only_switch: bool,
    shared_plan_checks: bool,
}

impl Has {
    fn of(engine: Engine) -> Has {
        match engine {
            // One file on this host: sweeps take turns on its lock, and
            // there is no server, no login and no statement timeout.
            Engine::Sqlite => Has {
                concurrent_sweeps: false,
                lease_between_processes: false,
                network_server: false,
                roles: false,
                statement_timeout: false,
                read_only_switch: false,
                shared_plan_checks: true,
            },
            Engine::Postgres => Has {
                concurrent_sweeps: true,
                lease_between_processes: true,
                network_server: true,
                roles: true,
                statement_timeout: true,
                read_only_switch: true,
                shared_plan_checks: true,
            },
            // A server, with named locks for leases; the harness has no
            // roles or read-only switch for it yet, and no statement it
            // can make outlast max_statement_time.
            Engine::MariaDb => Has {
                concurrent_sweeps: true,
                lease_between_processes: true,
                network_server: true,
                roles: false,
                statement_timeout: false,
                read_only_switch: false,
                shared_plan_checks: false,
            },
        }
    }
}

/// The constant of this name from the engine's `sql.rs`:
/// `statement!(env, SELECT_HELD)`.
#[macro_export]
macro_rules! statement {
    ($env:expr, $name:ident) => {
        match $env.engine {
            retentiond::store::Engine::Sqlite => retentiond::store::sqlite::sql::$name,
            retentiond::store::Engine::Postgres => retentiond::store::postgres::sql::$name,
            retentiond::store::Engine::MariaDb => retentiond::store::mariadb::sql::$name,
        }
    };
}

/// The SQL in which the engines differ, for the tests' own statements.
impl TestEnv {
    /// A boolean literal.
    pub fn sql_bool(&self, value: bool) -> &'static str {
        match (self.engine, value) {
            (Engine::Sqlite, false) => "0",
            (Engine::Sqlite, true) => "1",
            (Engine::Postgres, false) => "false",
            (Engine::Postgres, true) => "true",
            (Engine::MariaDb, false) => "FALSE",
            (Engine::MariaDb, true) => "TRUE",
        }
    }

    /// A timestamp literal in the engine's stored form.
    pub fn sql_time(&self, time: DateTime<Utc>) -> String {
        match self.engine {
            Engine::Sqlite => time.timestamp_micros().to_string(),
            Engine::Postgres => format!("'{}'::timestamptz", super::ts(time)),
            Engine::MariaDb => time.format("'%Y-%m-%d %H:%M:%S%.6f'").to_string(),
        }
    }

    /// An expression for "now minus `secs` seconds" in the engine's stored form.
    pub fn sql_seconds_ago(&self, secs: i64) -> String {
        match self.engine {
            Engine::Sqlite => format!("((CAST(strftime('%s','now') AS INTEGER) - {secs}) * 1000000)"),
            Engine::Postgres => format!("(now() - interval '{secs} seconds')"),
            Engine::MariaDb => format!("(UTC_TIMESTAMP(6) - INTERVAL {secs} SECOND)"),
        }
    }

    /// `expression` (a timestamp in the stored form) plus `hours` hours, an SQL expression.
    pub fn sql_plus_hours(&self, expression: &str, hours: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("{expression} + ({hours}) * 3600000000"),
            Engine::Postgres => format!("{expression} + ({hours}) * interval '1 hour'"),
            Engine::MariaDb => format!("({expression} + INTERVAL ({hours}) HOUR)"),
        }
    }

    /// A timestamp column as integer microseconds since the epoch.
    pub fn sql_micros(&self, column: &str) -> String {
        match self.engine {
            Engine::Sqlite => column.to_string(),
            Engine::Postgres => format!("CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"),
            Engine::MariaDb => format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01', {column})"),
        }
    }

    /// The integers `first..=last` as a column `i` of a row source `n`: what
    /// goes before the statement (a `WITH`) and its `FROM` item.
    pub fn sql_numbers(&self, first: i64, last: i64) -> (String, String) {
        match self.engine {
            Engine::Sqlite => (
                format!("WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) "),
                "n".to_owned(),
            ),
            Engine::Postgres => (String::new(), format!("generate_series({first}, {last}) AS n(i)")),
            // The Sequence engine's tables (a recursive WITH stops at 1,000 rows).
            Engine::MariaDb => (String::new(), format!("(SELECT seq AS i FROM seq_{first}_to_{last}) AS n")),
        }
    }

    /// The character of code `code`.
    pub fn sql_char(&self, code: u32) -> String {
        match self.engine {
            Engine::Sqlite => format!("char({code})"),
            Engine::Postgres => format!("chr({code})"),
            Engine::MariaDb => format!("CHAR({code} USING utf8mb4)"),
        }
    }

    /// A trigger `poison_audit` that makes the insert of an audit row fail
    /// ("injected failure"): every one, or only those of the job named `job`.
    pub fn sql_poison_audit(&self, job: Option<&str>) -> String {
        let condition = job.map_or("true".to_owned(), |name| format!("NEW.job_name = {}", super::quote(name)));
        match self.engine {
            Engine::Sqlite => format!(
                "CREATE TRIGGER poison_audit BEFORE INSERT ON retention_audit \
                 WHEN {condition} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            ),
            Engine::Postgres => format!(
                "CREATE FUNCTION poison_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF {condition} THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER poison_audit BEFORE INSERT ON retention_audit FOR EACH ROW EXECUTE FUNCTION poison_audit();"
            ),
            Engine::MariaDb => format!(
                "CREATE TRIGGER poison_audit BEFORE INSERT ON retention_audit FOR EACH ROW \
                 BEGIN IF {condition} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'; END IF; END"
            ),
        }
    }

    /// Removes the trigger of [`sql_poison_audit`](Self::sql_poison_audit).
    pub fn sql_cure_audit(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "DROP TRIGGER poison_audit;",
            Engine::Postgres => "DROP TRIGGER poison_audit ON retention_audit;",
            Engine::MariaDb => "DROP TRIGGER poison_audit;",
        }
    }

    /// A `database.url` of this engine where no database answers.
    pub fn unreachable_url(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "sqlite:///nonexistent-directory/x.db",
            Engine::Postgres => "postgres://postgres@127.0.0.1:1/none",
            Engine::MariaDb => "mariadb://root@127.0.0.1:1/none",
        }
    }
}
