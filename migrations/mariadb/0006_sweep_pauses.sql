-- The pauses of a run for its replicas (retention.max_replica_lag): how
-- many, and how long in all. It may run again (0001_job_store.sql says why).
ALTER TABLE retention_runs
    ADD COLUMN IF NOT EXISTS pauses    BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS paused_ms BIGINT NOT NULL DEFAULT 0;
