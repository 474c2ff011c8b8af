//! The SQL of the MariaDB store (10.6 or newer). Parameters are `?`, bound
//! in the order they appear: a value used twice is bound twice, and each
//! statement's comment lists its binds. Lists travel as JSON arrays read
//! with `JSON_TABLE`, so every statement is static.
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
//! does not depend on the session's time zone. Bind them as `NaiveDateTime`
//! in UTC: sqlx sends a `DateTime<Utc>` as a TIMESTAMP parameter, and
//! compared with an indexed DATETIME column such a parameter before 1970 or
//! after 2038 matches no row (the start-of-time cursor among them).
//! Sessions run at READ COMMITTED ([`SESSION_SETTINGS`]).

/// Run once on every new session: UTC for `NOW()` and for any TIMESTAMP a
/// client sends, and READ COMMITTED, under which InnoDB takes no gap or
/// next-key locks: a batch's transaction locks the rows it deletes and
/// nothing around them, so the application's inserts and updates never
/// wait for it (docs/operations.md). `tx_isolation`: MariaDB before 11.1
/// knows no `transaction_isolation`. Binds: `max_statement_time` in
/// seconds (`database.statement_timeout`; 0 for none).
pub const SESSION_SETTINGS: &str = "SET SESSION time_zone = '+00:00', \
     tx_isolation = 'READ-COMMITTED', max_statement_time = ?";

/// The server's version and what it is: the store needs MariaDB 10.6 or
/// newer (`SKIP LOCKED`, `JSON_TABLE`, atomic DDL). MySQL reports a
/// version without "MariaDB" in it; `@@version_comment` names the build.
pub const SERVER_VERSION: &str = "SELECT VERSION() AS version, @@version_comment AS comment";

// --- Migrations (src/store/mariadb/migrate.rs) ---

/// The migration lock, held by one session for the whole of `migrate`: a
/// second `migrate` waits for it (binds: the timeout in seconds, -1 for
/// none) and then finds the migrations applied. Named locks are the
/// server's, not the database's: the name carries the database's.
pub const LOCK_MIGRATIONS: &str = "SELECT GET_LOCK(CONCAT('retentiond.migrate.', DATABASE()), ?) AS locked";

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
pub const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// Binds: none. Every row is a migration applied whole: a row is written
/// only after the migration's last statement ran.
pub const SELECT_APPLIED_MIGRATIONS: &str = "SELECT version, checksum FROM _sqlx_migrations ORDER BY version";

pub const SELECT_MIGRATION_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// Binds: version, description, checksum, execution time in nanoseconds.
pub const RECORD_MIGRATION: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
     execution_time) VALUES (?, ?, TRUE, ?, ?)";

// --- Jobs ---

pub const SELECT_NOW: &str = "SELECT UTC_TIMESTAMP(6)";

macro_rules! job_columns {
    () => {
        "id, name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
         created_at, updated_at, state_changed_at"
    };
}

/// Binds: name.
pub const SELECT_JOB_BY_NAME: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE name = ?");

/// The job's row, locked until the transaction ends (READ COMMITTED: the
/// row and its name's index entry, no gap, found or not), and the clock.
/// Binds: name.
pub const LOCK_JOB_BY_NAME: &str =
    concat!("SELECT ", job_columns!(), ", UTC_TIMESTAMP(6) AS now FROM jobs WHERE name = ? FOR UPDATE");

/// Jobs in id order. Binds: JSON array of states or NULL for all (twice);
/// limit (`u64::MAX` for none: `LIMIT` takes no NULL).
pub const SELECT_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE ? IS NULL OR JSON_CONTAINS(?, JSON_QUOTE(state)) ORDER BY id LIMIT ?"
);

/// The drives of the listed jobs: each id looked up in the primary key.
/// Binds: JSON array of job ids.
pub const SELECT_DRIVES_OF_JOBS: &str = "SELECT d.job_id, d.drive_id, d.state, d.bytes \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN job_drives AS d ON d.job_id = listed.id ORDER BY d.job_id, d.drive_id";

/// The listed names already taken, each looked up in the unique index on
/// `name`, compared byte for byte as the column is. Binds: JSON array of names.
pub const SELECT_TAKEN_NAMES: &str = "SELECT j.name \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin PATH '$')) \
       AS listed STRAIGHT_JOIN jobs AS j ON j.name = listed.name";

/// New jobs in the order given (ids in that order). Timestamps as text
/// `YYYY-MM-DD HH:MM:SS.ffffff` in UTC: MariaDB reads no zone suffix (an
/// RFC 3339 `Z` is a truncation warning, an error in strict mode). One
/// statement is one packet: a caller splits a large import into several
/// statements of one transaction (`max_allowed_packet`, 16 MiB by default).
/// Binds: JSON array of job objects.
pub const INSERT_JOBS: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, cancel_requested_at, \
       hold_reason, created_at, updated_at, state_changed_at) \
     SELECT name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, created_at, updated_at, \
       state_changed_at \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (ord FOR ORDINALITY, name VARCHAR(64) PATH '$.name', \
       job_type VARCHAR(16) PATH '$.job_type', state VARCHAR(16) PATH '$.state', \
       cancel_requested BOOLEAN PATH '$.cancel_requested', cancel_requested_at DATETIME(6) PATH '$.cancel_requested_at', \
       hold_reason VARCHAR(500) PATH '$.hold_reason', created_at DATETIME(6) PATH '$.created_at', \
       updated_at DATETIME(6) PATH '$.updated_at', state_changed_at DATETIME(6) PATH '$.state_changed_at')) AS x \
     ORDER BY ord";

/// Binds: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT j.id, d.drive_id, d.state, d.bytes \
     FROM JSON_TABLE(?, '$[*]' COLUMNS (job_name VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin \
       PATH '$.job_name', drive_id VARCHAR(64) PATH '$.drive_id', state VARCHAR(32) PATH '$.state', \
       bytes BIGINT PATH '$.bytes')) AS d \
     STRAIGHT_JOIN jobs AS j ON j.name = d.job_name";

/// Binds: state, cancel_requested, cancel_requested_at, hold_reason,
/// updated_at, state_changed_at, id.
pub const UPDATE_JOB: &str = "UPDATE jobs SET state = ?, cancel_requested = ?, cancel_requested_at = ?, \
     hold_reason = ?, updated_at = ?, state_changed_at = ? WHERE id = ?";

macro_rules! audit_columns {
    () => {
        "id, run_id, job_name, job_type, policy, state, cancel_requested, created_at, \
         state_changed_at, deleted_at, deleted_by"
    };
}

/// `jobs delete`, first of two statements in the transaction that locked
/// the row ([`LOCK_JOB_BY_NAME`]): the audit row, copied from the job's
/// row, returned as written. Binds: deleted_by, id.
pub const AUDIT_MANUAL_DELETE: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, 'manual', state, cancel_requested, created_at, state_changed_at, \
       UTC_TIMESTAMP(6), ? FROM jobs WHERE id = ? RETURNING ",
    audit_columns!()
);

/// `jobs delete`, second statement: the job, its drives by the foreign
/// key's cascade. Binds: id.
pub const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?";

/// Newest first. Binds: job name or NULL (twice), run id or NULL (twice),
/// limit (`u64::MAX` for none). MariaDB plans a prepared statement again at
/// each execution with the values bound, so a NULL test drops out and a
/// name is a range of `retention_audit_by_job_name`.
pub const SELECT_AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit WHERE (? IS NULL OR job_name = ?) AND (? IS NULL OR run_id = ?) \
     ORDER BY id DESC LIMIT ?"
);

macro_rules! run_columns {
    () => {
        "id, `trigger`, status, started_at, finished_at, deleted_completed, deleted_closed, \
         deleted_creating_idle, stopped_by, error, host, pid, audit_rows_removed, runs_removed"
    };
}

/// Binds: limit (`u64::MAX` for none).
pub const SELECT_RUNS: &str = concat!("SELECT ", run_columns!(), " FROM retention_runs ORDER BY id DESC LIMIT ?");

// --- Runs, the clock and leases ---
//
// Named locks (`GET_LOCK`) belong to a session, not to a transaction, and
// to the server, not to a database: each name carries `DATABASE()`. A run's
// lock is held by the session that began it ("the run's lease") until it
// ends or the session dies, so the next sweep tells a run whose process
// died (lock free) from one still working, whichever host it runs on.
// Galera (`wsrep_on`) refuses `GET_LOCK`.

/// The jobs with an age timestamp after the clock, per policy enabled:
/// one range of `jobs_by_retention` each. Binds: whether completed, closed
/// and creating_idle are enabled.
macro_rules! future_jobs {
    () => {
        "(SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE ? AND retention_policy = 'completed' \
           AND retention_age > UTC_TIMESTAMP(6)) \
       + (SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE ? AND retention_policy = 'closed' \
           AND retention_age > UTC_TIMESTAMP(6)) \
       + (SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE ? AND retention_policy = 'creating_idle' \
           AND retention_age > UTC_TIMESTAMP(6)) AS future"
    };
}

/// A dry run's clock and `future_jobs!`. `UTC_TIMESTAMP(6)` is the moment
/// the statement started, before its read view was opened: a job written
/// in the microseconds between, with its own clock a little later, would be
/// counted as in the future (a warning, never a deletion).
/// Binds: the three `future_jobs!` flags.
pub const CLOCK_AND_SKEW: &str = concat!("SELECT UTC_TIMESTAMP(6) AS now, ", future_jobs!());

/// The first statement of a run's start, on the session that will hold its
/// lease, in one round trip: the clock, `future_jobs!`, and the runs left
/// `running` whose lock is free (their process died; a live run's session
/// holds it), as a JSON array of `{id, host, pid}` or NULL. A read, so that
/// `IS_FREE_LOCK` never reaches the binary log; [`MARK_RUN_ABANDONED`]
/// then marks each. Binds: the three `future_jobs!` flags.
pub const RUN_START_READINGS: &str = concat!(
    "SELECT UTC_TIMESTAMP(6) AS now, ",
    future_jobs!(),
    ", (SELECT JSON_ARRAYAGG(JSON_OBJECT('id', id, 'host', host, 'pid', pid)) \
        FROM retention_runs FORCE INDEX (retention_runs_by_status) \
        WHERE status = 'running' AND IS_FREE_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', id)) = 1) AS abandoned"
);

/// Binds: run id. A run finished meanwhile keeps its status.
pub const MARK_RUN_ABANDONED: &str = "UPDATE retention_runs SET status = 'abandoned', finished_at = UTC_TIMESTAMP(6) \
     WHERE id = ? AND status = 'running'";

/// Records a new run and takes its lock, in one autocommitted statement:
/// `RETURNING` runs before the commit, so the lock is held before any other
/// session can see the row, and no sweep ever finds it running and
/// unlocked. `locked` is 1 (0 only if a session of another store with the
/// same database name held it). Binds: trigger, host, pid, process_started.
pub const INSERT_RUN: &str = "INSERT INTO retention_runs (`trigger`, status, started_at, host, pid, process_started) \
     VALUES (?, 'running', UTC_TIMESTAMP(6), ?, ?, ?) \
     RETURNING id, GET_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', id), 0) AS locked";

/// Records how a run ended. Binds: status, deleted_completed,
/// deleted_closed, deleted_creating_idle, stopped_by, error,
/// audit_rows_removed, runs_removed, id.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = ?, finished_at = UTC_TIMESTAMP(6), \
     deleted_completed = ?, deleted_closed = ?, deleted_creating_idle = ?, stopped_by = ?, error = ?, \
     audit_rows_removed = ?, runs_removed = ? WHERE id = ?";

/// Releases a run's lock, on its own session, after [`FINISH_RUN`]
/// committed: a sweep that finds the lock free then sees the run finished.
/// `unlocked` is 1, or 0/NULL when this session did not hold it. Binds: run id.
pub const UNLOCK_RUN: &str = "SELECT RELEASE_LOCK(CONCAT('retentiond.run.', DATABASE(), '.', ?)) AS unlocked";

/// `schedule.singleton`: taken by the sweeping replica on a session of its
/// own, without waiting; 1 when taken (or already held by this session).
pub const TRY_LEAD: &str = "SELECT GET_LOCK(CONCAT('retentiond.lead.', DATABASE()), 0) AS locked";

pub const END_LEAD: &str = "SELECT RELEASE_LOCK(CONCAT('retentiond.lead.', DATABASE())) AS unlocked";

// --- What is eligible ---

/// How many jobs each policy finds eligible and the oldest: a range of
/// `jobs_by_retention` each, read from the index alone.
/// Binds: cut-off of completed (twice), closed (twice), creating_idle
/// (twice); NULL for a policy that is off.
pub const COUNT_ELIGIBLE: &str = "SELECT \
       (SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'completed' AND retention_age <= ?) AS completed, \
       (SELECT MIN(retention_age) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'completed' AND retention_age <= ?) AS completed_oldest, \
       (SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'closed' AND retention_age <= ?) AS closed, \
       (SELECT MIN(retention_age) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'closed' AND retention_age <= ?) AS closed_oldest, \
       (SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'creating_idle' AND retention_age <= ?) AS creating_idle, \
       (SELECT MIN(retention_age) FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = 'creating_idle' AND retention_age <= ?) AS creating_idle_oldest";

/// One policy's walk along `jobs_by_retention` in its age order from the
/// cursor (exclusive) up to the cut-off, with the columns `$extra` and at
/// most `LIMIT ?` rows. Binds: cut-off, cursor age (twice), cursor id, limit.
macro_rules! policy_walk {
    ($policy:literal, $extra:literal) => {
        concat!(
            "(SELECT ",
            $extra,
            "retention_age AS ts, id FROM jobs FORCE INDEX (jobs_by_retention) WHERE retention_policy = '",
            $policy,
            "' AND retention_age <= ? AND (retention_age > ? OR (retention_age = ? AND id > ?)) \
             ORDER BY retention_age, id LIMIT ?)"
        )
    };
}

/// The dry run's list, oldest first: each policy's walk, at most the limit
/// each, merged (a sort of at most three times the limit, whatever the
/// table's size). Binds: per policy (completed, closed, creating_idle) the
/// five of `policy_walk!`; then the limit.
pub const SELECT_ELIGIBLE: &str = concat!(
    "SELECT id, name, state, ts FROM (",
    policy_walk!("completed", "name, state, "),
    " UNION ALL ",
    policy_walk!("closed", "name, state, "),
    " UNION ALL ",
    policy_walk!("creating_idle", "name, state, "),
    ") AS picked ORDER BY ts, id LIMIT ?"
);

/// The key (age timestamp, id) of the n-th oldest eligible job over all
/// policies: the last job of a capped sweep's set. Each policy's walk, at
/// most n entries from the index alone, merged. Binds: per policy the five
/// of `policy_walk!` (cursor: the start of time, `i64::MIN`; limit n); then
/// n - 1 (`OFFSET` takes no expression).
pub const SELECT_NTH_ELIGIBLE: &str = concat!(
    "SELECT ts, id FROM (",
    policy_walk!("completed", ""),
    " UNION ALL ",
    policy_walk!("closed", ""),
    " UNION ALL ",
    policy_walk!("creating_idle", ""),
    ") AS eligible ORDER BY ts, id LIMIT 1 OFFSET ?"
);

/// One policy's part of [`SELECT_ELIGIBLE_IDS`]: one range of
/// `jobs_by_retention` in its order, index only, from the cursor
/// (exclusive) to the bound (inclusive) and the cut-off, at most the limit.
/// Binds: cut-off, cursor age (twice), cursor id, bound age (twice), bound
/// id, limit.
macro_rules! eligible_ids_of {
    ($state:literal, $policy:literal) => {
        concat!(
            "(SELECT '",
            $state,
            "' AS state, retention_age AS ts, id FROM jobs FORCE INDEX (jobs_by_retention) \
             WHERE retention_policy = '",
            $policy,
            "' AND retention_age <= ? AND (retention_age > ? OR (retention_age = ? AND id > ?)) \
               AND (retention_age < ? OR (retention_age = ? AND id <= ?)) \
             ORDER BY retention_age, id LIMIT ?)"
        )
    };
}

/// The next ids of every policy's eligible jobs, in one statement (an idle
/// sweep reads nothing else): the eight binds of `eligible_ids_of!` for
/// completed, closed, creating_idle in turn; a policy not read has a NULL
/// cut-off and limit 0.
pub const SELECT_ELIGIBLE_IDS: &str = concat!(
    eligible_ids_of!("Completed", "completed"),
    " UNION ALL ",
    eligible_ids_of!("Closed", "closed"),
    " UNION ALL ",
    eligible_ids_of!("Creating", "creating_idle"),
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

/// Whether the row `j` is still eligible. Binds: cut-offs of completed,
/// closed, creating_idle (NULL = off: a comparison with NULL is not true).
macro_rules! still_eligible {
    () => {
        "j.hold_reason IS NULL AND CASE j.state WHEN 'Completed' THEN j.state_changed_at <= ? \
           WHEN 'Closed' THEN j.state_changed_at <= ? WHEN 'Creating' THEN j.updated_at <= ? ELSE FALSE END"
    };
}

/// The listed jobs, still eligible, as a JSON list of ids.
macro_rules! listed_jobs {
    () => {
        " FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
         STRAIGHT_JOIN jobs AS j FORCE INDEX (PRIMARY) ON j.id = listed.id WHERE "
    };
}

/// Claims the listed jobs that are still eligible: each row locked `FOR
/// UPDATE SKIP LOCKED`, so a row another sweep holds is skipped, not waited
/// for (and, at READ COMMITTED, a row found no longer eligible is unlocked
/// at once). Returns what the batch's log events and the caller need, and
/// the clock, written as `deleted_at` into the audit rows. Binds: JSON
/// array of job ids (sorted, so locks are taken in id order); the three
/// cut-offs.
pub const CLAIM_ELIGIBLE: &str = concat!(
    "SELECT j.id, j.name, j.job_type, j.state, j.cancel_requested, j.created_at, j.state_changed_at, \
       CASE j.state WHEN 'Creating' THEN j.updated_at ELSE j.state_changed_at END AS ts, \
       UTC_TIMESTAMP(6) AS deleted_at",
    listed_jobs!(),
    still_eligible!(),
    " FOR UPDATE SKIP LOCKED"
);

/// One audit row per claimed job, copied from its row, in id order. The
/// affected-row count must equal the claimed count. Binds: run id,
/// deleted_at (from the claim), deleted_by, JSON array of the claimed ids,
/// the three cut-offs.
pub const AUDIT_CLAIMED: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT ?, j.id, j.name, j.job_type, \
       CASE j.state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END, \
       j.state, j.cancel_requested, j.created_at, j.state_changed_at, ?, ?",
    listed_jobs!(),
    still_eligible!(),
    " ORDER BY j.id"
);

/// Deletes the claimed jobs, eligibility checked again in the deleting
/// statement; their drives go by the foreign key's cascade. The
/// affected-row count (jobs only) must equal the claimed count, else the
/// transaction is rolled back. Binds: JSON array of the claimed ids, the
/// three cut-offs.
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
/// Binds: cut-off, cursor deleted_at (twice), cursor id, cut-off, limit.
pub const CLAIM_EXPIRED_AUDIT_ROWS: &str = "SELECT a.deleted_at AS at, a.id \
     FROM retention_audit AS a FORCE INDEX (retention_audit_by_deleted_at) \
     WHERE a.deleted_at <= ? AND (a.deleted_at > ? OR (a.deleted_at = ? AND a.id > ?)) \
       AND (a.run_id IS NULL OR (SELECT r.finished_at FROM retention_runs AS r FORCE INDEX (PRIMARY) \
             WHERE r.id = a.run_id AND r.status <> 'running') <= ?) \
     ORDER BY a.deleted_at, a.id LIMIT ? FOR UPDATE SKIP LOCKED";

/// Binds: JSON array of the claimed audit ids.
pub const DELETE_AUDIT_ROWS: &str = "DELETE a FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN retention_audit AS a FORCE INDEX (PRIMARY) ON a.id = listed.id";

/// One walk of [`CLAIM_EXPIRED_RUN_RECORDS`] along `$index` (whose first
/// column is `$key`): finished runs that no audit row names (one seek into
/// `retention_audit_by_run`). Binds: cut-off, cursor (twice), cursor id, limit.
macro_rules! run_walk {
    ($index:literal, $key:literal) => {
        concat!(
            "(SELECT r.finished_at AS at, r.id FROM retention_runs AS r FORCE INDEX (",
            $index,
            ") WHERE r.",
            $key,
            " <= ? AND (r.",
            $key,
            " > ? OR (r.",
            $key,
            " = ? AND r.id > ?)) AND r.status <> 'running' \
               AND NOT EXISTS (SELECT 1 FROM retention_audit AS a FORCE INDEX (retention_audit_by_run) \
                 WHERE a.run_id = r.id) \
             ORDER BY r.",
            $key,
            ", r.id LIMIT ? FOR UPDATE SKIP LOCKED)"
        )
    };
}

/// The next run records past `retention.runs` that no audit row names,
/// from two walks merged in (finished_at, id) order: finished runs up to
/// the first cut-off (past both limits, so their audit rows are gone), and
/// finished runs that deleted nothing after it up to the second (the second
/// walk's cursor starts after the first cut-off). Binds: the five of
/// `run_walk!` for each walk, then the limit.
pub const CLAIM_EXPIRED_RUN_RECORDS: &str = concat!(
    "SELECT at, id FROM (",
    run_walk!("retention_runs_by_finish", "finished_at"),
    " UNION ALL ",
    run_walk!("retention_runs_empty_by_finish", "empty_finished_at"),
    ") AS picked ORDER BY at, id LIMIT ?"
);

/// Binds: JSON array of the claimed run ids.
pub const DELETE_RUN_RECORDS: &str = "DELETE r FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS listed \
     STRAIGHT_JOIN retention_runs AS r FORCE INDEX (PRIMARY) ON r.id = listed.id";

/// The first and last audit id of the whole trail: the ends of the key.
pub const SELECT_AUDIT_ID_RANGE: &str = "SELECT MIN(id) AS first, MAX(id) AS last FROM retention_audit";

/// The first and last id of the audit rows deleted in [since, until), from
/// `retention_audit_by_deleted_at` alone. Binds: since, until.
pub const SELECT_AUDIT_ID_RANGE_BETWEEN: &str = "SELECT MIN(id) AS first, MAX(id) AS last \
     FROM retention_audit FORCE INDEX (retention_audit_by_deleted_at) WHERE deleted_at >= ? AND deleted_at < ?";

/// One page of `audit export`: a range of the primary key, in its order.
/// Binds: after id, last id, limit.
pub const SELECT_AUDIT_PAGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (PRIMARY) WHERE id > ? AND id <= ? ORDER BY id LIMIT ?"
);

// --- The status pages and `forecast` ---

/// One policy's jobs crossing their retention within the forecast's
/// window, per day: one range of `jobs_by_retention`, from the index
/// alone, grouped by day (at most the window's days). Day k holds the
/// timestamps in (cut-off + k days, cut-off + k + 1 days]. Binds: cut-off
/// (twice: the day's arithmetic, the range), horizon.
macro_rules! policy_days {
    ($policy:literal) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, FALSE AS held, \
               (TIMESTAMPDIFF(MICROSECOND, ?, retention_age) - 1) DIV 86400000000 AS day, COUNT(*) AS jobs \
             FROM jobs FORCE INDEX (jobs_by_retention) \
             WHERE retention_policy = '",
            $policy,
            "' AND retention_age > ? AND retention_age <= ? GROUP BY day"
        )
    };
}

/// Jobs whose age crosses their policy's retention within the forecast's
/// window, counted per policy and day (day 0: the next 24 hours; a job
/// whose timestamp lies exactly `retention + k days` ago on day k-1); held
/// jobs apart, from the `jobs_held` range, those already past it on day -1.
/// Binds: the three of `policy_days!` for completed, closed,
/// creating_idle; then for the held jobs the cut-offs (completed, closed,
/// creating_idle) twice and the horizons once.
pub const FORECAST: &str = concat!(
    policy_days!("completed"),
    " UNION ALL ",
    policy_days!("closed"),
    " UNION ALL ",
    policy_days!("creating_idle"),
    " UNION ALL \
     SELECT policy, TRUE, \
            CASE WHEN ts <= cutoff THEN -1 ELSE (TIMESTAMPDIFF(MICROSECOND, cutoff, ts) - 1) DIV 86400000000 END AS day, \
            COUNT(*) \
       FROM (SELECT CASE state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END \
                      AS policy, \
                    CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END AS ts, \
                    CASE state WHEN 'Completed' THEN ? WHEN 'Closed' THEN ? ELSE ? END AS cutoff, \
                    CASE state WHEN 'Completed' THEN ? WHEN 'Closed' THEN ? ELSE ? END AS horizon \
               FROM jobs FORCE INDEX (jobs_held) \
              WHERE held_created_at IS NOT NULL AND state IN ('Completed', 'Closed', 'Creating')) AS held \
      WHERE ts <= horizon GROUP BY policy, day"
);

pub const COUNT_HELD: &str = "SELECT COUNT(*) FROM jobs FORCE INDEX (jobs_held) WHERE held_created_at IS NOT NULL";

/// Held jobs oldest first, from the page's last (created_at, id).
/// Binds: created_at (twice), id, limit.
pub const SELECT_HELD: &str = "SELECT id, name, job_type, state, hold_reason, created_at, updated_at, state_changed_at \
     FROM jobs FORCE INDEX (jobs_held) \
     WHERE held_created_at > ? OR (held_created_at = ? AND id > ?) ORDER BY held_created_at, id LIMIT ?";

/// Binds: run id.
pub const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id = ?");

/// Binds: below this id, limit.
pub const SELECT_RUNS_BEFORE: &str =
    concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id < ? ORDER BY id DESC LIMIT ?");

/// Newest first. Binds: below this id, limit.
pub const SELECT_AUDIT_BEFORE: &str =
    concat!("SELECT ", audit_columns!(), " FROM retention_audit WHERE id < ? ORDER BY id DESC LIMIT ?");

/// One run's rows, newest first. Binds: run id, below this id, limit.
pub const SELECT_AUDIT_OF_RUN: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_run) WHERE run_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
);

/// One job name's rows, newest first. Binds: name, below this id, run id
/// or NULL (twice), limit.
pub const SELECT_AUDIT_OF_NAME: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_job_name) WHERE job_name = ? AND id < ? \
     AND (? IS NULL OR run_id = ?) ORDER BY id DESC LIMIT ?"
);

/// Names after (name, id) and below the prefix's end in byte order, in
/// name then id order. Binds: after name (twice), after id, until, limit.
pub const SELECT_AUDIT_OF_NAME_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit FORCE INDEX (retention_audit_by_job_name) \
     WHERE (job_name > ? OR (job_name = ? AND id > ?)) AND job_name < ? ORDER BY job_name, id LIMIT ?"
);
