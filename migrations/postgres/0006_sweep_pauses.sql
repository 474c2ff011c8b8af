-- The pauses of a run for its replicas (retention.max_replica_lag): how many, and how long in all.
ALTER TABLE retention_runs ADD COLUMN pauses bigint NOT NULL DEFAULT 0, ADD COLUMN paused_ms bigint NOT NULL DEFAULT 0;
