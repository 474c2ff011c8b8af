-- Retention by job type (docs/configuration.md, `retention.by_type`): each
-- rule, a policy for one job type, has a cut-off of its own, so the index
-- of the policies has the job type after the policy and a rule's eligible
-- jobs are one range of it. The held jobs' index carries the type too, so
-- the forecast still counts them from the index alone. Each statement
-- replaces its index in one step and may run again (0001_job_store.sql
-- says why).
ALTER TABLE jobs DROP INDEX IF EXISTS jobs_by_retention,
    ADD INDEX jobs_by_retention (retention_policy, job_type, retention_age, id);
ALTER TABLE jobs DROP INDEX IF EXISTS jobs_held,
    ADD INDEX jobs_held (held_created_at, id, state, state_changed_at, updated_at, job_type);
