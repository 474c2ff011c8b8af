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
pub const MARIADB_SCENARIO_FILES: &[&str] = &[
    "audit_trail",
    "cli",
    "clock",
    "config",
    "connection_loss",
    "crash",
    "daemon",
    "hostile",
    "http_hostile",
    "import",
    "lifecycle",
    "metrics_export",
    "model",
    "overlap",
    "pages",
    "plans",
    "races",
    "retention",
    "security",
    "speed",
    "store_contract",
    "sweep",
];

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
            },
            Engine::Postgres => Has {
                concurrent_sweeps: true,
                lease_between_processes: true,
                network_server: true,
                roles: true,
                statement_timeout: true,
                read_only_switch: true,
            },
            // A server, with named locks for leases and max_statement_time;
            // the harness has no roles or read-only switch for it yet.
            Engine::MariaDb => Has {
                concurrent_sweeps: true,
                lease_between_processes: true,
                network_server: true,
                roles: false,
                statement_timeout: true,
                read_only_switch: false,
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

/// The server's sessions of the binary on the test's database.
pub struct Sessions {
    /// A `FROM` item and condition: `SELECT count(*) FROM {from}`.
    pub from: &'static str,
    /// The column of a session's id, as [`TestEnv::sql_end_session`] takes it.
    pub id: &'static str,
    /// An expression of the statement it runs (its first 80 characters).
    pub query: &'static str,
}

/// The SQL in which the engines differ, for the tests' own statements.
impl TestEnv {
    /// The sessions of the binary on the test's database; `None` without a
    /// server. MariaDB cannot tell the binary's sessions by name: every
    /// session on the database but the one asking.
    pub fn sessions_of_the_binary(&self) -> Option<Sessions> {
        match self.engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(Sessions {
                from: "pg_stat_activity WHERE datname = current_database() AND application_name = 'retentiond'",
                id: "pid",
                query: "left(query, 80)",
            }),
            Engine::MariaDb => Some(Sessions {
                from: "information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()",
                id: "ID",
                query: "LEFT(INFO, 80)",
            }),
        }
    }

    /// A statement that ends the server's session `id` (rolling back its transaction).
    pub fn sql_end_session(&self, id: i64) -> String {
        match self.engine {
            Engine::Sqlite => panic!("an SQLite store has no sessions to end"),
            Engine::Postgres => format!("SELECT pg_terminate_backend({id})"),
            Engine::MariaDb => format!("KILL CONNECTION {id}"),
        }
    }

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

    /// The transaction's "now", in the engine's stored form.
    pub fn sql_now(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "(CAST(strftime('%s','now') AS INTEGER) * 1000000)",
            Engine::Postgres => "now()",
            Engine::MariaDb => "UTC_TIMESTAMP(6)",
        }
    }

    /// The `n`-th parameter of a statement the test binds itself (MariaDB's
    /// are bound in the order they appear, whatever `n`).
    pub fn sql_param(&self, n: usize) -> String {
        match self.engine {
            Engine::Sqlite | Engine::Postgres => format!("${n}"),
            Engine::MariaDb => "?".to_owned(),
        }
    }

    /// A column name quoted, for one that is a keyword (`trigger`).
    pub fn sql_column(&self, name: &str) -> String {
        match self.engine {
            Engine::Sqlite | Engine::Postgres => format!("\"{name}\""),
            Engine::MariaDb => format!("`{name}`"),
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

    /// `expression` as a 64-bit integer (a sum, which PostgreSQL makes a numeric).
    pub fn sql_integer(&self, expression: &str) -> String {
        match self.engine {
            Engine::Sqlite | Engine::Postgres => format!("CAST({expression} AS BIGINT)"),
            Engine::MariaDb => format!("CAST({expression} AS SIGNED)"),
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

    /// A trigger `slow_audit` that makes the first `times` statements
    /// inserting audit rows sleep `secs` seconds (a sequence counts them: it
    /// is not rolled back with a cancelled statement).
    pub fn sql_slow_audit(&self, times: u32, secs: u32) -> String {
        match self.engine {
            Engine::Sqlite => panic!("SQLite cannot sleep in a trigger"),
            Engine::Postgres => format!(
                "CREATE SEQUENCE slow_attempts; \
                 CREATE FUNCTION slow_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF nextval('slow_attempts') <= {times} THEN PERFORM pg_sleep({secs}); END IF; RETURN NULL; END $$; \
                 CREATE TRIGGER slow_audit BEFORE INSERT ON retention_audit FOR EACH STATEMENT EXECUTE FUNCTION slow_audit();"
            ),
            // A statement cancelled in its first row's sleep takes one number.
            Engine::MariaDb => format!(
                "CREATE SEQUENCE slow_attempts; \
                 CREATE TRIGGER slow_audit BEFORE INSERT ON retention_audit FOR EACH ROW \
                 BEGIN IF NEXTVAL(slow_attempts) <= {times} THEN DO SLEEP({secs}); END IF; END"
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

    /// Takes the named lock `key` for the session (an advisory lock on
    /// PostgreSQL; on MariaDB a `GET_LOCK` name of the test's database).
    pub fn sql_lock(&self, key: i64) -> String {
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no named locks"),
            Engine::Postgres => format!("SELECT pg_advisory_lock({key})"),
            Engine::MariaDb => format!("DO GET_LOCK(CONCAT('test.', DATABASE(), '.', {key}), 60)"),
        }
    }

    /// Releases the lock of [`sql_lock`](Self::sql_lock).
    pub fn sql_unlock(&self, key: i64) -> String {
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no named locks"),
            Engine::Postgres => format!("SELECT pg_advisory_unlock({key})"),
            Engine::MariaDb => format!("DO RELEASE_LOCK(CONCAT('test.', DATABASE(), '.', {key}))"),
        }
    }

    /// A trigger `test_block_audit`: the insert of the audit row of the job
    /// named `job` waits for the lock `key` of [`sql_lock`](Self::sql_lock).
    pub fn sql_audit_waits_for_lock(&self, job: &str, key: i64) -> String {
        let job = super::quote(job);
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no named locks"),
            Engine::Postgres => format!(
                "CREATE FUNCTION test_block_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.job_name = {job} THEN PERFORM pg_advisory_xact_lock({key}); END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER test_block_audit BEFORE INSERT ON retention_audit \
                   FOR EACH ROW EXECUTE FUNCTION test_block_audit()"
            ),
            Engine::MariaDb => format!(
                "CREATE TRIGGER test_block_audit BEFORE INSERT ON retention_audit FOR EACH ROW \
                 BEGIN IF NEW.job_name = {job} THEN DO GET_LOCK(CONCAT('test.', DATABASE(), '.', {key}), 3600); END IF; END"
            ),
        }
    }

    /// Removes the trigger of [`sql_audit_waits_for_lock`](Self::sql_audit_waits_for_lock).
    pub fn sql_drop_audit_waits_for_lock(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no named locks"),
            Engine::Postgres => "DROP TRIGGER test_block_audit ON retention_audit; DROP FUNCTION test_block_audit()",
            Engine::MariaDb => "DROP TRIGGER test_block_audit",
        }
    }

    /// The sessions of the binary that wait for a lock of
    /// [`sql_lock`](Self::sql_lock), as a `FROM` item and condition.
    pub fn sql_waiting_for_a_lock(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no named locks"),
            Engine::Postgres => {
                "pg_stat_activity WHERE datname = current_database() AND application_name = 'retentiond' \
                 AND state = 'active' AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            }
            Engine::MariaDb => "information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE = 'User lock'",
        }
    }

    /// The sessions of the binary on the test's database that wait for a
    /// row lock, as a `FROM` item and condition. MariaDB 10.11's
    /// `INNODB_TRX` leaves out some waiting transactions (those behind one
    /// whose trigger waits for a named lock): the sessions whose locking read
    /// (`FOR UPDATE`, not `SKIP LOCKED`) has run for over 200 ms, which a
    /// look-up of one row does only while it waits.
    pub fn sql_waiting_for_a_row(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => panic!("SQLite has no row locks"),
            Engine::Postgres => {
                "pg_stat_activity WHERE datname = current_database() AND application_name = 'retentiond' \
                 AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')"
            }
            Engine::MariaDb => {
                "information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'SELECT %FOR UPDATE' \
                 AND TIME_MS > 200"
            }
        }
    }

    /// What the server tells a client whose session
    /// [`sql_end_session`](Self::sql_end_session) ended mid-statement.
    pub fn ended_session_error(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => panic!("an SQLite store has no sessions to end"),
            Engine::Postgres => "terminating connection due to administrator command",
            // MariaDB closes the connection without a word.
            Engine::MariaDb => "error communicating with database",
        }
    }

    /// The store's URL with `password` in it, which the server takes: the
    /// test PostgreSQL trusts every login and ignores it; on MariaDB, a login
    /// of the test's own (named as its database, dropped with it) with every
    /// privilege on the test's database and none beyond.
    pub fn url_with_password(&self, password: &str) -> String {
        let mut url = url::Url::parse(&self.url).expect("database URL");
        match self.engine {
            Engine::Sqlite => panic!("an SQLite store takes no password"),
            Engine::Postgres => {}
            Engine::MariaDb => {
                let database = url.path().trim_start_matches('/').to_owned();
                self.execute(&format!(
                    "CREATE USER IF NOT EXISTS '{database}'@'%' IDENTIFIED BY {}; \
                     GRANT ALL PRIVILEGES ON `{database}`.* TO '{database}'@'%'",
                    super::quote(password)
                ));
                url.set_username(&database).expect("URL takes a user");
            }
        }
        url.set_password(Some(password)).expect("URL takes a password");
        url.to_string()
    }

    /// What `count` counts for the locks the daemon's sessions hold on
    /// this store (its runs, its lead): none on SQLite, which has no sessions.
    pub fn sql_held_locks(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "retention_runs WHERE 1 = 0",
            Engine::Postgres => {
                "pg_locks WHERE locktype = 'advisory' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            }
            Engine::MariaDb => {
                "(SELECT IS_USED_LOCK(CONCAT('retentiond.lead.', DATABASE())) AS holder UNION ALL \
                 SELECT IS_USED_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', id)) FROM retention_runs) AS held \
                 WHERE holder IS NOT NULL"
            }
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
