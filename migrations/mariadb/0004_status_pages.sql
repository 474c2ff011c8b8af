-- The status pages: held jobs, oldest first, page by page. MariaDB has no
-- partial indexes: held_created_at is created_at while a job is held and
-- NULL otherwise, so the held jobs are one range of jobs_held and the
-- others (NULL) lie before it. The state and age timestamps ride along, so
-- the forecast counts the held jobs from the index alone. Each statement
-- may run again (0001_job_store.sql says why).
ALTER TABLE jobs
    ADD COLUMN IF NOT EXISTS held_created_at DATETIME(6) AS (IF(hold_reason IS NULL, NULL, created_at)) VIRTUAL;
CREATE INDEX IF NOT EXISTS jobs_held ON jobs (held_created_at, id, state, state_changed_at, updated_at);
