//! docs/design.md, "Status pages": the status pages of `retentiond run` as a real daemon serves
//! them from a real store — what each page shows, that every stored value
//! is escaped, the headers, GET only, bounded and validated query strings,
//! the password when the pages are reachable from other hosts, and
//! `ui.enabled = false`. Also `retentiond forecast`, checked against dry
//! runs at the days it forecasts.

#[macro_use]
mod common;

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use common::*;
use serde_json::json;

/// A hold reason and a job name no page may show unescaped.
const HOSTILE_REASON: &str = r#"<script>alert("held")</script> & 'quoted' "reason""#;
const HOSTILE_NAME: &str = r#"<b>gone</b>"&'x"#;
const HOSTILE_ERROR: &str = r#"<img src=x onerror="alert(1)"> & more"#;

/// Never: at midnight on the 1st of January.
const NEVER: &str = "0 0 0 1 1 *";

fn daemon_cmd(env: &TestEnv, port: u16) -> Invocation {
    env.daemon_cmd(port, NEVER)
}

/// `GET path`, asserting the status; the body.
#[track_caller]
fn page(port: u16, path: &str, status: u16) -> String {
    let response = http_get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, status, "GET {path}: {}", response.body);
    response.body
}

/// The text of an HTML page with its tags removed and entities decoded, words one space apart.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'");
    out.replace("&amp;", "&").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts that `html` holds no markup that the store or the request put
/// there: no `<script`, no `<img`, no `<b>`, no unescaped quote of them.
#[track_caller]
fn assert_no_injected_markup(html: &str, path: &str) {
    for raw in ["<script", "<img", "<b>", "onerror=\"", HOSTILE_REASON, HOSTILE_NAME, HOSTILE_ERROR] {
        assert!(!html.contains(raw), "GET {path} shows {raw:?} unescaped:\n{html}");
    }
}

/// The "Next page" link of a page, unescaped.
fn next_link(html: &str) -> Option<String> {
    let end = html.find("\">Next page")?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    Some(html[start..end].replace("&amp;", "&"))
}

fn days_ago_hours(days: i64, hours: i64) -> DateTime<Utc> {
    days_ago(days) + chrono::Duration::hours(hours)
}

every_engine! {
    fn every_page_shows_the_store_escaped(env: &TestEnv) {
        env.import_ok(&[
            job("old-done-1", "Completed", days_ago(120)),
            job("old-done-2", "Completed", days_ago(110)),
            job("old-done-3", "Completed", days_ago(100)),
            job("old-closed-1", "Closed", days_ago(95)),
            // Becomes eligible in 12 hours: day 1 of the forecast.
            job("soon-done", "Completed", days_ago_hours(90, 12)),
            // Becomes eligible in 9 days and 12 hours: day 10.
            job("later-closed", "Closed", days_ago_hours(80, -12)),
            set(job("held-old", "Completed", days_ago(200)), "hold_reason", json!(HOSTILE_REASON)),
            set(job("held-young", "Closed", days_ago_hours(85, 12)), "hold_reason", json!("legal hold")),
            job("in-flight", "Transferring", days_ago(1)),
        ]);
        // One sweep: run 1 deletes the four old jobs.
        let purge = env.json(&["purge"]);
        assert_eq!(purge["total"], json!(4), "{purge}");
        // What the CLI cannot write: a deleted job with a hostile name, a failed run with a hostile error.
        let (at, flag) = (env.sql_time(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()), env.sql_bool(true));
        env.execute(&format!(
            "INSERT INTO retention_audit (run_id, job_id, job_name, job_type, policy, state, cancel_requested, \
             created_at, state_changed_at, deleted_at, deleted_by) VALUES (NULL, 999999, {}, 'Import', 'manual', \
             'Completed', {flag}, {at}, {at}, {at}, {})",
            quote(HOSTILE_NAME),
            quote(HOSTILE_NAME)
        ));
        env.execute(&format!(
            "INSERT INTO retention_runs ({}, status, started_at, finished_at, host, pid, error, pauses, paused_ms) \
             VALUES ('purge', 'failed', {at}, {at}, {}, 7, {}, 3, 12345)",
            env.sql_column("trigger"),
            quote("host<i>"),
            quote(HOSTILE_ERROR)
        ));

        let port = free_port();
        let daemon = daemon_cmd(env, port).spawn_daemon();
        wait_ready(&daemon, port);

        // Overview: readiness, the schedule and its next tick, the policies
        // with their backlog, the held jobs, the last sweeps.
        let response = http_get(port, "/").unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        let policy = response.header("content-security-policy").expect("a content security policy");
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"), "{policy}");
        assert!(!policy.contains("unsafe") && !policy.contains("script-src"), "{policy}");
        let overview = text(&response.body);
        assert_no_injected_markup(&response.body, "/");
        let next_new_year = format!("{}-01-01T00:00:00Z", Utc::now().format("%Y").to_string().parse::<i32>().unwrap() + 1);
        for expected in [
            "Database ready",
            &format!("at {next_new_year}"),
            "cron 0 0 0 1 1 * in UTC",
            "Eligible now (the next sweep deletes them) 0",
            "Held jobs (never deleted while held) 2",
            "completed Completed state_changed_at 90d 0 –",
            "closed Closed state_changed_at 90d 0 –",
            "creating_idle Creating updated_at off 0 –",
            "retain_until Completed, Closed retain_until the job's own, at least 1d after it finished 0 –",
            "failed",
            "Paused for replicas",
            "– 12.3 s (3 pauses) purge host<i> (pid 7)",
            HOSTILE_ERROR,
        ] {
            assert!(overview.contains(expected), "the overview lacks {expected:?}:\n{overview}");
        }
        assert!(overview.contains("1 succeeded") && overview.contains(" 4 3 / 1 / 0 / 0 done – purge"), "{overview}");

        // Forecast: the numbers of `retentiond forecast`, as a chart and a table.
        let html = page(port, "/forecast", 200);
        assert_no_injected_markup(&html, "/forecast");
        let forecast = text(&html);
        assert!(html.contains("<svg") && html.contains("class=\"completed\""), "{html}");
        assert!(forecast.contains("Forecast: the next 30 days"), "{forecast}");
        // completed: 1 within 30 days (soon-done), held-old past its retention;
        // closed: later-closed within, held-young's retention ends in 5 days.
        assert!(forecast.contains("completed 90d 1 1 0"), "{forecast}");
        assert!(forecast.contains("closed 90d 1 0 1"), "{forecast}");
        assert!(forecast.contains("all 2 2 held"), "{forecast}");
        let day_1 = forecast.split(" 1 20").nth(1).expect("day 1's row");
        assert!(day_1.split_whitespace().skip(1).take(6).collect::<Vec<_>>() == ["1", "0", "0", "0", "1", "0"], "{day_1}");
        let cli = env.json(&["forecast"]);
        assert_eq!(cli["per_day"][0]["counts"], json!({"completed": 1, "closed": 0, "creating_idle": 0, "retain_until": 0}), "{cli}");
        assert_eq!(cli["per_day"][9]["counts"]["closed"], json!(1), "{cli}");
        assert_eq!(cli["per_day"][5]["held"], json!(1), "{cli}");
        let html = page(port, "/forecast?days=365", 200);
        assert!(text(&html).contains("Forecast: the next 365 days"));
        for bad in ["days=366", "days=0", "days=abc", "days=7&days=8", "colour=red"] {
            let html = page(port, &format!("/forecast?{bad}"), 400);
            assert!(text(&html).contains("days") || text(&html).contains("colour"), "{bad}: {html}");
        }

        // Runs, newest first, one page at a time.
        let runs = text(&page(port, "/runs", 200));
        let (second, first) = (runs.find("2 failed").expect("run 2"), runs.find("1 succeeded").expect("run 1"));
        assert!(second < first, "newest first: {runs}");
        let html = page(port, "/runs?limit=1", 200);
        assert!(!text(&html).contains("1 succeeded"), "{html}");
        let next = next_link(&html).expect("a next page");
        assert_eq!(next, "/runs?before=2&limit=1");
        assert!(text(&page(port, &next, 200)).contains("1 succeeded"));
        // A run's page: its record and its audit rows.
        let run = text(&page(port, "/runs/1", 200));
        for name in ["old-done-1", "old-done-2", "old-done-3", "old-closed-1"] {
            assert!(run.contains(name), "run 1 lacks {name}: {run}");
        }
        assert!(!run.contains("gone"), "{run}");
        let deleted = ["old-done-1", "old-done-2", "old-done-3", "old-closed-1"];
        let html = page(port, "/runs/1?limit=3", 200);
        let next = next_link(&html).expect("a next page of run 1");
        let (first, second) = (text(&html), text(&page(port, &next, 200)));
        let on = |page: &str| deleted.iter().filter(|name| page.contains(*name)).count();
        assert_eq!((on(&first), on(&second)), (3, 1), "3 rows, then the fourth:\n{first}\n{second}");
        page(port, "/runs/99", 404);
        page(port, "/runs/abc", 400);
        page(port, "/runs/0", 400);

        // Audit search: exact, prefix, by run, all; hostile rows escaped.
        let html = page(port, "/audit", 200);
        assert_no_injected_markup(&html, "/audit");
        assert!(text(&html).contains(HOSTILE_NAME), "{html}");
        let exact = text(&page(port, "/audit?job=old-done-1", 200));
        assert!(exact.contains("old-done-1") && !exact.contains("old-done-2"), "{exact}");
        let prefix = text(&page(port, "/audit?job=old-done&match=prefix", 200));
        let at = |name: &str| prefix.find(name).unwrap_or_else(|| panic!("{name} missing: {prefix}"));
        assert!(at("old-done-1") < at("old-done-2") && at("old-done-2") < at("old-done-3"), "name order: {prefix}");
        assert!(!prefix.contains("old-closed-1"), "{prefix}");
        let html = page(port, "/audit?job=old-&match=prefix&limit=2", 200);
        let next = next_link(&html).expect("a second page of the prefix search");
        assert!(next.contains("after_job=old-done-1"), "{next}");
        let second = text(&page(port, &next, 200));
        assert!(second.contains("old-done-2") && second.contains("old-done-3") && !second.contains("old-closed-1"), "{second}");
        let by_run = text(&page(port, "/audit?run=1", 200));
        assert!(by_run.contains("old-closed-1") && !by_run.contains("gone"), "{by_run}");
        assert!(text(&page(port, "/audit?job=old-done-1&run=1", 200)).contains("old-done-1"));
        assert!(text(&page(port, "/audit?job=old-done-1&run=2", 200)).contains("No audit rows match."));
        let refused = text(&page(port, "/audit?job=old&match=prefix&run=1", 400));
        assert!(refused.contains("cannot be searched together"), "{refused}");
        // A search for a name holding markup: refused with the name shown escaped.
        let path = "/audit?job=%3Cb%3Egone%3C%2Fb%3E%22%26%27x";
        let html = page(port, path, 400);
        assert_no_injected_markup(&html, path);
        assert!(text(&html).contains(&format!("no job name is like {:?}", HOSTILE_NAME)), "{html}");
        page(port, "/audit?match=regex", 400);
        page(port, "/audit?limit=501", 400);
        page(port, &format!("/audit?job={}", "a".repeat(65)), 400);

        // Held jobs, oldest first, with their reasons escaped.
        let html = page(port, "/holds", 200);
        assert_no_injected_markup(&html, "/holds");
        assert!(html.contains("&lt;script&gt;alert(&quot;held&quot;)&lt;/script&gt; &amp;"), "{html}");
        let holds = text(&html);
        assert!(holds.contains(HOSTILE_REASON) && holds.contains("legal hold"), "{holds}");
        assert!(holds.find("held-old").unwrap() < holds.find("held-young").unwrap(), "oldest first: {holds}");
        let html = page(port, "/holds?limit=1", 200);
        let next = next_link(&html).expect("a second page of holds");
        let second = text(&page(port, &next, 200));
        assert!(second.contains("held-young") && !second.contains("held-old"), "{second}");
        page(port, "/holds?after_id=3", 400);

        // GET only; the endpoints beside the pages are untouched.
        for (method, path) in [("POST", "/"), ("PUT", "/forecast"), ("DELETE", "/holds"), ("POST", "/audit")] {
            let response = http_request(port, method, path, &[("Content-Length", "0")], "").unwrap();
            assert_eq!(response.status, 405, "{method} {path}");
            assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        }
        page(port, "/nothing-here", 404);
        assert!(page(port, "/metrics", 200).contains("retentiond_build_info"));
        assert_eq!(page(port, "/healthz", 200), "ok\n");
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);
    }
}

every_engine! {
    fn forecast_matches_dry_runs_at_each_day(env: &TestEnv) {
        env.run(&["jobs", "seed", "--count", "4000", "--days", "200"]).expect_code(0);
        let forecast = env.json_env(&["forecast", "--days", "12"], &[("RETENTIOND__RETENTION__CREATING_IDLE", "30d")]);
        let as_of = parse_ts(&forecast["as_of"]);
        let dry_now = env.json_env(&["purge", "--dry-run", "--as-of", &ts(as_of)], &[("RETENTIOND__RETENTION__CREATING_IDLE", "30d")]);
        let eligible_now = dry_now["total"].as_u64().unwrap();
        let mut expected = eligible_now;
        for day in 0..=12 {
            if day > 0 {
                expected += forecast["per_day"][day - 1]["total"].as_u64().unwrap();
            }
            let at = ts(as_of + chrono::Duration::days(day as i64));
            let dry = env.json_env(&["purge", "--dry-run", "--as-of", &at], &[("RETENTIOND__RETENTION__CREATING_IDLE", "30d")]);
            assert_eq!(dry["total"].as_u64().unwrap(), expected, "eligible at day {day} ({at}): {forecast}");
        }
        assert!(expected > eligible_now, "the window holds jobs: {forecast}");
        assert!(forecast["policies"]["creating_idle"]["within_window"].as_u64().unwrap() > 0, "{forecast}");

        // Held jobs: past their retention, or reaching it within the window.
        let jobs = env.json(&["jobs", "list", "--limit", "0"]);
        let (mut past, mut within) = (0, 0);
        for job in jobs.as_array().unwrap().iter().filter(|job| !job["hold_reason"].is_null()) {
            let (retention, age) = match job["state"].as_str().unwrap() {
                "Completed" | "Closed" => (90, parse_ts(&job["state_changed_at"])),
                "Creating" => (30, parse_ts(&job["updated_at"])),
                _ => continue,
            };
            let cutoff = as_of - chrono::Duration::days(retention);
            if age <= cutoff {
                past += 1;
            } else if age <= cutoff + chrono::Duration::days(12) {
                within += 1;
            }
        }
        let sum = |key: &str| -> u64 {
            ["completed", "closed", "creating_idle"].iter().map(|p| forecast["policies"][p][key].as_u64().unwrap()).sum()
        };
        assert_eq!((sum("held_past_retention"), sum("held_within_window")), (past, within), "{forecast}");
        assert_eq!(forecast["held_total"].as_u64().unwrap(), past + within);
        let per_day_held: u64 = forecast["per_day"].as_array().unwrap().iter().map(|d| d["held"].as_u64().unwrap()).sum();
        assert_eq!(per_day_held, within);

        let text = env.run(&["forecast", "--days", "3"]);
        text.expect_code(0);
        assert!(text.stdout.contains("DAY  FROM") && text.stdout.lines().filter(|l| l.starts_with("3 ")).count() == 1, "{}", text.stdout);
        env.run(&["forecast", "--days", "366"]).expect_code(2);
        env.run(&["forecast", "--days", "0"]).expect_code(2);
    }
}

every_engine! {
    fn forecast_days_end_where_retention_ends(env: &TestEnv) {
        // "Now" is fixed with --as-of, so each job can lie on a day's edge, to the microsecond.
        let as_of = parse_ts(&json!("2026-06-15T12:00:00Z"));
        let cutoff = as_of - chrono::Duration::days(90);
        let at = |days: i64, micros: i64| cutoff + chrono::Duration::days(days) + chrono::Duration::microseconds(micros);
        let held = |name: &str, when| set(job(name, "Closed", when), "hold_reason", json!("kept"));
        env.import_ok(&[
            job("due-now", "Completed", at(0, 0)),
            job("day-1-first", "Completed", at(0, 1)),
            job("day-1-last", "Completed", at(1, 0)),
            job("day-2-first", "Completed", at(1, 1)),
            job("day-3-last", "Closed", at(3, 0)),
            job("beyond", "Closed", at(3, 1)),
            held("held-past", at(0, 0)),
            held("held-day-1", at(0, 1)),
            held("held-day-3", at(3, 0)),
            held("held-beyond", at(3, 1)),
        ]);
        let forecast = env.json(&["forecast", "--days", "3", "--as-of", "2026-06-15T12:00:00Z"]);
        assert_eq!(parse_ts(&forecast["as_of"]), as_of);
        let per_day: Vec<(u64, u64, u64)> = forecast["per_day"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["counts"]["completed"].as_u64().unwrap(), d["counts"]["closed"].as_u64().unwrap(), d["held"].as_u64().unwrap()))
            .collect();
        assert_eq!(per_day, [(2, 0, 1), (1, 0, 0), (0, 1, 1)], "{forecast}");
        assert_eq!(forecast["policies"]["closed"]["held_past_retention"], json!(1), "{forecast}");
        assert_eq!(forecast["policies"]["closed"]["held_within_window"], json!(2), "{forecast}");
        assert_eq!((forecast["total"].clone(), forecast["held_total"].clone()), (json!(4), json!(3)), "{forecast}");
    }
}

/// A password file, and the headers that give its password.
fn password_setup(env: &TestEnv) -> (std::path::PathBuf, String) {
    let dir = env.dir().join("credentials");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ui-password"), "correct horse:battery\n").unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("admin:correct horse:battery");
    (dir, format!("Basic {basic}"))
}

every_engine! {
    fn pages_off_loopback_need_the_password(env: &TestEnv) {
        let port = free_port();
        let everywhere = format!("0.0.0.0:{port}");

        // Not loopback and no password file: a configuration error.
        let out = daemon_cmd(env, port).env("RETENTIOND__METRICS__LISTEN", &everywhere).run();
        out.expect_code(78);
        assert!(out.stderr.contains("ui.password_file is empty") && out.stderr.contains("RETENTIOND__METRICS__LISTEN"), "{}", out.stderr);
        // A relative name is looked up in $CREDENTIALS_DIRECTORY, else in the
        // working directory; a missing file is a configuration error naming it.
        let relative = daemon_cmd(env, port)
            .env("RETENTIOND__METRICS__LISTEN", &everywhere)
            .env("RETENTIOND__UI__PASSWORD_FILE", "ui-password")
            .run();
        relative.expect_code(78);
        assert!(relative.stderr.contains("ui.password_file ui-password: no such file"), "{}", relative.stderr);

        let (credentials, basic) = password_setup(env);
        let daemon = daemon_cmd(env, port)
            .env("RETENTIOND__METRICS__LISTEN", &everywhere)
            .env("RETENTIOND__UI__PASSWORD_FILE", "ui-password")
            .env("CREDENTIALS_DIRECTORY", path_str(&credentials))
            .spawn_daemon();
        wait_ready(&daemon, port);
        for path in ["/", "/forecast", "/runs", "/runs/1", "/audit", "/holds"] {
            let response = http_get(port, path).unwrap();
            assert_eq!(response.status, 401, "{path} without the password");
            assert_eq!(response.header("www-authenticate"), Some(r#"Basic realm="retentiond", charset="UTF-8""#));
            assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        }
        let with = |value: &str| http_request(port, "GET", "/", &[("Authorization", value)], "").unwrap().status;
        assert_eq!(with(&basic), 200);
        assert_eq!(with("Bearer correct horse:battery"), 200);
        assert_eq!(with("Bearer correct horse:batter"), 401);
        let wrong = base64::engine::general_purpose::STANDARD.encode("admin:correct horse");
        assert_eq!(with(&format!("Basic {wrong}")), 401);
        // Prometheus and the probes need none.
        for path in ["/metrics", "/healthz", "/readyz"] {
            assert_eq!(http_get(port, path).unwrap().status, 200, "{path}");
        }
        daemon.signal("TERM");
        let out = daemon.wait_exit(Duration::from_secs(15));
        assert!(!out.stderr.contains("correct horse"), "the password reached the log:\n{}", out.stderr);

        // check-config shows the file's name, never its content.
        let shown = env
            .cmd(&["check-config"])
            .env("RETENTIOND__METRICS__LISTEN", &everywhere)
            .env("RETENTIOND__UI__PASSWORD_FILE", path_str(&credentials.join("ui-password")))
            .run();
        shown.expect_code(0);
        assert!(shown.stdout.contains("[ui]") && shown.stdout.contains("ui-password"), "{}", shown.stdout);
        assert!(!shown.stdout.contains("correct horse"), "{}", shown.stdout);
    }
}

every_engine! {
    fn pages_can_be_turned_off(env: &TestEnv) {
        let port = free_port();
        // Off: no password needed even on every address, and no page answers.
        let daemon = daemon_cmd(env, port)
            .env("RETENTIOND__METRICS__LISTEN", &format!("0.0.0.0:{port}"))
            .env("RETENTIOND__UI__ENABLED", "false")
            .spawn_daemon();
        wait_ready(&daemon, port);
        for path in ["/", "/forecast", "/runs", "/audit", "/holds"] {
            assert_eq!(http_get(port, path).unwrap().status, 404, "{path}");
        }
        assert_eq!(http_get(port, "/metrics").unwrap().status, 200);
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);
    }
}

every_engine_with! { NetworkServer;
    /// While the database cannot be reached the pages answer 503 "not ready"
    /// (the overview 200 with what it knows); once it answers, the daemon
    /// opens the store and the same pages show what it holds.
    fn pages_answer_503_until_the_store_is_open(env: &TestEnv) {
        env.import_ok(&[set(job("held-when-back", "Completed", days_ago(120)), "hold_reason", json!("kept for audit"))]);
        let mut proxy = TcpProxy::new(env.server_address());
        proxy.stop();
        let port = free_port();
        let daemon = daemon_cmd(env, port)
            .env("RETENTIOND__DATABASE__URL", &env.url_with_port(proxy.port()))
            .env("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")
            .spawn_daemon();
        assert!(wait_until(Duration::from_secs(20), || http_get(port, "/healthz").is_ok_and(|r| r.status == 200)));
        let overview = http_get(port, "/").unwrap();
        assert_eq!(overview.status, 200, "the overview shows what it knows: {}", overview.body);
        let shown = text(&overview.body);
        assert!(shown.contains("not ready") && shown.contains("The store is not open yet"), "{shown}");
        for path in ["/forecast", "/runs", "/audit", "/holds"] {
            let response = http_get(port, path).unwrap();
            assert_eq!(response.status, 503, "{path}: {}", response.body);
            assert!(text(&response.body).contains("not ready"), "{}", response.body);
        }

        proxy.start();
        let ready = wait_until(Duration::from_secs(60), || readyz_is(port, 200));
        assert!(ready, "the daemon did not open the store once the database answered\n{}", daemon.describe());
        for path in ["/", "/forecast", "/runs", "/audit", "/holds"] {
            let response = http_get(port, path).unwrap();
            assert_eq!(response.status, 200, "{path} once the store is open: {}", response.body);
            assert!(!text(&response.body).contains("not ready"), "{path}: {}", response.body);
        }
        let holds = text(&http_get(port, "/holds").unwrap().body);
        assert!(holds.contains("held-when-back") && holds.contains("kept for audit"), "{holds}");
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(15)).expect_code(0);
    }
}

/// The overview shows `schedule.window`: closed, when the next window opens
/// and that the next tick falls outside it; open, and when it closes.
#[test]
fn the_overview_shows_the_window_and_the_next_one() {
    let Some(env) = TestEnv::new(Engine::Sqlite, "the_overview_shows_the_window_and_the_next_one") else { return };
    let zone: chrono_tz::Tz = WINDOW_ZONE.parse().expect("a zone");
    let local =
        |at: DateTime<Utc>| format!("{} ({WINDOW_ZONE})", at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S %Z"));
    // Hourly ticks: the next is within the hour, before the closed window opens.
    let opens = now() + chrono::Duration::minutes(62);
    let closed = window_between(opens, opens + chrono::Duration::hours(2));
    let closes = now() + chrono::Duration::minutes(121);
    let open = window_between(now() - chrono::Duration::hours(1), closes);
    for (window, shown, tick_outside) in [
        (&closed, format!("closed the next opens in 1h 1m, at {}", local(opens)), true),
        (&open, format!("open closes in 2h 0m, at {}", local(closes)), false),
    ] {
        let port = free_port();
        let daemon = daemon_cmd(&env, port)
            .env("RETENTIOND__SCHEDULE__CRON", "0 0 * * * *")
            .env("RETENTIOND__SCHEDULE__TIMEZONE", WINDOW_ZONE)
            .env("RETENTIOND__SCHEDULE__WINDOW", window)
            .spawn_daemon();
        wait_ready(&daemon, port);
        let overview = text(&page(port, "/", 200));
        let card = format!("Deletion window (schedule.window) {shown} {window} in {WINDOW_ZONE}");
        assert!(overview.contains(&card), "{card:?} in:\n{overview}");
        assert_eq!(overview.contains("outside schedule.window: skipped"), tick_outside, "{overview}");
        daemon.signal("TERM");
        assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);
    }
    let port = free_port();
    let daemon = daemon_cmd(&env, port).spawn_daemon();
    wait_ready(&daemon, port);
    assert!(!text(&page(port, "/", 200)).contains("Deletion window"), "no windows: no card");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);
}

/// A sweep waiting for a replica shows on the overview while it waits:
/// which replica holds it back, why, and since when. PostgreSQL, with one
/// replica in `database.replicas` that does not answer, which counts as
/// over `retention.max_replica_lag`: the daemon's first sweep pauses before
/// its first batch and stays paused. A daemon without the pause shows no
/// such card.
#[test]
fn the_overview_shows_a_sweep_paused_for_a_replica() {
    let Some(env) = TestEnv::new(Engine::Postgres, "the_overview_shows_a_sweep_paused_for_a_replica") else { return };
    env.import_ok(&[job("old-but-paced", "Completed", days_ago(120))]);
    let replica_port = free_port();
    let port = free_port();
    let daemon = daemon_cmd(&env, port)
        .env("RETENTIOND__SCHEDULE__CRON", "* * * * * *")
        .env("RETENTIOND__RETENTION__MAX_REPLICA_LAG", "1s")
        .env("RETENTIOND__DATABASE__REPLICAS", &format!("postgres://postgres@127.0.0.1:{replica_port}/jobs"))
        .spawn_daemon();
    wait_ready(&daemon, port);
    let mut overview = String::new();
    let shown = wait_until(Duration::from_secs(30), || {
        overview = text(&page(port, "/", 200));
        overview.contains("Sweep paused")
    });
    assert!(shown, "no paused sweep on the overview:\n{overview}\n{}", daemon.describe());
    let card = format!(
        "Sweep paused (retention.max_replica_lag) paused for 127.0.0.1:{replica_port} : cannot be read, so counts as \
         over the limit:"
    );
    assert!(overview.contains(&card), "{card:?} in:\n{overview}");
    let since = overview.split(" since ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("since");
    let since = DateTime::parse_from_rfc3339(since).unwrap_or_else(|e| panic!("{since}: {e}\n{overview}"));
    assert!((now() - since.to_utc()).num_seconds().abs() < 60, "{since} in:\n{overview}");
    assert_eq!(env.count("jobs"), 1, "nothing deleted while paused");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);

    let port = free_port();
    let daemon = daemon_cmd(&env, port).spawn_daemon();
    wait_ready(&daemon, port);
    assert!(!text(&page(port, "/", 200)).contains("Sweep paused"), "no pause: no card");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code, 0);
}
