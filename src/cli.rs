//! The command line (docs/design.md, "The command line"): global options and one subcommand per task.
//! Parsing only; [`crate::app`] carries the commands out.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::builder::{PathBufValueParser, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::batch::BatchSize;
use crate::config::LogFormat;
use crate::export::ExportFormat;
use crate::lifecycle::{JobState, JobType};

#[derive(Debug, Parser)]
#[command(
    name = "retentiond",
    version,
    about = "Deletes finished import/export jobs after their retention period, with an audit trail"
)]
pub struct Cli {
    /// Configuration file (TOML); default: $RETENTIOND_CONFIG, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr (overrides log.format).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. `debug` (overrides log.level).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Format of results on stdout.
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = output_format())]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `--output`: the format of results on stdout, or, for `audit export`,
/// the file to write. A subcommand's option named like a global one takes
/// the global one's place in clap, and both share one value, hence one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Format(OutputFormat),
    File(PathBuf),
}

impl Output {
    /// The format of results on stdout: text beside a file.
    pub fn format(&self) -> OutputFormat {
        match self {
            Output::Format(format) => *format,
            Output::File(_) => OutputFormat::Text,
        }
    }

    /// The file to write, if this names one.
    pub fn file(self) -> Option<PathBuf> {
        match self {
            Output::Format(_) => None,
            Output::File(path) => Some(path),
        }
    }
}

/// The global `--output`: text or json.
fn output_format() -> impl TypedValueParser<Value = Output> {
    PossibleValuesParser::new(["text", "json"])
        .map(|format| Output::Format(if format == "json" { OutputFormat::Json } else { OutputFormat::Text }))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: sweep on the schedule until SIGTERM (SIGHUP reloads the configuration).
    Run,
    /// Delete every eligible job now (one sweep), then exit.
    Purge(PurgeArgs),
    /// Apply the schema migrations.
    Migrate,
    /// Validate the configuration and print it as TOML, secrets redacted.
    CheckConfig,
    /// Create, read and change jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Read the audit trail of deleted jobs.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Read the records of past sweeps.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Write the man pages or a shell completion script, made from this command line (for packaging).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
    /// Jobs that become eligible per day over the next days, per policy, held jobs apart.
    Forecast {
        /// Days ahead, 1 to 365; day 1 is the next 24 hours.
        #[arg(long, default_value_t = crate::forecast::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::forecast::MAX_DAYS)))]
        days: u32,
        /// Forecast from this moment instead of now (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
        as_of: Option<DateTime<Utc>>,
    },
}

/// A new job's own retention (`jobs create`); none by default.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct RetainArgs {
    /// Once finished, keep the job until this time (RFC 3339 with its zone) instead of its policy's retention.
    #[arg(long, value_name = "TIME")]
    pub retain_until: Option<String>,
    /// Once finished, keep the job for this long from now (e.g. 1y, 180d) instead of its policy's retention.
    #[arg(long, value_name = "DURATION")]
    pub retain_for: Option<String>,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Report what would be deleted; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Evaluate the rules at this moment instead of now (RFC 3339; dry run only).
    #[arg(long, requires = "dry_run", value_name = "TIME", value_parser = parse_timestamp)]
    pub as_of: Option<DateTime<Utc>>,

    /// Stop after this many deletions (overrides retention.max_deletes_per_run; 0 = no cap).
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<u64>,

    /// Jobs per transaction, or auto (overrides retention.batch_size).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<BatchSize>,

    /// Write the run's metrics in node_exporter textfile format to PATH (replaced atomically).
    #[arg(long, value_name = "PATH", conflicts_with = "dry_run")]
    pub metrics_textfile: Option<PathBuf>,

    /// Delete now even outside schedule.window, and go on past the end of the window.
    #[arg(long)]
    pub ignore_window: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Create a job in Creating.
    Create {
        name: String,
        #[arg(long = "type", value_parser = parse_job_type)]
        job_type: JobType,
        /// A drive id; repeat for several drives (at most 10).
        #[arg(long = "drive", value_name = "ID")]
        drives: Vec<String>,
        #[command(flatten)]
        retain: RetainArgs,
    },
    /// Show one job with its drives.
    Show { name: String },
    /// List jobs in creation order.
    List {
        /// Only jobs in this state; repeat for several.
        #[arg(long = "state", value_parser = parse_job_state)]
        states: Vec<JobState>,
        /// At most N jobs (0 = all).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Move a job to another state (`docs/lifecycle.md`).
    SetState {
        name: String,
        #[arg(value_parser = parse_job_state)]
        state: JobState,
    },
    /// Request cancellation (allowed before Packaging; idempotent).
    Cancel { name: String },
    /// Delete a job in Creating or Completed, leaving an audit record.
    Delete { name: String },
    /// Place a hold: the job is never deleted until released.
    Hold {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Release a hold.
    Release { name: String },
    /// Keep a finished job until a time of its own instead of its policy's
    /// retention, or return it to its policy (`docs/configuration.md`).
    #[command(group(clap::ArgGroup::new("retention").required(true).args(["until", "for_", "clear"])))]
    Retain {
        name: String,
        /// Kept until this time (RFC 3339 with its zone).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Kept for this long from now (e.g. 1y, 180d).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// Back to its policy's retention.
        #[arg(long)]
        clear: bool,
    },
    /// Import jobs from JSON Lines (one job per line), all or nothing; `-` reads stdin.
    Import { file: PathBuf },
    /// Create synthetic jobs of every state and age, for demos and benchmarks.
    Seed(SeedArgs),
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// How many jobs to create.
    #[arg(long)]
    pub count: u64,
    /// Random seed; the same seed and moment give the same jobs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Ages are spread over this many days before now.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Job names are PREFIX-NUMBER; default: `seed-` and a random tag.
    #[arg(long)]
    pub prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit entries, newest first.
    List {
        /// Only entries for this job name.
        #[arg(long = "job", value_name = "NAME")]
        job_name: Option<String>,
        /// Only entries of this run.
        #[arg(long = "run", value_name = "ID")]
        run_id: Option<i64>,
        /// At most N entries (0 = all).
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Stream the audit trail in id order (JSON Lines or CSV), to ship it before it is removed.
    Export {
        /// Only entries deleted at or after TIME (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
        since: Option<DateTime<Utc>>,
        /// Only entries deleted before TIME (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = parse_timestamp)]
        until: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to FILE (replaced atomically, mode 0600) instead of stdout.
        #[arg(long, value_name = "FILE", value_parser = PathBufValueParser::new().map(Output::File))]
        output: Option<Output>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Run records, newest first.
    List {
        /// At most N runs (0 = all).
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Man pages: retentiond.1 and one page per subcommand, written into DIR (created if missing).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL, on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_timestamp(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.to_utc())
        .map_err(|e| format!("expected an RFC 3339 timestamp such as 2026-11-21T12:00:00Z ({e})"))
}

fn parse_job_state(value: &str) -> Result<JobState, String> {
    value.parse()
}

fn parse_job_type(value: &str) -> Result<JobType, String> {
    value.parse()
}
