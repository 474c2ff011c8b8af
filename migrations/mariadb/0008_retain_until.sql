-- A job's own retention (docs/configuration.md, "A job's own retention"): a
-- finished job with `retain_until` is kept until that moment, whatever its
-- policy says. MariaDB has no partial indexes: the generated columns give
-- such a job (not held) the policy `retain_until` and `retain_until` as
-- the timestamp it is due at, so it leaves its state's range of
-- jobs_by_retention for a range of its own, per job type in the order it
-- becomes eligible; the moment it entered its final state rides along in
-- the index for the check against retention.minimum. Run records count its
-- deletions; an audit row may name the policy `retain_until`. Each
-- statement may run again (0001_job_store.sql says why).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS retain_until DATETIME(6) AFTER state_changed_at;
ALTER TABLE jobs DROP INDEX IF EXISTS jobs_by_retention,
    MODIFY retention_policy ENUM('completed', 'closed', 'creating_idle', 'retain_until') AS (
        CASE WHEN hold_reason IS NULL THEN
            CASE WHEN state IN ('Completed', 'Closed') AND retain_until IS NOT NULL THEN 'retain_until'
                 WHEN state = 'Completed' THEN 'completed'
                 WHEN state = 'Closed' THEN 'closed'
                 WHEN state = 'Creating' THEN 'creating_idle' END
        END) VIRTUAL,
    MODIFY retention_age DATETIME(6) AS (
        CASE WHEN state = 'Creating' THEN updated_at
             WHEN state IN ('Completed', 'Closed') AND retain_until IS NOT NULL THEN retain_until
             ELSE state_changed_at END) VIRTUAL,
    ADD INDEX jobs_by_retention (retention_policy, job_type, retention_age, id, state_changed_at);

ALTER TABLE retention_runs ADD COLUMN IF NOT EXISTS deleted_retain_until BIGINT NOT NULL DEFAULT 0 AFTER deleted_creating_idle;
ALTER TABLE retention_runs DROP INDEX IF EXISTS retention_runs_empty_by_finish,
    MODIFY empty_finished_at DATETIME(6) AS (
        IF(status <> 'running' AND deleted_completed = 0 AND deleted_closed = 0 AND deleted_creating_idle = 0
           AND deleted_retain_until = 0, finished_at, NULL)) VIRTUAL,
    ADD INDEX retention_runs_empty_by_finish (empty_finished_at, id);

ALTER TABLE retention_audit DROP CONSTRAINT IF EXISTS retention_audit_policy_check,
    ADD CONSTRAINT retention_audit_policy_check
        CHECK (policy IN ('completed', 'closed', 'creating_idle', 'retain_until', 'manual'));
