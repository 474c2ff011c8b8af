-- The job store and the retention trail, SQLite flavour.
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC: one format,
-- compared as numbers, the same precision as PostgreSQL's timestamptz.

CREATE TABLE jobs (
    -- AUTOINCREMENT: an id is never reused, so an audit row's job_id names one job forever.
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    job_type            TEXT    NOT NULL CHECK (job_type IN ('Import', 'Export')),
    state               TEXT    NOT NULL CHECK (state IN ('Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', 'Completed', 'Closed')),
    cancel_requested    INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    cancel_requested_at INTEGER,
    hold_reason         TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    state_changed_at    INTEGER NOT NULL
);

-- One partial index per policy, in deletion order: "is anything eligible?" and
-- "the next batch" are a seek into the index, whatever the table's size.
CREATE INDEX jobs_completed_by_age ON jobs (state_changed_at, id) WHERE state = 'Completed' AND hold_reason IS NULL;
CREATE INDEX jobs_closed_by_age ON jobs (state_changed_at, id) WHERE state = 'Closed' AND hold_reason IS NULL;
CREATE INDEX jobs_creating_by_idle ON jobs (updated_at, id) WHERE state = 'Creating' AND hold_reason IS NULL;
CREATE INDEX jobs_by_state ON jobs (state, id);

CREATE TABLE job_drives (
    job_id   INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    drive_id TEXT    NOT NULL,
    state    TEXT    NOT NULL CHECK (state IN ('Specified', 'Received', 'NeverReceived', 'Transferring', 'Completed', 'CompletedMoreInfo', 'ShippedBack')),
    bytes    INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (job_id, drive_id)
) WITHOUT ROWID;

CREATE TABLE retention_runs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger               TEXT    NOT NULL,
    status                TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'abandoned')),
    started_at            INTEGER NOT NULL,
    finished_at           INTEGER,
    deleted_completed     INTEGER NOT NULL DEFAULT 0,
    deleted_closed        INTEGER NOT NULL DEFAULT 0,
    deleted_creating_idle INTEGER NOT NULL DEFAULT 0,
    stopped_by            TEXT,
    error                 TEXT,
    host                  TEXT    NOT NULL,
    pid                   INTEGER NOT NULL,
    process_started       INTEGER
);

CREATE INDEX retention_runs_running ON retention_runs (id) WHERE status = 'running';

CREATE TABLE retention_audit (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER REFERENCES retention_runs (id),
    -- The deleted job's id: unique, so no job can leave two audit rows.
    job_id           INTEGER NOT NULL UNIQUE,
    job_name         TEXT    NOT NULL,
    job_type         TEXT    NOT NULL,
    policy           TEXT    NOT NULL CHECK (policy IN ('completed', 'closed', 'creating_idle', 'manual')),
    state            TEXT    NOT NULL,
    cancel_requested INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    deleted_at       INTEGER NOT NULL,
    deleted_by       TEXT    NOT NULL
);

CREATE INDEX retention_audit_by_job_name ON retention_audit (job_name, id);
CREATE INDEX retention_audit_by_run ON retention_audit (run_id, id);
