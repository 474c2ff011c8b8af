-- The audit trail's own lifecycle (retention.audit, retention.runs): what
-- each run removed of the trail, and the indexes its removals walk, so that
-- each batch is a seek whatever the size of the tables.

ALTER TABLE retention_runs
    ADD COLUMN audit_rows_removed bigint NOT NULL DEFAULT 0,
    ADD COLUMN runs_removed       bigint NOT NULL DEFAULT 0;

-- Audit rows in removal order (and the window of `audit export`).
CREATE INDEX retention_audit_by_deleted_at ON retention_audit (deleted_at, id);

-- Finished runs in removal order; and those of them that deleted nothing,
-- which may go before their audit rows' limit because they have none.
CREATE INDEX retention_runs_by_finish ON retention_runs (finished_at, id) WHERE status <> 'running';
CREATE INDEX retention_runs_empty_by_finish ON retention_runs (finished_at, id)
    WHERE status <> 'running' AND deleted_completed = 0 AND deleted_closed = 0 AND deleted_creating_idle = 0;
