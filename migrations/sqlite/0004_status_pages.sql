-- The status pages (issue 13): held jobs, oldest first, page by page. Held
-- jobs are few and absent from the policy indexes, which leave them out.
CREATE INDEX jobs_held ON jobs (created_at, id) WHERE hold_reason IS NOT NULL;
