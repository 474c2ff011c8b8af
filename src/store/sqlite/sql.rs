//! The SQL of the SQLite store. Timestamps are INTEGER microseconds since the
//! Unix epoch; booleans are 0/1. JSON parameters (`json_each`) carry lists, so
//! every statement is static and set-based. The statements the common part
//! runs are listed in [`STATEMENTS`]; SQLite has no clock of its own to the
//! microsecond, so "now" is bound where a statement needs it.

use crate::store::common::{DeleteJob, StatementBytes, Statements};

/// The statements the common part runs on this engine (src/store/common/).
pub(crate) const STATEMENTS: Statements = Statements {
    migrations_table: MIGRATIONS_TABLE,
    migration_versions: SELECT_MIGRATION_VERSIONS,
    job_by_name: SELECT_JOB_BY_NAME,
    lock_job: SELECT_JOB_TO_CHANGE,
    jobs: SELECT_JOBS,
    drives_of_jobs: SELECT_DRIVES_OF_JOBS,
    statement_bytes: StatementBytes::Fixed(MAX_TEXT_BYTES),
    taken_names: SELECT_TAKEN_NAMES,
    insert_jobs: INSERT_JOBS,
    insert_drives: INSERT_DRIVES,
    update_job: UPDATE_JOB,
    delete_job: DeleteJob::AuditThenDelete { audit: AUDIT_JOB, delete: DELETE_JOB },
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

pub const MIGRATIONS_TABLE: &str =
    "SELECT count(*) AS tables FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

pub const SELECT_MIGRATION_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

macro_rules! job_columns {
    () => {
        "id, name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
         created_at, updated_at, state_changed_at"
    };
}

pub const SELECT_JOB_BY_NAME: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE name = ?1");

/// The job to change: the job commands' transaction (`BEGIN IMMEDIATE`)
/// already holds the database's write lock. ?1: id; ?2: name.
pub const SELECT_JOB_TO_CHANGE: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1 AND name = ?2");

/// ?1: JSON array of states or NULL for all; ?2: limit.
pub const SELECT_JOBS: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE ?1 IS NULL OR state IN (SELECT value FROM json_each(?1)) ORDER BY id LIMIT ?2"
);

/// ?1: JSON array of job ids.
pub const SELECT_DRIVES_OF_JOBS: &str = "SELECT job_id, drive_id, state, bytes FROM job_drives \
     WHERE job_id IN (SELECT value FROM json_each(?1)) ORDER BY job_id, drive_id";

/// The most bytes one statement's JSON may hold: the longest text value of
/// a default build (`SQLITE_MAX_LENGTH`).
pub const MAX_TEXT_BYTES: i64 = 1_000_000_000;

/// ?1: JSON array of names; returns those already taken.
pub const SELECT_TAKEN_NAMES: &str = "SELECT name FROM jobs WHERE name IN (SELECT value FROM json_each(?1))";

/// ?1: JSON array of job objects (timestamps in microseconds).
pub const INSERT_JOBS: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
     created_at, updated_at, state_changed_at) \
     SELECT value ->> 'name', value ->> 'job_type', value ->> 'state', value ->> 'cancel_requested', \
            value ->> 'cancel_requested_at', value ->> 'hold_reason', value ->> 'created_at', \
            value ->> 'updated_at', value ->> 'state_changed_at' \
     FROM json_each(?1) ORDER BY key";

/// ?1: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, d.value ->> 'drive_id', d.value ->> 'state', d.value ->> 'bytes' \
     FROM json_each(?1) AS d JOIN jobs ON jobs.name = d.value ->> 'job_name'";

pub const UPDATE_JOB: &str = "UPDATE jobs SET state = ?2, cancel_requested = ?3, cancel_requested_at = ?4, hold_reason = ?5, \
     updated_at = ?6, state_changed_at = ?7 WHERE id = ?1";

macro_rules! audit_columns {
    () => {
        "id, run_id, job_name, job_type, policy, state, cancel_requested, created_at, \
         state_changed_at, deleted_at, deleted_by"
    };
}

/// The audit row of `jobs delete`, written from the job's row before
/// [`DELETE_JOB`] removes it. ?1: job id; ?2: deleted_by; ?3: deleted_at.
pub const AUDIT_JOB: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, 'manual', state, cancel_requested, created_at, state_changed_at, ?3, ?2 \
     FROM jobs WHERE id = ?1 RETURNING ",
    audit_columns!()
);

/// ?1: job id (drives by cascade).
pub const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?1";

macro_rules! run_columns {
    () => {
        "id, trigger, status, started_at, finished_at, deleted_completed, deleted_closed, \
         deleted_creating_idle, stopped_by, error, host, pid, audit_rows_removed, runs_removed, pauses, paused_ms"
    };
}

pub const SELECT_RUNNING_RUNS: &str =
    "SELECT id, host, pid, process_started FROM retention_runs WHERE status = 'running'";

pub const MARK_RUN_ABANDONED: &str =
    "UPDATE retention_runs SET status = 'abandoned', finished_at = ?2 WHERE id = ?1 AND status = 'running'";

pub const INSERT_RUN: &str = "INSERT INTO retention_runs (trigger, status, started_at, host, pid, process_started) \
     VALUES (?1, 'running', ?2, ?3, ?4, ?5) RETURNING id";

/// ?1: run id; ?2–?11: its outcome, as PostgreSQL's `FINISH_RUN` takes it; ?12: finished_at.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = ?2, finished_at = ?12, deleted_completed = ?3, \
     deleted_closed = ?4, deleted_creating_idle = ?5, stopped_by = ?6, error = ?7, audit_rows_removed = ?8, \
     runs_removed = ?9, pauses = ?10, paused_ms = ?11 WHERE id = ?1";

/// ?1: now; ?2–?4: whether completed, closed and creating_idle are enabled.
pub const COUNT_FUTURE: &str = "SELECT \
       (SELECT count(*) FROM jobs INDEXED BY jobs_completed_by_age WHERE ?2 AND state = 'Completed' AND hold_reason IS NULL AND state_changed_at > ?1) \
     + (SELECT count(*) FROM jobs INDEXED BY jobs_closed_by_age WHERE ?3 AND state = 'Closed' AND hold_reason IS NULL AND state_changed_at > ?1) \
     + (SELECT count(*) FROM jobs INDEXED BY jobs_creating_by_idle WHERE ?4 AND state = 'Creating' AND hold_reason IS NULL AND updated_at > ?1) AS future";

/// ?1–?3: cut-offs of completed, closed, creating_idle (NULL = off).
pub const COUNT_ELIGIBLE: &str = "SELECT \
       (SELECT count(*) FROM jobs INDEXED BY jobs_completed_by_age WHERE state = 'Completed' AND hold_reason IS NULL AND state_changed_at <= ?1) AS completed, \
       (SELECT min(state_changed_at) FROM jobs INDEXED BY jobs_completed_by_age WHERE state = 'Completed' AND hold_reason IS NULL AND state_changed_at <= ?1) AS completed_oldest, \
       (SELECT count(*) FROM jobs INDEXED BY jobs_closed_by_age WHERE state = 'Closed' AND hold_reason IS NULL AND state_changed_at <= ?2) AS closed, \
       (SELECT min(state_changed_at) FROM jobs INDEXED BY jobs_closed_by_age WHERE state = 'Closed' AND hold_reason IS NULL AND state_changed_at <= ?2) AS closed_oldest, \
       (SELECT count(*) FROM jobs INDEXED BY jobs_creating_by_idle WHERE state = 'Creating' AND hold_reason IS NULL AND updated_at <= ?3) AS creating_idle, \
       (SELECT min(updated_at) FROM jobs INDEXED BY jobs_creating_by_idle WHERE state = 'Creating' AND hold_reason IS NULL AND updated_at <= ?3) AS creating_idle_oldest";

/// The next eligible jobs oldest first: each policy's partial index is
/// read from its cursor up to its cut-off, at most ?10 rows each, then merged.
/// `INDEXED BY` pins the policy indexes: without statistics SQLite prefers
/// `jobs_by_state` and sorts every job in the state, and with the pin a
/// query that could not use its index fails instead of slowing down.
/// ?1–?3: cut-offs of completed, closed, creating_idle (NULL = off);
/// ?4/?5, ?6/?7, ?8/?9: cursors (timestamp, id) of each; ?10: limit.
macro_rules! eligible {
    () => {
        "SELECT id, name, state, ts FROM ( \
           SELECT * FROM (SELECT id, name, state, state_changed_at AS ts FROM jobs INDEXED BY jobs_completed_by_age \
             WHERE state = 'Completed' AND hold_reason IS NULL AND state_changed_at <= ?1 \
               AND (state_changed_at, id) > (?4, ?5) \
             ORDER BY state_changed_at, id LIMIT ?10) \
           UNION ALL \
           SELECT * FROM (SELECT id, name, state, state_changed_at AS ts FROM jobs INDEXED BY jobs_closed_by_age \
             WHERE state = 'Closed' AND hold_reason IS NULL AND state_changed_at <= ?2 \
               AND (state_changed_at, id) > (?6, ?7) \
             ORDER BY state_changed_at, id LIMIT ?10) \
           UNION ALL \
           SELECT * FROM (SELECT id, name, state, updated_at AS ts FROM jobs INDEXED BY jobs_creating_by_idle \
             WHERE state = 'Creating' AND hold_reason IS NULL AND updated_at <= ?3 \
               AND (updated_at, id) > (?8, ?9) \
             ORDER BY updated_at, id LIMIT ?10) \
         ) ORDER BY ts, id LIMIT ?10"
    };
}

/// The dry run's list, oldest first.
pub const SELECT_ELIGIBLE: &str = eligible!();

/// The key (age timestamp, id) of the ?4-th oldest eligible job over all
/// policies: the last job of a capped sweep's set. Each policy's index is
/// read in its order, at most ?4 entries, and the three walks merged.
/// ?1–?3: cut-offs of completed, closed, creating_idle (NULL = off).
pub const SELECT_NTH_ELIGIBLE: &str = "SELECT ts, id FROM ( \
       SELECT * FROM (SELECT state_changed_at AS ts, id FROM jobs INDEXED BY jobs_completed_by_age \
         WHERE state = 'Completed' AND hold_reason IS NULL AND state_changed_at <= ?1 \
         ORDER BY state_changed_at, id LIMIT ?4) \
       UNION ALL \
       SELECT * FROM (SELECT state_changed_at AS ts, id FROM jobs INDEXED BY jobs_closed_by_age \
         WHERE state = 'Closed' AND hold_reason IS NULL AND state_changed_at <= ?2 \
         ORDER BY state_changed_at, id LIMIT ?4) \
       UNION ALL \
       SELECT * FROM (SELECT updated_at AS ts, id FROM jobs INDEXED BY jobs_creating_by_idle \
         WHERE state = 'Creating' AND hold_reason IS NULL AND updated_at <= ?3 \
         ORDER BY updated_at, id LIMIT ?4) \
     ) ORDER BY ts, id LIMIT 1 OFFSET ?4 - 1";

/// One policy's part of [`SELECT_ELIGIBLE_IDS`]: one range of its partial
/// index (pinned, and covering: the id is the rowid) in its age order, with
/// the age timestamps, from the cursor (exclusive) to the bound (inclusive)
/// and the cut-off, at most the limit.
macro_rules! eligible_ids_of {
    ($index:literal, $state:literal, $age:literal, $cutoff:literal, $after_at:literal, $after_id:literal,
     $through_at:literal, $through_id:literal, $limit:literal) => {
        concat!(
            "SELECT * FROM (SELECT '",
            $state,
            "' AS state, ",
            $age,
            " AS ts, id FROM jobs INDEXED BY ",
            $index,
            " WHERE state = '",
            $state,
            "' AND hold_reason IS NULL AND ",
            $age,
            " <= ",
            $cutoff,
            " AND (",
            $age,
            ", id) > (",
            $after_at,
            ", ",
            $after_id,
            ") AND (",
            $age,
            ", id) <= (",
            $through_at,
            ", ",
            $through_id,
            ") ORDER BY ",
            $age,
            ", id LIMIT ",
            $limit,
            ")"
        )
    };
}

/// The next ids of every policy's eligible jobs, in one statement (an idle
/// sweep reads nothing else): per policy, in the order completed, closed,
/// creating_idle, its cut-off, cursor (age, id), bound (age, id) and limit,
/// ?1–?6, ?7–?12, ?13–?18; a policy not read has no cut-off and limit 0.
pub const SELECT_ELIGIBLE_IDS: &str = concat!(
    eligible_ids_of!("jobs_completed_by_age", "Completed", "state_changed_at", "?1", "?2", "?3", "?4", "?5", "?6"),
    " UNION ALL ",
    eligible_ids_of!("jobs_closed_by_age", "Closed", "state_changed_at", "?7", "?8", "?9", "?10", "?11", "?12"),
    " UNION ALL ",
    eligible_ids_of!("jobs_creating_by_idle", "Creating", "updated_at", "?13", "?14", "?15", "?16", "?17", "?18"),
);

/// Which of the listed jobs are still eligible: one `CASE` on the row, the
/// same in both statements below, which run in one write transaction and so
/// see the same rows. ?1: JSON array of job ids; ?2–?4: cut-offs of
/// completed, closed, creating_idle (NULL = off). `NOT INDEXED` keeps SQLite
/// on rowid look-ups for the ids.
macro_rules! still_eligible {
    () => {
        "FROM jobs NOT INDEXED WHERE id IN (SELECT value FROM json_each(?1)) AND hold_reason IS NULL \
           AND CASE state WHEN 'Completed' THEN state_changed_at <= ?2 WHEN 'Closed' THEN state_changed_at <= ?3 \
                 WHEN 'Creating' THEN updated_at <= ?4 ELSE 0 END"
    };
}

/// One audit row for each listed job still eligible, written from its row
/// before [`DELETE_ELIGIBLE`] removes it. ?5: run id; ?6: deleted_at; ?7: deleted_by.
pub const AUDIT_ELIGIBLE: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, \
       cancel_requested, created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT ?5, id, name, job_type, \
       CASE state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END, \
       state, cancel_requested, created_at, state_changed_at, ?6, ?7 ",
    still_eligible!(),
    " ORDER BY id"
);

/// Deletes the listed jobs still eligible (drives by cascade); `ts` is a
/// job's age timestamp under its policy.
pub const DELETE_ELIGIBLE: &str = concat!(
    "DELETE ",
    still_eligible!(),
    " RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at, \
       CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END AS ts"
);

pub const CHECKPOINT_PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// Returns the file's size back to the WAL-checkpointed minimum.
pub const CHECKPOINT_TRUNCATE: &str = "PRAGMA wal_checkpoint(TRUNCATE)";

pub const AUTO_VACUUM: &str = "PRAGMA auto_vacuum";

pub const FREELIST_COUNT: &str = "PRAGMA freelist_count";

/// Changes when another connection has committed since this one last asked.
pub const DATA_VERSION: &str = "PRAGMA data_version";

/// One step of `Store::release_space`: at most 512 free pages (2 MiB) handed
/// back to the file system. (A pragma takes no bound parameters.)
pub const INCREMENTAL_VACUUM_STEP: &str = "PRAGMA incremental_vacuum(512)";

// --- The audit trail's own lifecycle and its export (src/trail.rs, src/export.rs) ---

/// Removes the next audit rows past `retention.audit`, in (deleted_at, id)
/// order from the cursor: rows of `jobs delete` (no run) and of runs that
/// finished at or before the cut-off; never those of a run still running or
/// finished after it (each run is looked up by its key). `INDEXED BY` pins
/// the walk to its index whatever the statistics say.
/// ?1: cut-off; ?2/?3: cursor (deleted_at, id); ?4: limit.
pub const REMOVE_AUDIT_ROWS: &str = "DELETE FROM retention_audit WHERE id IN ( \
       SELECT a.id FROM retention_audit AS a INDEXED BY retention_audit_by_deleted_at \
       WHERE a.deleted_at <= ?1 AND (a.deleted_at, a.id) > (?2, ?3) \
         AND (a.run_id IS NULL OR (SELECT r.finished_at FROM retention_runs AS r \
               WHERE r.id = a.run_id AND r.status <> 'running') <= ?1) \
       ORDER BY a.deleted_at, a.id LIMIT ?4) \
     RETURNING deleted_at AS at, id";

/// Removes the next run records past `retention.runs` that no audit row
/// names, from two walks merged in (finished_at, id) order: finished runs up
/// to ?1 (past both limits, so their audit rows are gone), and finished runs
/// that deleted nothing after ?1 up to ?2 (the second walk's cursor starts
/// after ?1). Each walk is pinned to its partial index; whether an audit row
/// names a run is one seek into `retention_audit_by_run`.
/// ?3/?4, ?5/?6: cursors (finished_at, id) of each walk; ?7: limit.
pub const REMOVE_RUN_RECORDS: &str = "DELETE FROM retention_runs WHERE id IN (SELECT id FROM ( \
       SELECT * FROM (SELECT r.id, r.finished_at FROM retention_runs AS r INDEXED BY retention_runs_by_finish \
         WHERE r.status <> 'running' AND r.finished_at <= ?1 AND (r.finished_at, r.id) > (?3, ?4) \
           AND NOT EXISTS (SELECT 1 FROM retention_audit AS a WHERE a.run_id = r.id) \
         ORDER BY r.finished_at, r.id LIMIT ?7) \
       UNION ALL \
       SELECT * FROM (SELECT r.id, r.finished_at FROM retention_runs AS r INDEXED BY retention_runs_empty_by_finish \
         WHERE r.status <> 'running' AND r.deleted_completed = 0 AND r.deleted_closed = 0 \
           AND r.deleted_creating_idle = 0 AND r.finished_at <= ?2 AND (r.finished_at, r.id) > (?5, ?6) \
           AND NOT EXISTS (SELECT 1 FROM retention_audit AS a WHERE a.run_id = r.id) \
         ORDER BY r.finished_at, r.id LIMIT ?7) \
     ) ORDER BY finished_at, id LIMIT ?7) \
     RETURNING finished_at AS at, id";

/// The first and last audit id of the whole trail: the ends of the key.
pub const SELECT_AUDIT_ID_RANGE: &str = "SELECT min(id) AS first, max(id) AS last FROM retention_audit";

/// The first and last id of the audit rows deleted in [?1, ?2): a walk over
/// `retention_audit_by_deleted_at`, which holds the ids, so no table row is read.
pub const SELECT_AUDIT_ID_RANGE_BETWEEN: &str = "SELECT min(id) AS first, max(id) AS last \
     FROM retention_audit INDEXED BY retention_audit_by_deleted_at WHERE deleted_at >= ?1 AND deleted_at < ?2";

/// One page of `audit export`: ids above ?1 up to ?2, in id order, at most
/// ?3. `NOT INDEXED` keeps it on the table's own key (a rowid range).
pub const SELECT_AUDIT_PAGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit NOT INDEXED WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3"
);

// ---------------------------------------------------------------------------
// The status pages and `forecast`. Each statement reads one index
// range (pinned with `INDEXED BY`, as above), so a page costs the same
// whatever the size of the tables.
// ---------------------------------------------------------------------------

/// Jobs whose age crosses their policy's retention within the forecast's
/// window, counted per policy and day; held jobs apart, those already past
/// it on day -1. Days start at "now": day 0 is the next 24 hours, and a job
/// whose timestamp lies exactly `retention + k days` ago is counted on day k-1.
/// Each day of a policy is one range of its index, counted without a sort;
/// the held jobs, few, are grouped from their covering index.
/// ?1–?3: cut-offs of completed, closed, creating_idle (NULL = off);
/// ?4–?6: those cut-offs plus the window; ?7: days in the window.
macro_rules! day_counts {
    ($policy:literal, $index:literal, $state:literal, $age:literal, $cutoff:literal) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, 0 AS held, day, \
               (SELECT count(*) FROM jobs INDEXED BY ",
            $index,
            " \
                 WHERE state = '",
            $state,
            "' AND hold_reason IS NULL \
                   AND ",
            $age,
            " > ",
            $cutoff,
            " + day * 86400000000 AND ",
            $age,
            " <= ",
            $cutoff,
            " + (day + 1) * 86400000000) AS jobs \
             FROM days WHERE ",
            $cutoff,
            " IS NOT NULL"
        )
    };
}

pub const FORECAST: &str = concat!(
    "WITH RECURSIVE days(day) AS (SELECT 0 UNION ALL SELECT day + 1 FROM days WHERE day + 1 < ?7) ",
    day_counts!("completed", "jobs_completed_by_age", "Completed", "state_changed_at", "?1"),
    " UNION ALL ",
    day_counts!("closed", "jobs_closed_by_age", "Closed", "state_changed_at", "?2"),
    " UNION ALL ",
    day_counts!("creating_idle", "jobs_creating_by_idle", "Creating", "updated_at", "?3"),
    " UNION ALL \
     SELECT policy, 1, CASE WHEN ts <= cutoff THEN -1 ELSE (ts - cutoff - 1) / 86400000000 END AS day, count(*) FROM ( \
       SELECT CASE state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END AS policy, \
              CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END AS ts, \
              CASE state WHEN 'Completed' THEN ?1 WHEN 'Closed' THEN ?2 ELSE ?3 END AS cutoff, \
              CASE state WHEN 'Completed' THEN ?4 WHEN 'Closed' THEN ?5 ELSE ?6 END AS horizon \
         FROM jobs INDEXED BY jobs_held \
         WHERE hold_reason IS NOT NULL AND state IN ('Completed', 'Closed', 'Creating')) \
     WHERE ts <= horizon GROUP BY policy, day"
);

pub const COUNT_HELD: &str = "SELECT count(*) AS held FROM jobs INDEXED BY jobs_held WHERE hold_reason IS NOT NULL";

/// ?1/?2: the (created_at, id) the page starts after; ?3: limit.
pub const SELECT_HELD: &str = "SELECT id, name, job_type, state, hold_reason, created_at, updated_at, state_changed_at \
     FROM jobs INDEXED BY jobs_held WHERE hold_reason IS NOT NULL AND (created_at, id) > (?1, ?2) \
     ORDER BY created_at, id LIMIT ?3";

pub const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id = ?1");

/// ?1: the page starts below this id; ?2: limit.
pub const SELECT_RUNS_BEFORE: &str =
    concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id < ?1 ORDER BY id DESC LIMIT ?2");

/// Newest first. ?1: the page starts below this id; ?2: limit.
pub const SELECT_AUDIT_BEFORE: &str =
    concat!("SELECT ", audit_columns!(), " FROM retention_audit WHERE id < ?1 ORDER BY id DESC LIMIT ?2");

/// One run's rows, newest first. ?1: run id; ?2: below this id; ?3: limit.
pub const SELECT_AUDIT_OF_RUN: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_run WHERE run_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
);

/// One job name's rows, newest first. ?1: name; ?2: run id or NULL; ?3: below this id; ?4: limit.
pub const SELECT_AUDIT_OF_NAME: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_job_name \
     WHERE job_name = ?1 AND id < ?3 AND (?2 IS NULL OR run_id = ?2) ORDER BY id DESC LIMIT ?4"
);

/// Names after (?2, ?3) and below ?1, in name then id order; ?4: limit. The
/// row value alone starts the range (with a second lower bound SQLite
/// would seek with the other one and step over the rows before it).
pub const SELECT_AUDIT_OF_NAME_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_job_name \
     WHERE (job_name, id) > (?2, ?3) AND job_name < ?1 ORDER BY job_name, id LIMIT ?4"
);
