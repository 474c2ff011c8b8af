//! The SQL of the PostgreSQL store. Lists travel as arrays or JSONB, so every
//! statement is static and set-based; sqlx prepares each once per connection.
//! The statements the common part runs are listed in [`STATEMENTS`].

use crate::store::common::{DeleteJob, StatementBytes, Statements};

/// The statements the common part runs on this engine (src/store/common/).
pub(crate) const STATEMENTS: Statements = Statements {
    migrations_table: MIGRATIONS_TABLE,
    migration_versions: SELECT_MIGRATION_VERSIONS,
    job_by_name: SELECT_JOB_BY_NAME,
    lock_job: LOCK_JOB,
    jobs: SELECT_JOBS,
    drives_of_jobs: SELECT_DRIVES_OF_JOBS,
    statement_bytes: StatementBytes::Fixed(MAX_JSONB_BYTES),
    taken_names: SELECT_TAKEN_NAMES,
    insert_jobs: INSERT_JOBS,
    insert_drives: INSERT_DRIVES,
    update_job: UPDATE_JOB,
    delete_job: DeleteJob::AuditedDelete(DELETE_JOB_AUDITED),
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

/// 1 when the migrations table exists, else 0 (it is looked up as the next
/// statement would find it, along the search path).
pub const MIGRATIONS_TABLE: &str = "SELECT count(to_regclass('_sqlx_migrations')) AS tables";

pub const SELECT_MIGRATION_VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

pub const SELECT_NOW: &str = "SELECT now() AS now";

macro_rules! job_columns {
    () => {
        "id, name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, \
         created_at, updated_at, state_changed_at"
    };
}

pub const SELECT_JOB_BY_NAME: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE name = $1");

/// The job's row, locked until the transaction ends, and the transaction's
/// clock; none if the job was deleted meanwhile. $1: id; $2: name.
pub const LOCK_JOB: &str =
    concat!("SELECT ", job_columns!(), ", now() AS now FROM jobs WHERE id = $1 AND name = $2 FOR UPDATE");

/// $1: states or NULL for all; $2: limit.
pub const SELECT_JOBS: &str =
    concat!("SELECT ", job_columns!(), " FROM jobs WHERE $1::text[] IS NULL OR state = ANY($1) ORDER BY id LIMIT $2");

pub const SELECT_DRIVES_OF_JOBS: &str =
    "SELECT job_id, drive_id, state, bytes FROM job_drives WHERE job_id = ANY($1) ORDER BY job_id, drive_id";

/// The most bytes one statement's JSON may hold: the largest `jsonb` value.
pub const MAX_JSONB_BYTES: i64 = 268_435_455;

pub const SELECT_TAKEN_NAMES: &str = "SELECT name FROM jobs WHERE name = ANY($1)";

/// $1: JSON array of job objects.
pub const INSERT_JOBS: &str = "INSERT INTO jobs (name, job_type, state, cancel_requested, cancel_requested_at, \
     hold_reason, created_at, updated_at, state_changed_at) \
     SELECT name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, created_at, updated_at, \
            state_changed_at \
     FROM jsonb_to_recordset($1::jsonb) AS x(name text, job_type text, state text, cancel_requested boolean, \
          cancel_requested_at timestamptz, hold_reason text, created_at timestamptz, updated_at timestamptz, \
          state_changed_at timestamptz)";

/// $1: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, d.drive_id, d.state, d.bytes \
     FROM jsonb_to_recordset($1::jsonb) AS d(job_name text, drive_id text, state text, bytes bigint) \
     JOIN jobs ON jobs.name = d.job_name";

pub const UPDATE_JOB: &str = "UPDATE jobs SET state = $2, cancel_requested = $3, cancel_requested_at = $4, \
     hold_reason = $5, updated_at = $6, state_changed_at = $7 WHERE id = $1";

macro_rules! audit_columns {
    () => {
        "id, run_id, job_name, job_type, policy, state, cancel_requested, created_at, \
         state_changed_at, deleted_at, deleted_by"
    };
}

/// Deletes one job by hand with its audit row, in one statement. $1: job
/// id; $2: deleted_by; $3: deleted_at (the transaction's clock).
pub const DELETE_JOB_AUDITED: &str = concat!(
    "WITH deleted AS (DELETE FROM jobs WHERE id = $1 \
       RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at) \
     INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
       created_at, state_changed_at, deleted_at, deleted_by) \
     SELECT NULL, id, name, job_type, 'manual', state, cancel_requested, created_at, state_changed_at, $3, $2 \
     FROM deleted RETURNING ",
    audit_columns!()
);

macro_rules! run_columns {
    () => {
        "id, trigger, status, started_at, finished_at, deleted_completed, deleted_closed, \
         deleted_creating_idle, stopped_by, error, host, pid, audit_rows_removed, runs_removed, pauses, paused_ms"
    };
}

/// The six rules' parts of a statement, in the order of `policy::RULES`
/// (completed, closed, creating_idle; each for Import, then Export): each is
/// `$rule!(state, type, age column, name, its parameters…)`, joined by `$sep`.
macro_rules! for_each_rule {
    ($rule:ident, $sep:literal, [$($p1:literal),*], [$($p2:literal),*], [$($p3:literal),*], [$($p4:literal),*], [$($p5:literal),*], [$($p6:literal),*]) => {
        concat!(
            $rule!("Completed", "Import", "state_changed_at", "completed_import", $($p1),*), $sep,
            $rule!("Completed", "Export", "state_changed_at", "completed_export", $($p2),*), $sep,
            $rule!("Closed", "Import", "state_changed_at", "closed_import", $($p3),*), $sep,
            $rule!("Closed", "Export", "state_changed_at", "closed_export", $($p4),*), $sep,
            $rule!("Creating", "Import", "updated_at", "creating_idle_import", $($p5),*), $sep,
            $rule!("Creating", "Export", "updated_at", "creating_idle_export", $($p6),*)
        )
    };
}

/// One rule's jobs: its state, type and hold, the predicate of its partial index.
macro_rules! rule_jobs {
    ($state:literal, $type:literal) => {
        concat!("FROM jobs WHERE state = '", $state, "' AND job_type = '", $type, "' AND hold_reason IS NULL")
    };
}

macro_rules! future_of {
    ($state:literal, $type:literal, $age:literal, $name:literal, $flag:literal) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($state, $type),
            " AND ",
            $flag,
            " AND ",
            $age,
            " > now() AND ",
            $age,
            " > clock.now)"
        )
    };
}

/// The jobs with an age timestamp after `clock.now`, the clock read while
/// the statement runs (`clock_timestamp()`, once), after its snapshot was
/// taken: every job the count can see was written before that, so a job
/// written while the statement was being planned is not counted as "in the
/// future". (`now()` is the moment the statement arrived, before planning,
/// which on a new session under load can take long enough for a client to
/// write a job in between.) The redundant `> now()`, which the planner can
/// estimate, keeps each count on its rule's index range.
/// $1–$6: whether each rule is enabled.
macro_rules! future_jobs {
    () => {
        concat!(for_each_rule!(future_of, " + ", ["$1"], ["$2"], ["$3"], ["$4"], ["$5"], ["$6"]), " AS future")
    };
}

/// A dry run's clock and `future_jobs!`.
pub const CLOCK_AND_SKEW: &str =
    concat!("SELECT clock.now, ", future_jobs!(), " FROM (SELECT clock_timestamp() AS now) AS clock");

/// Starts a run in one statement: marks the runs left `running` by dead
/// processes as abandoned, records the new run and takes its lock. A live
/// run holds the session advisory lock ($4, its id); a run whose lock can be
/// taken was left by a process whose connection is gone. The new run is
/// locked before its row becomes visible, so no other sweep sees it unlocked.
/// It also reads the clock and counts `future_jobs!` ($1–$6), in the same
/// round trip. $7: the lock class; $8–$11: trigger, host, pid, process_started.
pub const BEGIN_RUN: &str = concat!(
    "WITH clock AS (SELECT clock_timestamp() AS now), \
     abandoned AS (UPDATE retention_runs SET status = 'abandoned', finished_at = now() \
       WHERE status = 'running' AND pg_try_advisory_xact_lock($7::int4, (id % 2147483648)::int4) \
       RETURNING id, host, pid), \
     run AS (INSERT INTO retention_runs (trigger, status, started_at, host, pid, process_started) \
       VALUES ($8, 'running', now(), $9, $10, $11) RETURNING id) \
     SELECT run.id, pg_advisory_lock($7::int4, (run.id % 2147483648)::int4)::text AS locked, \
       (SELECT coalesce(jsonb_agg(abandoned), '[]')::text FROM abandoned) AS abandoned, clock.now, ",
    future_jobs!(),
    " FROM run, clock"
);

/// For the sessions that hold run leases and write only run records.
pub const RUN_RECORDS_WITHOUT_SYNC: (&str, &str) = ("synchronous_commit", "off");

/// Records how a run ended; for a run whose lease is lost.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = $2, finished_at = now(), deleted_completed = $3, \
     deleted_closed = $4, deleted_creating_idle = $5, stopped_by = $6, error = $7, audit_rows_removed = $8, \
     runs_removed = $9, pauses = $10, paused_ms = $11 WHERE id = $1";

/// Records how a run ended and releases its lock ($12), in one statement, on
/// the run's own connection. A sweep that finds the lock free meanwhile
/// waits for this row's lock, then sees the run finished.
pub const FINISH_RUN_AND_UNLOCK: &str = "WITH finished AS (UPDATE retention_runs SET status = $2, \
       finished_at = now(), deleted_completed = $3, deleted_closed = $4, deleted_creating_idle = $5, \
       stopped_by = $6, error = $7, audit_rows_removed = $8, runs_removed = $9, pauses = $10, paused_ms = $11 \
       WHERE id = $1) \
     SELECT pg_advisory_unlock($12::int4, ($1 % 2147483648)::int4) AS unlocked";

macro_rules! count_of {
    ($state:literal, $type:literal, $age:literal, $name:literal, $cutoff:literal) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($state, $type),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            ") AS ",
            $name,
            ", (SELECT min(",
            $age,
            ") ",
            rule_jobs!($state, $type),
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

/// $1–$6: each rule's cut-off (NULL = off).
pub const COUNT_ELIGIBLE: &str = concat!(
    "SELECT ",
    for_each_rule!(
        count_of,
        ", ",
        ["$1::timestamptz"],
        ["$2::timestamptz"],
        ["$3::timestamptz"],
        ["$4::timestamptz"],
        ["$5::timestamptz"],
        ["$6::timestamptz"]
    )
);

/// Taken with the singleton lock's class ($1) by the sweeping replica, on a connection of its own.
pub const TRY_LEAD: &str = "SELECT pg_try_advisory_lock($1::int4, 0) AS locked";

pub const END_LEAD: &str = "SELECT pg_advisory_unlock($1::int4, 0) AS unlocked";

/// Planner settings of the sessions that read what a sweep deletes, count
/// what is eligible and remove the audit trail's expired rows. Each
/// statement run on them is written for a plan with no sequential scan,
/// bitmap scan or sort; these keep it there whatever the statistics say,
/// generic plans alike (`docs/operations.md`, "One plan per statement").
pub const INDEX_ORDER_SETTINGS: [(&str, &str); 3] =
    [("enable_seqscan", "off"), ("enable_bitmapscan", "off"), ("enable_sort", "off")];

macro_rules! eligible_of {
    ($state:literal, $type:literal, $age:literal, $name:literal, $cutoff:literal, $after_at:literal,
     $after_id:literal) => {
        concat!(
            "(SELECT id, name, state, job_type, ",
            $age,
            " AS ts ",
            rule_jobs!($state, $type),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz AND (",
            $age,
            ", id) > (",
            $after_at,
            "::timestamptz, ",
            $after_id,
            "::bigint) ORDER BY ",
            $age,
            ", id LIMIT $19)"
        )
    };
}

/// The dry run's next jobs: each rule's partial index read from its cursor
/// up to its cut-off, at most $19 rows each; the store merges them in the
/// order the jobs became eligible. $1–$6: each rule's cut-off (NULL = off);
/// $7/$8 … $17/$18: each rule's cursor (timestamp, id); $19: limit.
pub const SELECT_ELIGIBLE: &str = for_each_rule!(
    eligible_of,
    " UNION ALL ",
    ["$1", "$7", "$8"],
    ["$2", "$9", "$10"],
    ["$3", "$11", "$12"],
    ["$4", "$13", "$14"],
    ["$5", "$15", "$16"],
    ["$6", "$17", "$18"]
);

macro_rules! due_of {
    ($state:literal, $type:literal, $age:literal, $name:literal, $cutoff:literal, $shift:literal) => {
        concat!(
            "(SELECT ",
            $age,
            " + ",
            $shift,
            "::bigint * interval '1 microsecond' AS ts, id ",
            rule_jobs!($state, $type),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz ORDER BY ",
            $age,
            ", id LIMIT $13)"
        )
    };
}

/// The $13-th eligible job over all rules in the order they became eligible
/// (age timestamp plus the rule's retention, then id), as that moment and
/// its id: the last job of a capped sweep's set. Each rule's index is read
/// in its order, at most $13 entries, and the six walks merged.
/// $1–$6: each rule's cut-off (NULL = off); $7–$12: its retention (µs).
pub const SELECT_NTH_ELIGIBLE: &str = concat!(
    "SELECT ts, id FROM (",
    for_each_rule!(
        due_of,
        " UNION ALL ",
        ["$1", "$7"],
        ["$2", "$8"],
        ["$3", "$9"],
        ["$4", "$10"],
        ["$5", "$11"],
        ["$6", "$12"]
    ),
    ") AS eligible ORDER BY ts, id OFFSET $13 - 1 LIMIT 1"
);

/// One rule's part of [`SELECT_ELIGIBLE_IDS`]: one range of its partial
/// index in its age order, with the age timestamps, from the cursor
/// (exclusive) to the bound (inclusive) and the cut-off, at most the limit.
/// Every column read is in the index.
macro_rules! eligible_ids_of {
    ($state:literal, $type:literal, $age:literal, $name:literal, $cutoff:literal, $after_at:literal,
     $after_id:literal, $through_at:literal, $through_id:literal, $limit:literal) => {
        concat!(
            "(SELECT '",
            $state,
            "'::text AS state, '",
            $type,
            "'::text AS job_type, ",
            $age,
            " AS ts, id ",
            rule_jobs!($state, $type),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz AND (",
            $age,
            ", id) > (",
            $after_at,
            "::timestamptz, ",
            $after_id,
            "::bigint) AND (",
            $age,
            ", id) <= (",
            $through_at,
            "::timestamptz, ",
            $through_id,
            "::bigint) ORDER BY ",
            $age,
            ", id LIMIT ",
            $limit,
            "::bigint)"
        )
    };
}

/// The next ids of every rule's eligible jobs, in one statement (an idle
/// sweep reads nothing else): per rule, in the order of `policy::RULES`,
/// its cut-off, cursor (age, id), bound (age, id) and limit, $1–$6, …,
/// $31–$36; a rule not read has no cut-off and limit 0.
pub const SELECT_ELIGIBLE_IDS: &str = for_each_rule!(
    eligible_ids_of,
    " UNION ALL ",
    ["$1", "$2", "$3", "$4", "$5", "$6"],
    ["$7", "$8", "$9", "$10", "$11", "$12"],
    ["$13", "$14", "$15", "$16", "$17", "$18"],
    ["$19", "$20", "$21", "$22", "$23", "$24"],
    ["$25", "$26", "$27", "$28", "$29", "$30"],
    ["$31", "$32", "$33", "$34", "$35", "$36"]
);

/// Deletes the listed jobs that are still eligible (drives by cascade) and
/// writes one audit row each: one statement, so all of it commits or none.
/// It runs on a session under [`INDEX_ORDER_SETTINGS`], where the one plan
/// left is the primary key's look-up of the listed ids, in id order, with
/// the re-check as a filter (a `CASE` on the row, which no partial index
/// predicate matches); without those settings a custom plan with no
/// statistics reads the whole table. A row changed meanwhile is re-checked
/// on its newest version before it goes; a row another sweep is deleting is
/// waited for (one batch at most, taken in the same id order, so two sweeps
/// never wait for each other) and then found gone. No claim, no sort: they
/// cost more than the wait they would spare (`docs/operations.md`). `ts` is
/// the job's age timestamp under its policy.
/// $1: job ids; $2–$7: each rule's cut-off (in the order of `policy::RULES`;
/// NULL = off); $8: run id; $9: deleted_by.
pub const DELETE_ELIGIBLE: &str = "WITH deleted AS (DELETE FROM jobs WHERE id = ANY($1::bigint[]) \
           AND hold_reason IS NULL \
           AND CASE state \
                 WHEN 'Completed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN $2::timestamptz ELSE $3 END \
                 WHEN 'Closed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN $4::timestamptz ELSE $5 END \
                 WHEN 'Creating' THEN updated_at <= CASE job_type WHEN 'Import' THEN $6::timestamptz ELSE $7 END \
                 ELSE false END \
       RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at, \
         CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END AS ts), \
     audited AS (INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, \
         cancel_requested, created_at, state_changed_at, deleted_at, deleted_by) \
       SELECT $8, id, name, job_type, \
         CASE state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END, \
         state, cancel_requested, created_at, state_changed_at, now(), $9 FROM deleted) \
     SELECT id, name, job_type, state, cancel_requested, created_at, state_changed_at, ts, now() AS deleted_at \
     FROM deleted";

// Read-only databases.

/// Whether the server is a standby in recovery, and whether this session is
/// read-only: asked on a new session, it shows the
/// `default_transaction_read_only` of the server, database and role now.
pub const READ_ONLY: &str =
    "SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') = 'on' AS read_only";

// --- The audit trail's own lifecycle and its export (src/trail.rs, src/export.rs) ---
//
// Each statement below runs under [`INDEX_ORDER_SETTINGS`].

/// Removes the next audit rows past `retention.audit`, in (deleted_at, id)
/// order from the cursor: rows of `jobs delete` (no run) and of runs that
/// finished at or before the cut-off; never those of a run still running or
/// finished after it. The run test is a scalar subquery, one primary-key
/// look-up per row, where a join or EXISTS could be planned as a hash join
/// over every run; the ids go to the delete as an array, so it stays on
/// primary-key look-ups. A row another sweep removes first is skipped.
/// $1: cut-off; $2/$3: cursor (deleted_at, id); $4: limit.
pub const REMOVE_AUDIT_ROWS: &str = "DELETE FROM retention_audit WHERE id = ANY(ARRAY( \
       SELECT a.id FROM retention_audit AS a \
       WHERE a.deleted_at <= $1 AND (a.deleted_at, a.id) > ($2::timestamptz, $3::bigint) \
         AND (a.run_id IS NULL OR (SELECT r.finished_at FROM retention_runs AS r \
               WHERE r.id = a.run_id AND r.status <> 'running') <= $1) \
       ORDER BY a.deleted_at, a.id LIMIT $4)) \
     RETURNING deleted_at AS at, id";

/// Removes the next run records past `retention.runs` that no audit row
/// names, from two walks merged in (finished_at, id) order (a merge of two
/// ordered index reads, no sort): finished runs up to $1 (past both limits,
/// so their audit rows are gone), and finished runs that deleted nothing
/// after $1 up to $2 (the second walk's cursor starts after $1), each along
/// its partial index. "No audit row names it" is a scalar subquery, one seek
/// into `retention_audit_by_run`, where NOT EXISTS could be planned as an
/// anti-join over the whole trail.
/// $3/$4, $5/$6: cursors (finished_at, id) of each walk; $7: limit.
pub const REMOVE_RUN_RECORDS: &str = "DELETE FROM retention_runs WHERE id = ANY(ARRAY( \
       SELECT id FROM ( \
         (SELECT r.id, r.finished_at FROM retention_runs AS r \
           WHERE r.status <> 'running' AND r.finished_at <= $1 \
             AND (r.finished_at, r.id) > ($3::timestamptz, $4::bigint) \
             AND (SELECT a.id FROM retention_audit AS a WHERE a.run_id = r.id LIMIT 1) IS NULL \
           ORDER BY r.finished_at, r.id LIMIT $7) \
         UNION ALL \
         (SELECT r.id, r.finished_at FROM retention_runs AS r \
           WHERE r.status <> 'running' AND r.deleted_completed = 0 AND r.deleted_closed = 0 \
             AND r.deleted_creating_idle = 0 AND r.finished_at <= $2 \
             AND (r.finished_at, r.id) > ($5::timestamptz, $6::bigint) \
             AND (SELECT a.id FROM retention_audit AS a WHERE a.run_id = r.id LIMIT 1) IS NULL \
           ORDER BY r.finished_at, r.id LIMIT $7) \
       ) AS picked ORDER BY finished_at, id LIMIT $7)) \
     RETURNING finished_at AS at, id";

/// The first and last audit id of the whole trail: the ends of the key.
pub const SELECT_AUDIT_ID_RANGE: &str = "SELECT min(id) AS first, max(id) AS last FROM retention_audit";

/// The first and last id of the audit rows deleted in [$1, $2), read from
/// `retention_audit_by_deleted_at`, which holds the ids. The ordered
/// subquery keeps the planner from walking the primary key from either end
/// until it meets the window, which could pass most of the trail.
pub const SELECT_AUDIT_ID_RANGE_BETWEEN: &str = "SELECT min(id) AS first, max(id) AS last FROM ( \
       SELECT id FROM retention_audit WHERE deleted_at >= $1 AND deleted_at < $2 ORDER BY deleted_at, id) AS in_window";

/// One page of `audit export`: ids above $1 up to $2, in id order, at most
/// $3: a range of the primary key, read in its order.
pub const SELECT_AUDIT_PAGE: &str =
    concat!("SELECT ", audit_columns!(), " FROM retention_audit WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3");

// ---------------------------------------------------------------------------
// The status pages and `forecast`. Each statement reads one index
// range, so a page costs the same whatever the size of the tables.
// ---------------------------------------------------------------------------

/// Jobs whose age crosses their rule's retention within the forecast's
/// window, counted per rule and day (labelled with the policy); held jobs
/// apart, those already past it on day -1. Days start at "now" and last 24
/// hours (not calendar days): day 0 is the next 24 hours, and a job whose
/// timestamp lies exactly `retention + k days` ago is counted on day k-1.
/// Each day of a rule is one range of its index, counted without a sort;
/// the held jobs, few, are grouped from their covering index (a difference
/// of two timestamps counts whole 24-hour periods as days).
/// $1–$6: each rule's cut-off (NULL = off); $7–$12: those cut-offs plus the
/// window; $13: days in the window.
macro_rules! day_counts {
    ($state:literal, $type:literal, $age:literal, $name:literal, $policy:literal, $cutoff:literal) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, false AS held, day, (SELECT count(*) ",
            rule_jobs!($state, $type),
            " AND ",
            $age,
            " > ",
            $cutoff,
            "::timestamptz + day * interval '24 hours' AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz + (day + 1) * interval '24 hours') AS jobs \
             FROM generate_series(0, $13::int - 1) AS day WHERE ",
            $cutoff,
            "::timestamptz IS NOT NULL"
        )
    };
}

pub const FORECAST: &str = concat!(
    for_each_rule!(
        day_counts,
        " UNION ALL ",
        ["completed", "$1"],
        ["completed", "$2"],
        ["closed", "$3"],
        ["closed", "$4"],
        ["creating_idle", "$5"],
        ["creating_idle", "$6"]
    ),
    " UNION ALL \
     SELECT policy, true, \
            CASE WHEN ts <= cutoff THEN -1 ELSE extract(day FROM ts - interval '1 microsecond' - cutoff)::int8 END AS day, \
            count(*) \
       FROM (SELECT CASE state WHEN 'Completed' THEN 'completed' WHEN 'Closed' THEN 'closed' ELSE 'creating_idle' END AS policy, \
                    CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END AS ts, \
                    CASE state || job_type WHEN 'CompletedImport' THEN $1::timestamptz WHEN 'CompletedExport' THEN $2::timestamptz \
                      WHEN 'ClosedImport' THEN $3::timestamptz WHEN 'ClosedExport' THEN $4::timestamptz \
                      WHEN 'CreatingImport' THEN $5::timestamptz ELSE $6::timestamptz END AS cutoff, \
                    CASE state || job_type WHEN 'CompletedImport' THEN $7::timestamptz WHEN 'CompletedExport' THEN $8::timestamptz \
                      WHEN 'ClosedImport' THEN $9::timestamptz WHEN 'ClosedExport' THEN $10::timestamptz \
                      WHEN 'CreatingImport' THEN $11::timestamptz ELSE $12::timestamptz END AS horizon \
               FROM jobs WHERE hold_reason IS NOT NULL AND state IN ('Completed', 'Closed', 'Creating')) held \
      WHERE ts <= horizon GROUP BY policy, 3"
);

pub const COUNT_HELD: &str = "SELECT count(*) AS held FROM jobs WHERE hold_reason IS NOT NULL";

/// $1/$2: the (created_at, id) the page starts after; $3: limit.
pub const SELECT_HELD: &str = "SELECT id, name, job_type, state, hold_reason, created_at, updated_at, state_changed_at \
     FROM jobs WHERE hold_reason IS NOT NULL AND (created_at, id) > ($1, $2) ORDER BY created_at, id LIMIT $3";

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
    " FROM retention_audit WHERE run_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);

/// One job name's rows, newest first. $1: name; $2: run id or NULL; $3: below this id; $4: limit.
pub const SELECT_AUDIT_OF_NAME: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit WHERE job_name COLLATE \"C\" = $1 AND id < $3 \
     AND ($2::bigint IS NULL OR run_id = $2) ORDER BY id DESC LIMIT $4"
);

/// Names after ($2, $3) and below $1 in byte order, in name then id order; $4: limit.
pub const SELECT_AUDIT_OF_NAME_RANGE: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM retention_audit WHERE (job_name COLLATE \"C\", id) > ($2, $3) AND job_name COLLATE \"C\" < $1 \
     ORDER BY job_name COLLATE \"C\", id LIMIT $4"
);

/// The primary's position and every walsender but those of base backups,
/// named `application_name@address` (`replica` is NULL when there is none).
pub const STANDBYS: &str = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8 AS primary_position, \
       CASE WHEN s.pid IS NOT NULL THEN coalesce(nullif(s.application_name, ''), 'standby') || '@' || \
         coalesce(host(s.client_addr), 'local') END AS replica, \
       (s.replay_lsn - '0/0'::pg_lsn)::int8 AS replay_position, \
       extract(epoch FROM s.replay_lag)::float8 AS replay_lag \
     FROM (SELECT 1) AS one LEFT JOIN pg_stat_replication AS s ON s.state IS DISTINCT FROM 'backup'";

/// A standby of `database.replicas`: whether it is one, and what it replayed.
pub const REPLAYED: &str =
    "SELECT pg_is_in_recovery() AS standby, (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8 AS replay_position";
