-- A job's own retention (docs/configuration.md, "A job's own retention"): a
-- finished job with `retain_until` is kept until that moment, whatever its
-- policy says, so it leaves the policy indexes of the finished states and
-- has an index of its own, per job type in the order it becomes eligible;
-- the moment it entered its final state rides along (INCLUDE) for the
-- check against retention.minimum. Run records count its deletions; an
-- audit row may name the policy `retain_until`.
ALTER TABLE jobs ADD COLUMN retain_until timestamptz;

DROP INDEX jobs_completed_by_age;
DROP INDEX jobs_closed_by_age;
CREATE INDEX jobs_completed_by_age ON jobs (job_type, state_changed_at, id)
    WHERE state = 'Completed' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_closed_by_age ON jobs (job_type, state_changed_at, id)
    WHERE state = 'Closed' AND hold_reason IS NULL AND retain_until IS NULL;
CREATE INDEX jobs_retained_until ON jobs (job_type, retain_until, id) INCLUDE (state_changed_at)
    WHERE state IN ('Completed', 'Closed') AND hold_reason IS NULL AND retain_until IS NOT NULL;

ALTER TABLE retention_runs ADD COLUMN deleted_retain_until bigint NOT NULL DEFAULT 0;
DROP INDEX retention_runs_empty_by_finish;
CREATE INDEX retention_runs_empty_by_finish ON retention_runs (finished_at, id)
    WHERE status <> 'running' AND deleted_completed = 0 AND deleted_closed = 0 AND deleted_creating_idle = 0
      AND deleted_retain_until = 0;

ALTER TABLE retention_audit DROP CONSTRAINT retention_audit_policy_check,
    ADD CONSTRAINT retention_audit_policy_check
        CHECK (policy IN ('completed', 'closed', 'creating_idle', 'retain_until', 'manual'));
