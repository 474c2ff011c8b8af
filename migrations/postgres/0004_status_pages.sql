-- The status pages (issue 13).

-- Held jobs, oldest first, page by page. Held jobs are few and absent from
-- the policy indexes, which leave them out.
-- The state and age timestamps ride along, so the forecast counts the held
-- jobs from the index alone.
CREATE INDEX jobs_held ON jobs (created_at, id, state, state_changed_at, updated_at) WHERE hold_reason IS NOT NULL;

-- The audit search by name prefix is a range of names in byte order
-- (COLLATE "C"), whatever the database's collation: in a linguistic one
-- (en_US, say) the names that start with "ab-" do not form one range. It
-- replaces the index of the same columns in the database's collation;
-- equality, which `audit list --job` uses, is byte equality in both.
CREATE INDEX retention_audit_by_job_name_bytes ON retention_audit (job_name COLLATE "C", id);
DROP INDEX retention_audit_by_job_name;
