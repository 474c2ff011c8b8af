-- The status pages (issue 13): held jobs, oldest first, page by page. Held
-- jobs are few and absent from the policy indexes, which leave them out.
-- The state and age timestamps ride along, so the forecast counts the held
-- jobs from the index alone.
CREATE INDEX jobs_held ON jobs (created_at, id, state, state_changed_at, updated_at) WHERE hold_reason IS NOT NULL;
