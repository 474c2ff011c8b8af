//! The SQL of the MariaDB store (10.6 or newer). Parameters are numbered
//! (`$1`, `$2`…) as on the other engines and take the same values in the
//! same order (`src/store/common/statements.rs`); the common part sends
//! each as a `?` bound in the order they appear (`common/positional.rs`).
//! Lists travel as JSON arrays read with `JSON_TABLE`, so every statement is
//! static. The statements the common part runs are listed in [`STATEMENTS`].
//!
//! The shapes follow from what MariaDB's optimizer does: it has no partial
//! indexes (docs/schema.md, "MariaDB: generated columns"), so the policies read the
//! generated columns of `jobs_by_retention`; it seeks a range only from
//! comparisons of single columns, so a cursor `(age, id) > (a, i)` is
//! written out as `age > a OR (age = a AND id > i)` (the row form walks the
//! index from its start); a single-table `DELETE` takes no index hint and
//! scans the table for `id IN (SELECT …)`, so batches delete with the
//! multi-table form, joined to their list of ids. `FORCE INDEX` and
//! `STRAIGHT_JOIN` pin every sweep statement to the plan it was written for,
//! whatever the statistics say (none after a bulk load, stale after a purge).
//!
//! Timestamps are DATETIME(6) in UTC; "now" is `UTC_TIMESTAMP(6)`, which
//! does not depend on the session's time zone. They are bound as
//! `NaiveDateTime` in UTC: sqlx sends a `DateTime<Utc>` as a TIMESTAMP
//! parameter, and compared with an indexed DATETIME column such a parameter
//! before 1970 or after 2038 matches no row (the start-of-time cursor among
//! them). Sessions run at READ COMMITTED ([`SESSION_SETTINGS`]).

use crate::store::common::{DeleteJob, StatementBytes, Statements, positional};

/// `statement` as the driver takes it: each `$n` a `?`, the values bound
/// in the order the `?` appear (for tests that run statements by hand).
pub fn with_question_marks(statement: &'static str) -> &'static str {
    positional::of(statement).0
}

/// The 0-based number of the value each `?` of [`with_question_marks`] binds, in order.
pub fn parameter_order(statement: &'static str) -> &'static [usize] {
    positional::of(statement).1
}

/// The statements the common part runs on this engine (src/store/common/).
pub(crate) const STATEMENTS: Statements = Statements {
    migrations_table: MIGRATIONS_TABLE,
    migration_versions: SELECT_MIGRATION_VERSIONS,
    job_by_name: SELECT_JOB_BY_NAME,
    lock_job: LOCK_JOB,
    jobs: SELECT_JOBS,
    drives_of_jobs: SELECT_DRIVES_OF_JOBS,
    statement_bytes: StatementBytes::Query(SELECT_MAX_PACKET),
    taken_names: SELECT_TAKEN_NAMES,
    insert_jobs: INSERT_JOBS,
    insert_drives: INSERT_DRIVES,
    update_job: UPDATE_JOB,
    delete_job: DeleteJob::AuditThenDelete { audit: AUDIT_MANUAL_DELETE, delete: DELETE_JOB },
    count_eligible: COUNT_ELIGIBLE,
    eligible: SELECT_ELIGIBLE,
    nth_eligible: SELECT_NTH_ELIGIBLE,
    forecast: FORECAST,
    audit_before: SELECT_AUDIT_BEFORE,
    audit_of_run: SELECT_AUDIT_OF_RUN,
    audit_of_name: SELECT_AUDIT_OF_NAME,
    audit_of_name_range: SELECT_AUDIT_OF_NAME_RANGE,
    audit_id_range: SELECT_AUDIT_ID_RANGE,
    audit_id_range_between: SELECT_AUDIT_ID_RANGE_BETWEEN,
    audit_page: SELECT_AUDIT_PAGE,
    run: SELECT_RUN,
    runs_before: SELECT_RUNS_BEFORE,
    count_held: COUNT_HELD,
    held: SELECT_HELD,
};

/// Run once on every new session: UTC for `NOW()` and for any TIMESTAMP a
/// client sends, and READ COMMITTED, under which InnoDB takes no gap or
/// next-key locks: a batch's transaction locks the rows it deletes and
/// nothing around them, so the application's inserts and updates never
/// wait for it (docs/operations.md). `tx_isolation`: MariaDB before 11.1
/// knows no `transaction_isolation`. Binds: `max_statement_time` in
/// milliseconds (`database.statement_timeout`; the variable takes seconds).
pub const SESSION_SETTINGS: &str = "SET SESSION time_zone = '+00:00', \
     tx_isolation = 'READ-COMMITTED', max_statement_time = $1 / 1000";

/// What the store checks before it uses a server (`server.rs`): its
/// version (MariaDB reports one with "MariaDB" in it, MySQL does not), and
/// whether it writes a binary log, in which format.
pub const SERVER_CHECKS: &str =
    "SELECT VERSION() AS version, @@global.log_bin AS log_bin, @@session.binlog_format AS binlog_format";

// --- Migrations (src/store/mariadb/migrate.rs, src/store/common/migrate.rs) ---
//
// Run by the migration runner with sqlx itself: `?`, bound in order.

/// 1 when the migrations table exists, else 0.
pub const MIGRATIONS_TABLE: &str = "SELECT COUNT(*) AS tables FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_sqlx_migrations'";

/// The migration lock, held by one session for the whole of `migrate`: a
/// second `migrate` waits for it (binds: the timeout in seconds) and then
/// finds the migrations applied. Named locks are the server's, not the
/// database's: the name carries the database's.
pub const LOCK_MIGRATIONS: &str = "SELECT GET_LOCK(CONCAT('retentiond.migrate.', DATABASE()), $1) AS locked";

pub const UNLOCK_MIGRATIONS: &str = "SELECT RELEASE_LOCK(CONCAT('retentiond.migrate.', DATABASE())) AS unlocked";

/// The same table and columns as sqlx's migrator writes on the other
/// engines, so that one check reads all three.
pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations ( \
       version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
       installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
       checksum BLOB NOT NULL, execution_time BIGINT NOT NULL \
     ) ENGINE = InnoDB";

/// Whether a table of the store exists: a database whose migrations table
/// is new but which already holds `jobs` was not made by retentiond.
/// Binds: table name.
pub const TABLE_EXISTS: &str = "SELECT COUNT(*) AS tables FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = $1";

/// Binds: none. Every row is a migration applied whole: a row is written
/// only after the migration's last statement ran.
pub const SELECT_APPLIED_MIGRATIONS: &str = "SELECT version, checksum FROM _sqlx_migrations ORDER BY version";

pub const SELECT_MIGRATION_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// Binds: version, description, checksum, execution time in nanoseconds.
pub const RECORD_MIGRATION: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
     execution_time) VALUES ($1, $2, TRUE, $3, $4)";

// --- Jobs ---

pub const SELECT_NOW: &str = "SELECT UTC_TIMESTAMP(6) AS now";

macro_rules! job_columns {
    () => {
        "id, name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
         created_at, updated_at, state_changed_at, retain_until"
    };
}

/// $1: name.
pub const SELECT_JOB_BY_NAME: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE name = $1");

/// The job's row, locked until the transaction ends, and the clock; none
/// if the job was deleted meanwhile. InnoDB locks the index entries a
/// locking read finds a row by: looked up by name, the name's entry would be
/// locked before the row, the reverse of a batch (its claim locks the row,
/// its `DELETE` then marks the name's entry), and the two would deadlock
/// (error 1213). Looked up by the primary key (`FORCE INDEX`), the row is all
/// it locks, so every writer takes the row first (docs/operations.md).
/// $1: id; $2: name.
pub const LOCK_JOB: &str = concat!(
    "SELECT ",
    job_columns!(),
    ", UTC_TIMESTAMP(6) AS now FROM jobs FORCE INDEX (PRIMARY) WHERE id = $1 AND name = $2 FOR UPDATE"
);

/// Jobs in id order. $1: JSON array of states or NULL for all; $2: limit.
pub const SELECT_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE $1 IS NULL OR JSON_CONTAINS($1, JSON_QUOTE(state)) ORDER BY id LIMIT $2"
);

/// The drives of the listed jobs: each id looked up in the primary key.
/// $1: JSON array of job ids.
pub const SELECT_DRIVES_OF_JOBS: &str = "SELECT d.job_id, d.drive_id, d.state, d.bytes \
     FROM JSON_TABLE($1, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN job_drives AS d ON d.job_id = listed.id ORDER BY d.job_id, d.drive_id";

/// The most bytes one statement may carry: one statement is one packet of
/// at most `max_allowed_packet` (16 MiB by default), larger ones refused.
pub const SELECT_MAX_PACKET: &str = "SELECT CAST(@@max_allowed_packet AS SIGNED) AS bytes";

/// The listed names already taken, each looked up in the unique index on
/// `name`, compared byte for byte as the column is. $1: JSON array of names.
pub const SELECT_TAKEN_NAMES: &str = "SELECT j.name \
     FROM JSON_TABLE($1, '$[*]' COLUMNS (name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$')) \
       AS listed STRAIGHT_JOIN jobs AS j ON j.name = listed.name";

/// New jobs in the order given (ids in that order). Timestamps as text
/// `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC: MariaDB reads no zone suffix (an
/// RFC 3339 `Z` is a truncation warning, an error in strict mode).
/// $1: JSON array of job objects.
pub const INSERT_JOBS: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, cancel_requested_at, \
       hold_reason, created_at, updated_at, state_changed_at, retain_until) \
     SELECT name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, created_at, updated_at, \
       state_changed_at, retain_until \
     FROM JSON_TABLE($1, '$[*]' COLUMNS (ord FOR ORDINALITY, name VARCHAR(64) PATH '$.name', \
       job_type VARCHAR(16) PATH '$.job_type', state VARCHAR(16) PATH '$.state', \
       cancel_requested BOOLEAN PATH '$.cancel_requested', cancel_requested_at DATETIME(6) PATH '$.cancel_requested_at', \
       hold_reason VARCHAR(500) PATH '$.hold_reason', created_at DATETIME(6) PATH '$.created_at', \
       updated_at DATETIME(6) PATH '$.updated_at', state_changed_at DATETIME(6) PATH '$.state_changed_at', \
       retain_until DATETIME(6) PATH '$.retain_until')) AS x \
     ORDER BY ord";

/// $1: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT j.id, d.drive_id, d.state, d.bytes \
     FROM JSON_TABLE($1, '$[*]' COLUMNS (job_name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin \
       PATH '$.job_name', drive_id VARCHAR(64) PATH '$.drive_id', state VARCHAR(32) PATH '$.state', \
       bytes BIGINT PATH '$.bytes')) AS d \
     STRAIGHT_JOIN jobs AS j ON j.name = d.job_name";

/// $1: id; $2–$8: state, cancel_requested, cancel_requested_at,
/// hold_reason, updated_at, state_changed_at, retain_until.
pub const UPDATE_JOB: &str = "UPDATE jobs SET state = $2, cancel_requested = $3, cancel_requested_at = $4, \
     hold_reason = $5, updated_at = $6, state_changed_at = $7, retain_until = $8 WHERE id = $1";

macro_rules! audit_columns {
    () => {
        "id, run_id, job_name, job_type, policy, state, cancel_requested, created_at, \
         state_changed_at, deleted_at, deleted_by"
    };
}

/// `jobs delete`, first of two statements in the transaction that locked
/// the row ([`LOCK_JOB`]): the audit row, copied from the job's
/// row, returned as written. $1: id; $2: deleted_by; $3: deleted_at (the
/// transaction's clock).
pub const AUDIT_MANUAL_DELETE: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, 'manual', state, cancel_requested, created_at, state_changed_at, \
       $3, $2 FROM jobs WHERE id = $1 RETURNING ",
    audit_columns!()
);

/// `jobs delete`, second statement: the job, its drives by the foreign
/// key's cascade. $1: id.
pub const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = $1";

macro_rules! run_columns {
    () => {
        "id, `trigger`, status, started_at, finished_at, deleted_completed, deleted_closed, \
         deleted_creating_idle, deleted_retain_until, stopped_by, error, host, pid, audit_rows_removed, runs_removed, \
         pauses, paused_ms"
    };
}

// --- Runs, the clock and leases ---
//
// Named locks (`GET_LOCK`) belong to a session, not to a transaction, and
// to the server, not to a database: each name carries `DATABASE()`. A run's
// lock is held by the session that began it ("the run's lease") until it
// ends or the session dies, so the next sweep tells a run whose process
// died (lock free) from one still working, whichever host it runs on.
// Galera (`wsrep_on`) refuses `GET_LOCK`.

/// The eight rules' parts of a statement, in the order of `policy::RULES`
/// (completed, closed, creating_idle, retain_until; each for Import, then
/// Export): each is `$rule!(policy, type, clock-skew column, name, its
/// parameters…, bound)`, joined by `$sep`. The bound, for a `retain_until`
/// rule, is the parameter of `Cutoffs::settled` its jobs' `state_changed_at`
/// must not pass (`jobs_by_retention` carries that column).
macro_rules! for_each_rule {
    ($rule:ident, $sep:literal, $settled:literal, [$($p1:tt),*], [$($p2:tt),*], [$($p3:tt),*], [$($p4:tt),*],
     [$($p5:tt),*], [$($p6:tt),*], [$($p7:tt),*], [$($p8:tt),*]) => {
        concat!(
            for_each_aged_rule!($rule, $sep, [$($p1),*], [$($p2),*], [$($p3),*], [$($p4),*], [$($p5),*], [$($p6),*]),
            $sep,
            $rule!("retain_until", "Import", "state_changed_at", "retain_until_import", $($p7,)*
                   concat!(" AND state_changed_at <= ", $settled)), $sep,
            $rule!("retain_until", "Export", "state_changed_at", "retain_until_export", $($p8,)*
                   concat!(" AND state_changed_at <= ", $settled))
        )
    };
}

/// The rules of the policies the configuration sets, as [`for_each_rule`] lists them.
macro_rules! for_each_aged_rule {
    ($rule:ident, $sep:literal, [$($p1:tt),*], [$($p2:tt),*], [$($p3:tt),*], [$($p4:tt),*], [$($p5:tt),*],
     [$($p6:tt),*]) => {
        concat!(
            $rule!("completed", "Import", "retention_age", "completed_import", $($p1,)* ""), $sep,
            $rule!("completed", "Export", "retention_age", "completed_export", $($p2,)* ""), $sep,
            $rule!("closed", "Import", "retention_age", "closed_import", $($p3,)* ""), $sep,
            $rule!("closed", "Export", "retention_age", "closed_export", $($p4,)* ""), $sep,
            $rule!("creating_idle", "Import", "retention_age", "creating_idle_import", $($p5,)* ""), $sep,
            $rule!("creating_idle", "Export", "retention_age", "creating_idle_export", $($p6,)* "")
        )
    };
}

/// One rule's entries of `jobs_by_retention` (policy, then type, then age), and its bound.
macro_rules! rule_jobs {
    ($policy:literal, $type:literal, $settled:expr) => {
        concat!(
            "FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = '",
            $policy,
            "' AND job_type = '",
            $type,
            "'",
            $settled
        )
    };
}

/// `$due` bounds a `retain_until` rule's range to the jobs whose moment
/// has come (docs/lifecycle.md, "Clock skew").
macro_rules! future_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $flag:literal, $due:literal, $settled:expr) => {
        concat!(
            "(SELECT COUNT(*) ",
            rule_jobs!($policy, $type, ""),
            " AND ",
            $flag,
            " AND ",
            $due,
            $skew,
            " > UTC_TIMESTAMP(6) AND ",
            $skew,
            " > SYSDATE(6))"
        )
    };
}

/// The jobs with an age timestamp after the clock, per rule enabled: one
/// range of `jobs_by_retention` each. `UTC_TIMESTAMP(6)` is the moment the
/// statement started, before its read view was opened: a job written in
/// between, by a client whose clock read a little later, is visible. So a
/// job counts only if it is also after `SYSDATE(6)`, read as each row is
/// (after the read view opened, so after that job's write). The range on
/// `UTC_TIMESTAMP(6)`, a constant, keeps each count on its rule's index
/// range (a `retain_until` rule's, up to the clock: its jobs are counted
/// by `state_changed_at` once their moment has come). $1–$8: whether each
/// rule is enabled.
macro_rules! future_jobs {
    () => {
        concat!(
            for_each_rule!(
                future_of,
                " + ",
                "",
                ["$1", ""],
                ["$2", ""],
                ["$3", ""],
                ["$4", ""],
                ["$5", ""],
                ["$6", ""],
                ["$7", "retention_age <= UTC_TIMESTAMP(6) AND "],
                ["$8", "retention_age <= UTC_TIMESTAMP(6) AND "]
            ),
            " AS future"
        )
    };
}

/// A dry run's clock and `future_jobs!`. $1–$8: the `future_jobs!` flags.
pub const CLOCK_AND_SKEW: &str = concat!("SELECT UTC_TIMESTAMP(6) AS now, ", future_jobs!());

/// The first statement of a run's start, on the session that will hold its
/// lease, in one round trip: the clock, `future_jobs!`, and the runs left
/// `running` whose lock is free (their process died; a live run's session
/// holds it), as a JSON array of `{id, host, pid}` or NULL. A read, so that
/// `IS_FREE_LOCK` never reaches the binary log; [`MARK_RUN_ABANDONED`]
/// then marks each. $1–$8: the `future_jobs!` flags.
pub const RUN_START_READINGS: &str = concat!(
    "SELECT UTC_TIMESTAMP(6) AS now, ",
    future_jobs!(),
    ", (SELECT JSON_ARRAYAGG(JSON_OBJECT('id', id, 'host', host, 'pid', pid)) \
        FROM retention_runs FORCE INDEX (retention_runs_by_status) \
        WHERE status = 'running' AND IS_FREE_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', id)) = 1) AS abandoned"
);

/// A cut-off at the statement's clock from a retention in microseconds
/// (`$micros`; NULL: off), as `policy::cutoff` computes it: never before
/// year 1.
macro_rules! cutoff_at {
    ($micros:literal) => {
        concat!(
            "IF(",
            $micros,
            " >= TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'0001-01-01 00:00:00', UTC_TIMESTAMP(6)), \
             TIMESTAMP'0001-01-01 00:00:00', UTC_TIMESTAMP(6) - INTERVAL ",
            $micros,
            " MICROSECOND)"
        )
    };
}

/// One aged rule's part of [`RECORD_RUN_IF_IDLE`]: true unless it has a
/// job due at its cut-off (`$micros`) or, when the rule is on (`$flag`),
/// one after the clock (what `future_jobs!` counts, without its
/// `SYSDATE(6)` bound). The first and the last entry of the rule's part of
/// `jobs_by_retention`, which the optimizer reads as it plans (`MIN`, `MAX`
/// of the key part after the equalities): no range to estimate, no plan to
/// choose, whatever the statistics.
macro_rules! nothing_due_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $flag:literal, $micros:literal,
     $settled:expr) => {
        concat!(
            "NOT IFNULL((SELECT MIN(retention_age) <= ",
            cutoff_at!($micros),
            " OR ",
            $flag,
            " AND MAX(retention_age) > UTC_TIMESTAMP(6) ",
            rule_jobs!($policy, $type, ""),
            "), FALSE)"
        )
    };
}

/// A `retain_until` rule's part of [`RECORD_RUN_IF_IDLE`]: true unless a
/// job's moment has come (`$micros` of retention on: NULL is off), whether
/// it is due (settled) or counted in the future of the clock: either sends
/// the sweep to its three statements, which tell them apart.
macro_rules! no_moment_passed_of {
    ($type:literal, $micros:literal) => {
        concat!(
            "NOT IFNULL((SELECT MIN(retention_age) <= GREATEST(",
            cutoff_at!($micros),
            ", UTC_TIMESTAMP(6)) ",
            rule_jobs!("retain_until", $type, ""),
            "), FALSE)"
        )
    };
}

/// An idle sweep in one autocommitted statement, the run's start and end:
/// when no rule has a job due at the statement's clock or after it, no job
/// of its own moment has come and no run is left `running`, the run is
/// recorded begun and finished at that clock (`succeeded`, stopped by
/// `done`), holding no lock: no sweep ever sees it running. It returns that
/// run and the clock, or no row: then the sweep starts with
/// [`RUN_START_READINGS`]. Each cut-off is computed from the statement's
/// clock as `policy::cutoffs` computes it from the returned one. $1–$6:
/// the aged rules' `future_jobs!` flags; $9–$16: each rule's retention in
/// microseconds (NULL: off); $19–$22: trigger, host, pid, process_started.
pub const RECORD_RUN_IF_IDLE: &str = concat!(
    "INSERT INTO retention_runs (`trigger`, status, started_at, finished_at, stopped_by, host, pid, process_started) \
     SELECT $19, 'succeeded', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), 'done', $20, $21, $22 FROM DUAL WHERE ",
    for_each_aged_rule!(
        nothing_due_of,
        " AND ",
        ["$1", "$9"],
        ["$2", "$10"],
        ["$3", "$11"],
        ["$4", "$12"],
        ["$5", "$13"],
        ["$6", "$14"]
    ),
    " AND ",
    no_moment_passed_of!("Import", "$15"),
    " AND ",
    no_moment_passed_of!("Export", "$16"),
    " AND NOT EXISTS (SELECT 1 FROM retention_runs FORCE INDEX (retention_runs_by_status) WHERE status = 'running') \
     RETURNING id, started_at AS now, 0 AS future"
);

/// Records a run that found nothing eligible, begun at $5 and finished now
/// (`succeeded`, stopped by `done`), in one autocommitted statement. It
/// takes no lock: no sweep ever sees it running. $1–$4: trigger, host,
/// pid, process_started.
pub const INSERT_IDLE_RUN: &str = "INSERT INTO retention_runs \
     (`trigger`, status, started_at, finished_at, stopped_by, host, pid, process_started) \
     VALUES ($1, 'succeeded', $5, GREATEST($5, UTC_TIMESTAMP(6)), 'done', $2, $3, $4) RETURNING id";

/// $1: run id. A run finished meanwhile keeps its status.
pub const MARK_RUN_ABANDONED: &str = "UPDATE retention_runs SET status = 'abandoned', finished_at = UTC_TIMESTAMP(6) \
     WHERE id = $1 AND status = 'running'";

/// Records a new run and takes its lock, in one autocommitted statement:
/// `RETURNING` runs before the commit, so the lock is held before any other
/// session can see the row, and no sweep ever finds it running and
/// unlocked. `locked` is 1 (0 only if a session of another store with the
/// same database name held it). $1–$4: trigger, host, pid, process_started.
pub const INSERT_RUN: &str = "INSERT INTO retention_runs (`trigger`, status, started_at, host, pid, process_started) \
     VALUES ($1, 'running', UTC_TIMESTAMP(6), $2, $3, $4) \
     RETURNING id, GET_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', id), 0) AS locked";

/// The run's record waits in its lease's transaction until the sweep has
/// work or ends ([`COMMIT`]): an idle sweep waits for one flush of the redo
/// log, not two (docs/operations.md).
pub const START_TRANSACTION: &str = "START TRANSACTION";

pub const COMMIT: &str = "COMMIT";

/// Records how a run ended. $1: id; $2–$12: status, deleted_completed,
/// deleted_closed, deleted_creating_idle, deleted_retain_until, stopped_by,
/// error, audit_rows_removed, runs_removed, pauses, paused_ms.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = $2, finished_at = UTC_TIMESTAMP(6), \
     deleted_completed = $3, deleted_closed = $4, deleted_creating_idle = $5, deleted_retain_until = $6, \
     stopped_by = $7, error = $8, audit_rows_removed = $9, runs_removed = $10, pauses = $11, paused_ms = $12 \
     WHERE id = $1";

/// Releases a run's lock, on its own session, after [`FINISH_RUN`]
/// committed: a sweep that finds the lock free then sees the run finished.
/// `unlocked` is 1, or 0/NULL when this session did not hold it. $1: run id.
pub const UNLOCK_RUN: &str = "SELECT RELEASE_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', $1)) = 1 AS unlocked";

/// `schedule.singleton`: taken by the sweeping replica on a session of its
/// own, without waiting; 1 when taken (or already held by this session).
pub const TRY_LEAD: &str = "SELECT GET_LOCK(CONCAT('retentiond.lead.', DATABASE()), 0) AS locked";

pub const END_LEAD: &str = "SELECT RELEASE_LOCK(CONCAT('retentiond.lead.', DATABASE())) = 1 AS unlocked";

// --- What is eligible ---

macro_rules! count_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $cutoff:literal, $settled:expr) => {
        concat!(
            "(SELECT COUNT(*) ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age <= ",
            $cutoff,
            ") AS ",
            $name,
            ", (SELECT MIN(retention_age) ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age <= ",
            $cutoff,
            ") AS ",
            $name,
            "_oldest"
        )
    };
}

/// How many jobs each rule finds eligible and the oldest: a range of
/// `jobs_by_retention` each, read from the index alone.
/// $1–$8: each rule's cut-off (NULL = off); $9: `Cutoffs::settled`.
pub const COUNT_ELIGIBLE: &str = concat!(
    "SELECT ",
    for_each_rule!(count_of, ", ", "$9", ["$1"], ["$2"], ["$3"], ["$4"], ["$5"], ["$6"], ["$7"], ["$8"])
);

/// A cursor (age, id) of a rule's walk, written out column by column.
macro_rules! after {
    ($at:literal, $id:literal) => {
        concat!(" AND (retention_age > ", $at, " OR (retention_age = ", $at, " AND id > ", $id, "))")
    };
}

macro_rules! eligible_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $cutoff:literal, $after_at:literal,
     $after_id:literal, $settled:expr) => {
        concat!(
            "(SELECT id, name, '",
            $policy,
            "' AS policy, job_type, retention_age AS ts ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age <= ",
            $cutoff,
            after!($after_at, $after_id),
            " ORDER BY retention_age, id LIMIT $26)"
        )
    };
}

/// The dry run's next jobs: each rule's walk along `jobs_by_retention` from
/// its cursor up to its cut-off, at most $26 rows each; the store merges
/// them in the order the jobs became eligible. $1–$8: each rule's cut-off
/// (NULL = off); $9: `Cutoffs::settled`; $10/$11 … $24/$25: each rule's
/// cursor (timestamp, id); $26: limit.
pub const SELECT_ELIGIBLE: &str = for_each_rule!(
    eligible_of,
    " UNION ALL ",
    "$9",
    ["$1", "$10", "$11"],
    ["$2", "$12", "$13"],
    ["$3", "$14", "$15"],
    ["$4", "$16", "$17"],
    ["$5", "$18", "$19"],
    ["$6", "$20", "$21"],
    ["$7", "$22", "$23"],
    ["$8", "$24", "$25"]
);

macro_rules! due_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $cutoff:literal, $shift:literal, $settled:expr) => {
        concat!(
            "(SELECT retention_age + INTERVAL ",
            $shift,
            " MICROSECOND AS ts, id ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age <= ",
            $cutoff,
            " ORDER BY retention_age, id LIMIT $18)"
        )
    };
}

/// The $18-th eligible job over all rules in the order they became eligible
/// (age timestamp plus the rule's retention, then id), as that moment and
/// its id: the last job of a capped sweep's set. Each rule's walk, at most
/// $18 entries from the index alone, merged and numbered (`OFFSET` takes no
/// expression). $1–$8: each rule's cut-off (NULL = off); $9:
/// `Cutoffs::settled`; $10–$17: its retention (µs).
pub const SELECT_NTH_ELIGIBLE: &str = concat!(
    "SELECT ts, id FROM (SELECT ts, id, ROW_NUMBER() OVER (ORDER BY ts, id) AS place FROM (",
    for_each_rule!(
        due_of,
        " UNION ALL ",
        "$9",
        ["$1", "$10"],
        ["$2", "$11"],
        ["$3", "$12"],
        ["$4", "$13"],
        ["$5", "$14"],
        ["$6", "$15"],
        ["$7", "$16"],
        ["$8", "$17"]
    ),
    ") AS eligible) AS ranked WHERE place = $18"
);

/// One rule's part of [`SELECT_ELIGIBLE_IDS`]: one range of
/// `jobs_by_retention` in its order, index only, from the cursor
/// (exclusive) to the bound (inclusive) and the cut-off, at most the limit.
/// Parameters: cut-off, cursor (age, id), bound (age, id), limit.
macro_rules! eligible_ids_of {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $cutoff:literal, $after_at:literal,
     $after_id:literal, $through_at:literal, $through_id:literal, $limit:literal, $settled:expr) => {
        concat!(
            "(SELECT '",
            $policy,
            "' AS policy, job_type, retention_age AS ts, id ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age <= ",
            $cutoff,
            after!($after_at, $after_id),
            " AND (retention_age < ",
            $through_at,
            " OR (retention_age = ",
            $through_at,
            " AND id <= ",
            $through_id,
            ")) ORDER BY retention_age, id LIMIT ",
            $limit,
            ")"
        )
    };
}

/// The next ids of every rule's eligible jobs, in one statement (an idle
/// sweep reads nothing else): per rule, in the order of `policy::RULES`,
/// its cut-off, cursor (age, id), bound (age, id) and limit, $1–$6, …,
/// $43–$48; a rule not read has no cut-off and limit 0. $49: `Cutoffs::settled`.
pub const SELECT_ELIGIBLE_IDS: &str = for_each_rule!(
    eligible_ids_of,
    " UNION ALL ",
    "$49",
    ["$1", "$2", "$3", "$4", "$5", "$6"],
    ["$7", "$8", "$9", "$10", "$11", "$12"],
    ["$13", "$14", "$15", "$16", "$17", "$18"],
    ["$19", "$20", "$21", "$22", "$23", "$24"],
    ["$25", "$26", "$27", "$28", "$29", "$30"],
    ["$31", "$32", "$33", "$34", "$35", "$36"],
    ["$37", "$38", "$39", "$40", "$41", "$42"],
    ["$43", "$44", "$45", "$46", "$47", "$48"]
);

// --- A sweep's batch: three statements and a commit, one transaction ---
//
// MariaDB has no data-modifying CTE, and a DELETE cannot feed an INSERT, so
// a batch claims its rows, writes their audit rows, then deletes them; the
// rows stay locked by the claim, so all three see them alike. Each statement
// reads the jobs by primary key from a JSON list (JSON_TABLE first,
// `STRAIGHT_JOIN`, `FORCE INDEX (PRIMARY)`): one look-up per id, whatever the
// statistics say. The eligibility condition is a CASE on the row's own
// columns, not the generated ones, so no policy range is offered to the
// optimizer. Each writing statement is deterministic for its list, so it
// replicates alike in statement-based binary logs.

/// Whether the row `j` is still eligible. $2–$9: each rule's cut-off (in
/// the order of `policy::RULES`; NULL = off: a comparison with NULL is not
/// true); $10: `Cutoffs::settled`.
macro_rules! still_eligible {
    () => {
        "j.hold_reason IS NULL AND CASE \
           WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') THEN \
             j.retain_until <= CASE j.job_type WHEN 'Import' THEN $8 ELSE $9 END AND j.state_changed_at <= $10 \
           WHEN j.state = 'Completed' THEN j.state_changed_at <= CASE j.job_type WHEN 'Import' THEN $2 ELSE $3 END \
           WHEN j.state = 'Closed' THEN j.state_changed_at <= CASE j.job_type WHEN 'Import' THEN $4 ELSE $5 END \
           WHEN j.state = 'Creating' THEN j.updated_at <= CASE j.job_type WHEN 'Import' THEN $6 ELSE $7 END \
           ELSE FALSE END"
    };
}

/// The row `j`'s policy: `retain_until` for a finished job with a moment
/// of its own, else its state's.
macro_rules! policy_of_row {
    () => {
        "CASE WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') THEN 'retain_until' \
              WHEN j.state = 'Completed' THEN 'completed' WHEN j.state = 'Closed' THEN 'closed' \
              ELSE 'creating_idle' END"
    };
}

/// The listed jobs, still eligible. $1: JSON array of their ids.
macro_rules! listed_jobs {
    () => {
        " FROM JSON_TABLE($1, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
         STRAIGHT_JOIN jobs AS j FORCE INDEX (PRIMARY) ON j.id = listed.id WHERE "
    };
}

/// Claims the listed jobs that are still eligible: each row locked `FOR
/// UPDATE SKIP LOCKED`, so a row another sweep holds is skipped, not waited
/// for (and, at READ COMMITTED, a row found no longer eligible is unlocked
/// at once). Returns what the batch's log events and the caller need, and
/// the clock, written as `deleted_at` into the audit rows. $1: JSON
/// array of job ids (sorted, so locks are taken in id order); $2–$10: the
/// cut-offs.
pub const CLAIM_ELIGIBLE: &str = concat!(
    "SELECT j.id, j.name, j.job_type, j.state, j.cancel_requested, j.created_at, j.state_changed_at, ",
    policy_of_row!(),
    " AS policy, CASE WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') THEN j.retain_until \
       WHEN j.state = 'Creating' THEN j.updated_at ELSE j.state_changed_at END AS ts, \
       UTC_TIMESTAMP(6) AS deleted_at",
    listed_jobs!(),
    still_eligible!(),
    " FOR UPDATE SKIP LOCKED"
);

/// One audit row per claimed job, copied from its row, in id order. The
/// affected-row count must equal the claimed count. $1: JSON array of the
/// claimed ids; $2–$10: the cut-offs; $11: run id; $12: deleted_by; $13:
/// deleted_at (from the claim).
pub const AUDIT_CLAIMED: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT $11, j.id, j.name, j.job_type, ",
    policy_of_row!(),
    ", j.state, j.cancel_requested, j.created_at, j.state_changed_at, $13, $12",
    listed_jobs!(),
    still_eligible!(),
    " ORDER BY j.id"
);

/// Deletes the claimed jobs, eligibility checked again in the deleting
/// statement; their drives go by the foreign key's cascade. The
/// affected-row count (jobs only) must equal the claimed count, else the
/// transaction is rolled back. $1: JSON array of the claimed ids; $2–$10:
/// the cut-offs.
pub const DELETE_CLAIMED: &str = concat!("DELETE j", listed_jobs!(), still_eligible!());

// --- Read-only databases ---

/// Why the server refuses writes: `read_only` (set on replicas; users with
/// READ ONLY ADMIN, root among them, still write, so the store checks it
/// rather than waiting for a refusal), `innodb_read_only`, this session's
/// `transaction_read_only`, and whether it replicates from a primary
/// (`Slaves_running`: running replication connections; no privilege needed).
pub const READ_ONLY: &str = "SELECT @@global.read_only AS read_only, @@global.innodb_read_only AS innodb_read_only, \
       @@session.tx_read_only AS transaction_read_only, \
       (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVES_RUNNING') \
         AS replicas_running";

// --- The audit trail's own lifecycle and its export (src/trail.rs, src/export.rs) ---
//
// Each removal is a claim and a delete in one transaction, as a batch is
// (`DELETE … IN (SELECT … LIMIT)` is refused): the claim reads the next
// keys along their index with `FOR UPDATE SKIP LOCKED`, so a row another
// sweep is removing is skipped, and the delete removes exactly those ids.

/// The next audit rows past `retention.audit`, in (deleted_at, id) order
/// from the cursor: rows of `jobs delete` (no run) and of runs that finished
/// at or before the cut-off, each run looked up by its key.
/// $1: cut-off; $2/$3: cursor (deleted_at, id); $4: limit.
pub const CLAIM_EXPIRED_AUDIT_ROWS: &str = "SELECT a.deleted_at AS at, a.id \
     FROM retention_audit AS a FORCE INDEX (retention_audit_by_deleted_at) \
     WHERE a.deleted_at <= $1 AND (a.deleted_at > $2 OR (a.deleted_at = $2 AND a.id > $3)) \
       AND (a.run_id IS NULL OR (SELECT r.finished_at FROM retention_runs AS r FORCE INDEX (PRIMARY) \
             WHERE r.id = a.run_id AND r.status <> 'running') <= $1) \
     ORDER BY a.deleted_at, a.id LIMIT $4 FOR UPDATE SKIP LOCKED";

/// $1: JSON array of the claimed audit ids.
pub const DELETE_AUDIT_ROWS: &str = "DELETE a FROM JSON_TABLE($1, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN retention_audit AS a FORCE INDEX (PRIMARY) ON a.id = listed.id";

/// One walk of [`CLAIM_EXPIRED_RUN_RECORDS`] along `$index` (whose first
/// column is `$key`): finished runs that no audit row names (one seek into
/// `retention_audit_by_run` per run), up to the cut-off from the cursor (at,
/// id). A scalar subquery, not `NOT EXISTS`: MariaDB turns that into
/// `NOT IN` and, on tables without statistics, materializes it, reading all
/// of `retention_audit_by_run` for every batch (docs/operations.md).
macro_rules! run_walk {
    ($index:literal, $key:literal, $cutoff:literal, $at:literal, $id:literal) => {
        concat!(
            "(SELECT r.finished_at AS at, r.id FROM retention_runs AS r FORCE INDEX (",
            $index,
            ") WHERE r.",
            $key,
            " <= ",
            $cutoff,
            " AND (r.",
            $key,
            " > ",
            $at,
            " OR (r.",
            $key,
            " = ",
            $at,
            " AND r.id > ",
            $id,
            ")) AND r.status <> 'running' \
               AND (SELECT a.id FROM retention_audit AS a FORCE INDEX (retention_audit_by_run) \
                 WHERE a.run_id = r.id LIMIT 1) IS NULL \
             ORDER BY r.",
            $key,
            ", r.id LIMIT $7 FOR UPDATE SKIP LOCKED)"
        )
    };
}

/// The next run records past `retention.runs` that no audit row names,
/// from two walks merged in (finished_at, id) order: finished runs up to
/// $1 (past both limits, so their audit rows are gone), and finished runs
/// that deleted nothing after it up to $2 (the second walk's cursor starts
/// after $1). $3/$4, $5/$6: cursors (finished_at, id) of each walk; $7: limit.
pub const CLAIM_EXPIRED_RUN_RECORDS: &str = concat!(
    "SELECT at, id FROM (",
    run_walk!("retention_runs_by_finish", "finished_at", "$1", "$3", "$4"),
    " UNION ALL ",
    run_walk!("retention_runs_empty_by_finish", "empty_finished_at", "$2", "$5", "$6"),
    ") AS picked ORDER BY at, id LIMIT $7"
);

/// $1: JSON array of the claimed run ids.
pub const DELETE_RUN_RECORDS: &str = "DELETE r FROM JSON_TABLE($1, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN retention_runs AS r FORCE INDEX (PRIMARY) ON r.id = listed.id";

/// The first and last audit id of the whole trail: the ends of the key.
pub const SELECT_AUDIT_ID_RANGE: &str = "SELECT MIN(id) AS first, MAX(id) AS last FROM retention_audit";

/// The first and last id of the audit rows deleted in [since, until), from
/// `retention_audit_by_deleted_at` alone. $1: since; $2: until.
pub const SELECT_AUDIT_ID_RANGE_BETWEEN: &str = "SELECT MIN(id) AS first, MAX(id) AS last \
     FROM retention_audit FORCE INDEX (retention_audit_by_deleted_at) WHERE deleted_at >= $1 AND deleted_at < $2";

/// One page of `audit export`: a range of the primary key, in its order.
/// $1: after this id; $2: up to this id; $3: limit.
pub const SELECT_AUDIT_PAGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (PRIMARY) WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
);

// --- The status pages and `forecast` ---

/// One rule's jobs crossing their retention within the forecast's window,
/// per day: one range of `jobs_by_retention`, from the index alone, grouped
/// by day (at most the window's days). Day k holds the timestamps in
/// (cut-off + k days, cut-off + k + 1 days].
macro_rules! rule_days {
    ($policy:literal, $type:literal, $skew:literal, $name:literal, $cutoff:literal, $horizon:literal,
     $settled:expr) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, FALSE AS held, (TIMESTAMPDIFF(MICROSECOND, ",
            $cutoff,
            ", retention_age) - 1) DIV 86400000000 AS day, COUNT(*) AS jobs ",
            rule_jobs!($policy, $type, $settled),
            " AND retention_age > ",
            $cutoff,
            " AND retention_age <= ",
            $horizon,
            " GROUP BY day"
        )
    };
}

/// A `retain_until` rule's jobs becoming eligible within the window, per
/// day: due at the later of `retain_until` and the final state's start plus
/// `retention.minimum` (now minus the settled cut-off), read from its range
/// of `jobs_by_retention` up to the horizon.
macro_rules! retained_days {
    ($type:literal, $now:literal, $horizon:literal) => {
        concat!(
            "SELECT 'retain_until', FALSE, (TIMESTAMPDIFF(MICROSECOND, ",
            $now,
            ", due) - 1) DIV 86400000000 AS day, COUNT(*) FROM (SELECT GREATEST(retention_age, state_changed_at + \
             INTERVAL TIMESTAMPDIFF(MICROSECOND, $9, ",
            $now,
            ") MICROSECOND) AS due ",
            rule_jobs!("retain_until", $type, ""),
            " AND retention_age <= ",
            $horizon,
            ") AS retained WHERE due > ",
            $now,
            " AND due <= ",
            $horizon,
            " GROUP BY day"
        )
    };
}

/// Jobs whose age crosses their rule's retention within the forecast's
/// window, counted per rule (labelled with the policy) and day (day 0: the
/// next 24 hours; a job whose timestamp lies exactly `retention + k days`
/// ago on day k-1); held jobs apart, from the `jobs_held` range, those
/// already past it on day -1. $1–$8: each rule's cut-off (NULL = off); $9:
/// `Cutoffs::settled`; $10–$17: those cut-offs plus the window ($18, its
/// days, is implied).
pub const FORECAST: &str = concat!(
    for_each_aged_rule!(
        rule_days,
        " UNION ALL ",
        ["$1", "$10"],
        ["$2", "$11"],
        ["$3", "$12"],
        ["$4", "$13"],
        ["$5", "$14"],
        ["$6", "$15"]
    ),
    " UNION ALL ",
    retained_days!("Import", "$7", "$16"),
    " UNION ALL ",
    retained_days!("Export", "$8", "$17"),
    " UNION ALL \
     SELECT policy, TRUE, \
            CASE WHEN ts <= cutoff THEN -1 ELSE (TIMESTAMPDIFF(MICROSECOND, cutoff, ts) - 1) DIV 86400000000 END AS day, \
            COUNT(*) \
       FROM (SELECT ",
    policy_of_row!(),
    " AS policy, \
                    CASE WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') \
                           THEN GREATEST(j.retain_until, j.state_changed_at \
                                  + INTERVAL TIMESTAMPDIFF(MICROSECOND, $9, $7) MICROSECOND) \
                         WHEN j.state = 'Creating' THEN j.updated_at ELSE j.state_changed_at END AS ts, \
                    CASE WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') THEN $7 \
                      ELSE CASE CONCAT(j.state, j.job_type) WHEN 'CompletedImport' THEN $1 WHEN 'CompletedExport' THEN $2 \
                      WHEN 'ClosedImport' THEN $3 WHEN 'ClosedExport' THEN $4 WHEN 'CreatingImport' THEN $5 \
                      ELSE $6 END END AS cutoff, \
                    CASE WHEN j.retain_until IS NOT NULL AND j.state IN ('Completed', 'Closed') THEN $16 \
                      ELSE CASE CONCAT(j.state, j.job_type) WHEN 'CompletedImport' THEN $10 WHEN 'CompletedExport' THEN $11 \
                      WHEN 'ClosedImport' THEN $12 WHEN 'ClosedExport' THEN $13 WHEN 'CreatingImport' THEN $14 \
                      ELSE $15 END END AS horizon \
               FROM jobs AS j FORCE INDEX (jobs_held) \
              WHERE j.held_created_at IS NOT NULL AND j.state IN ('Completed', 'Closed', 'Creating')) AS held \
      WHERE ts <= horizon GROUP BY policy, day"
);

pub const COUNT_HELD: &str =
    "SELECT COUNT(*) AS held FROM jobs FORCE INDEX (jobs_held) WHERE held_created_at IS NOT NULL";

/// Held jobs oldest first, from the page's last (created_at, id).
/// $1/$2: the (created_at, id) the page starts after; $3: limit.
pub const SELECT_HELD: &str = "SELECT id, name, job_type, state, hold_reason, created_at, updated_at, state_changed_at \
     FROM jobs FORCE INDEX (jobs_held) \
     WHERE held_created_at > $1 OR (held_created_at = $1 AND id > $2) ORDER BY held_created_at, id LIMIT $3";

/// $1: run id.
pub const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id = $1");

/// $1: the page starts below this id; $2: limit.
pub const SELECT_RUNS_BEFORE: &str =
    concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id < $1 ORDER BY id DESC LIMIT $2");

/// Newest first. $1: the page starts below this id; $2: limit.
pub const SELECT_AUDIT_BEFORE: &str =
    concat!("SELECT ", audit_columns!(), " FROM retention_audit WHERE id < $1 ORDER BY id DESC LIMIT $2");

/// One run's rows, newest first. $1: run id; $2: below this id; $3: limit.
pub const SELECT_AUDIT_OF_RUN: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_run) WHERE run_id = $1 AND id < $2 \
     ORDER BY id DESC LIMIT $3"
);

/// One job name's rows, newest first. $1: name; $2: run id or NULL; $3:
/// below this id; $4: limit.
pub const SELECT_AUDIT_OF_NAME: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_job_name) WHERE job_name = $1 AND id < $3 \
     AND ($2 IS NULL OR run_id = $2) ORDER BY id DESC LIMIT $4"
);

/// Names after ($2, $3) and below $1 in byte order, in name then id order;
/// $4: limit.
pub const SELECT_AUDIT_OF_NAME_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_job_name) \
     WHERE (job_name > $2 OR (job_name = $2 AND id > $3)) AND job_name < $1 ORDER BY job_name, id LIMIT $4"
);

/// What a replica of `database.replicas` says of its replication
/// (`replicas.rs`): one row, none on a server that is no replica. Needs
/// `SLAVE MONITOR` there (docs/security.md).
pub const REPLICA_STATUS: &str = "SHOW REPLICA STATUS";
