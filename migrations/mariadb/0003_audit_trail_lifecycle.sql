-- The audit trail's own lifecycle (retention.audit, retention.runs): what
-- each run removed of the trail, and the indexes its removals walk, so that
-- each batch is a seek whatever the size of the tables. Each statement may
-- run again (0001_job_store.sql says why).

ALTER TABLE retention_runs
    ADD COLUMN IF NOT EXISTS audit_rows_removed BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS runs_removed       BIGINT NOT NULL DEFAULT 0;

-- Audit rows in removal order (and the window of `audit export`).
CREATE INDEX IF NOT EXISTS retention_audit_by_deleted_at ON retention_audit (deleted_at, id);

-- Finished runs in removal order: a running run has no finished_at, so a
-- range of finished_at never reaches it.
CREATE INDEX IF NOT EXISTS retention_runs_by_finish ON retention_runs (finished_at, id);

-- Finished runs that deleted nothing, which may go before their audit
-- rows' limit because they have none: finished_at for them, NULL for every
-- other run (MariaDB has no partial indexes; NULL keys lie before any range).
ALTER TABLE retention_runs
    ADD COLUMN IF NOT EXISTS empty_finished_at DATETIME(6) AS (
        IF(status <> 'running' AND deleted_completed = 0 AND deleted_closed = 0 AND deleted_creating_idle = 0,
           finished_at, NULL)) VIRTUAL;
CREATE INDEX IF NOT EXISTS retention_runs_empty_by_finish ON retention_runs (empty_finished_at, id);
