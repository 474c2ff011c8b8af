//! Carries out a parsed command line: load the configuration, set up logging,
//! open the store, do the work, print the result.

use std::io::Read;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cli::{AuditCommand, Cli, Command, JobsCommand, Output, PurgeArgs, RunsCommand, SeedArgs};
use crate::config::{self, Overrides, Settings};
use crate::daemon::{self, ConfigSource};
use crate::error::Error;
use crate::export::{self, ExportRequest};
use crate::forecast;
use crate::generate;
use crate::identity::ProcessIdentity;
use crate::import;
use crate::lifecycle::{self, Operation, ValidationError};
use crate::metrics::{self, SkipReason};
use crate::model::Job;
use crate::output::Printer;
use crate::scheduler::{WindowReport, WindowState, Windows};
use crate::seed::SeedGenerator;
use crate::signals;
use crate::store::{self, AuditSearch, AuditWindow, JobFilter, Store, StoreError};
use crate::sweep::{self, SweepPlan, SweepReport};
use crate::telemetry;

/// Jobs per insert statement when seeding.
const SEED_CHUNK: usize = 10_000;

pub async fn run(cli: Cli) -> Result<(), Error> {
    let overrides = Overrides { log_format: cli.log_format, log_level: cli.log_level.clone() };
    let settings = config::load(cli.config.clone(), &overrides)?;
    let (log_level, _log_guard) = telemetry::init(&settings.log);
    let printer = Printer { format: cli.output.format() };
    match cli.command {
        Command::CheckConfig => {
            config::check_files(&settings)?;
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
        Command::Migrate => {
            let store = store::connect(&settings.database).await?;
            closing(store.as_ref(), store.migrate().await).await?;
            Ok(printer.message(&json!({ "migrated": true }), "migrations applied")?)
        }
        Command::Run => {
            let source = ConfigSource { file: cli.config, overrides };
            daemon::run(settings, source, log_level).await
        }
        Command::Purge(args) => purge(&settings, args, &printer).await,
        Command::Jobs(command) => jobs(&settings, command, &printer).await,
        Command::Audit(AuditCommand::List { job_name, run_id, limit }) => {
            let store = store::open(&settings.database).await?;
            let entries = store.audit(&AuditSearch::newest(job_name, run_id), no_limit_if_zero(limit)).await;
            Ok(printer.audit_entries(&closing(store.as_ref(), entries).await?)?)
        }
        Command::Audit(AuditCommand::Export { since, until, format, output }) => {
            let request =
                ExportRequest { window: AuditWindow { since, until }, format, file: output.and_then(Output::file) };
            audit_export(&settings, &request, &printer).await
        }
        Command::Runs(RunsCommand::List { limit }) => {
            let store = store::open(&settings.database).await?;
            let runs = store.runs(i64::MAX, no_limit_if_zero(limit)).await;
            Ok(printer.runs(&closing(store.as_ref(), runs).await?)?)
        }
        Command::Generate(command) => generate::write(command),
        Command::Forecast { days, as_of } => {
            let store = store::open(&settings.database).await?;
            let retentions = settings.retention.retentions();
            let forecast = forecast::forecast(store.as_ref(), &retentions, days, as_of).await;
            Ok(printer.forecast(&closing(store.as_ref(), forecast).await?)?)
        }
    }
}

/// `result`, once the sessions of the store it came from are ended.
async fn closing<T>(store: &dyn Store, result: T) -> T {
    store.close().await;
    result
}

fn no_limit_if_zero(limit: u64) -> Option<u64> {
    (limit > 0).then_some(limit)
}

async fn purge(settings: &Settings, args: PurgeArgs, printer: &Printer) -> Result<(), Error> {
    let mut plan = SweepPlan::new(&settings.retention, "purge");
    plan.dry_run = args.dry_run;
    plan.as_of = args.as_of;
    plan.max_deletes = args.max_deletes.unwrap_or(plan.max_deletes);
    plan.batch_size = args.batch_size.unwrap_or(plan.batch_size);
    let windows = Windows::new(&settings.schedule.window, &settings.schedule.timezone)?;
    let window = (!args.ignore_window && !windows.any_time()).then(|| windows.at(Utc::now()));
    if let Some(WindowState::Open { closes }) = window {
        plan.window_closes = closes;
    }
    if let Some(path) = &args.metrics_textfile {
        metrics::check_textfile_path(path).map_err(Error::Usage)?;
    }
    let pushgateway = if settings.metrics.pushgateway.is_empty() || plan.dry_run {
        None
    } else {
        Some(metrics::Pushgateway::prepare(&settings.metrics)?)
    };
    let recorder =
        if args.metrics_textfile.is_some() || pushgateway.is_some() { Some(metrics::install()?) } else { None };
    // Outside every window a purge deletes nothing and does not even connect;
    // a dry run writes nothing, so it lists what a purge would delete.
    let purged = match window {
        Some(state @ WindowState::Closed { opens }) if !plan.dry_run => {
            windows.log_skipped(opens, "purge skipped: outside schedule.window; nothing deleted");
            metrics::sweep_skipped(SkipReason::Window);
            Purged::OutsideWindow(windows.report(state))
        }
        _ => Purged::Swept(sweep_now(settings, &plan).await),
    };
    // The metrics go out however the sweep ended: a failed run is what they must show.
    if let Some(recorder) = &recorder {
        if let Some(path) = &args.metrics_textfile {
            metrics::write_textfile(recorder, path)?;
        }
        if let Some(pushgateway) = &pushgateway {
            pushgateway.push(recorder, settings.database.connect_timeout).await?;
        }
    }
    match purged {
        Purged::OutsideWindow(window) => Ok(printer.outside_window(&window)?),
        Purged::Swept(report) => {
            let mut report = report?;
            report.window = window.map(|state| windows.report(state));
            Ok(printer.sweep(&report)?)
        }
    }
}

/// What `purge` did.
enum Purged {
    /// Nothing: it was outside every `schedule.window`.
    OutsideWindow(WindowReport),
    Swept(Result<SweepReport, Error>),
}

/// One sweep of `plan` against the configured store, unless the database is read-only.
async fn sweep_now(settings: &Settings, plan: &SweepPlan) -> Result<SweepReport, Error> {
    let store = store::open(&settings.database).await?;
    // A dry run writes nothing, so it works on a read-only database too.
    let read_only = if plan.dry_run { Ok(None) } else { store.read_only().await };
    let report = match read_only {
        Err(error) => Err(error.into()),
        Ok(Some(reason)) => {
            metrics::sweep_skipped(SkipReason::ReadOnly);
            Err(Error::PurgeReadOnly(reason))
        }
        Ok(None) => {
            let stop = CancellationToken::new();
            let signals = signals::listen(stop.clone(), None)?;
            let report = sweep::sweep(store.as_ref(), plan, &ProcessIdentity::current(), &stop).await;
            signals.close();
            report.map_err(Error::from)
        }
    };
    store.close().await;
    report
}

async fn audit_export(settings: &Settings, request: &ExportRequest, printer: &Printer) -> Result<(), Error> {
    request.check().map_err(Error::Usage)?;
    let store = store::open(&settings.database).await?;
    let stop = CancellationToken::new();
    let signals = signals::listen(stop.clone(), None)?;
    let exported = export::export(store.as_ref(), request, &stop).await;
    signals.close();
    let rows = closing(store.as_ref(), exported).await?;
    match &request.file {
        Some(path) => {
            let text = format!("exported {rows} audit entries to {}", path.display());
            Ok(printer.message(&json!({ "exported": rows, "file": path }), &text)?)
        }
        None => Ok(()),
    }
}

async fn jobs(settings: &Settings, command: JobsCommand, printer: &Printer) -> Result<(), Error> {
    // Input is checked before the database is opened: bad input never waits on it.
    let operation = match &command {
        JobsCommand::Create { name, drives, retain, .. } => {
            lifecycle::validate_name(name)?;
            lifecycle::validate_drives(drives.iter().map(|d| (d.as_str(), 0)))?;
            if let Some(text) = &retain.retain_until {
                import::retain_until("--retain-until", text).map_err(ValidationError::Retention)?;
            }
            if let Some(text) = &retain.retain_for {
                import::retain_for("--retain-for", text, Utc::now()).map_err(ValidationError::Retention)?;
            }
            None
        }
        JobsCommand::SetState { state, .. } => Some(Operation::SetState(*state)),
        JobsCommand::Cancel { .. } => Some(Operation::Cancel),
        JobsCommand::Hold { reason, .. } => {
            lifecycle::validate_hold_reason("--reason", reason)?;
            Some(Operation::Hold(reason.clone()))
        }
        JobsCommand::Release { .. } => Some(Operation::Release),
        JobsCommand::Retain { until: Some(text), .. } => {
            Some(Operation::Retain(Some(import::retain_until("--until", text).map_err(ValidationError::Retention)?)))
        }
        JobsCommand::Retain { clear: true, .. } => Some(Operation::Retain(None)),
        JobsCommand::Retain { for_: Some(text), .. } => {
            import::retain_for("--for", text, Utc::now()).map_err(ValidationError::Retention)?;
            None
        }
        _ => None,
    };
    let imported = match &command {
        JobsCommand::Import { file } => Some(import::parse(&read_input(file)?)?),
        _ => None,
    };
    let store = store::open(&settings.database).await?;
    let done: Result<(), Error> = async {
        match command {
            JobsCommand::Create { name, job_type, drives, retain } => {
                let now = store.now().await?;
                let mut job = Job::new(name, job_type, drives, now);
                job.retain_until = match (&retain.retain_until, &retain.retain_for) {
                    (Some(text), _) => {
                        Some(import::retain_until("--retain-until", text).map_err(ValidationError::Retention)?)
                    }
                    (None, Some(text)) => {
                        Some(import::retain_for("--retain-for", text, now).map_err(ValidationError::Retention)?)
                    }
                    (None, None) => None,
                };
                store.create_jobs(std::slice::from_ref(&job)).await?;
                Ok(printer.job(&job)?)
            }
            JobsCommand::Show { name } => {
                let job = store.job(&name).await?.ok_or_else(|| StoreError::NotFound(lifecycle::quoted(&name)))?;
                Ok(printer.job(&job)?)
            }
            JobsCommand::List { states, limit } => {
                let jobs = store.list_jobs(&JobFilter { states, limit: no_limit_if_zero(limit) }).await?;
                Ok(printer.jobs(&jobs)?)
            }
            JobsCommand::SetState { name, .. }
            | JobsCommand::Cancel { name }
            | JobsCommand::Hold { name, .. }
            | JobsCommand::Release { name } => {
                let operation = operation.expect("every changing command has an operation");
                Ok(printer.job(&store.change_job(&name, &operation).await?)?)
            }
            JobsCommand::Retain { name, for_: Some(text), .. } => {
                let until =
                    import::retain_for("--for", &text, store.now().await?).map_err(ValidationError::Retention)?;
                Ok(printer.job(&store.change_job(&name, &Operation::Retain(Some(until))).await?)?)
            }
            JobsCommand::Retain { name, .. } => {
                let operation = operation.expect("--until and --clear have an operation");
                Ok(printer.job(&store.change_job(&name, &operation).await?)?)
            }
            JobsCommand::Delete { name } => {
                let entry = store.delete_job(&name, &ProcessIdentity::current().deleted_by()).await?;
                tracing::info!(
                    target: "retentiond::audit",
                    job = entry.job_name,
                    job_type = entry.job_type.as_str(),
                    policy = entry.policy,
                    state = entry.state.as_str(),
                    cancel_requested = entry.cancel_requested,
                    state_changed_at = %entry.state_changed_at.to_rfc3339(),
                    "job deleted"
                );
                Ok(printer.audit_entry(&entry)?)
            }
            JobsCommand::Import { .. } => {
                let imported = imported.unwrap_or_default();
                let jobs: Vec<Job> = imported.iter().map(|line| line.job.clone()).collect();
                match store.create_jobs(&jobs).await {
                    Err(error @ StoreError::NameTaken { index, .. }) => {
                        Err(Error::ImportConflict { line: imported[index].line, source: error })
                    }
                    result => {
                        result?;
                        let text = format!("imported {} jobs", jobs.len());
                        Ok(printer.message(&json!({ "imported": jobs.len() }), &text)?)
                    }
                }
            }
            JobsCommand::Seed(args) => seed(store.as_ref(), args, printer).await,
        }
    }
    .await;
    closing(store.as_ref(), done).await
}

/// Reads an import file (`-` for stdin). Bytes that are not UTF-8 are
/// invalid input, reported with their line.
fn read_input(file: &std::path::Path) -> Result<String, Error> {
    let mut input = Vec::new();
    let result = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut input).map(|_| ())
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut input)).map(|_| ())
    };
    result.map_err(|e| Error::Input(format!("cannot read {}: {e}", file.display())))?;
    String::from_utf8(input).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        Error::Input(format!("line {line}: not valid UTF-8"))
    })
}

async fn seed(store: &dyn Store, args: SeedArgs, printer: &Printer) -> Result<(), Error> {
    let started = Instant::now();
    let prefix = args.prefix.unwrap_or_else(|| {
        let tag: String = std::iter::repeat_with(fastrand::lowercase).take(6).collect();
        format!("seed-{tag}")
    });
    let mut generator = SeedGenerator::new(args.seed, store.now().await?, args.days, prefix.clone(), args.count);
    lifecycle::validate_name(&generator.name(args.count.saturating_sub(1)))?;
    let mut created = 0;
    while created < args.count {
        let chunk = generator.chunk(SEED_CHUNK.min((args.count - created) as usize));
        store.create_jobs(&chunk).await?;
        created += chunk.len() as u64;
        if created % 100_000 == 0 {
            tracing::info!(created, of = args.count, "seeding");
        }
    }
    let duration_ms = started.elapsed().as_millis() as u64;
    let text = format!("created {created} jobs named {prefix}-NNNNNNN in {duration_ms} ms");
    Ok(printer.message(&json!({ "created": created, "prefix": prefix, "duration_ms": duration_ms }), &text)?)
}
