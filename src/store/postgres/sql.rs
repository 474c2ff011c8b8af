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
         created_at, updated_at, state_changed_at, retain_until"
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
     hold_reason, created_at, updated_at, state_changed_at, retain_until) \
     SELECT name, job_type, state, cancel_requested, cancel_requested_at, hold_reason, created_at, updated_at, \
            state_changed_at, retain_until \
     FROM jsonb_to_recordset($1::jsonb) AS x(name text, job_type text, state text, cancel_requested boolean, \
          cancel_requested_at timestamptz, hold_reason text, created_at timestamptz, updated_at timestamptz, \
          state_changed_at timestamptz, retain_until timestamptz)";

/// $1: JSON array of `{job_name, drive_id, state, bytes}`.
pub const INSERT_DRIVES: &str = "INSERT INTO job_drives (job_id, drive_id, state, bytes) \
     SELECT jobs.id, d.drive_id, d.state, d.bytes \
     FROM jsonb_to_recordset($1::jsonb) AS d(job_name text, drive_id text, state text, bytes bigint) \
     JOIN jobs ON jobs.name = d.job_name";

pub const UPDATE_JOB: &str = "UPDATE jobs SET state = $2, cancel_requested = $3, cancel_requested_at = $4, \
     hold_reason = $5, updated_at = $6, state_changed_at = $7, retain_until = $8 WHERE id = $1";

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
         deleted_creating_idle, deleted_retain_until, stopped_by, error, host, pid, audit_rows_removed, runs_removed, \
         pauses, paused_ms"
    };
}

/// The eight rules' parts of a statement, in the order of `policy::RULES`
/// (completed, closed, creating_idle, retain_until; each for Import, then
/// Export): each is `$rule!(predicate, policy, type, age column, clock-skew
/// column, name, its parameters…, bound)`, joined by `$sep`. The predicate
/// is its partial index's besides type and hold; the bound, for a
/// `retain_until` rule, is the parameter of `Cutoffs::settled` its jobs'
/// `state_changed_at` must not pass (the index carries that column).
macro_rules! for_each_rule {
    ($rule:ident, $sep:literal, $settled:literal, [$($p1:literal),*], [$($p2:literal),*], [$($p3:literal),*],
     [$($p4:literal),*], [$($p5:literal),*], [$($p6:literal),*], [$($p7:literal),*], [$($p8:literal),*]) => {
        concat!(
            for_each_aged_rule!($rule, $sep, [$($p1),*], [$($p2),*], [$($p3),*], [$($p4),*], [$($p5),*], [$($p6),*]),
            $sep,
            $rule!("state IN ('Completed', 'Closed') AND retain_until IS NOT NULL", "retain_until", "Import",
                   "retain_until", "state_changed_at", "retain_until_import", $($p7,)*
                   concat!(" AND state_changed_at <= ", $settled, "::timestamptz")), $sep,
            $rule!("state IN ('Completed', 'Closed') AND retain_until IS NOT NULL", "retain_until", "Export",
                   "retain_until", "state_changed_at", "retain_until_export", $($p8,)*
                   concat!(" AND state_changed_at <= ", $settled, "::timestamptz"))
        )
    };
}

/// The rules of the policies the configuration sets, as [`for_each_rule`] lists them.
macro_rules! for_each_aged_rule {
    ($rule:ident, $sep:literal, [$($p1:literal),*], [$($p2:literal),*], [$($p3:literal),*], [$($p4:literal),*],
     [$($p5:literal),*], [$($p6:literal),*]) => {
        concat!(
            $rule!("state = 'Completed' AND retain_until IS NULL", "completed", "Import", "state_changed_at",
                   "state_changed_at", "completed_import", $($p1,)* ""), $sep,
            $rule!("state = 'Completed' AND retain_until IS NULL", "completed", "Export", "state_changed_at",
                   "state_changed_at", "completed_export", $($p2,)* ""), $sep,
            $rule!("state = 'Closed' AND retain_until IS NULL", "closed", "Import", "state_changed_at",
                   "state_changed_at", "closed_import", $($p3,)* ""), $sep,
            $rule!("state = 'Closed' AND retain_until IS NULL", "closed", "Export", "state_changed_at",
                   "state_changed_at", "closed_export", $($p4,)* ""), $sep,
            $rule!("state = 'Creating'", "creating_idle", "Import", "updated_at", "updated_at",
                   "creating_idle_import", $($p5,)* ""), $sep,
            $rule!("state = 'Creating'", "creating_idle", "Export", "updated_at", "updated_at",
                   "creating_idle_export", $($p6,)* "")
        )
    };
}

/// One rule's jobs: the predicate of its partial index, its type, hold and bound.
macro_rules! rule_jobs {
    ($predicate:literal, $type:literal, $settled:expr) => {
        concat!("FROM jobs WHERE ", $predicate, " AND job_type = '", $type, "' AND hold_reason IS NULL", $settled)
    };
}

/// `$due` bounds a `retain_until` rule's range to the jobs whose moment
/// has come (docs/lifecycle.md, "Clock skew").
macro_rules! future_of {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $flag:literal,
     $due:literal, $settled:expr) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($predicate, $type, ""),
            " AND ",
            $flag,
            " AND ",
            $due,
            $skew,
            " > now() AND ",
            $skew,
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
/// estimate, keeps each count on its rule's index range (a `retain_until`
/// rule's, up to `now()`: its jobs are counted by `state_changed_at` once
/// their moment has come). $1–$8: whether each rule is enabled.
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
                ["$7", "retain_until <= now() AND "],
                ["$8", "retain_until <= now() AND "]
            ),
            " AS future"
        )
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
/// It also reads the clock and counts `future_jobs!` ($1–$8), in the same
/// round trip. $9: the lock class; $10–$13: trigger, host, pid, process_started.
pub const BEGIN_RUN: &str = concat!(
    "WITH clock AS (SELECT clock_timestamp() AS now), \
     abandoned AS (UPDATE retention_runs SET status = 'abandoned', finished_at = now() \
       WHERE status = 'running' AND pg_try_advisory_xact_lock($9::int4, (id % 2147483648)::int4) \
       RETURNING id, host, pid), \
     run AS (INSERT INTO retention_runs (trigger, status, started_at, host, pid, process_started) \
       VALUES ($10, 'running', now(), $11, $12, $13) RETURNING id) \
     SELECT run.id, pg_advisory_lock($9::int4, (run.id % 2147483648)::int4)::text AS locked, \
       (SELECT coalesce(jsonb_agg(abandoned), '[]')::text FROM abandoned) AS abandoned, clock.now, ",
    future_jobs!(),
    " FROM run, clock"
);

/// For the sessions that hold run leases and write only run records.
pub const RUN_RECORDS_WITHOUT_SYNC: (&str, &str) = ("synchronous_commit", "off");

/// Records how a run ended; for a run whose lease is lost.
pub const FINISH_RUN: &str = "UPDATE retention_runs SET status = $2, finished_at = now(), deleted_completed = $3, \
     deleted_closed = $4, deleted_creating_idle = $5, deleted_retain_until = $6, stopped_by = $7, error = $8, \
     audit_rows_removed = $9, runs_removed = $10, pauses = $11, paused_ms = $12 WHERE id = $1";

/// Records how a run ended and releases its lock ($13), in one statement, on
/// the run's own connection. A sweep that finds the lock free meanwhile
/// waits for this row's lock, then sees the run finished.
pub const FINISH_RUN_AND_UNLOCK: &str = "WITH finished AS (UPDATE retention_runs SET status = $2, \
       finished_at = now(), deleted_completed = $3, deleted_closed = $4, deleted_creating_idle = $5, \
       deleted_retain_until = $6, stopped_by = $7, error = $8, audit_rows_removed = $9, runs_removed = $10, \
       pauses = $11, paused_ms = $12 WHERE id = $1) \
     SELECT pg_advisory_unlock($13::int4, ($1 % 2147483648)::int4) AS unlocked";

macro_rules! count_of {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $cutoff:literal,
     $settled:expr) => {
        concat!(
            "(SELECT count(*) ",
            rule_jobs!($predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            ") AS ",
            $name,
            ", (SELECT min(",
            $age,
            ") ",
            rule_jobs!($predicate, $type, $settled),
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

/// $1–$8: each rule's cut-off (NULL = off); $9: `Cutoffs::settled`.
pub const COUNT_ELIGIBLE: &str = concat!(
    "SELECT ",
    for_each_rule!(
        count_of,
        ", ",
        "$9",
        ["$1::timestamptz"],
        ["$2::timestamptz"],
        ["$3::timestamptz"],
        ["$4::timestamptz"],
        ["$5::timestamptz"],
        ["$6::timestamptz"],
        ["$7::timestamptz"],
        ["$8::timestamptz"]
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
/// With one plan left, planning it again for each execution buys nothing:
/// a prepared statement keeps its generic plan from the first.
pub const INDEX_ORDER_SETTINGS: [(&str, &str); 4] = [
    ("enable_seqscan", "off"),
    ("enable_bitmapscan", "off"),
    ("enable_sort", "off"),
    ("plan_cache_mode", "force_generic_plan"),
];

macro_rules! eligible_of {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $cutoff:literal,
     $after_at:literal, $after_id:literal, $settled:expr) => {
        concat!(
            "(SELECT id, name, '",
            $policy,
            "'::text AS policy, job_type, ",
            $age,
            " AS ts ",
            rule_jobs!($predicate, $type, $settled),
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
            ", id LIMIT $26)"
        )
    };
}

/// The dry run's next jobs: each rule's partial index read from its cursor
/// up to its cut-off, at most $26 rows each; the store merges them in the
/// order the jobs became eligible. $1–$8: each rule's cut-off (NULL = off);
/// $9: `Cutoffs::settled`; $10/$11 … $24/$25: each rule's cursor (timestamp, id); $26: limit.
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
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $cutoff:literal,
     $shift:literal, $settled:expr) => {
        concat!(
            "(SELECT ",
            $age,
            " + ",
            $shift,
            "::bigint * interval '1 microsecond' AS ts, id ",
            rule_jobs!($predicate, $type, $settled),
            " AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz ORDER BY ",
            $age,
            ", id LIMIT $18)"
        )
    };
}

/// The $18-th eligible job over all rules in the order they became eligible
/// (age timestamp plus the rule's retention, then id), as that moment and
/// its id: the last job of a capped sweep's set. Each rule's index is read
/// in its order, at most $18 entries, and the eight walks merged.
/// $1–$8: each rule's cut-off (NULL = off); $9: `Cutoffs::settled`;
/// $10–$17: each rule's retention (µs).
pub const SELECT_NTH_ELIGIBLE: &str = concat!(
    "SELECT ts, id FROM (",
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
    ") AS eligible ORDER BY ts, id OFFSET $18 - 1 LIMIT 1"
);

/// One rule's part of [`SELECT_ELIGIBLE_IDS`]: one range of its partial
/// index in its age order, with the age timestamps, from the cursor
/// (exclusive) to the bound (inclusive) and the cut-off, at most the limit.
/// Every column read is in the index.
macro_rules! eligible_ids_of {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $cutoff:expr,
     $after_at:literal, $after_id:literal, $through_at:expr, $through_id:literal, $limit:literal,
     $settled:expr) => {
        concat!(
            "(SELECT '",
            $policy,
            "'::text AS policy, '",
            $type,
            "'::text AS job_type, ",
            $age,
            " AS ts, id ",
            rule_jobs!($predicate, $type, $settled),
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

/// One rule's row of [`SELECT_ELIGIBLE_IDS`]: its range of
/// [`eligible_ids_of`] as two arrays of one order, the age timestamps (`ts`)
/// and the ids (`id`), both NULL when the range is empty. An array is sent
/// and decoded as one value, where rows are one by one, each column looked
/// up by name (docs/operations.md, "Where a PostgreSQL purge's time goes").
macro_rules! eligible_id_arrays_of {
    ($predicate:literal, $policy:literal, $type:literal, $($range:tt)*) => {
        concat!(
            "(SELECT '",
            $policy,
            "'::text AS policy, '",
            $type,
            "'::text AS job_type, array_agg(ts) AS ts, array_agg(id) AS id FROM ",
            eligible_ids_of!($predicate, $policy, $type, $($range)*),
            " AS range_of_rule)"
        )
    };
}

/// The next ids of every rule's eligible jobs, in one statement, a row per
/// rule ([`eligible_id_arrays_of`]): per rule, in the order of
/// `policy::RULES`, its cut-off, cursor (age, id), bound (age, id) and
/// limit, $1–$6, …, $43–$48; a rule not read has no cut-off and limit 0.
/// $49: `Cutoffs::settled`.
pub const SELECT_ELIGIBLE_IDS: &str = for_each_rule!(
    eligible_id_arrays_of,
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

/// A cut-off at `clock.now` from a retention in microseconds (`$micros`;
/// NULL: off), as `policy::cutoff` computes it: never before year 1.
macro_rules! cutoff_at {
    ($micros:literal) => {
        concat!(
            "CASE WHEN ",
            $micros,
            "::int8 >= (extract(epoch FROM clock.now) + 62135596800) * 1000000 \
             THEN '0001-01-01 00:00:00+00'::timestamptz ELSE clock.now - ",
            $micros,
            "::int8 * interval '1 microsecond' END"
        )
    };
}

/// One rule's cut-off in [`START_SWEEP`], as a column named for the rule.
macro_rules! cutoff_column {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $micros:literal,
     $settled:expr) => {
        concat!(cutoff_at!($micros), " AS ", $name)
    };
}

/// One rule's part of [`START_SWEEP`]: its range of
/// [`eligible_ids_of`] from its oldest job to its cut-off, at most $18.
macro_rules! first_ids_of {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal,
     $settled:expr) => {
        eligible_ids_of!(
            $predicate,
            $policy,
            $type,
            $age,
            $skew,
            $name,
            concat!("(SELECT ", $name, " FROM cut)"),
            "'0001-01-01 00:00:00+00'",
            "(-9223372036854775807 - 1)",
            concat!("(SELECT ", $name, " FROM cut)"),
            "9223372036854775807",
            "$18",
            $settled
        )
    };
}

/// The reads of [`START_SWEEP`]: the clock (`clock`), each rule's cut-off
/// at it (`cut`: a column named for the rule, and `settled`), and the first
/// ids of each rule as [`SELECT_ELIGIBLE_IDS`] reads them from the oldest
/// (`ids`). $1–$8: the `future_jobs!` flags; $9–$16: each rule's retention
/// in microseconds (NULL: off); $17: `retention.minimum`'s; $18: the ids per
/// rule.
macro_rules! first_read {
    () => {
        concat!(
            "WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now), cut AS MATERIALIZED (SELECT ",
            for_each_rule!(
                cutoff_column,
                ", ",
                "",
                ["$9"],
                ["$10"],
                ["$11"],
                ["$12"],
                ["$13"],
                ["$14"],
                ["$15"],
                ["$16"]
            ),
            ", ",
            cutoff_at!("$17"),
            " AS settled FROM clock), ids AS MATERIALIZED (",
            for_each_rule!(first_ids_of, " UNION ALL ", "(SELECT settled FROM cut)", [], [], [], [], [], [], [], []),
            ")"
        )
    };
}

/// A sweep's start in one statement: the clock and `future_jobs!`, as
/// [`CLOCK_AND_SKEW`] reads them, the cut-offs and the first ids
/// ([`first_read`]: one row per id, or one row with a NULL id when none is
/// eligible), and, when there is none, what [`BEGIN_RUN`] does for a run
/// that ends at once: the runs whose lock is free marked abandoned, and the
/// run recorded begun at the clock and finished (`succeeded`, stopped by
/// `done`), holding no lock, as `idle_run`; no sweep ever sees it running.
/// $19: the lock class; $20–$23: trigger, host, pid, process_started.
pub const START_SWEEP: &str = concat!(
    first_read!(),
    ", abandoned AS (UPDATE retention_runs SET status = 'abandoned', finished_at = now() \
       WHERE status = 'running' AND NOT EXISTS (SELECT FROM ids) \
         AND pg_try_advisory_xact_lock($19::int4, (id % 2147483648)::int4) \
       RETURNING id, host, pid), \
     run AS (INSERT INTO retention_runs (trigger, status, started_at, finished_at, stopped_by, host, pid, \
       process_started) SELECT $20, 'succeeded', clock.now, clock_timestamp(), 'done', $21, $22, $23 \
       FROM clock WHERE NOT EXISTS (SELECT FROM ids) RETURNING id) \
     SELECT clock.now, ",
    future_jobs!(),
    ", cut.*, (SELECT id FROM run) AS idle_run, (SELECT coalesce(jsonb_agg(abandoned), '[]')::text FROM abandoned) \
       AS abandoned, ids.policy, ids.job_type, ids.ts, ids.id FROM clock CROSS JOIN cut LEFT JOIN ids ON true"
);

/// A job's policy: `retain_until` for a finished job with a moment of its
/// own, else its state's.
macro_rules! policy_of_row {
    () => {
        "CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN 'retain_until' \
              WHEN state = 'Completed' THEN 'completed' WHEN state = 'Closed' THEN 'closed' ELSE 'creating_idle' END"
    };
}

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
/// $1: job ids; $2–$9: each rule's cut-off (in the order of `policy::RULES`;
/// NULL = off); $10: `Cutoffs::settled`; $11: run id; $12: deleted_by.
pub const DELETE_ELIGIBLE: &str = concat!(
    "WITH deleted AS (DELETE FROM jobs WHERE id = ANY($1::bigint[]) \
           AND hold_reason IS NULL \
           AND CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN \
                      retain_until <= CASE job_type WHEN 'Import' THEN $8::timestamptz ELSE $9 END \
                      AND state_changed_at <= $10::timestamptz \
                    WHEN state = 'Completed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN $2::timestamptz ELSE $3 END \
                    WHEN state = 'Closed' THEN state_changed_at <= CASE job_type WHEN 'Import' THEN $4::timestamptz ELSE $5 END \
                    WHEN state = 'Creating' THEN updated_at <= CASE job_type WHEN 'Import' THEN $6::timestamptz ELSE $7 END \
                    ELSE false END \
       RETURNING id, name, job_type, state, cancel_requested, created_at, state_changed_at, ",
    policy_of_row!(),
    " AS policy, CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN retain_until \
           WHEN state = 'Creating' THEN updated_at ELSE state_changed_at END AS ts), \
     audited AS (INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, \
         cancel_requested, created_at, state_changed_at, deleted_at, deleted_by) \
       SELECT $11, id, name, job_type, policy, state, cancel_requested, created_at, state_changed_at, now(), $12 \
       FROM deleted) \
     SELECT id, name, job_type, state, cancel_requested, created_at, state_changed_at, policy, ts, \
       now() AS deleted_at FROM deleted"
);

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
             AND r.deleted_creating_idle = 0 AND r.deleted_retain_until = 0 AND r.finished_at <= $2 \
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
/// Each day of a rule is one range of its index, counted without a sort. A
/// job with `retain_until` is due at the later of that moment and its
/// final state's start plus `retention.minimum` (now minus the settled
/// cut-off); its rule's range up to the horizon is grouped by day. The held
/// jobs, few, are grouped from their covering index (a difference of two
/// timestamps counts whole 24-hour periods as days).
/// $1–$8: each rule's cut-off (NULL = off); $9: `Cutoffs::settled`;
/// $10–$17: those plus the window; $18: days in the window.
macro_rules! day_counts {
    ($predicate:literal, $policy:literal, $type:literal, $age:literal, $skew:literal, $name:literal, $cutoff:literal,
     $settled:expr) => {
        concat!(
            "SELECT '",
            $policy,
            "' AS policy, false AS held, day, (SELECT count(*) ",
            rule_jobs!($predicate, $type, $settled),
            " AND ",
            $age,
            " > ",
            $cutoff,
            "::timestamptz + day * interval '24 hours' AND ",
            $age,
            " <= ",
            $cutoff,
            "::timestamptz + (day + 1) * interval '24 hours') AS jobs \
             FROM generate_series(0, $18::int - 1) AS day WHERE ",
            $cutoff,
            "::timestamptz IS NOT NULL"
        )
    };
}

macro_rules! retained_day_counts {
    ($type:literal, $now:literal, $horizon:literal) => {
        concat!(
            "SELECT 'retain_until', false, extract(day FROM due - interval '1 microsecond' - ",
            $now,
            "::timestamptz)::int8, count(*) FROM (SELECT greatest(retain_until, state_changed_at + (",
            $now,
            "::timestamptz - $9::timestamptz)) AS due FROM jobs \
             WHERE state IN ('Completed', 'Closed') AND retain_until IS NOT NULL AND job_type = '",
            $type,
            "' AND hold_reason IS NULL AND retain_until <= ",
            $horizon,
            "::timestamptz) AS retained WHERE due > ",
            $now,
            "::timestamptz AND due <= ",
            $horizon,
            "::timestamptz GROUP BY 3"
        )
    };
}

pub const FORECAST: &str = concat!(
    for_each_aged_rule!(day_counts, " UNION ALL ", ["$1"], ["$2"], ["$3"], ["$4"], ["$5"], ["$6"]),
    " UNION ALL ",
    retained_day_counts!("Import", "$7", "$16"),
    " UNION ALL ",
    retained_day_counts!("Export", "$8", "$17"),
    " UNION ALL \
     SELECT policy, true, \
            CASE WHEN ts <= cutoff THEN -1 ELSE extract(day FROM ts - interval '1 microsecond' - cutoff)::int8 END AS day, \
            count(*) \
       FROM (SELECT ",
    policy_of_row!(),
    " AS policy, \
                    CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') \
                           THEN greatest(retain_until, state_changed_at + ($7::timestamptz - $9::timestamptz)) \
                         WHEN state = 'Creating' THEN updated_at ELSE state_changed_at END AS ts, \
                    CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN $7::timestamptz \
                      ELSE CASE state || job_type WHEN 'CompletedImport' THEN $1::timestamptz WHEN 'CompletedExport' THEN $2::timestamptz \
                      WHEN 'ClosedImport' THEN $3::timestamptz WHEN 'ClosedExport' THEN $4::timestamptz \
                      WHEN 'CreatingImport' THEN $5::timestamptz ELSE $6::timestamptz END END AS cutoff, \
                    CASE WHEN retain_until IS NOT NULL AND state IN ('Completed', 'Closed') THEN $16::timestamptz \
                      ELSE CASE state || job_type WHEN 'CompletedImport' THEN $10::timestamptz WHEN 'CompletedExport' THEN $11::timestamptz \
                      WHEN 'ClosedImport' THEN $12::timestamptz WHEN 'ClosedExport' THEN $13::timestamptz \
                      WHEN 'CreatingImport' THEN $14::timestamptz ELSE $15::timestamptz END END AS horizon \
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
