//! docs/design.md, "Observability" for the one-shot purge: `purge --metrics-textfile PATH` writes the
//! metrics in node_exporter's textfile format, replacing the file atomically,
//! and `metrics.pushgateway` receives them at the end of the run.

#[macro_use]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use chrono::Duration;
use common::*;
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{Value, json};

/// The value of the sample `metric` whose labels include `labels`.
#[track_caller]
fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {metric} {labels:?}"));
    match &found.value {
        Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
        Sample::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
        Sample::Summary(_) => panic!("{metric} is a summary; histograms were configured"),
    }
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text format")
}

fn eligible_and_kept(env: &TestEnv) {
    let mut jobs: Vec<Value> =
        (0..7).map(|i| job(&format!("done-{i}"), "Completed", now() - Duration::days(100 + i))).collect();
    jobs.extend((0..3).map(|i| job(&format!("closed-{i}"), "Closed", now() - Duration::days(200 + i))));
    jobs.push(job("recent", "Completed", now() - Duration::days(10)));
    env.import_ok(&jobs);
}

every_engine! {
    /// The textfile holds every metric, its values match what the purge
    /// deleted, and no temporary file is left beside it.
    fn purge_writes_the_metrics_textfile(env: &TestEnv) {
        eligible_and_kept(env);
        let path = env.dir().join("retentiond.prom");
        std::fs::write(&path, "stale content from an earlier run\n").unwrap();
        let summary = env.json(&["purge", "--metrics-textfile", path_str(&path)]);
        assert_eq!(summary["total"], 10, "{summary}");

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("stale content"), "the file is replaced: {text}");
        let scrape = parse(&text);
        assert_eq!(sample(&scrape, "retentiond_jobs_deleted_total", &[("policy", "completed")]), 7.0);
        assert_eq!(sample(&scrape, "retentiond_jobs_deleted_total", &[("policy", "closed")]), 3.0);
        assert_eq!(sample(&scrape, "retentiond_jobs_deleted_total", &[("policy", "creating_idle")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_sweeps_total", &[("outcome", "succeeded")]), 1.0);
        assert_eq!(sample(&scrape, "retentiond_sweeps_total", &[("outcome", "failed")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_sweeps_skipped_total", &[("reason", "overlap")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_eligible_jobs", &[("policy", "completed")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_oldest_eligible_age_seconds", &[]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_deletion_lag_seconds_count", &[]), 10.0);
        assert_eq!(sample(&scrape, "retentiond_sweep_duration_seconds_count", &[]), 1.0);
        assert!(sample(&scrape, "retentiond_batch_duration_seconds_count", &[]) >= 1.0);
        let last_success = sample(&scrape, "retentiond_last_success_timestamp_seconds", &[]);
        assert!((last_success - now().timestamp() as f64).abs() < 60.0, "{last_success}");
        assert_eq!(sample(&scrape, "retentiond_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

        let leftovers: Vec<String> = std::fs::read_dir(env.dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".prom."))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

every_engine! {
    /// The deletion lag runs from the moment a job became eligible: for a
    /// job whose `retain_until` had passed when it finished, that is
    /// `retention.minimum` (1d) after it finished, not its `retain_until`.
    fn the_deletion_lag_of_a_retained_job_counts_from_the_minimum(env: &TestEnv) {
        let retained = set(job("until-30d-finished-3d", "Completed", days_ago(3)), "retain_until", json!(ts(days_ago(30))));
        env.import_ok(&[retained]);
        let path = env.dir().join("lag.prom");
        let summary = env.json(&["purge", "--metrics-textfile", path_str(&path)]);
        assert_eq!(summary["counts"]["retain_until"], 1, "{summary}");
        let scrape = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(sample(&scrape, "retentiond_deletion_lag_seconds_count", &[]), 1.0);
        let lag = sample(&scrape, "retentiond_deletion_lag_seconds_sum", &[]);
        let expected = Duration::days(2).num_seconds() as f64;
        assert!((lag - expected).abs() < 120.0, "eligible since 2 days (finished 3 days ago, minimum 1d): {lag}");
    }
}

every_engine! {
    /// A capped purge leaves a backlog, and the gauges show it.
    fn the_textfile_shows_what_is_still_eligible(env: &TestEnv) {
        eligible_and_kept(env);
        let path = env.dir().join("capped.prom");
        let summary = env.json(&["purge", "--max-deletes", "4", "--metrics-textfile", path_str(&path)]);
        assert_eq!(summary["total"], 4, "{summary}");
        let scrape = parse(&std::fs::read_to_string(&path).unwrap());
        // Oldest first: the three Closed jobs (200+ days), then one Completed.
        assert_eq!(sample(&scrape, "retentiond_eligible_jobs", &[("policy", "completed")]), 6.0);
        assert_eq!(sample(&scrape, "retentiond_eligible_jobs", &[("policy", "closed")]), 0.0);
        let oldest = sample(&scrape, "retentiond_oldest_eligible_age_seconds", &[]);
        let expected = Duration::days(105).num_seconds() as f64;
        assert!((oldest - expected).abs() < 120.0, "the oldest left is 105 days old: {oldest}");
    }
}

every_engine! {
    /// A failed purge still writes its metrics: that is when they matter.
    fn a_failed_purge_writes_a_failed_sweep(env: &TestEnv) {
        env.migrate();
        env.execute(&env.sql_poison_audit(None));
        eligible_and_kept(env);
        let path = env.dir().join("failed.prom");
        env.run(&["purge", "--metrics-textfile", path_str(&path)]).expect_code(1);
        let scrape = parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(sample(&scrape, "retentiond_sweeps_total", &[("outcome", "failed")]), 1.0);
        assert_eq!(sample(&scrape, "retentiond_sweeps_total", &[("outcome", "succeeded")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_jobs_deleted_total", &[("policy", "completed")]), 0.0);
        assert_eq!(sample(&scrape, "retentiond_last_success_timestamp_seconds", &[]), 0.0);
        assert_eq!(env.count("jobs"), 11);
    }
}

every_engine! {
    /// A textfile path in a missing directory is refused before anything is deleted.
    fn a_bad_textfile_path_fails_before_deleting(env: &TestEnv) {
        eligible_and_kept(env);
        let path = env.dir().join("missing-dir").join("x.prom");
        let out = env.run(&["purge", "--metrics-textfile", path_str(&path)]);
        out.expect_code(2);
        assert!(out.stderr.contains("missing-dir") && out.stderr.contains("does not exist"), "{}", out.describe());
        assert_eq!(env.count("jobs"), 11);
        assert_eq!(env.count("retention_runs"), 0);
        let out = env.run(&["purge", "--dry-run", "--metrics-textfile", "x.prom"]);
        out.expect_code(2);
    }
}

/// What a fake Pushgateway received: the request line, headers and body.
struct Pushed {
    request_line: String,
    headers: Vec<String>,
    body: String,
}

/// A Pushgateway stand-in on a free port that answers one request with 200.
fn fake_pushgateway() -> (u16, mpsc::Receiver<Pushed>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            headers.push(line.trim().to_owned());
        }
        let length: usize = headers
            .iter()
            .find_map(|h| h.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        let _ = sender.send(Pushed {
            request_line: request_line.trim().to_owned(),
            headers,
            body: String::from_utf8(body).unwrap(),
        });
    });
    (port, receiver)
}

every_engine! {
    /// At the end of a one-shot purge the metrics are PUT to the gateway's
    /// group for the job, with basic authentication from the URL.
    fn purge_pushes_to_the_pushgateway(env: &TestEnv) {
        eligible_and_kept(env);
        let (port, received) = fake_pushgateway();
        let gateway = format!("http://pusher:s3cret@127.0.0.1:{port}/");
        let out = env.cmd(&["purge", "--output", "json"]).env("RETENTIOND__METRICS__PUSHGATEWAY", &gateway).run();
        out.expect_code(0);
        assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
        let pushed = received.recv_timeout(std::time::Duration::from_secs(5)).expect("a push");
        assert_eq!(pushed.request_line, "PUT /metrics/job/retentiond HTTP/1.1");
        // base64("pusher:s3cret")
        assert!(pushed.headers.iter().any(|h| h == "authorization: Basic cHVzaGVyOnMzY3JldA=="), "{:?}", pushed.headers);
        let scrape = parse(&pushed.body);
        assert_eq!(sample(&scrape, "retentiond_jobs_deleted_total", &[("policy", "completed")]), 7.0);
        assert_eq!(sample(&scrape, "retentiond_sweeps_total", &[("outcome", "succeeded")]), 1.0);
    }
}

every_engine! {
    /// An unreachable gateway fails the run (exit 1) naming it, without the
    /// password; the deletions stay committed and audited.
    fn an_unreachable_pushgateway_fails_the_run_after_the_deletions(env: &TestEnv) {
        eligible_and_kept(env);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let gateway = format!("http://pusher:s3cret@127.0.0.1:{port}");
        let out = env.cmd(&["purge"]).env("RETENTIOND__METRICS__PUSHGATEWAY", &gateway).run();
        out.expect_code(1);
        assert!(out.stderr.contains("pushgateway") && out.stderr.contains(&format!("127.0.0.1:{port}")), "{}", out.describe());
        assert!(!out.stderr.contains("s3cret"), "{}", out.describe());
        assert_eq!(env.count("jobs"), 1);
        assert_eq!(env.count("retention_audit"), 10);
    }
}
