-- An audit row's run_id names a run record: checked once per statement
-- instead of once per row. The foreign key ran its check (a look-up of the
-- run with a lock) for every audit row a batch wrote: 15 % of a 3,000-job
-- batch's time, for the same run each time. These triggers check each
-- distinct run of a statement once, and take the same lock the foreign key
-- took (FOR KEY SHARE), so a run cannot go while rows naming it are being
-- written; the other side refuses to remove a run that audit rows name.
-- docs/schema.md says what each covers.

ALTER TABLE retention_audit DROP CONSTRAINT retention_audit_run_id_fkey;

-- The look-ups below go by primary key and by retention_audit_by_run,
-- whatever the statistics say (none on a fresh store).
CREATE FUNCTION retention_audit_names_runs() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    named bigint;
BEGIN
    FOR named IN SELECT DISTINCT run_id FROM written WHERE run_id IS NOT NULL LOOP
        PERFORM FROM retention_runs WHERE id = named FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('retention_audit.run_id %s names no row of retention_runs', named),
                TABLE = 'retention_audit', COLUMN = 'run_id';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER retention_audit_inserted_names_runs AFTER INSERT ON retention_audit
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION retention_audit_names_runs();
CREATE TRIGGER retention_audit_updated_names_runs AFTER UPDATE ON retention_audit
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION retention_audit_names_runs();

CREATE FUNCTION retention_runs_removed_unnamed() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
DECLARE
    removed bigint;
BEGIN
    FOR removed IN SELECT id FROM gone LOOP
        PERFORM FROM retention_audit WHERE run_id = removed LIMIT 1;
        IF FOUND THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('run %s is still named by rows of retention_audit', removed),
                TABLE = 'retention_runs';
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER retention_runs_removed_unnamed AFTER DELETE ON retention_runs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION retention_runs_removed_unnamed();

CREATE FUNCTION retention_runs_not_truncated() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
AS $$
BEGIN
    PERFORM FROM retention_audit WHERE run_id IS NOT NULL LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'retention_runs cannot be truncated while rows of retention_audit name its runs',
            TABLE = 'retention_runs';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER retention_runs_not_truncated BEFORE TRUNCATE ON retention_runs
    FOR EACH STATEMENT EXECUTE FUNCTION retention_runs_not_truncated();
