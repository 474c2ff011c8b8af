//! Metrics (docs/design.md, "Observability") through the `metrics` facade and a Prometheus recorder.
//!
//! The daemon serves them on `/metrics`; `purge --metrics-textfile` writes
//! them in node_exporter's textfile format and `metrics.pushgateway` (http
//! or https) receives them at the end of a one-shot run. Without an installed recorder (a plain
//! `purge`) every call here is a no-op.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};

use crate::config::MetricsSettings;
use crate::credentials::{self, Sensitivity};

use crate::atomic_file::{self, AtomicFile};
use crate::policy::{self, PerPolicy, Policy, Retentions};
use crate::store::{DeletedJob, EligibleJobs};

const JOBS_DELETED: &str = "retentiond_jobs_deleted_total";
const SWEEPS: &str = "retentiond_sweeps_total";
const SWEEPS_SKIPPED: &str = "retentiond_sweeps_skipped_total";
const SWEEP_DURATION: &str = "retentiond_sweep_duration_seconds";
const BATCH_DURATION: &str = "retentiond_batch_duration_seconds";
const DELETION_LAG: &str = "retentiond_deletion_lag_seconds";
const ELIGIBLE_JOBS: &str = "retentiond_eligible_jobs";
const OLDEST_ELIGIBLE_AGE: &str = "retentiond_oldest_eligible_age_seconds";
const LAST_SUCCESS: &str = "retentiond_last_success_timestamp_seconds";
const BUILD_INFO: &str = "retentiond_build_info";
const AUDIT_ROWS_REMOVED: &str = "retentiond_audit_rows_removed_total";
const RUN_RECORDS_REMOVED: &str = "retentiond_run_records_removed_total";
const UI_AUTH_FAILURES: &str = "retentiond_ui_auth_failures_total";
const REPLICA_LAG: &str = "retentiond_replica_lag_seconds";
const SWEEP_PAUSED: &str = "retentiond_sweep_paused_seconds_total";

// The daemon's schedule.
const NEXT_SWEEP: &str = "retentiond_next_sweep_timestamp_seconds";

/// Histogram buckets in seconds: a sweep runs from milliseconds to `run_timeout`.
const SWEEP_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0];
/// A batch is one transaction of up to `batch_size` deletions.
const BATCH_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// From a minute to a year late: an hourly schedule lands below an hour, a
/// first run over an old store far above.
const LAG_BUCKETS: &[f64] =
    &[60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21_600.0, 86_400.0, 259_200.0, 604_800.0, 2_592_000.0, 31_536_000.0];

/// How a sweep ended, as the `outcome` label of `retentiond_sweeps_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Interrupted,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Succeeded, Outcome::Failed, Outcome::Interrupted];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Why a scheduled sweep did not run, as the `reason` label of `retentiond_sweeps_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The previous sweep of this process was still running.
    Overlap,
    /// Another replica holds the singleton lock (PostgreSQL, `schedule.singleton`).
    NotLeader,
    /// The database refuses writes (a standby, `default_transaction_read_only`, a read-only SQLite file).
    ReadOnly,
    /// Outside every `schedule.window`.
    Window,
}

impl SkipReason {
    pub const ALL: [SkipReason; 4] =
        [SkipReason::Overlap, SkipReason::NotLeader, SkipReason::ReadOnly, SkipReason::Window];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Overlap => "overlap",
            SkipReason::NotLeader => "not_leader",
            SkipReason::ReadOnly => "read_only",
            SkipReason::Window => "window",
        }
    }
}

/// Why a sweep paused between batches, as the `reason` label of
/// `retentiond_sweep_paused_seconds_total`. A `schedule.window` that closes
/// stops a sweep rather than pausing it, so it has no reason here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// A replica lagged more than `retention.max_replica_lag`, or could not be read.
    ReplicaLag,
}

impl PauseReason {
    pub const ALL: [PauseReason; 1] = [PauseReason::ReplicaLag];

    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::ReplicaLag => "replica_lag",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Install(String),
    #[error("cannot write the metrics textfile {path}: {source}")]
    Textfile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot push metrics to the pushgateway {url}: {reason}")]
    Push { url: String, reason: String },
    /// A file the pushgateway settings name cannot be used (exit 78).
    #[error("cannot prepare the push to the pushgateway {url}: {reason}")]
    PushSetup { url: String, reason: String },
}

/// Installs the process-wide Prometheus recorder and registers every metric
/// with its zero value, so the first scrape already lists them all.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let install_error = |error: metrics_exporter_prometheus::BuildError| MetricsError::Install(error.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SWEEP_DURATION.into()), SWEEP_BUCKETS)
        .and_then(|builder| builder.set_buckets_for_metric(Matcher::Full(BATCH_DURATION.into()), BATCH_BUCKETS))
        .and_then(|builder| builder.set_buckets_for_metric(Matcher::Full(DELETION_LAG.into()), LAG_BUCKETS))
        .map_err(install_error)?
        .install_recorder()
        .map_err(install_error)?;
    describe();
    for policy in Policy::ALL {
        counter!(JOBS_DELETED, "policy" => policy.as_str()).absolute(0);
        gauge!(ELIGIBLE_JOBS, "policy" => policy.as_str()).set(0.0);
    }
    for outcome in Outcome::ALL {
        counter!(SWEEPS, "outcome" => outcome.as_str()).absolute(0);
    }
    for reason in SkipReason::ALL {
        counter!(SWEEPS_SKIPPED, "reason" => reason.as_str()).absolute(0);
    }
    for reason in PauseReason::ALL {
        counter!(SWEEP_PAUSED, "reason" => reason.as_str()).absolute(0);
    }
    counter!(AUDIT_ROWS_REMOVED).absolute(0);
    counter!(RUN_RECORDS_REMOVED).absolute(0);
    gauge!(OLDEST_ELIGIBLE_AGE).set(0.0);
    gauge!(LAST_SUCCESS).set(0.0);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

fn describe() {
    describe_counter!(JOBS_DELETED, "Jobs deleted by retention, per policy.");
    describe_counter!(SWEEPS, "Sweeps that ended, per outcome (succeeded, failed, interrupted).");
    describe_counter!(
        SWEEPS_SKIPPED,
        "Sweeps not run: overlap (one still running), not_leader, read_only (the database refuses writes) or window (outside schedule.window)."
    );
    describe_histogram!(SWEEP_DURATION, Unit::Seconds, "Duration of a sweep.");
    describe_histogram!(BATCH_DURATION, Unit::Seconds, "Duration of one batch (one transaction).");
    describe_histogram!(DELETION_LAG, Unit::Seconds, "Time from the moment a job became eligible to its deletion.");
    describe_gauge!(ELIGIBLE_JOBS, "Jobs still eligible after the last sweep, per policy.");
    describe_gauge!(OLDEST_ELIGIBLE_AGE, Unit::Seconds, "Age of the oldest job still eligible after the last sweep.");
    describe_gauge!(LAST_SUCCESS, Unit::Seconds, "Unix time at which the last successful sweep ended.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label names the running build.");
    describe_gauge!(NEXT_SWEEP, Unit::Seconds, "Unix time of the daemon's next scheduled tick (0: none ahead).");
    describe_counter!(AUDIT_ROWS_REMOVED, "Audit rows removed past retention.audit.");
    describe_counter!(RUN_RECORDS_REMOVED, "Run records removed past retention.runs.");
    describe_counter!(UI_AUTH_FAILURES, "Wrong passwords given for the status pages.");
    describe_gauge!(
        REPLICA_LAG,
        Unit::Seconds,
        "How far each replica was behind at the last read of a sweep (retention.max_replica_lag)."
    );
    describe_counter!(
        SWEEP_PAUSED,
        Unit::Seconds,
        "Time sweeps spent paused between batches, per reason (replica_lag), counted as the pause goes on."
    );
}

/// Records a committed batch's duration.
pub fn batch_committed(elapsed: Duration) {
    histogram!(BATCH_DURATION).record(elapsed.as_secs_f64());
}

/// Records the jobs of a committed batch: how many per policy (`counts`,
/// counted once with the sweep's tally), and how late each came.
pub fn jobs_deleted(counts: &PerPolicy<u64>, deleted: &[DeletedJob], retentions: &Retentions) {
    for job in deleted {
        let eligible_at =
            policy::eligible_at(retentions, job.policy, job.job_type, job.key.timestamp, job.state_changed_at);
        if let Some(eligible_at) = eligible_at {
            let lag = (job.deleted_at - eligible_at).num_milliseconds().max(0) as f64 / 1000.0;
            histogram!(DELETION_LAG).record(lag);
        }
    }
    for policy in Policy::ALL {
        if counts[policy] > 0 {
            counter!(JOBS_DELETED, "policy" => policy.as_str()).increment(counts[policy]);
        }
    }
}

/// Records the end of a sweep that deleted (not a dry run).
pub fn sweep_ended(outcome: Outcome, elapsed: Duration) {
    counter!(SWEEPS, "outcome" => outcome.as_str()).increment(1);
    histogram!(SWEEP_DURATION).record(elapsed.as_secs_f64());
    if outcome == Outcome::Succeeded {
        gauge!(LAST_SUCCESS).set(Utc::now().timestamp_millis() as f64 / 1000.0);
    }
}

/// Records a committed batch of the audit trail's own removal (src/trail.rs).
pub fn audit_rows_removed(rows: u64) {
    counter!(AUDIT_ROWS_REMOVED).increment(rows);
}

pub fn run_records_removed(runs: u64) {
    counter!(RUN_RECORDS_REMOVED).increment(runs);
}

/// Lists the count of wrong passwords at zero: the daemon serves pages that ask for one.
pub fn ui_auth_failures_listed() {
    counter!(UI_AUTH_FAILURES).absolute(0);
}

pub fn ui_auth_failed() {
    counter!(UI_AUTH_FAILURES).increment(1);
}

/// Records a replica's lag, as a sweep read it.
pub fn replica_lag(replica: &str, lag: Duration) {
    gauge!(REPLICA_LAG, "replica" => replica.to_owned()).set(lag.as_secs_f64());
}

/// The milliseconds sweeps spent paused, per [`PauseReason`]: the counter
/// holds whole seconds, and the fractions add up here.
static PAUSED_MS: [AtomicU64; PauseReason::ALL.len()] = [const { AtomicU64::new(0) }; PauseReason::ALL.len()];

/// Adds `paused` to the time sweeps spent paused for `reason`.
pub fn sweep_paused(reason: PauseReason, paused: Duration) {
    let millis = paused.as_millis() as u64;
    let before = PAUSED_MS[reason as usize].fetch_add(millis, Ordering::Relaxed);
    let seconds = (before + millis) / 1000 - before / 1000;
    if seconds > 0 {
        counter!(SWEEP_PAUSED, "reason" => reason.as_str()).increment(seconds);
    }
}

pub fn sweep_skipped(reason: SkipReason) {
    counter!(SWEEPS_SKIPPED, "reason" => reason.as_str()).increment(1);
}

/// Records when the daemon's schedule ticks next (`None`: never again).
pub fn next_sweep_at(at: Option<DateTime<Utc>>) {
    gauge!(NEXT_SWEEP).set(at.map_or(0.0, |at| at.timestamp() as f64));
}

/// Records what is still eligible, as seen at `now`.
pub fn eligible_left(eligible: &PerPolicy<EligibleJobs>, now: DateTime<Utc>) {
    for policy in Policy::ALL {
        gauge!(ELIGIBLE_JOBS, "policy" => policy.as_str()).set(eligible[policy].count as f64);
    }
    let oldest = Policy::ALL.iter().filter_map(|&policy| eligible[policy].oldest).min();
    let age = oldest.map_or(0.0, |oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0);
    gauge!(OLDEST_ELIGIBLE_AGE).set(age);
}

/// Writes the metrics to `path` in node_exporter's textfile format, replaced
/// atomically ([`AtomicFile`]), so the collector never reads half a file.
pub fn write_textfile(handle: &PrometheusHandle, path: &Path) -> Result<(), MetricsError> {
    use std::io::Write;

    let error = |source| MetricsError::Textfile { path: path.display().to_string(), source };
    let mut file = AtomicFile::create(path, 0o666).map_err(error)?;
    file.write_all(handle.render().as_bytes()).map_err(error)?;
    file.commit().map_err(error)
}

/// Checks, before any work, that the textfile's directory exists, so a typo
/// fails the purge at once rather than after the deletions.
pub fn check_textfile_path(path: &Path) -> Result<(), String> {
    atomic_file::check_target("--metrics-textfile", path)
}

/// The Pushgateway that `purge` pushes to at its end, made ready before the
/// sweep (`metrics.pushgateway`, `pushgateway_ca_file`,
/// `pushgateway_password_file`): a missing or malformed file fails the run
/// before anything is deleted.
pub struct Pushgateway {
    url: url::Url,
    /// The URL as shown: password redacted.
    shown: String,
    /// For `https://`: verifies the gateway against the CA file, else the system's CAs.
    tls: Option<tokio_rustls::TlsConnector>,
    /// The `Authorization` header's value, from the URL's user and its
    /// password or the password file.
    authorization: Option<SecretString>,
}

impl Pushgateway {
    /// Reads the files the settings name; the URL was validated with the configuration.
    pub fn prepare(settings: &MetricsSettings) -> Result<Pushgateway, MetricsError> {
        let shown = crate::config::redact_url(&settings.pushgateway);
        let failed = |reason: String| MetricsError::PushSetup { url: shown.clone(), reason };
        let url = url::Url::parse(&settings.pushgateway).map_err(|e| failed(e.to_string()))?;
        let tls = if url.scheme() == "https" {
            let authorities = if settings.pushgateway_ca_file.is_empty() {
                None
            } else {
                let key = "metrics.pushgateway_ca_file";
                let (path, pem) = credentials::read(key, &settings.pushgateway_ca_file, Sensitivity::Public)
                    .map_err(|e| failed(e.to_string()))?;
                let certificates = crate::tls::parse_certificates(&pem)
                    .map_err(|reason| failed(format!("{key} {}: {reason}", path.display())))?;
                Some(certificates)
            };
            let config = crate::tls::client_config(authorities).map_err(failed)?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let authorization = if url.username().is_empty() {
            None
        } else {
            // The URL keeps them percent-encoded; the gateway expects them as typed.
            let decode = |part: &str| percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned();
            let password = if settings.pushgateway_password_file.is_empty() {
                decode(url.password().unwrap_or_default())
            } else {
                let password = credentials::read_password(
                    "metrics.pushgateway_password_file",
                    &settings.pushgateway_password_file,
                )
                .map_err(|e| failed(e.to_string()))?;
                password.expose_secret().to_owned()
            };
            let credentials = format!("{}:{password}", decode(url.username()));
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            Some(SecretString::from(format!("Basic {encoded}")))
        };
        Ok(Pushgateway { url, shown, tls, authorization })
    }

    /// Replaces this job's metric group on the gateway (`PUT
    /// /metrics/job/retentiond`) within `timeout`.
    pub async fn push(&self, handle: &PrometheusHandle, timeout: Duration) -> Result<(), MetricsError> {
        let failed = |reason: String| MetricsError::Push { url: self.shown.clone(), reason };
        let host = self.url.host_str().ok_or_else(|| failed("no host".into()))?.to_owned();
        let port = self.url.port_or_known_default().unwrap_or(80);
        let path = format!("{}/metrics/job/retentiond", self.url.path().trim_end_matches('/'));
        let mut request = hyper::Request::put(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4");
        if let Some(authorization) = &self.authorization {
            request = request.header(hyper::header::AUTHORIZATION, authorization.expose_secret());
        }
        let request = request.body(Full::new(Bytes::from(handle.render()))).map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
            match &self.tls {
                None => send(stream, request).await,
                Some(connector) => {
                    // An IPv6 literal is written in brackets in the URL, not in the certificate.
                    let name = host.trim_start_matches('[').trim_end_matches(']').to_owned();
                    let name = ServerName::try_from(name).map_err(|e| e.to_string())?;
                    let trusted = "metrics.pushgateway_ca_file, else the system's CA certificates";
                    let stream = connector
                        .connect(name, stream)
                        .await
                        .map_err(|e| crate::tls::explain(&e, trusted).unwrap_or_else(|| e.to_string()))?;
                    send(stream, request).await
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed(format!("no answer within {}", crate::config::format_duration(timeout)))),
        }
    }
}

/// Sends one HTTP/1.1 request over `stream`; any answer but 2xx is an error.
async fn send<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
}
