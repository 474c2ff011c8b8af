-- The job store and the retention trail, MariaDB flavour (10.6 or newer).
--
-- DDL commits on its own in MariaDB, so a migration cannot be undone as a
-- whole: every statement here may run again after a `migrate` killed
-- anywhere (IF NOT EXISTS forms; each table is created with its indexes in
-- one statement), and a migration's row in _sqlx_migrations is written
-- after its last statement (docs/schema.md).
--
-- Timestamps are DATETIME(6), always UTC: no time zone conversion on the
-- way in or out, years 1000-9999 (TIMESTAMP ends in 2038), microseconds as
-- PostgreSQL keeps them. Text is utf8mb4 in utf8mb4_nopad_bin: names
-- compare byte for byte, trailing spaces included, as on PostgreSQL
-- (COLLATE "C") and SQLite.

CREATE TABLE IF NOT EXISTS jobs (
    -- AUTO_INCREMENT values are never reused, across restarts too: an audit
    -- row's job_id names one job forever.
    id                  BIGINT       NOT NULL AUTO_INCREMENT,
    name                VARCHAR(64)  NOT NULL,
    job_type            VARCHAR(16)  NOT NULL,
    state               VARCHAR(16)  NOT NULL,
    cancel_requested    BOOLEAN      NOT NULL DEFAULT FALSE,
    cancel_requested_at DATETIME(6),
    hold_reason         VARCHAR(500),
    created_at          DATETIME(6)  NOT NULL,
    updated_at          DATETIME(6)  NOT NULL,
    state_changed_at    DATETIME(6)  NOT NULL,
    -- MariaDB has no partial indexes. These two generated columns give each
    -- job the policy that may delete it and the timestamp it ages from
    -- under it; a job no policy can delete (held, or in another state) has
    -- no policy (NULL). VIRTUAL: computed, stored only in the index.
    retention_policy    ENUM('completed', 'closed', 'creating_idle') AS (
                            CASE WHEN hold_reason IS NULL THEN
                                CASE state WHEN 'Completed' THEN 'completed'
                                           WHEN 'Closed' THEN 'closed'
                                           WHEN 'Creating' THEN 'creating_idle' END
                            END) VIRTUAL,
    retention_age       DATETIME(6) AS (
                            CASE state WHEN 'Creating' THEN updated_at ELSE state_changed_at END) VIRTUAL,
    PRIMARY KEY (id),
    UNIQUE KEY jobs_name_unique (name),
    -- Each policy's jobs in deletion order (age, then id): "is anything
    -- eligible?" and "the next ids" are a seek to the policy's first entry
    -- and a read along it up to the cut-off, whatever the table's size. The
    -- entries without a policy (NULL) lie together before every policy's,
    -- so no policy's range reaches a held job.
    KEY jobs_by_retention (retention_policy, retention_age, id),
    KEY jobs_by_state (state, id),
    CONSTRAINT jobs_job_type_check CHECK (job_type IN ('Import', 'Export')),
    CONSTRAINT jobs_state_check CHECK (state IN ('Creating', 'Shipping', 'Received', 'Transferring', 'Packaging', 'Completed', 'Closed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS job_drives (
    job_id   BIGINT      NOT NULL,
    drive_id VARCHAR(64) NOT NULL,
    state    VARCHAR(32) NOT NULL,
    bytes    BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, drive_id),
    -- A job's drives go in the statement that deletes the job.
    CONSTRAINT job_drives_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE,
    CONSTRAINT job_drives_state_check CHECK (state IN ('Specified', 'Received', 'NeverReceived', 'Transferring', 'Completed', 'CompletedMoreInfo', 'ShippedBack')),
    CONSTRAINT job_drives_bytes_check CHECK (bytes >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS retention_runs (
    id                    BIGINT      NOT NULL AUTO_INCREMENT,
    `trigger`             VARCHAR(16) NOT NULL,
    status                VARCHAR(16) NOT NULL,
    started_at            DATETIME(6) NOT NULL,
    finished_at           DATETIME(6),
    deleted_completed     BIGINT      NOT NULL DEFAULT 0,
    deleted_closed        BIGINT      NOT NULL DEFAULT 0,
    deleted_creating_idle BIGINT      NOT NULL DEFAULT 0,
    stopped_by            VARCHAR(16),
    error                 TEXT,
    host                  TEXT        NOT NULL,
    pid                   BIGINT      NOT NULL,
    process_started       BIGINT,
    PRIMARY KEY (id),
    -- The runs left `running`: one range of it.
    KEY retention_runs_by_status (status, id),
    CONSTRAINT retention_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'abandoned'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;

CREATE TABLE IF NOT EXISTS retention_audit (
    id               BIGINT      NOT NULL AUTO_INCREMENT,
    run_id           BIGINT,
    -- The deleted job's id: unique, so no job can leave two audit rows.
    job_id           BIGINT      NOT NULL,
    job_name         VARCHAR(64) NOT NULL,
    job_type         VARCHAR(16) NOT NULL,
    policy           VARCHAR(16) NOT NULL,
    state            VARCHAR(16) NOT NULL,
    cancel_requested BOOLEAN     NOT NULL,
    created_at       DATETIME(6) NOT NULL,
    state_changed_at DATETIME(6) NOT NULL,
    deleted_at       DATETIME(6) NOT NULL,
    deleted_by       TEXT        NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY retention_audit_job_id_unique (job_id),
    -- Names in byte order (the table's collation): `audit list --job` and
    -- the audit search by name prefix read one range of it.
    KEY retention_audit_by_job_name (job_name, id),
    -- A run's rows; and the index the foreign key below checks with.
    KEY retention_audit_by_run (run_id, id),
    -- InnoDB checks it row by row: a primary-key look-up of the run, which
    -- it share-locks until the transaction ends, so the run cannot go meanwhile.
    CONSTRAINT retention_audit_run_fk FOREIGN KEY (run_id) REFERENCES retention_runs (id),
    CONSTRAINT retention_audit_policy_check CHECK (policy IN ('completed', 'closed', 'creating_idle', 'manual'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_nopad_bin;
