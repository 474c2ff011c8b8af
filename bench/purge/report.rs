//! `benchmarks.md`: the figures of one run, with what was run, when, on
//! which machine and at which sizes, and how each figure is measured, so a
//! reader can judge them without reading the benchmark's code. The file is
//! rewritten whole by every run but its last sections, from the pacing
//! run's (`pacing_report`) to the end, which are kept as they were: the
//! migration benchmark's figures, copied in by hand, follow the pacing one.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::error::{Context, Result};
use super::idle;
use super::machine::Machine;
use super::shapes::Shape;
use super::space::{MariaDbSpace, PostgresSpace, Space, SqliteSpace, TableStats};
use super::stats::Summary;
use super::sweep_process::ProcessFigures;
use super::{BackendResult, DeletionRun, Options};

use retentiond::store::Engine;

/// Writes the report to `path`.
pub fn write(
    path: &Path,
    options: &Options,
    machine: &Machine,
    started_at: DateTime<Utc>,
    results: &[BackendResult],
    plot_file: &str,
) -> Result<()> {
    let mut text = render(options, machine, started_at, results, plot_file);
    if let Some(pacing) = super::pacing_report::kept(path) {
        text.push('\n');
        text.push_str(&pacing);
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn render(
    options: &Options,
    machine: &Machine,
    started_at: DateTime<Utc>,
    results: &[BackendResult],
    plot_file: &str,
) -> String {
    let mut out = String::new();
    let o = &mut out;
    line(o, "# Purge benchmark");
    line(o, "");
    line(o, "Written by the purge benchmark (`bench/purge/`); every figure below comes from the run described");
    line(o, "here, and the next run overwrites this file, but for the last sections, from \"Pacing by replica");
    line(o, "lag\" (which only a run with `--pacing` writes) to the end (\"Migration 0008 on a large store\").");
    line(o, "");
    line(o, &format!("- command: `{}`", command(options)));
    line(o, &format!("- started: {}", started_at.to_rfc3339_opts(SecondsFormat::Secs, true)));
    line(o, &format!("- finished: {}", Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)));
    if machine.postgres.is_some() {
        line(o, &format!("- PostgreSQL server: `{}`", retentiond::config::redact_url(&options.servers.postgres_url)));
    }
    if machine.mariadb.is_some() {
        line(o, &format!("- MariaDB server: `{}`", retentiond::config::redact_url(&options.servers.mariadb_url)));
    }
    line(o, "");
    machine_section(o, machine);
    sizes_section(o, options);
    shapes_section(o, options);
    method_section(o, options);
    for result in results {
        backend_section(o, options, result);
    }
    line(o, "## Writer latency over time");
    line(o, "");
    line(o, "Each operation's latency against the moment it was due, per condition (log scale). The purge");
    line(o, "starts 1 s after the writer.");
    line(o, "");
    line(o, &format!("![writer latency]({plot_file})"));
    line(o, "");
    line(o, "## Summary lines");
    line(o, "");
    line(o, "```");
    for result in results {
        line(o, &result.summary_line());
    }
    line(o, "```");
    out
}

/// The command that reproduces the run (the servers' URLs are left out: they may hold a password).
fn command(options: &Options) -> String {
    let backends: Vec<String> = options.engines().iter().map(|engine| format!("--backend {}", engine.name())).collect();
    let mut command = format!(
        "cargo bench --bench purge -- {} --jobs {} --idle-jobs {} --backlog-jobs {} \
         --no-stats-jobs {} --writer-rate {} --writer-idle-seconds {} --autovacuum-wait-seconds {} --report-dir {}",
        backends.join(" "),
        options.jobs,
        options.idle_jobs,
        options.backlog_jobs,
        options.no_stats_jobs,
        options.writer_rate,
        options.writer_idle_seconds,
        options.autovacuum_wait_seconds,
        options.report_dir.display()
    );
    if let Some(dir) = &options.work_dir {
        let _ = write!(command, " --work-dir {}", dir.display());
    }
    command
}

fn machine_section(o: &mut String, machine: &Machine) {
    line(o, "## Machine");
    line(o, "");
    line(o, "| | |");
    line(o, "|---|---|");
    line(o, &format!("| CPU | {} |", machine.cpu));
    line(o, &format!("| cores | {} |", machine.cores));
    line(o, &format!("| memory (MemTotal) | {} |", machine.memory));
    line(o, &format!("| kernel | {} |", machine.kernel));
    if let Some(version) = &machine.postgres {
        line(o, &format!("| PostgreSQL | {version} |"));
    }
    if let Some(version) = &machine.mariadb {
        line(o, &format!("| MariaDB | {version} |"));
    }
    line(o, &format!("| SQLite | {} (the library retentiond is built with) |", machine.sqlite));
    line(o, "");
    line(o, "The machine was not reserved for the run: other work on it shows up as noise.");
    line(o, "");
}

fn sizes_section(o: &mut String, options: &Options) {
    line(o, "## Sizes");
    line(o, "");
    line(o, "| store | jobs | made by |");
    line(o, "|---|---|---|");
    line(
        o,
        &format!(
            "| seeded | {} | `retentiond jobs seed --count {} --seed 1`: every state, ages spread over a year, 1–10 \
             drives per job; seeded once, then one identical copy per variant |",
            thousands(options.jobs),
            options.jobs
        ),
    );
    line(
        o,
        &format!(
            "| shuffled | {} | the seeded store's jobs and drives rewritten in a scrambled order (a copy of the seed, \
             one transaction); then one identical copy per variant |",
            thousands(options.jobs)
        ),
    );
    let idle = if options.idle_jobs == options.jobs {
        thousands(options.jobs)
    } else {
        format!("{} and {}", thousands(options.jobs), thousands(options.idle_jobs))
    };
    line(
        o,
        &format!(
            "| idle | {idle} | set-based SQL: every state, every timestamp within the last 60 days, so nothing is \
             eligible; **no drives** |"
        ),
    );
    if options.backlog_jobs > 0 {
        line(
            o,
            &format!(
                "| backlog | {} | set-based SQL: every job `Completed` 100–400 days ago, so all are eligible; 2 drives \
                 each; built once, then one identical copy per variant |",
                thousands(options.backlog_jobs)
            ),
        );
    }
    if options.no_stats_jobs > 0 {
        line(
            o,
            &format!(
                "| no_stats (PostgreSQL) | {} | set-based SQL: 24 jobs in 25 `Completed` or `Closed` 100–400 days ago, \
                 every 25th `Transferring`; 2 drives each; built afresh for each variant, never vacuumed or analysed |",
                thousands(options.no_stats_jobs)
            ),
        );
    }
    line(o, "");
}

/// One sentence per shape measured.
fn shapes_section(o: &mut String, options: &Options) {
    line(o, "## Store shapes");
    line(o, "");
    line(o, "The purge and the single statement are compared on each of these, on identical stores:");
    line(o, "");
    let shapes = [
        (Shape::Seeded, true),
        (Shape::Shuffled, true),
        (Shape::Backlog, options.backlog_jobs > 0),
        (Shape::NoStatistics, options.no_stats_jobs > 0 && options.engines().contains(&Engine::Postgres)),
    ];
    for (shape, measured) in shapes {
        if measured {
            line(o, &format!("- **{}**: {}", shape.name(), shape.description()));
        }
    }
    line(o, "");
}

fn method_section(o: &mut String, options: &Options) {
    let text = format!(
        "## How it is measured

Retention is retentiond's default: `completed` and `closed` after 90 days, `creating_idle` off.

- **baseline**: the strongest hand-written form, one statement in one transaction. PostgreSQL: \
`WITH d AS (DELETE FROM jobs WHERE <eligible> RETURNING …) INSERT INTO retention_audit … SELECT … FROM d` in \
autocommit, drives by `ON DELETE CASCADE`. SQLite (no DELETE inside an INSERT): in one `BEGIN IMMEDIATE` \
transaction, `DELETE … RETURNING` every job to the client as JSON, then one `INSERT INTO retention_audit … SELECT … \
FROM json_each(?)`, then `COMMIT`. MariaDB (no DELETE inside an INSERT either): in one transaction at READ \
COMMITTED, `INSERT INTO retention_audit … SELECT … FROM jobs WHERE <eligible>`, then `DELETE FROM jobs WHERE \
<eligible>` (drives by the cascade), then `COMMIT`. Timed from before the statement to after the commit.
- **retentiond purge**: `retentiond purge --output json` as a process with default settings; rows/s is jobs deleted \
over the process's wall time (start, connect, sweep, exit). Its batch durations come from its `batch committed` debug \
log events. Its peak RSS is the high-water mark of its own address space (`VmHWM` in `/proc/PID/status`, \
sampled every 5 ms until it exits). The kernel's `ru_maxrss` from `wait4`, shown in brackets, is only an upper \
bound: Linux carries the benchmark's own resident memory at the spawn into the child's `ru_maxrss`.
- **purge / baseline**: the purge's rows/s over the baseline's, both without the writer, each on its own copy of the \
same store, per shape; the purge runs first on every shape but the seeded one. The summary line's \
`purge_vs_single_statement` is the seeded store's, `worst_case_vs_single_statement` the lowest over the shapes. \
On MariaDB each store is also settled by waiting until InnoDB's history list is empty (the rows earlier transactions \
deleted removed), and each deletion without the writer is timed a second way, until InnoDB has removed the rows it \
deleted: a `DELETE` only marks its rows, and InnoDB removes them in the background after the commit, so the single \
statement's own time leaves that work out while the purge's batches have most of it done as they go \
(`until_purged_vs_single_statement`, seeded store).
- **writer**: a task on its own connection doing {rate} operations/s, alternately a new `Creating` job with 2 drives \
(one transaction; `BEGIN IMMEDIATE` on SQLite) and an update of a random live job. Open-loop: operation i is due at \
start + i/{rate} s and its latency is its end minus its due time, so waiting behind a lock — and the queue that builds \
up behind it — counts. It includes the writer's own wake-up, which tokio's timer rounds up to the next millisecond. \
Three conditions, each on a fresh copy: no purge ({idle} s, every operation counts); during the baseline; during \
retentiond's purge. With a purge, the writer starts 1 s before it and stops 1 s after it, and the statistics cover \
the operations due while the purge ran.
- **idle sweep**: in-process through the library (`store::open`, `sweep::sweep`) on a store where nothing is \
eligible; {warm_up} warm-up sweeps, then {timed} timed ones, {gap} ms apart (a few seconds of the machine, not one \
moment of it); once with the default retention, once with every key of `[retention.by_type.import]` and \
`[retention.by_type.export]` set (61 to 85 days, `creating_idle` included: six rules, each read from its index).
- **space**: read right after retentiond's purge of the seeded store (without the writer).
- **checks**: after every deleting run: nothing eligible left at its cut-off; deleted = the jobs of the seed \
eligible at that cut-off (its own \"now\" minus 90 days); one audit row per deleted job; jobs left + deleted = \
seeded + written by the writer.

",
        rate = options.writer_rate,
        idle = options.writer_idle_seconds,
        warm_up = idle::WARM_UP_SWEEPS,
        timed = idle::TIMED_SWEEPS,
        gap = idle::GAP_BETWEEN_SWEEPS.as_millis(),
    );
    o.push_str(&text);
}

fn backend_section(o: &mut String, options: &Options, result: &BackendResult) {
    line(o, &format!("## {}", result.backend.title()));
    line(o, "");
    shapes_table(o, result);
    line(o, "The seeded store in detail:");
    line(o, "");
    line(o, "| measure | value |");
    line(o, "|---|---|");
    let seeded = &result.seeded;
    row(
        o,
        "seeded store: jobs; eligible at the purge's cut-off",
        &format!("{}; {}", thousands(seeded.jobs()), thousands(seeded.eligible())),
    );
    row(o, "baseline (single statement), rows/s", &deletion(&seeded.baseline));
    row(o, "retentiond purge, rows/s", &deletion(&seeded.sweep));
    row(o, "**purge / baseline**", &format!("**{:.2}**", result.purge_vs_single_statement()));
    if let Some(ratio) = seeded.until_purged_vs_single_statement() {
        let deletions = [("baseline (single statement)", &seeded.baseline), ("retentiond purge", &seeded.sweep)];
        for (method, run) in deletions {
            row(o, &format!("{method} until InnoDB removed the deleted rows, rows/s"), &until_purged(run));
        }
        row(o, "purge / baseline, each until InnoDB removed the deleted rows", &format!("{ratio:.2}"));
    }
    if let Some(process) = &seeded.sweep.purged.process {
        row(o, "purge batch ms, p50 / p99 / max", &summary(&process.batches));
        let mut sizes = process.batch_sizes.clone();
        sizes.sort_unstable();
        row(
            o,
            "purge batches: count; jobs per batch, smallest / median / largest",
            &format!(
                "{}; {} / {} / {}",
                sizes.len(),
                sizes.first().copied().unwrap_or(0),
                sizes.get(sizes.len() / 2).copied().unwrap_or(0),
                sizes.last().copied().unwrap_or(0)
            ),
        );
        row(o, &format!("purge peak RSS, seeded store ({} jobs)", thousands(options.jobs)), &rss(process));
    }
    if let Some(backlog) = result.comparison(Shape::Backlog)
        && let Some(process) = &backlog.sweep.purged.process
    {
        row(
            o,
            &format!("purge of the backlog ({} jobs): peak RSS; rows/s", thousands(options.backlog_jobs)),
            &format!("{}; {}", rss(process), deletion(&backlog.sweep)),
        );
    }
    for condition in result.writer_conditions() {
        row(
            o,
            &format!("writer latency ms, {}: p50 / p99 / max", condition.label),
            &format!(
                "{} ({} operations due in {:.2} s)",
                summary(&condition.latency),
                thousands(condition.latency.count as u64),
                condition.window.1 - condition.window.0
            ),
        );
    }
    row(o, "baseline with the writer running, rows/s", &deletion(&result.baseline_with_writer));
    row(o, "retentiond purge with the writer running, rows/s", &deletion(&result.sweep_with_writer));
    if let Some(process) = &result.sweep_with_writer.purged.process {
        row(o, "purge batch ms with the writer running, p50 / p99 / max", &summary(&process.batches));
    }
    for idle in &result.idle {
        row(
            o,
            &format!("idle sweep ms, {} jobs: median / p99", thousands(idle.jobs)),
            &format!("{:.3} / {:.3}", idle.sweeps.p50, idle.sweeps.p99),
        );
        row(
            o,
            &format!("idle sweep ms, {} jobs, every per-type key set: median / p99", thousands(idle.jobs)),
            &format!("{:.3} / {:.3}", idle.by_type.p50, idle.by_type.p99),
        );
    }
    line(o, "");
    match &result.space {
        Space::Sqlite(space) => sqlite_space(o, space),
        Space::Postgres(space) => postgres_space(o, space),
        Space::MariaDb(space) => mariadb_space(o, space),
    }
    checks_table(o, result);
}

/// Every shape side by side: both deletions, their ratio, the purge's batch p99, and the writer where it ran.
fn shapes_table(o: &mut String, result: &BackendResult) {
    line(
        o,
        "| store | jobs | eligible | single statement, rows/s | retentiond purge, rows/s | purge / single | \
         purge batch p99 ms | writer p99 ms during the purge |",
    );
    line(o, "|---|---|---|---|---|---|---|---|");
    for comparison in result.comparisons() {
        let writer = if comparison.shape == Shape::Seeded {
            format!("{:.3}", result.writer_during_sweep.latency.p99)
        } else {
            "– (no writer)".to_owned()
        };
        line(
            o,
            &format!(
                "| {} | {} | {} | {} | {} | **{:.2}** | {:.3} | {writer} |",
                comparison.shape.name(),
                thousands(comparison.jobs()),
                thousands(comparison.eligible()),
                deletion(&comparison.baseline),
                deletion(&comparison.sweep),
                comparison.purge_vs_single_statement(),
                comparison.batch_p99_ms(),
            ),
        );
    }
    line(o, "");
    line(o, &format!("Worst case, purge / single statement: **{:.2}**.", result.worst_case_vs_single_statement()));
    line(o, "");
    let until_purged: Vec<String> = result
        .comparisons()
        .filter_map(|comparison| {
            let ratio = comparison.until_purged_vs_single_statement()?;
            Some(format!("{} {ratio:.2}", comparison.shape.name()))
        })
        .collect();
    if !until_purged.is_empty() {
        line(
            o,
            &format!(
                "Each timed until InnoDB had also removed the deleted rows (which it does in the background after \
                 the commits), purge / single statement: {}.",
                until_purged.join(", ")
            ),
        );
        line(o, "");
    }
}

fn sqlite_space(o: &mut String, space: &SqliteSpace) {
    let free_bytes = space.freelist_count * space.page_size;
    let share = free_bytes as f64 / (space.page_count * space.page_size).max(1) as f64 * 100.0;
    let wal = match space.wal_bytes {
        None => "none".to_owned(),
        Some(0) => "empty".to_owned(),
        Some(bytes) => mib(bytes),
    };
    let (auto_vacuum, meaning) = match space.auto_vacuum {
        0 => ("0 (none)", "free pages stay in the file for later inserts; only `VACUUM` shrinks it"),
        1 => ("1 (full)", "every commit gives free pages back to the filesystem"),
        2 => ("2 (incremental)", "free pages go back to the filesystem only through `PRAGMA incremental_vacuum`"),
        _ => ("unknown", "unknown"),
    };
    line(o, "Space right after the purge:");
    line(o, "");
    line(o, "| file | WAL | pages | free pages | auto_vacuum |");
    line(o, "|---|---|---|---|---|");
    line(
        o,
        &format!(
            "| {} | {wal} | {} of {} B | {} ({}, {share:.0} % of the file) | {auto_vacuum} |",
            mib(space.file_bytes),
            thousands(space.page_count as u64),
            space.page_size,
            thousands(space.freelist_count as u64),
            mib(free_bytes as u64)
        ),
    );
    line(o, "");
    line(o, &format!("With this `auto_vacuum`, {meaning}. The sizes are read after the purge process has exited:"));
    line(o, "the last connection to close checkpoints the WAL into the database file and removes it.");
    line(o, "");
}

fn postgres_space(o: &mut String, space: &PostgresSpace) {
    line(o, "Space right after the purge (`pg_stat_user_tables`):");
    line(o, "");
    let waited = space.after_wait.as_ref();
    if waited.is_some() {
        line(o, "| table | live tuples | dead tuples | dead tuples after waiting | autovacuum runs after waiting |");
        line(o, "|---|---|---|---|---|");
    } else {
        line(o, "| table | live tuples | dead tuples |");
        line(o, "|---|---|---|");
    }
    for stats in &space.after_purge {
        let later = waited.and_then(|wait| wait.tables.iter().find(|later| later.table == stats.table));
        match (waited, later) {
            (Some(_), Some(later)) => line(
                o,
                &format!(
                    "| {} | {} | {} | {} | {} |",
                    stats.table,
                    thousands(stats.live as u64),
                    thousands(stats.dead as u64),
                    thousands(later.dead as u64),
                    later.autovacuum_count
                ),
            ),
            (Some(_), None) => line(
                o,
                &format!(
                    "| {} | {} | {} | – | – |",
                    stats.table,
                    thousands(stats.live as u64),
                    thousands(stats.dead as u64)
                ),
            ),
            (None, _) => line(
                o,
                &format!("| {} | {} | {} |", stats.table, thousands(stats.live as u64), thousands(stats.dead as u64)),
            ),
        }
    }
    line(o, "");
    let verdict = match waited {
        _ if !space.autovacuum_on => {
            "Autovacuum is **off** on this server (`autovacuum = off`): the dead tuples stay until someone runs \
             `VACUUM`, so nothing was waited for."
                .to_owned()
        }
        None => "Autovacuum was not waited for (`--autovacuum-wait-seconds 0`).".to_owned(),
        Some(wait) if wait.caught_up => format!(
            "Autovacuum had processed `jobs` and `job_drives` {:.0} s after the purge ({}).",
            wait.waited.as_secs_f64(),
            last_runs(&wait.tables)
        ),
        Some(wait) => format!(
            "Autovacuum had **not** processed both `jobs` and `job_drives` within {:.0} s of the purge ({}).",
            wait.waited.as_secs_f64(),
            last_runs(&wait.tables)
        ),
    };
    line(o, &verdict);
    line(o, "");
}

fn mariadb_space(o: &mut String, space: &MariaDbSpace) {
    line(o, "Space right after the purge (`information_schema.TABLES`, InnoDB's estimates):");
    line(o, "");
    line(o, "| table | rows (estimate) | data | indexes | free in the tablespace |");
    line(o, "|---|---|---|---|---|");
    for (table, rows, data, index, free) in &space.tables {
        line(
            o,
            &format!(
                "| {table} | {} | {} | {} | {} |",
                thousands(*rows as u64),
                mib(*data as u64),
                mib(*index as u64),
                mib(*free as u64)
            ),
        );
    }
    line(o, "");
    let history = space.history_length.map_or_else(|| "unknown".to_owned(), |length| thousands(length as u64));
    line(
        o,
        &format!(
            "InnoDB's history list (undo its purge threads have not removed yet, the whole server's): {history}. \
             Freed pages stay in each table's tablespace for later rows; only `OPTIMIZE TABLE` gives them back."
        ),
    );
    line(o, "");
}

/// `jobs: 18:01:02, …` — when autovacuum last ran on each table.
fn last_runs(tables: &[TableStats]) -> String {
    let runs: Vec<String> = tables
        .iter()
        .map(|stats| {
            let at =
                stats.last_autovacuum.map_or_else(|| "never".to_owned(), |at| at.format("%H:%M:%S UTC").to_string());
            format!("last autovacuum of {}: {at}", stats.table)
        })
        .collect();
    runs.join("; ")
}

fn checks_table(o: &mut String, result: &BackendResult) {
    line(o, "Correctness checks after every deleting run:");
    line(o, "");
    line(
        o,
        "| run | eligible on the seed at its cut-off | deleted | audit rows | eligible left | jobs left + deleted = seeded + written | checks |",
    );
    line(o, "|---|---|---|---|---|---|---|");
    for run in result.deletion_runs() {
        let checks = &run.checks;
        line(
            o,
            &format!(
                "| {} | {} | {} | {} | {} | {} + {} = {} + {} | {} |",
                run.variant,
                thousands(checks.expected),
                thousands(checks.deleted),
                thousands(checks.audit_rows),
                thousands(checks.eligible_left),
                thousands(checks.jobs_left),
                thousands(checks.deleted),
                thousands(checks.seeded),
                thousands(checks.inserted),
                if checks.hold() { "hold".to_owned() } else { format!("**FAILED**: {}", checks.problems().join("; ")) }
            ),
        );
    }
    line(o, "");
}

/// `123,456 (300,000 jobs in 2.43 s)`.
fn deletion(run: &DeletionRun) -> String {
    rate(run.purged.deleted, run.purged.elapsed)
}

/// [`deletion`], timed until InnoDB had removed the deleted rows.
fn until_purged(run: &DeletionRun) -> String {
    run.purged.until_purged.map_or_else(|| "–".to_owned(), |until_purged| rate(run.purged.deleted, until_purged))
}

/// `12,345 (90,006 jobs in 7.29 s)`.
fn rate(deleted: u64, elapsed: Duration) -> String {
    format!(
        "{} ({} jobs in {:.2} s)",
        thousands(super::per_second(deleted, elapsed).round() as u64),
        thousands(deleted),
        elapsed.as_secs_f64()
    )
}

/// `38.2 MiB (ru_maxrss 54.9 MiB)`.
fn rss(process: &ProcessFigures) -> String {
    format!("{:.1} MiB (ru_maxrss {:.1} MiB)", process.peak_rss_mib(), process.ru_maxrss_mib())
}

fn summary(summary: &Summary) -> String {
    format!("{:.3} / {:.3} / {:.3}", summary.p50, summary.p99, summary.max)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `1234567` as `1,234,567`.
pub(super) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn row(o: &mut String, measure: &str, value: &str) {
    line(o, &format!("| {measure} | {value} |"));
}

fn line(o: &mut String, text: &str) {
    o.push_str(text);
    o.push('\n');
}
