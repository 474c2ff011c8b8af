//! The statements a sweep runs are served by the per-policy partial indexes,
//! never by a scan of the `jobs` table, so "is anything eligible?" and each
//! batch cost the same whatever the table's size (SPEC §9). Checked on the
//! query plans of a seeded store.

mod common;

use chrono::{Duration, Utc};
use common::*;
use retentiond::store::{postgres::sql as pg, sqlite::sql as lite};

const POLICY_INDEXES: [&str; 3] = ["jobs_completed_by_age", "jobs_closed_by_age", "jobs_creating_by_idle"];

/// `sql` with its numbered parameters (`?N` or `$N`) replaced by literals,
/// highest number first so that `?1` does not eat into `?10`.
fn inline(sql: &str, marker: char, values: &[String]) -> String {
    let mut sql = sql.to_owned();
    for (index, value) in values.iter().enumerate().rev() {
        sql = sql.replace(&format!("{marker}{}", index + 1), value);
    }
    sql
}

/// The plan of `sql` as one text.
fn plan(env: &TestEnv, sql: &str) -> String {
    let explain = env.pick(format!("EXPLAIN QUERY PLAN {sql}"), format!("EXPLAIN {sql}"));
    env.rows(&explain)
        .into_iter()
        .flatten()
        .filter_map(|cell| cell.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_uses_policy_indexes(plan: &str, what: &str) {
    for index in POLICY_INDEXES {
        assert!(plan.contains(index), "{what} does not use {index}:\n{plan}");
    }
    for scan in ["SCAN jobs", "Seq Scan on jobs"] {
        assert!(!plan.lines().any(|line| line.contains(scan) && !line.contains("USING")), "{what} scans jobs:\n{plan}");
    }
}

both_backends! {
    fn sweep_statements_seek_the_policy_indexes(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "20000"]).expect_code(0);
        // As in production: autovacuum analyses PostgreSQL tables, while a
        // SQLite file has no statistics unless someone runs ANALYZE.
        if env.backend == Backend::Postgres {
            env.execute("ANALYZE");
        }
        let cutoff = Utc::now() - Duration::days(90);
        let idle_cutoff = Utc::now() - Duration::days(14);
        // Cut-offs of the three policies (all on), cursors at the start, limit.
        let (batch, now): (Vec<String>, String) = match env.backend {
            Backend::Sqlite => {
                let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros().to_string();
                let mut values = vec![micros(cutoff), micros(cutoff), micros(idle_cutoff)];
                values.extend(std::iter::repeat_n(i64::MIN.to_string(), 6));
                values.push("1000".into());
                (values, micros(Utc::now()))
            }
            Backend::Postgres => {
                let at = |t: chrono::DateTime<Utc>| format!("'{}'::timestamptz", t.to_rfc3339());
                let mut values = vec![at(cutoff), at(cutoff), at(idle_cutoff)];
                for _ in 0..3 {
                    values.push("'0001-01-01T00:00:00Z'::timestamptz".into());
                    values.push("(-9223372036854775807 - 1)".into());
                }
                values.push("1000".into());
                (values, at(Utc::now()))
            }
        };
        let marker = env.pick('?', '$');

        let select = inline(env.pick(lite::SELECT_ELIGIBLE, pg::SELECT_ELIGIBLE), marker, &batch);
        assert_uses_policy_indexes(&plan(env, &select), "the dry run's batch");

        let mut delete_values = batch.clone();
        delete_values.extend(["NULL".to_owned(), "'test'".to_owned()]);
        let delete = inline(env.pick(lite::DELETE_ELIGIBLE, pg::DELETE_ELIGIBLE), marker, &delete_values);
        let delete_plan = plan(env, &delete);
        assert_uses_policy_indexes(&delete_plan, "the deleting batch");
        let by_key = env.pick("USING INTEGER PRIMARY KEY", "jobs_pkey");
        assert!(delete_plan.contains(by_key), "the delete does not look jobs up by key:\n{delete_plan}");

        let enabled: Vec<String> = vec!["true".into(); 3];
        let future: Vec<String> = std::iter::once(now).chain(enabled.iter().cloned()).collect();
        let (count_sql, count_values) = env.pick((lite::COUNT_FUTURE, &future), (pg::CLOCK_AND_SKEW, &enabled));
        let count = inline(count_sql, marker, count_values);
        assert_uses_policy_indexes(&plan(env, &count), "the clock-skew count");
    }
}

// --- The status pages and `forecast` (issue 13) ---

both_backends! {
    fn status_page_statements_read_index_ranges(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "20000"]).expect_code(0);
        env.execute(
            "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
             created_at, state_changed_at, deleted_at, deleted_by) SELECT NULL, id + 1000000, name, job_type, \
             'manual', state, cancel_requested, created_at, state_changed_at, updated_at, 'test' FROM jobs",
        );
        if env.backend == Backend::Postgres {
            env.execute("ANALYZE");
        }
        let cutoff = Utc::now() - Duration::days(90);
        let horizon = cutoff + Duration::days(30);
        let (window, held_after, names): (Vec<String>, Vec<String>, Vec<String>) = match env.backend {
            Backend::Sqlite => {
                let micros = |t: chrono::DateTime<Utc>| t.timestamp_micros().to_string();
                let mut window = vec![micros(cutoff); 3];
                window.extend(vec![micros(horizon); 3]);
                window.push("30".into());
                (window, vec![i64::MIN.to_string(), i64::MIN.to_string(), "51".into()], vec![
                    "'seed.'".into(),
                    "'seed-'".into(),
                    i64::MIN.to_string(),
                    "51".into(),
                ])
            }
            Backend::Postgres => {
                let at = |t: chrono::DateTime<Utc>| format!("'{}'::timestamptz", t.to_rfc3339());
                let mut window = vec![at(cutoff); 3];
                window.extend(vec![at(horizon); 3]);
                window.push("30".into());
                let start = "'0001-01-01T00:00:00Z'::timestamptz".to_owned();
                (window, vec![start, "0".into(), "51".into()], vec![
                    "'seed.'".into(),
                    "'seed-'".into(),
                    "0".into(),
                    "51".into(),
                ])
            }
        };
        let marker = env.pick('?', '$');
        let forecast = plan(env, &inline(env.pick(lite::FORECAST, pg::FORECAST), marker, &window));
        assert_uses_policy_indexes(&forecast, "the forecast");
        assert!(forecast.contains("jobs_held"), "the forecast's held jobs do not use jobs_held:\n{forecast}");

        let held = plan(env, &inline(env.pick(lite::SELECT_HELD, pg::SELECT_HELD), marker, &held_after));
        assert!(held.contains("jobs_held") && !held.contains("Seq Scan"), "the holds page:\n{held}");

        let by_prefix =
            plan(env, &inline(env.pick(lite::SELECT_AUDIT_OF_NAME_RANGE, pg::SELECT_AUDIT_OF_NAME_RANGE), marker, &names));
        let name_index = env.pick("retention_audit_by_job_name", "retention_audit_by_job_name_bytes");
        assert!(by_prefix.contains(name_index) && !by_prefix.contains("Seq Scan"), "the prefix search:\n{by_prefix}");
        assert!(!by_prefix.contains("TEMP B-TREE") && !by_prefix.contains("Sort"), "the prefix search sorts:\n{by_prefix}");

        // `audit list --job` on PostgreSQL compares in byte order, as the
        // index of migration 4 does. (On SQLite its `?1 IS NULL OR …` scans.)
        if env.backend == Backend::Postgres {
            let by_name = plan(env, &inline(pg::SELECT_AUDIT, marker, &[
                "'seed-0000001'".into(),
                "NULL".into(),
                "100".into(),
            ]));
            assert!(by_name.contains(name_index), "audit list --job:\n{by_name}");
        }
    }
}
