-- Retention by job type (docs/configuration.md, `retention.by_type`): each
-- rule, a policy for one job type, has a cut-off of its own, so each policy
-- index starts with the job type and a rule's eligible jobs are one range
-- of it. The held jobs' index carries the type too, so the forecast still
-- counts them from the index alone.
DROP INDEX jobs_completed_by_age;
DROP INDEX jobs_closed_by_age;
DROP INDEX jobs_creating_by_idle;
DROP INDEX jobs_held;
CREATE INDEX jobs_completed_by_age ON jobs (job_type, state_changed_at, id) WHERE state = 'Completed' AND hold_reason IS NULL;
CREATE INDEX jobs_closed_by_age ON jobs (job_type, state_changed_at, id) WHERE state = 'Closed' AND hold_reason IS NULL;
CREATE INDEX jobs_creating_by_idle ON jobs (job_type, updated_at, id) WHERE state = 'Creating' AND hold_reason IS NULL;
CREATE INDEX jobs_held ON jobs (created_at, id, state, state_changed_at, updated_at, job_type) WHERE hold_reason IS NOT NULL;
