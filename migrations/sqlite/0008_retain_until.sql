-- A job's own retention (docs/configuration.md, "A job's own retention"): a
-- finished job with `retain_until` is kept until that moment, whatever its
-- policy says, so it leaves the policy indexes of the finished states and
-- has an index of its own per job type, in the order it becomes eligible;
-- the moment it entered its final state rides along for the check against
-- retention.minimum. Run records count its deletions; an audit row names
-- the policy `retain_until`, which the audit table's CHECK must allow:
-- SQLite cannot change a CHECK, so the table is copied (ids and the
-- AUTOINCREMENT counter kept: an audit id is never reused).
ALTER TABLE jobs ADD COLUMN retain_until INTEGER;

DROP INDEX jobs_completed_import_by_age;
DROP INDEX jobs_completed_export_by_age;
DROP INDEX jobs_closed_import_by_age;
DROP INDEX jobs_closed_export_by_age;
CREATE INDEX jobs_completed_import_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Completed' AND job_type = 'Import' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_completed_export_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Completed' AND job_type = 'Export' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_closed_import_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Closed' AND job_type = 'Import' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_closed_export_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Closed' AND job_type = 'Export' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_retained_import_until ON jobs (retain_until, id, state_changed_at)
    WHERE state IN ('Completed', 'Closed') AND job_type = 'Import' AND hold_reason IS NULL AND retain_until IS NOT NULL;
CREATE INDEX jobs_retained_export_until ON jobs (retain_until, id, state_changed_at)
    WHERE state IN ('Completed', 'Closed') AND job_type = 'Export' AND hold_reason IS NULL AND retain_until IS NOT NULL;

ALTER TABLE retention_runs ADD COLUMN deleted_retain_until INTEGER NOT NULL DEFAULT 0;
DROP INDEX retention_runs_empty_by_finish;
CREATE INDEX retention_runs_empty_by_finish ON retention_runs (finished_at, id)
    WHERE status <> 'running' AND deleted_completed = 0 AND deleted_closed = 0 AND deleted_creating_idle = 0
      AND deleted_retain_until = 0;

CREATE TABLE retention_audit_0008 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER REFERENCES retention_runs (id),
    job_id           INTEGER NOT NULL UNIQUE,
    job_name         TEXT    NOT NULL,
    job_type         TEXT    NOT NULL,
    policy           TEXT    NOT NULL CHECK (policy IN ('completed', 'closed', 'creating_idle', 'retain_until', 'manual')),
    state            TEXT    NOT NULL,
    cancel_requested INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    deleted_at       INTEGER NOT NULL,
    deleted_by       TEXT    NOT NULL
);
INSERT INTO retention_audit_0008 (id, run_id, job_id, job_name, job_type, policy, state, cancel_requested, created_at,
    state_changed_at, deleted_at, deleted_by)
SELECT id, run_id, job_id, job_name, job_type, policy, state, cancel_requested, created_at, state_changed_at,
    deleted_at, deleted_by FROM retention_audit ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'retention_audit_0008';
INSERT INTO sqlite_sequence (name, seq) SELECT 'retention_audit_0008', seq FROM sqlite_sequence WHERE name = 'retention_audit';
DROP TABLE retention_audit;
ALTER TABLE retention_audit_0008 RENAME TO retention_audit;
CREATE INDEX retention_audit_by_job_name ON retention_audit (job_name, id);
CREATE INDEX retention_audit_by_run ON retention_audit (run_id, id);
CREATE INDEX retention_audit_by_deleted_at ON retention_audit (deleted_at, id);
