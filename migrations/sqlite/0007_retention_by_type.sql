-- Retention by job type (docs/configuration.md, `retention.by_type`): each
-- rule, a policy for one job type, has a cut-off of its own, so each rule
-- has a partial index of its own, in deletion order, pinned by name. (One
-- index per policy led by the job type lets SQLite, once it has statistics
-- of a column with two values, skip-scan it and sort instead.) The held
-- jobs' index carries the type too, so the forecast still counts them from
-- the index alone.
DROP INDEX jobs_completed_by_age;
DROP INDEX jobs_closed_by_age;
DROP INDEX jobs_creating_by_idle;
DROP INDEX jobs_held;
CREATE INDEX jobs_completed_import_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Completed' AND job_type = 'Import' AND hold_reason IS NULL;
CREATE INDEX jobs_completed_export_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Completed' AND job_type = 'Export' AND hold_reason IS NULL;
CREATE INDEX jobs_closed_import_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Closed' AND job_type = 'Import' AND hold_reason IS NULL;
CREATE INDEX jobs_closed_export_by_age ON jobs (state_changed_at, id)
    WHERE state = 'Closed' AND job_type = 'Export' AND hold_reason IS NULL;
CREATE INDEX jobs_creating_import_by_idle ON jobs (updated_at, id)
    WHERE state = 'Creating' AND job_type = 'Import' AND hold_reason IS NULL;
CREATE INDEX jobs_creating_export_by_idle ON jobs (updated_at, id)
    WHERE state = 'Creating' AND job_type = 'Export' AND hold_reason IS NULL;
CREATE INDEX jobs_held ON jobs (created_at, id, state, state_changed_at, updated_at, job_type) WHERE hold_reason IS NOT NULL;
