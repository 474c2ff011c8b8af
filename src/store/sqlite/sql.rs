//! The SQL of the SQLite store. Timestamps are INTEGER microseconds since the
//! Unix epoch; booleans are 0/1. JSON parameters (`json_each`) carry lists, so
//! every statement is static and set-based. The statements the common part
//! runs are listed in [`STATEMENTS`]; SQLite has no clock of its own to the
//! microsecond, so "now" is bound where a statement needs it.
//!
//! Every bound `LIMIT` is written `LIMIT +?n`: SQLite reads the value of a
//! bare `LIMIT ?n` to plan the statement, so it plans it again at each
//! execution, several times the cost of running it on an idle sweep's
//! reads; the unary plus hides the value from the planner and keeps the plan
//! made once (docs/operations.md, "The idle sweep").

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
         created_at, updated_at, state_changed_at, retain_until"
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
    " FROM jobs WHERE ?1 IS NULL OR state IN (SELECT value FROM json_each(?1)) ORDER BY id LIMIT +?2"
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
     created_at, updated_at, state_changed_at, retain_until) \
     SELECT value ->> 'name', value ->> 'job_type', value ->> 'state', value ->> 'cancel_requested', \
            value ->> 'cancel_requested_at', value ->> 'hold_reason', value ->> 'created_at', \
            value ->> 'updated_at', value ->> 'state_changed_at', value ->> 'retain_until' \
     FROM json_each(?1) ORDER BY key";

/// ?1: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, d.value ->> 'drive_id', d.value ->> 'state', d.value ->> 'bytes' \
     FROM json_each(?1) AS d JOIN jobs ON jobs.name = d.value ->> 'job_name'";

pub const UPDATE_JOB: &str = "UPDATE jobs SET state = ?2, cancel_requested = ?3, cancel_requested_at = ?4, hold_reason = ?5, \
     updated_at = ?6, state_changed_at = ?7, retain_until = ?8 WHERE id = ?1";

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
         deleted_creating_idle, deleted_retain_until, stopped_by, error, host, pid, audit_rows_removed, runs_removed, \
         pauses, paused_ms"
    };
}

pub const SELECT_RUNNING_RUNS: &str =
    "SELECT id, host, pid, process_started FROM retention_runs WHERE status = 'running'";

pub const MARK_RUN_ABANDONED: &str =
    "UPDATE retention_runs SET status = 'abandoned', finished_at = ?2 WHERE id = ?1 AND status = 'running'";

/// A run begun at ?5. ?1–?4: trigger, host, pid, process_started.
pub const INSERT_RUN: &str = "INSERT INTO retention_runs (trigger, host, pid, process_started, status, started_at) \
     VALUES (?1, ?2, ?3, ?4, 'running', ?5) RETURNING id";

/// A run that found nothing eligible, begun at ?5 and finished at ?6.
/// ?1–?4: trigger, host, pid, process_started.
pub const INSERT_IDLE_RUN: &str = "INSERT INTO retention_runs \
     (trigger, host, pid, process_started, status, started_at, finished_at, stopped_by) \
     VALUES (?1, ?2, ?3, ?4, 'succeeded', ?5, ?6, 'done') RETURNING id";

/// ?1: run id; ?2–?12: its outcome, as PostgreSQL's `FINISH_RUN` takes it; ?13: finished_at.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = ?2, finished_at = ?13, deleted_completed = ?3, \
     deleted_closed = ?4, deleted_creating_idle = ?5, deleted_retain_until = ?6, stopped_by = ?7, error = ?8, \
     audit_rows_removed = ?9, runs_removed = ?10, pauses = ?11, paused_ms = ?12 WHERE id = ?1";

/// Each rule's index, the predicate of its jobs besides type and hold,
/// its policy and type, the column it orders by and its jobs' clock-skew
/// column, its name in a count's columns: the arguments every per-rule
/// macro below starts with, in the order of `policy::RULES` (completed,
/// closed, creating_idle, retain_until; each for Import, then Export).
/// The `retain_until` rules' last argument is the parameter of
/// `Cutoffs::settled`, which their jobs' `state_changed_at` must not pass.
macro_rules! for_each_rule {
    ($rule:ident, $sep:literal, $settled:literal, [$($p1:literal),*], [$($p2:literal),*], [$($p3:literal),*],
     [$($p4:literal),*], [$($p5:literal),*], [$($p6:literal),*], [$($p7:literal),*], [$($p8:literal),*]) => {
        concat!(
            for_each_aged_rule!($rule, $sep, [$($p1),*], [$($p2),*], [$($p3),*], [$($p4),*], [$($p5),*], [$($p6),*]),
            $sep,
            $rule!("jobs_retained_import_until", "state IN ('Completed', 'Closed') AND retain_until IS NOT NULL",
                   "retain_until", "Import", "retain_until", "state_changed_at", "retain_until_import", $($p7,)*
                   concat!(" AND state_changed_at <= ", $settled)), $sep,
            $rule!("jobs_retained_export_until", "state IN ('Completed', 'Closed') AND retain_until IS NOT NULL",
                   "retain_until", "Export", "retain_until", "state_changed_at", "retain_until_export", $($p8,)*
                   concat!(" AND state_changed_at <= ", $settled))
        )
    };
}

/// The rules of the policies the configuration sets, as [`for_each_rule`] lists them.
macro_rules! for_each_aged_rule {
    ($rule:ident, $sep:literal, [$($p1:literal),*], [$($p2:literal),*], [$($p3:literal),*], [$($p4:literal),*],
     [$($p5:literal),*], [$($p6:literal),*]) => {
        concat!(
            $rule!("jobs_completed_import_by_age", "state = 'Completed' AND retain_until IS NULL", "completed", "Import",
                   "state_changed_at", "state_changed_at", "completed_import", $($p1,)* ""), $sep,
            $rule!("jobs_completed_export_by_age", "state = 'Completed' AND retain_until IS NULL", "completed", "Export",
                   "state_changed_at", "state_changed_at", "completed_export", $($p2,)* ""), $sep,
            $rule!("jobs_closed_import_by_age", "state = 'Closed' AND retain_until IS NULL", "closed", "Import",
                   "state_changed_at", "state_changed_at", "closed_import", $($p3,)* ""), $sep,
            $rule!("jobs_closed_export_by_age", "state = 'Closed' AND retain_until IS NULL", "closed", "Export",
                   "state_changed_at", "state_changed_at", "closed_export", $($p4,)* ""), $sep,
            $rule!("jobs_creating_import_by_idle", "state = 'Creating'", "creating_idle", "Import",
                   "updated_at", "updated_at", "creating_idle_import", $($p5,)* ""), $sep,
            $rule!("jobs_creating_export_by_idle", "state = 'Creating'", "creating_idle", "Export",
                   "updated_at", "updated_at", "creating_idle_export", $($p6,)* "")
        )
    };
}

/// One rule's jobs: its partial index, pinned, its predicate (state, type,
/// hold) and, for a `retain_until` rule, its bound on `state_changed_at`.
macro_rules! rule_jobs {
    ($index:literal, $predicate:literal, $type:literal, $settled:expr) => {
        concat!(
            "FROM jobs INDEXED BY ",
            $index,
            " WHERE ",
            $predicate,
            " AND job_type = '",
            $type,
            "' AND hold_reason IS NULL",
            $settled
        )
    };
}

/// One rule's jobs whose clock-skew column lies after "now": never
/// eligible. `$due` bounds a `retain_until` rule's range to the jobs whose
/// moment has come (docs/lifecycle.md, "Clock skew").
macro_rules! future_of {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $flag:literal, $due:literal, $settled:expr) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($index, $predicate, $type, ""),
            " AND ",
            $flag,
            " AND ",
            $due,
            $skew,
            " > ?1)"
        )
    };
}

/// ?1: now; ?2–?9: whether each rule is enabled.
pub const COUNT_FUTURE: &str = concat!(
    "SELECT ",
    for_each_rule!(
        future_of,
        " + ",
        "",
        ["?2", ""],
        ["?3", ""],
        ["?4", ""],
        ["?5", ""],
        ["?6", ""],
        ["?7", ""],
        ["?8", "retain_until <= ?1 AND "],
        ["?9", "retain_until <= ?1 AND "]
    ),
    " AS future"
);

macro_rules! count_of {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $cutoff:literal, $settled:expr) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            ") AS ",
            $name,
            ", (SELECT min(",
            $age,
            ") ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            ") AS ",
            $name,
            "_oldest"
        )
    };
}

/// ?1–?8: each rule's cut-off (NULL = off); ?9: `Cutoffs::settled`.
pub const COUNT_ELIGIBLE: &str = concat!(
    "SELECT ",
    for_each_rule!(count_of, ", ", "?9", ["?1"], ["?2"], ["?3"], ["?4"], ["?5"], ["?6"], ["?7"], ["?8"])
);

/// One rule's next eligible jobs, from its cursor up to its cut-off, at
/// most the limit, in its age order.
macro_rules! eligible_of {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $cutoff:literal, $after_at:literal, $after_id:literal, $settled:expr) => {
        concat!(
            "SELECT * FROM (SELECT id, name, '",
            $policy,
            "' AS policy, job_type, ",
            $age,
            " AS ts ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            " AND (",
            $age,
            ", id) > (",
            $after_at,
            ", ",
            $after_id,
            ") ORDER BY ",
            $age,
            ", id LIMIT +?26)"
        )
    };
}

/// The dry run's next jobs: each rule's index range read from its cursor up
/// to its cut-off, at most ?26 rows each; the store merges them in the
/// order the jobs became eligible. `INDEXED BY` pins the rule indexes:
/// without statistics SQLite prefers `jobs_by_state` and sorts every job in
/// the state, and with the pin a query that could not use its index fails
/// instead of slowing down. ?1–?8: each rule's cut-off (NULL = off); ?9:
/// `Cutoffs::settled`; ?10/?11 … ?24/?25: each rule's cursor (timestamp, id); ?26: limit.
pub const SELECT_ELIGIBLE: &str = for_each_rule!(
    eligible_of,
    " UNION ALL ",
    "?9",
    ["?1", "?10", "?11"],
    ["?2", "?12", "?13"],
    ["?3", "?14", "?15"],
    ["?4", "?16", "?17"],
    ["?5", "?18", "?19"],
    ["?6", "?20", "?21"],
    ["?7", "?22", "?23"],
    ["?8", "?24", "?25"]
);

macro_rules! due_of {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $cutoff:literal, $shift:literal, $settled:expr) => {
        concat!(
            "SELECT * FROM (SELECT ",
            $age,
            " + ",
            $shift,
            " AS ts, id ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            " ORDER BY ",
            $age,
            ", id LIMIT +?18)"
        )
    };
}

/// The ?18-th eligible job over all rules in the order they became eligible
/// (age timestamp plus the rule's retention, then id), as that moment and
/// its id: the last job of a capped sweep's set. Each rule's index is read
/// in its order, at most ?18 entries, and the eight walks merged.
/// ?1–?8: each rule's cut-off (NULL = off); ?9: `Cutoffs::settled`;
/// ?10–?17: each rule's retention (µs).
pub const SELECT_NTH_ELIGIBLE: &str = concat!(
    "SELECT ts, id FROM (",
    for_each_rule!(
        due_of,
        " UNION ALL ",
        "?9",
        ["?1", "?10"],
        ["?2", "?11"],
        ["?3", "?12"],
        ["?4", "?13"],
        ["?5", "?14"],
        ["?6", "?15"],
        ["?7", "?16"],
        ["?8", "?17"]
    ),
    ") ORDER BY ts, id LIMIT 1 OFFSET ?18 - 1"
);

/// One rule's part of [`SELECT_ELIGIBLE_IDS`]: one range of its partial
/// index (pinned, and covering: the id is the rowid) in its age order, with
/// the age timestamps, from the cursor (exclusive) to the bound (inclusive)
/// and the cut-off, at most the limit.
macro_rules! eligible_ids_of {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $cutoff:literal, $after_at:literal, $after_id:literal, $through_at:literal, $through_id:literal, $limit:literal,
     $settled:expr) => {
        concat!(
            "SELECT * FROM (SELECT '",
            $policy,
            "' AS policy, '",
            $type,
            "' AS job_type, ",
            $age,
            " AS ts, id ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
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
            ", id LIMIT +",
            $limit,
            ")"
        )
    };
}

/// The next ids of every rule's eligible jobs, in one statement (an idle
/// sweep reads nothing else): per rule, in the order of `policy::RULES`,
/// its cut-off, cursor (age, id), bound (age, id) and limit, ?1–?6, …,
/// ?43–?48; a rule not read has no cut-off and limit 0. ?49: `Cutoffs::settled`.
pub const SELECT_ELIGIBLE_IDS: &str = for_each_rule!(
    eligible_ids_of,
    " UNION ALL ",
    "?49",
    ["?1", "?2", "?3", "?4", "?5", "?6"],
    ["?7", "?8", "?9", "?10", "?11", "?12"],
    ["?13", "?14", "?15", "?16", "?17", "?18"],
    ["?19", "?20", "?21", "?22", "?23", "?24"],
    ["?25", "?26", "?27", "?28", "?29", "?30"],
    ["?31", "?32", "?33", "?34", "?35", "?36"],
    ["?37", "?38", "?39", "?40", "?41", "?42"],
    ["?43", "?44", "?45", "?46", "?47", "?48"]
);

/// A job's policy: `retain_until` for a finished job with a moment of its
/// own, else its state's.
macro_rules! policy_of_row {
    () => {
        "CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN 'retain_until' \
              WHEN state = 'Completed' THEN 'completed' WHEN state = 'Closed' THEN 'closed' ELSE 'creating_idle' END"
    };
}

/// Which of the listed jobs are still eligible: one `CASE` on the row, the
/// same in both statements below, which run in one write transaction and so
/// see the same rows. ?1: JSON array of job ids; ?2–?9: each rule's cut-off
/// (in the order of `policy::RULES`; NULL = off); ?10: `Cutoffs::settled`.
/// `NOT INDEXED` keeps SQLite on rowid look-ups for the ids.
macro_rules! still_eligible {
    () => {
        "FROM jobs NOT INDEXED WHERE id IN (SELECT value FROM json_each(?1)) AND hold_reason IS NULL \
           AND CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN \
                      retain_until <= CASE job_type WHEN 'Import' THEN ?8 ELSE ?9 END AND state_changed_at <= ?10 \
                    WHEN state = 'Completed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN ?2 ELSE ?3 END \
                    WHEN state = 'Closed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN ?4 ELSE ?5 END \
                    WHEN state = 'Creating' THEN updated_at <= CASE job_type WHEN 'Import' THEN ?6 ELSE ?7 END \
                    ELSE 0 END"
    };
}

/// One audit row for each listed job still eligible, written from its row
/// before [`DELETE_ELIGIBLE`] removes it. ?11: run id; ?12: deleted_at; ?13: deleted_by.
pub const AUDIT_ELIGIBLE: &str = concat!(
    "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, \
       cancel_requested, created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT ?11, id, name, job_type, ",
    policy_of_row!(),
    ", state, cancel_requested, created_at, state_changed_at, ?12, ?13 ",
    still_eligible!(),
    " ORDER BY id"
);

/// Deletes the listed jobs still eligible (drives by cascade); `ts` is the
/// timestamp a job's policy orders it by.
pub const DELETE_ELIGIBLE: &str = concat!(
    "DELETE ",
    still_eligible!(),
    " RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at, ",
    policy_of_row!(),
    " AS policy, CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN retain_until \
       WHEN state = 'Creating' THEN updated_at ELSE state_changed_at END AS ts"
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
       ORDER BY a.deleted_at, a.id LIMIT +?4) \
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
         ORDER BY r.finished_at, r.id LIMIT +?7) \
       UNION ALL \
       SELECT * FROM (SELECT r.id, r.finished_at FROM retention_runs AS r INDEXED BY retention_runs_empty_by_finish \
         WHERE r.status <> 'running' AND r.deleted_completed = 0 AND r.deleted_closed = 0 \
           AND r.deleted_creating_idle = 0 AND r.deleted_retain_until = 0 AND r.finished_at <= ?2 AND (r.finished_at, r.id) > (?5, ?6) \
           AND NOT EXISTS (SELECT 1 FROM retention_audit AS a WHERE a.run_id = r.id) \
         ORDER BY r.finished_at, r.id LIMIT +?7) \
     ) ORDER BY finished_at, id LIMIT +?7) \
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
    " FROM retention_audit NOT INDEXED WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT +?3"
);

// ---------------------------------------------------------------------------
// The status pages and `forecast`. Each statement reads one index
// range (pinned with `INDEXED BY`, as above), so a page costs the same
// whatever the size of the tables.
// ---------------------------------------------------------------------------

/// Jobs whose age crosses their rule's retention within the forecast's
/// window, counted per rule and day (labelled with the policy); held jobs
/// apart, those already past it on day -1. Days start at "now": day 0 is
/// the next 24 hours, and a job whose timestamp lies exactly
/// `retention + k days` ago is counted on day k-1. Each day of a rule is
/// one range of its index, counted without a sort. A job with
/// `retain_until` is due at the later of that moment and its final state's
/// start plus `retention.minimum` (now minus the settled cut-off); its
/// rule's range up to the horizon is grouped by day. The held jobs, few,
/// are grouped from their covering index.
/// ?1–?8: each rule's cut-off (NULL = off); ?9: `Cutoffs::settled`;
/// ?10–?17: those plus the window; ?18: days in the window.
macro_rules! day_counts {
    ($index:literal, $predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $cutoff:literal, $settled:expr) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, 0 AS held, day, (SELECT count(*) ",
            rule_jobs!($index, $predicate, $type, $settled),
            " AND ",
            $age,
            " > ",
            $cutoff,
            " + day * 86400000000 AND ",
            $age,
            " <= ",
            $cutoff,
            " + (day + 1) * 86400000000) AS jobs FROM days WHERE ",
            $cutoff,
            " IS NOT NULL"
        )
    };
}

macro_rules! retained_day_counts {
    ($index:literal, $type:literal, $now:literal, $horizon:literal) => {
        concat!(
            "SELECT 'retain_until' AS policy, 0 AS held, (due - ",
            $now,
            " - 1) / 86400000000 AS day, count(*) AS jobs FROM (SELECT max(retain_until, state_changed_at + ",
            $now,
            " - ?9) AS due FROM jobs INDEXED BY ",
            $index,
            " WHERE state IN ('Completed', 'Closed') AND retain_until IS NOT NULL AND job_type = '",
            $type,
            "' AND hold_reason IS NULL AND retain_until <= ",
            $horizon,
            ") WHERE due > ",
            $now,
            " AND due <= ",
            $horizon,
            " GROUP BY day"
        )
    };
}

pub const FORECAST: &str = concat!(
    "WITH RECURSIVE days(day) AS (SELECT 0 UNION ALL SELECT day + 1 FROM days WHERE day + 1 < ?18) ",
    for_each_aged_rule!(day_counts, " UNION ALL ", ["?1"], ["?2"], ["?3"], ["?4"], ["?5"], ["?6"]),
    " UNION ALL ",
    retained_day_counts!("jobs_retained_import_until", "Import", "?7", "?16"),
    " UNION ALL ",
    retained_day_counts!("jobs_retained_export_until", "Export", "?8", "?17"),
    " UNION ALL \
     SELECT policy, 1, CASE WHEN ts <= cutoff THEN -1 ELSE (ts - cutoff - 1) / 86400000000 END AS day, count(*) FROM ( \
       SELECT ",
    policy_of_row!(),
    " AS policy, \
              CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') \
                     THEN max(retain_until, state_changed_at + ?7 - ?9) \
                   WHEN state = 'Creating' THEN updated_at ELSE state_changed_at END AS ts, \
              CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN ?7 \
                ELSE CASE state || job_type WHEN 'CompletedImport' THEN ?1 WHEN 'CompletedExport' THEN ?2 \
                WHEN 'ClosedImport' THEN ?3 WHEN 'ClosedExport' THEN ?4 WHEN 'CreatingImport' THEN ?5 ELSE ?6 END END \
                AS cutoff, \
              CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN ?16 \
                ELSE CASE state || job_type WHEN 'CompletedImport' THEN ?10 WHEN 'CompletedExport' THEN ?11 \
                WHEN 'ClosedImport' THEN ?12 WHEN 'ClosedExport' THEN ?13 WHEN 'CreatingImport' THEN ?14 ELSE ?15 END END \
                AS horizon \
         FROM jobs INDEXED BY jobs_held \
         WHERE hold_reason IS NOT NULL AND state IN ('Completed', 'Closed', 'Creating')) \
     WHERE ts <= horizon GROUP BY policy, day"
);

pub const COUNT_HELD: &str = "SELECT count(*) AS held FROM jobs INDEXED BY jobs_held WHERE hold_reason IS NOT NULL";

/// ?1/?2: the (created_at, id) the page starts after; ?3: limit.
pub const SELECT_HELD: &str = "SELECT id, name, job_type, state, hold_reason, created_at, updated_at, state_changed_at \
     FROM jobs INDEXED BY jobs_held WHERE hold_reason IS NOT NULL AND (created_at, id) > (?1, ?2) \
     ORDER BY created_at, id LIMIT +?3";

pub const SELECT_RUN: &str = concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id = ?1");

/// ?1: the page starts below this id; ?2: limit.
pub const SELECT_RUNS_BEFORE: &str =
    concat!("SELECT ", run_columns!(), " FROM retention_runs WHERE id < ?1 ORDER BY id DESC LIMIT +?2");

/// Newest first. ?1: the page starts below this id; ?2: limit.
pub const SELECT_AUDIT_BEFORE: &str =
    concat!("SELECT ", audit_columns!(), " FROM retention_audit WHERE id < ?1 ORDER BY id DESC LIMIT +?2");

/// One run's rows, newest first. ?1: run id; ?2: below this id; ?3: limit.
pub const SELECT_AUDIT_OF_RUN: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_run WHERE run_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT +?3"
);

/// One job name's rows, newest first. ?1: name; ?2: run id or NULL; ?3: below this id; ?4: limit.
pub const SELECT_AUDIT_OF_NAME: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_job_name \
     WHERE job_name = ?1 AND id < ?3 AND (?2 IS NULL OR run_id = ?2) ORDER BY id DESC LIMIT +?4"
);

/// Names after (?2, ?3) and below ?1, in name then id order; ?4: limit. The
/// row value alone starts the range (with a second lower bound SQLite
/// would seek with the other one and step over the rows before it).
pub const SELECT_AUDIT_OF_NAME_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit INDEXED BY retention_audit_by_job_name \
     WHERE (job_name, id) > (?2, ?3) AND job_name < ?1 ORDER BY job_name, id LIMIT +?4"
);
