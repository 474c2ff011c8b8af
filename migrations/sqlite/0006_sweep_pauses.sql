-- The pauses of a run for its replicas (retention.max_replica_lag): how many, and how long in all.
ALTER TABLE retention_runs ADD COLUMN pauses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE retention_runs ADD COLUMN paused_ms INTEGER NOT NULL DEFAULT 0;
