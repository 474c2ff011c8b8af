//! The pacing run's section of `benchmarks.md` and its plot. The section is
//! the file's last; a pacing run replaces it (or adds it), and the full
//! benchmark, which rewrites the rest of the file, keeps it as it was
//! ([`kept`]), so neither run throws away the other's figures.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use plotters::prelude::*;

use super::Options;
use super::error::{Context, Result};
use super::machine::Machine;
use super::pacing::{Limit, PacedRun, Pacing};
use super::report::thousands;

/// The section's heading, which also marks where it starts in the file.
pub const HEADING: &str = "## Pacing by replica lag";

/// The plot's file name in the report directory.
pub const PLOT_FILE: &str = "benchmarks-replica-lag.png";

const COLOURS: [RGBColor; 3] = [RGBColor(210, 40, 40), RGBColor(30, 90, 210), RGBColor(0, 150, 60)];

/// The pacing section of the report at `path`, if it has one.
pub fn kept(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let start = text.find(&format!("\n{HEADING}\n"))?;
    Some(text[start + 1..].to_owned())
}

/// Writes the section into the report at `path` (in place of the one there,
/// the sections after it kept) and the plot beside it.
pub fn write(
    path: &Path,
    options: &Options,
    machine: &Machine,
    started_at: DateTime<Utc>,
    pacing: &Pacing,
) -> Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => "# Purge benchmark\n".to_owned(),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display()).into()),
    };
    let text = replace_section(&existing, &section(options, machine, started_at, pacing));
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let plot = path.with_file_name(PLOT_FILE);
    draw(&plot, options, pacing).with_context(|| format!("cannot draw {}", plot.display()))
}

/// `report` with its pacing section replaced by `section` (or `section`
/// appended), the sections before and after it kept.
pub fn replace_section(report: &str, section: &str) -> String {
    let (before, after) = match report.find(&format!("\n{HEADING}\n")) {
        Some(start) => {
            let next = report[start + 1..].find("\n## ").map(|at| start + 1 + at + 1);
            (&report[..=start], next.map_or("", |next| &report[next..]))
        }
        None => (report, ""),
    };
    let mut text = format!("{}\n\n{}", before.trim_end(), section.trim_end());
    if !after.is_empty() {
        text = format!("{text}\n\n{}", after.trim_end());
    }
    text + "\n"
}

fn section(options: &Options, machine: &Machine, started_at: DateTime<Utc>, pacing: &Pacing) -> String {
    let limit = retentiond::config::format_duration(options.max_replica_lag);
    let duty = options.replay_run_ms as f64 / options.replay_period_ms as f64 * 100.0;
    let mut o = String::new();
    let _ = writeln!(o, "{HEADING}");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Written by `cargo bench --bench purge -- --pacing --backlog-jobs {} --max-replica-lag {limit} \
         --replay-run-ms {} --replay-period-ms {} --report-dir {}` (started {}, finished {}); the full benchmark \
         keeps this section as it is. {} cores ({}), {} of memory, shared with other work while it ran: the \
         machine was loaded, and the figures are noisy.",
        options.backlog_jobs,
        options.replay_run_ms,
        options.replay_period_ms,
        options.report_dir.display(),
        started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        machine.cores,
        machine.cpu,
        machine.memory,
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "- **servers**: a primary and a streaming standby of the benchmark's own, both on this machine \
         (`initdb`; `pg_basebackup -R -X stream`; `fsync=off`, `full_page_writes=off`, every other setting \
         PostgreSQL's default), {}.",
        pacing.postgres.split(" on ").next().unwrap_or(&pacing.postgres)
    );
    let _ = writeln!(
        o,
        "- **store**: the backlog store ({} jobs, all `Completed` 100–400 days ago, 2 drives each), built on \
         the primary before the standby was cloned; each run purges a fresh copy (`CREATE DATABASE … TEMPLATE`), \
         which the standby has replayed in full before the purge starts. The purge is `retentiond purge` with \
         default settings, plus the limit.",
        thousands(pacing.jobs)
    );
    let _ = writeln!(
        o,
        "- **a slow standby**: left alone, the standby replays faster than one purge writes (replay only applies \
         the page changes) and never falls behind, and there would be nothing to pace. Its replay is throttled \
         instead: it runs {} ms of every {} ms ({duty:.0} % of the time; `pg_wal_replay_resume()`, then \
         `pg_wal_replay_pause()`, on a session of the benchmark's), as a standby on a smaller machine or a busier \
         disk replays more slowly than its primary writes. Not `recovery_min_apply_delay`: that holds every \
         commit back by a fixed time however little is written, a delay no pacing can shorten.",
        options.replay_run_ms, options.replay_period_ms
    );
    let _ = writeln!(
        o,
        "- **lag**: read by the benchmark ten times a second, not by retentiond: the primary's \
         `pg_current_wal_lsn()` and the standby's `pg_last_wal_replay_lsn()`; the lag is the time since the \
         primary passed the replayed position, interpolated between the two samples around it (retentiond's \
         own rule), 0 once the standby has replayed everything. Sampled from 1 s before the purge until the \
         standby, its replay still throttled, has replayed all the primary had written when the purge ended \
         (\"caught up\"; the primary goes on writing a little: autovacuum of the purged tables)."
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| run | purge, rows/s | rows/s against no limit | pauses (count; time) | standby's largest lag | standby caught up after the purge | checks |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    let unpaced = pacing.runs.iter().find(|run| run.limit == Limit::Off).map(|run| run.run.rows_per_second());
    for run in &pacing.runs {
        let _ = writeln!(o, "{}", row(run, options, unpaced));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "The standby's lag over the purge, per run (seconds since the purge started; the dashed line is the \
         limit):"
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "![standby lag during the backlog purge]({PLOT_FILE})");
    o
}

fn row(run: &PacedRun, options: &Options, unpaced: Option<f64>) -> String {
    let purged = &run.run.purged;
    let (pauses, paused_s) =
        purged.process.as_ref().map_or((0, 0.0), |process| (process.pauses, process.paused_ms as f64 / 1000.0));
    let ratio = unpaced.map_or_else(|| "–".to_owned(), |base| format!("{:.2}", run.run.rows_per_second() / base));
    let checks = if run.run.checks.problems().is_empty() { "hold" } else { "**failed**" };
    format!(
        "| {} | {} ({} jobs in {:.1} s) | {ratio} | {pauses}; {paused_s:.1} s | **{:.1} s** | {:.1} s | {checks} |",
        run.limit.describe(options.max_replica_lag),
        thousands(run.run.rows_per_second().round() as u64),
        thousands(purged.deleted),
        purged.elapsed.as_secs_f64(),
        run.largest_lag_s(),
        run.catch_up_s(),
    )
}

fn draw(path: &Path, options: &Options, pacing: &Pacing) -> Result<()> {
    super::plot::register_font()?;
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).context("plot")?;
    let points = |run: &PacedRun| -> Vec<(f64, f64)> {
        run.samples.iter().map(|sample| (sample.at_s - run.purge_started_s, sample.lag_s)).collect()
    };
    let all: Vec<(f64, f64)> = pacing.runs.iter().flat_map(points).collect();
    let x_min = all.iter().map(|p| p.0).fold(0.0, f64::min);
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max);
    let limit = options.max_replica_lag.as_secs_f64();
    let y_max = all.iter().map(|p| p.1).fold(limit, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("PostgreSQL: the standby's lag during the backlog purge", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .context("chart")?;
    chart
        .configure_mesh()
        .x_desc("seconds since the purge started")
        .y_desc("standby lag, s")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .context("axes")?;
    for (run, colour) in pacing.runs.iter().zip(COLOURS) {
        let label = format!(
            "{}: largest {:.1} s, {} rows/s",
            run.limit.describe(options.max_replica_lag),
            run.largest_lag_s(),
            thousands(run.run.rows_per_second().round() as u64)
        );
        chart
            .draw_series(LineSeries::new(points(run), colour.stroke_width(2)))
            .context("series")?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    }
    chart
        .draw_series(DashedLineSeries::new([(x_min, limit), (x_max, limit)], 8, 6, BLACK.stroke_width(1)))
        .context("the limit")?;
    super::plot::legend(&mut chart)?;
    root.present().with_context(|| format!("cannot write the plot {}", path.display()))
}
