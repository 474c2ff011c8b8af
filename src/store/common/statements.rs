//! The statements the common part runs, one set per engine (in each engine's
//! `sql.rs`). A statement of one purpose takes the same parameters in the
//! same order on every engine, and returns columns of the same names; the
//! comments of each engine's statements say what they bind.

/// How `jobs delete` removes a job and writes its audit row, in one
/// transaction: ($1 job id, $2 deleted_by, $3 deleted_at); the audit row
/// comes back with the columns of an audit entry.
pub(crate) enum DeleteJob {
    /// One statement deletes and audits.
    AuditedDelete(&'static str),
    /// The audit row is written from the job's row, then the job is deleted.
    AuditThenDelete { audit: &'static str, delete: &'static str },
}

/// How many bytes one statement may carry, which bounds the chunks of
/// `create_jobs`.
pub(crate) enum StatementBytes {
    /// A limit of the engine's own.
    Fixed(i64),
    /// A statement whose column `bytes` reads the server's limit.
    Query(&'static str),
}

/// One engine's statements for the common part.
pub(crate) struct Statements {
    /// How many `_sqlx_migrations` tables there are (0 or 1).
    pub migrations_table: &'static str,
    pub migration_versions: &'static str,

    pub job_by_name: &'static str,
    /// The row of the job with this id ($1) if it still has this name ($2),
    /// locked for the rest of the transaction, by its primary key only.
    pub lock_job: &'static str,
    pub jobs: &'static str,
    pub drives_of_jobs: &'static str,
    pub statement_bytes: StatementBytes,
    pub taken_names: &'static str,
    pub insert_jobs: &'static str,
    pub insert_drives: &'static str,
    pub update_job: &'static str,
    pub delete_job: DeleteJob,

    pub count_eligible: &'static str,
    pub eligible: &'static str,
    pub nth_eligible: &'static str,
    pub forecast: &'static str,

    pub audit_before: &'static str,
    pub audit_of_run: &'static str,
    pub audit_of_name: &'static str,
    pub audit_of_name_range: &'static str,
    pub audit_id_range: &'static str,
    pub audit_id_range_between: &'static str,
    pub audit_page: &'static str,
    pub run: &'static str,
    pub runs_before: &'static str,

    pub count_held: &'static str,
    pub held: &'static str,
}
