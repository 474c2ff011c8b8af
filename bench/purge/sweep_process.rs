//! retentiond's own purge, measured as an operator runs it: `retentiond
//! purge --output json` as a process, default settings, the `purge` code
//! path. Its rows/s counts the whole process (start, connect, sweep, exit).
//!
//! Its stderr is JSON log lines; with `retentiond::sweep=debug` each batch
//! logs a "batch committed" event with `jobs` and `elapsed_ms`, which give
//! the batch durations. Stderr is read continuously on a thread of its own:
//! the purge also logs one line per deleted job, and a full pipe would stall
//! it.
//!
//! Peak memory: the kernel's `ru_maxrss` for the child (from `wait4`, which
//! is why the child is reaped here rather than through std's `wait`) is not
//! the purge's alone. Linux carries the high-water mark of the address space
//! a process had before `exec` into `ru_maxrss`, and a spawned child starts
//! with its parent's: the benchmark's own resident memory at the spawn (tens
//! of MiB, more with large stores) is a floor under it. So the peak RSS
//! reported is `VmHWM` of the child's own address space, sampled from
//! `/proc/PID/status` every few milliseconds until it exits (a high-water
//! mark, so a sample after the peak holds it); `ru_maxrss` is kept as the
//! upper bound. The child is left a zombie (`waitid` with `WNOWAIT`) until
//! the sampling has stopped, so its pid cannot be reused under the sampler.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{Context, Result};
use super::stats::Summary;
use super::stores::BenchStore;
use super::{Purged, eligible};

/// Lines of stderr, other than the per-job audit events, kept for an error message.
const KEPT_LINES: usize = 20;

/// How often the purge's `VmHWM` is sampled.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(5);

/// What only retentiond's purge has: how its batches went and its memory.
#[derive(Debug, Clone)]
pub struct ProcessFigures {
    /// Batch durations in milliseconds.
    pub batches: Summary,
    /// Jobs per batch, in the order of the batches.
    pub batch_sizes: Vec<u64>,
    /// The largest resident set of the purge's own address space (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// `ru_maxrss` from `wait4`, in KiB: an upper bound that includes the
    /// benchmark's own memory at the spawn.
    pub ru_maxrss_kib: u64,
    /// Its pauses for the replicas (`retention.max_replica_lag`), from its summary.
    pub pauses: u64,
    pub paused_ms: u64,
}

impl ProcessFigures {
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    pub fn ru_maxrss_mib(&self) -> f64 {
        self.ru_maxrss_kib as f64 / 1024.0
    }
}

/// The JSON summary `purge --output json` prints (the fields used here).
#[derive(Debug, Deserialize)]
struct PurgeSummary {
    as_of: DateTime<Utc>,
    total: u64,
    stopped_by: String,
    pauses: u64,
    paused_ms: u64,
}

/// A "batch committed" log event: `{"fields": {"message", "jobs", "elapsed_ms"}, …}`.
#[derive(Debug, Deserialize)]
struct LogEvent {
    fields: BatchFields,
}

#[derive(Debug, Deserialize)]
struct BatchFields {
    message: String,
    jobs: u64,
    elapsed_ms: f64,
}

/// What the stderr reader found.
#[derive(Default)]
struct StderrLog {
    /// (jobs, milliseconds) per batch.
    batches: Vec<(u64, f64)>,
    /// The last lines that were not audit events.
    tail: VecDeque<String>,
}

/// Runs `retentiond purge` on `store` and waits for it.
pub async fn run(store: &BenchStore) -> Result<Purged> {
    run_with(store, Vec::new()).await
}

/// The same with more settings, as `RETENTIOND__…` variables.
pub async fn run_with(store: &BenchStore, settings: Vec<(&'static str, String)>) -> Result<Purged> {
    let url = store.url.clone();
    tokio::task::spawn_blocking(move || run_blocking(&url, &settings))
        .await
        .context("the thread running retentiond purge failed")?
        .with_context(|| format!("retentiond purge of the {} store", store.variant))
}

fn run_blocking(url: &str, settings: &[(&'static str, String)]) -> Result<Purged> {
    let mut command = super::cli::command(url, &["purge", "--output", "json"]);
    command.envs(settings.iter().map(|(key, value)| (key, value)));
    command
        .env("RETENTIOND__LOG__LEVEL", "info,retentiond::sweep=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start retentiond purge")?;
    let mut stdout = child.stdout.take().ok_or("no pipe for the purge's stdout")?;
    let stderr = child.stderr.take().ok_or("no pipe for the purge's stderr")?;
    let stdout_reader = thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let stderr_reader = thread::spawn(move || read_stderr(stderr));
    let pid = child.id();
    let exited = Arc::new(AtomicBool::new(false));
    let sampler = thread::spawn({
        let exited = exited.clone();
        move || sample_peak_rss(pid, &exited)
    });
    let waited = wait_for_exit(pid);
    let elapsed = started.elapsed();
    exited.store(true, Ordering::Relaxed);
    let peak_rss_kib = sampler.join().map_err(|_| "the RSS sampler panicked")?;
    waited?;
    let (status, ru_maxrss_kib) = reap(pid)?;
    let stdout = stdout_reader.join().map_err(|_| "the stdout reader panicked")?.context("reading the stdout")?;
    let log = stderr_reader.join().map_err(|_| "the stderr reader panicked")?;
    let tail = || Vec::from(log.tail.clone()).join("\n");
    if !status.success {
        return Err(format!("it {}; its last log lines:\n{}", status.describe(), tail()).into());
    }
    let summary: PurgeSummary =
        serde_json::from_str(&stdout).with_context(|| format!("its summary is not the expected JSON: {stdout:?}"))?;
    if summary.stopped_by != "done" {
        return Err(format!(
            "it stopped by {} instead of finishing; its last log lines:\n{}",
            summary.stopped_by,
            tail()
        )
        .into());
    }
    let batches = Summary::of(log.batches.iter().map(|&(_, ms)| ms))
        .ok_or_else(|| format!("no \"batch committed\" event in its log (has the log format changed?):\n{}", tail()))?;
    Ok(Purged {
        deleted: summary.total,
        elapsed,
        cutoff: eligible::cutoff(summary.as_of)?,
        process: Some(ProcessFigures {
            batches,
            batch_sizes: log.batches.iter().map(|&(jobs, _)| jobs).collect(),
            peak_rss_kib,
            ru_maxrss_kib,
            pauses: summary.pauses,
            paused_ms: summary.paused_ms,
        }),
        until_purged: None,
    })
}

/// Reads stderr to its end: batch events parsed, audit events skipped, the rest kept for errors.
fn read_stderr(stderr: impl Read) -> StderrLog {
    let mut log = StderrLog::default();
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        if line.contains("\"batch committed\"") {
            if let Ok(event) = serde_json::from_str::<LogEvent>(&line)
                && event.fields.message == "batch committed"
            {
                log.batches.push((event.fields.jobs, event.fields.elapsed_ms));
                continue;
            }
        } else if line.contains("\"job deleted\"") {
            continue;
        }
        if log.tail.len() == KEPT_LINES {
            log.tail.pop_front();
        }
        log.tail.push_back(line.into_owned());
    }
    log
}

/// How a child process ended.
struct ExitStatus {
    success: bool,
    raw: i32,
}

impl ExitStatus {
    fn describe(&self) -> String {
        if libc::WIFEXITED(self.raw) {
            format!("exited with {}", libc::WEXITSTATUS(self.raw))
        } else if libc::WIFSIGNALED(self.raw) {
            format!("was killed by signal {}", libc::WTERMSIG(self.raw))
        } else {
            format!("ended with wait status {}", self.raw)
        }
    }
}

/// The highest `VmHWM` of process `pid` seen until `exited` is set, in KiB.
fn sample_peak_rss(pid: u32, exited: &AtomicBool) -> u64 {
    let path = format!("/proc/{pid}/status");
    let mut peak = 0;
    while !exited.load(Ordering::Relaxed) {
        // A zombie has no address space left, and no VmHWM line.
        let sample = std::fs::read_to_string(&path).ok().and_then(|status| {
            let value = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
            value.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        });
        peak = peak.max(sample.unwrap_or(0));
        thread::sleep(RSS_SAMPLE_INTERVAL);
    }
    peak
}

/// Waits until the child `pid` has exited, leaving it a zombie (`WNOWAIT`).
fn wait_for_exit(pid: u32) -> Result<()> {
    let id = libc::id_t::from(pid);
    loop {
        // SAFETY: `siginfo_t` is plain old data; all zeroes is a valid value of it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a live, writable local of the right type.
        if unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid on the purge (pid {pid}) failed: {error}").into());
        }
    }
}

/// Reaps the exited child `pid` with `wait4`, which also returns its resource
/// usage; gives its exit status and `ru_maxrss` in KiB.
fn reap(pid: u32) -> Result<(ExitStatus, u64)> {
    let pid = libc::pid_t::try_from(pid).context("the purge's pid does not fit a pid_t")?;
    let mut raw: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; all zeroes is a valid value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers point to live, writable locals of the right types.
        let reaped = unsafe { libc::wait4(pid, &mut raw, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 on the purge (pid {pid}) failed: {error}").into());
        }
    }
    let success = libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 0;
    Ok((ExitStatus { success, raw }, u64::try_from(usage.ru_maxrss).unwrap_or(0)))
}
