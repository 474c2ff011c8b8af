//! Results on stdout, as text for people or JSON for programs (`--output`).
//! The JSON shapes are those of docs/design.md, "The command line".

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::json;

use crate::cli::OutputFormat;
use crate::forecast::Forecast;
use crate::model::{AuditEntry, Job, RunRecord};
use crate::policy::{PerPolicy, Policy};
use crate::scheduler::WindowReport;
use crate::sweep::{StoppedBy, SweepReport};

pub struct Printer {
    pub format: OutputFormat,
}

fn time(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn optional_time(timestamp: Option<DateTime<Utc>>) -> String {
    timestamp.map_or_else(|| "-".to_owned(), time)
}

/// `schedule.window 22:00-06:00 (Europe/Berlin)`.
fn window_name(window: &WindowReport) -> String {
    format!("schedule.window {} ({})", window.windows.join(", "), window.timezone)
}

fn or_none(time: &Option<String>) -> &str {
    time.as_deref().unwrap_or("none within a week")
}

/// Left-aligned columns, two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut text = line(&mut headers.iter().copied());
    for row in rows {
        text += &line(&mut row.iter().map(String::as_str));
    }
    text
}

impl Printer {
    /// Writes a result. A reader that closes the pipe early (`| head`) has
    /// seen all it wanted: that is not a failure of the command.
    fn emit(&self, json: &impl Serialize, text: impl FnOnce() -> String) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        let written = match self.format {
            OutputFormat::Json => {
                serde_json::to_writer_pretty(&mut stdout, json).map_err(io::Error::from).and_then(|()| writeln!(stdout))
            }
            OutputFormat::Text => stdout.write_all(text().as_bytes()),
        };
        match written.and_then(|()| stdout.flush()) {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            result => result,
        }
    }

    pub fn job(&self, job: &Job) -> io::Result<()> {
        self.emit(job, || {
            let cancel = match job.cancel_requested_at {
                Some(at) if job.cancel_requested => format!("yes, at {}", time(at)),
                _ => "no".to_owned(),
            };
            let mut text = format!(
                "name:              {}\ntype:              {}\nstate:             {} since {}\ncancel requested:  {cancel}\nhold:              {}\nretain until:      {}\ncreated:           {}\nupdated:           {}\ndrives:            {}\n",
                job.name,
                job.job_type,
                job.state,
                time(job.state_changed_at),
                job.hold_reason.as_deref().unwrap_or("-"),
                job.retain_until.map_or_else(|| "-".to_owned(), time),
                time(job.created_at),
                time(job.updated_at),
                job.drives.len(),
            );
            for drive in &job.drives {
                text += &format!("  {}  {}  {} bytes\n", drive.drive_id, drive.state, drive.bytes);
            }
            text
        })
    }

    pub fn jobs(&self, jobs: &[Job]) -> io::Result<()> {
        self.emit(&jobs, || {
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|job| {
                    vec![
                        job.name.clone(),
                        job.job_type.to_string(),
                        job.state.to_string(),
                        time(job.state_changed_at),
                        if job.cancel_requested { "yes" } else { "-" }.to_owned(),
                        job.hold_reason.clone().unwrap_or_else(|| "-".to_owned()),
                        job.drives.len().to_string(),
                    ]
                })
                .collect();
            table(&["NAME", "TYPE", "STATE", "SINCE", "CANCELLED", "HOLD", "DRIVES"], &rows)
        })
    }

    pub fn audit_entry(&self, entry: &AuditEntry) -> io::Result<()> {
        self.emit(entry, || {
            format!(
                "deleted {} ({} {}) at {} by {}; audit entry {}\n",
                entry.job_name,
                entry.job_type,
                entry.state,
                time(entry.deleted_at),
                entry.deleted_by,
                entry.id
            )
        })
    }

    pub fn audit_entries(&self, entries: &[AuditEntry]) -> io::Result<()> {
        self.emit(&entries, || {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|entry| {
                    vec![
                        entry.id.to_string(),
                        entry.run_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                        entry.job_name.clone(),
                        entry.job_type.to_string(),
                        entry.policy.clone(),
                        entry.state.to_string(),
                        if entry.cancel_requested { "yes" } else { "-" }.to_owned(),
                        time(entry.state_changed_at),
                        time(entry.deleted_at),
                        entry.deleted_by.clone(),
                    ]
                })
                .collect();
            table(&["ID", "RUN", "JOB", "TYPE", "POLICY", "STATE", "CANCELLED", "SINCE", "DELETED", "BY"], &rows)
        })
    }

    pub fn runs(&self, runs: &[RunRecord]) -> io::Result<()> {
        self.emit(&runs, || {
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|run| {
                    vec![
                        run.run_id.to_string(),
                        run.trigger.clone(),
                        run.status.as_str().to_owned(),
                        time(run.started_at),
                        optional_time(run.finished_at),
                        run.total.to_string(),
                        format!("{}/{}/{}", run.counts.completed, run.counts.closed, run.counts.creating_idle),
                        run.stopped_by.clone().unwrap_or_else(|| "-".to_owned()),
                        format!("{}/{}", run.removed.audit_rows, run.removed.runs),
                        format!("{}/{}", run.paused.pauses, run.paused.paused_ms),
                        run.error.clone().unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            let headers = [
                "RUN",
                "TRIGGER",
                "STATUS",
                "STARTED",
                "FINISHED",
                "DELETED",
                "COMPL/CLOSED/IDLE",
                "STOPPED_BY",
                "REMOVED_AUDIT/RUNS",
                "PAUSES/MS",
                "ERROR",
            ];
            table(&headers, &rows)
        })
    }

    pub fn sweep(&self, report: &SweepReport) -> io::Result<()> {
        self.emit(report, || {
            let counts = format!(
                "completed {}, closed {}, creating_idle {}, retain_until {}",
                report.counts.completed, report.counts.closed, report.counts.creating_idle, report.counts.retain_until
            );
            let mut text = match report.run_id {
                Some(run_id) => format!("run {run_id}: deleted {} jobs ({counts})", report.total),
                None => format!("dry run at {}: would delete {} jobs ({counts})", time(report.as_of), report.total),
            };
            text += &format!(
                " in {} ms, stopped by {}; oldest {}",
                report.duration_ms,
                report.stopped_by.as_str(),
                optional_time(report.oldest_eligible_at)
            );
            if report.skipped_future > 0 {
                text += &format!("; {} jobs with future timestamps kept", report.skipped_future);
            }
            if report.removed.any() {
                text += &format!(
                    "; removed {} audit rows and {} run records",
                    report.removed.audit_rows, report.removed.runs
                );
            }
            if report.paused.pauses > 0 {
                text += &format!(
                    "; paused {} times for the replicas, {} ms in all",
                    report.paused.pauses, report.paused.paused_ms
                );
            }
            if let Some(window) = &report.window {
                if report.stopped_by == StoppedBy::Window {
                    text += &format!("; {} closed at {}", window_name(window), or_none(&window.closes));
                }
                if !window.open {
                    text += &format!(
                        "\noutside {}: a purge now deletes nothing; the next window opens at {}",
                        window_name(window),
                        or_none(&window.next_opens)
                    );
                }
            }
            text.push('\n');
            for name in report.jobs.iter().flatten() {
                text += &format!("  {name}\n");
            }
            text
        })
    }

    /// `purge` outside every window: nothing deleted; in JSON the shape of a
    /// purge summary, stopped by `window` before its first batch, without a run.
    pub fn outside_window(&self, window: &WindowReport) -> io::Result<()> {
        let json = json!({
            "run_id": null,
            "dry_run": false,
            "counts": PerPolicy::<u64>::default(),
            "total": 0,
            "stopped_by": StoppedBy::Window,
            "duration_ms": 0,
            "window": window,
        });
        self.emit(&json, || {
            format!(
                "outside {}: deleted nothing; the next window opens at {} (--ignore-window deletes now)\n",
                window_name(window),
                or_none(&window.next_opens)
            )
        })
    }

    /// `forecast`: a line per policy, then a line per day.
    pub fn forecast(&self, forecast: &Forecast) -> io::Result<()> {
        self.emit(forecast, || {
            let days = forecast.days;
            let mut text = format!(
                "forecast at {} for the next {days} days (day 1 = the next 24 hours); held jobs are kept while held\n\n",
                time(forecast.as_of)
            );
            let policies: Vec<Vec<String>> = Policy::ALL
                .iter()
                .map(|&policy| {
                    let part = &forecast.policies[policy];
                    vec![
                        policy.as_str().to_owned(),
                        part.retention.clone().unwrap_or_else(|| "off".to_owned()),
                        part.within_window.to_string(),
                        part.held_past_retention.to_string(),
                        part.held_within_window.to_string(),
                    ]
                })
                .collect();
            let within = format!("WITHIN_{days}D");
            let held_within = format!("HELD_WITHIN_{days}D");
            let headers = ["POLICY", "RETENTION", &within, "HELD_PAST_RETENTION", &held_within];
            text += &table(&headers, &policies);
            text.push('\n');
            let rows: Vec<Vec<String>> = forecast
                .per_day
                .iter()
                .map(|day| {
                    vec![
                        day.day.to_string(),
                        time(day.from),
                        day.counts.completed.to_string(),
                        day.counts.closed.to_string(),
                        day.counts.creating_idle.to_string(),
                        day.total.to_string(),
                        day.held.to_string(),
                    ]
                })
                .collect();
            text += &table(&["DAY", "FROM", "COMPLETED", "CLOSED", "CREATING_IDLE", "TOTAL", "HELD"], &rows);
            text += &format!(
                "\n{} jobs become eligible within {days} days; {} held jobs are past or reach their retention\n",
                forecast.total, forecast.held_total
            );
            text
        })
    }

    /// A short result: `json` for programs, `text` for people.
    pub fn message(&self, json: &serde_json::Value, text: &str) -> io::Result<()> {
        self.emit(json, || format!("{text}\n"))
    }
}
