-- The job store and the retention trail, PostgreSQL flavour.
-- Timestamps are timestamptz (microsecond precision, UTC on output).

CREATE TABLE jobs (
    -- An identity is never reused, so an audit row's job_id names one job forever.
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text        NOT NULL UNIQUE,
    job_type            text        NOT NULL CHECK (job_type IN ('Import', 'Export')),
    state               text        NOT NULL CHECK (state IN ('Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', 'Completed', 'Closed')),
    cancel_requested    boolean     NOT NULL DEFAULT false,
    cancel_requested_at timestamptz,
    hold_reason         text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    state_changed_at    timestamptz NOT NULL
);

-- One partial index per policy, in deletion order: "is anything eligible?" and
-- "the next batch" are a seek into the index, whatever the table's size.
CREATE INDEX jobs_completed_by_age ON jobs (state_changed_at, id) WHERE state = 'Completed' AND hold_reason IS NULL;
CREATE INDEX jobs_closed_by_age ON jobs (state_changed_at, id) WHERE state = 'Closed' AND hold_reason IS NULL;
CREATE INDEX jobs_creating_by_idle ON jobs (updated_at, id) WHERE state = 'Creating' AND hold_reason IS NULL;
CREATE INDEX jobs_by_state ON jobs (state, id);

CREATE TABLE job_drives (
    job_id   bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    drive_id text   NOT NULL,
    state    text   NOT NULL CHECK (state IN ('Specified', 'Received', 'NeverReceived', 'Transferring', 'Completed', 'CompletedMoreInfo', 'ShippedBack')),
    bytes    bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (job_id, drive_id)
);

CREATE TABLE retention_runs (
    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger               text        NOT NULL,
    status                text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'abandoned')),
    started_at            timestamptz NOT NULL,
    finished_at           timestamptz,
    deleted_completed     bigint      NOT NULL DEFAULT 0,
    deleted_closed        bigint      NOT NULL DEFAULT 0,
    deleted_creating_idle bigint      NOT NULL DEFAULT 0,
    stopped_by            text,
    error                 text,
    host                  text        NOT NULL,
    pid                   bigint      NOT NULL,
    process_started       bigint
);

CREATE INDEX retention_runs_running ON retention_runs (id) WHERE status = 'running';

CREATE TABLE retention_audit (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint      REFERENCES retention_runs (id),
    -- The deleted job's id: unique, so no job can leave two audit rows.
    job_id           bigint      NOT NULL UNIQUE,
    job_name         text        NOT NULL,
    job_type         text        NOT NULL,
    policy           text        NOT NULL CHECK (policy IN ('completed', 'closed', 'creating_idle', 'manual')),
    state            text        NOT NULL,
    cancel_requested boolean     NOT NULL,
    created_at       timestamptz NOT NULL,
    state_changed_at timestamptz NOT NULL,
    deleted_at       timestamptz NOT NULL,
    deleted_by       text        NOT NULL
);

CREATE INDEX retention_audit_by_job_name ON retention_audit (job_name, id);
CREATE INDEX retention_audit_by_run ON retention_audit (run_id, id);
