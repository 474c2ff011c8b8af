//! `audit export` (docs/design.md, "The audit trail"): the audit trail in id order, as JSON Lines or
//! CSV, to stdout or to a file replaced atomically, so that it can be
//! shipped to cold storage or a SIEM before `retention.audit` removes it.
//!
//! Memory stays the same whatever the size of the trail: the first and last
//! id of the window are read once, then pages of [`EXPORT_PAGE`] rows are
//! read along the primary key from the last id written (keyset), each page
//! its own short read, so no snapshot or read transaction is held for the
//! whole export. Rows written after the export started (above its last id)
//! are left for the next one.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use crate::atomic_file::{self, AtomicFile};
use crate::model::AuditEntry;
use crate::store::{AuditWindow, Store, StoreError};

/// Audit rows per page.
pub const EXPORT_PAGE: u32 = 1000;

/// Bytes gathered before each write to the output.
const WRITE_BUFFER: usize = 64 * 1024;

/// Audit data is kept from other users, as the database file is.
const FILE_MODE: u32 = 0o600;

/// The columns of the CSV header, in the order of the audit entry in docs/design.md, "The command line".
const CSV_HEADER: [&str; 11] = [
    "id",
    "run_id",
    "job_name",
    "job_type",
    "policy",
    "state",
    "cancel_requested",
    "created_at",
    "state_changed_at",
    "deleted_at",
    "deleted_by",
];

/// `audit export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line, shaped as `audit list --output json` entries.
    Jsonl,
    /// A header line, then one row per entry (RFC 4180 quoting).
    Csv,
}

/// What `audit export` writes, and where.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Rows deleted at or after `since` and before `until`.
    pub window: AuditWindow,
    pub format: ExportFormat,
    /// `None`: stdout.
    pub file: Option<PathBuf>,
}

impl ExportRequest {
    /// Checks the arguments before the database is opened.
    pub fn check(&self) -> Result<(), String> {
        if let (Some(since), Some(until)) = (self.window.since, self.window.until)
            && since > until
        {
            return Err(format!("--since {} is after --until {}", time(since), time(until)));
        }
        match &self.file {
            Some(path) => atomic_file::check_target("--output", path),
            None => Ok(()),
        }
    }

    fn target(&self) -> String {
        self.file.as_ref().map_or_else(|| "stdout".to_owned(), |path| path.display().to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit export: cannot write {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("audit export stopped by a signal after {rows} rows{}", if *.file { "; the file was not written" } else { "" })]
    Interrupted { rows: u64, file: bool },
}

/// Where the rows go.
enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<AtomicFile>),
}

impl Sink {
    fn open(request: &ExportRequest) -> io::Result<Sink> {
        Ok(match &request.file {
            Some(path) => Sink::File(BufWriter::with_capacity(WRITE_BUFFER, AtomicFile::create(path, FILE_MODE)?)),
            None => Sink::Stdout(BufWriter::with_capacity(WRITE_BUFFER, io::stdout())),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(writer) => writer,
            Sink::File(writer) => writer,
        }
    }

    /// Flushes stdout, or puts the file in place of the target.
    fn finish(self) -> io::Result<()> {
        match self {
            Sink::Stdout(mut writer) => writer.flush(),
            Sink::File(writer) => writer.into_inner().map_err(io::IntoInnerError::into_error)?.commit(),
        }
    }
}

/// Writes the audit rows of `request`'s window in id order; returns how
/// many. On a failure or a stop, a file target is left as it was.
pub async fn export(store: &dyn Store, request: &ExportRequest, stop: &CancellationToken) -> Result<u64, ExportError> {
    let started = Instant::now();
    let write_error = |source| ExportError::Write { target: request.target(), source };
    let mut sink = Sink::open(request).map_err(write_error)?;
    let mut line = String::new();
    let mut rows = 0;
    let written = async {
        if request.format == ExportFormat::Csv {
            line.push_str(&CSV_HEADER.join(","));
            line.push('\n');
            sink.writer().write_all(line.as_bytes()).map_err(write_error)?;
        }
        let Some((first, last)) = store.audit_id_range(&request.window).await? else { return Ok(()) };
        let mut after = first.saturating_sub(1);
        while after < last {
            if stop.is_cancelled() {
                return Err(ExportError::Interrupted { rows, file: request.file.is_some() });
            }
            let page = store.audit_page(after, last, EXPORT_PAGE).await?;
            for entry in page.iter().filter(|entry| within(&request.window, entry.deleted_at)) {
                line.clear();
                format_entry(&mut line, entry, request.format);
                sink.writer().write_all(line.as_bytes()).map_err(write_error)?;
                rows += 1;
            }
            match page.last() {
                Some(entry) if page.len() == EXPORT_PAGE as usize => after = entry.id,
                _ => break,
            }
        }
        Ok(())
    }
    .await;
    let finished = written.and_then(|()| sink.finish().map_err(write_error));
    match finished {
        // A reader that closes the pipe early (`| head`) has what it wanted.
        Err(ExportError::Write { source, .. })
            if request.file.is_none() && source.kind() == io::ErrorKind::BrokenPipe => {}
        result => result?,
    }
    tracing::info!(
        rows,
        output = request.target(),
        duration_ms = started.elapsed().as_millis() as u64,
        "audit export finished"
    );
    Ok(rows)
}

fn within(window: &AuditWindow, deleted_at: DateTime<Utc>) -> bool {
    window.since.is_none_or(|since| deleted_at >= since) && window.until.is_none_or(|until| deleted_at < until)
}

/// RFC 3339 in UTC, as the JSON of an audit entry has it.
fn time(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One entry as one line, newline included.
fn format_entry(line: &mut String, entry: &AuditEntry, format: ExportFormat) {
    match format {
        ExportFormat::Jsonl => {
            line.push_str(&serde_json::to_string(entry).expect("an audit entry always serializes"));
        }
        ExportFormat::Csv => {
            let fields = [
                entry.id.to_string(),
                entry.run_id.map(|id| id.to_string()).unwrap_or_default(),
                entry.job_name.clone(),
                entry.job_type.to_string(),
                entry.policy.clone(),
                entry.state.to_string(),
                entry.cancel_requested.to_string(),
                time(entry.created_at),
                time(entry.state_changed_at),
                time(entry.deleted_at),
                entry.deleted_by.clone(),
            ];
            for (index, field) in fields.iter().enumerate() {
                if index > 0 {
                    line.push(',');
                }
                push_csv_field(line, field);
            }
        }
    }
    line.push('\n');
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
/// break, with each quote doubled; otherwise as it is.
fn push_csv_field(line: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        let _ = write!(line, "\"{}\"", field.replace('"', "\"\""));
    } else {
        line.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("cr\r", "\"cr\r\""),
        ];
        for (field, expected) in cases {
            let mut line = String::new();
            push_csv_field(&mut line, field);
            assert_eq!(line, expected, "{field:?}");
        }
    }

    #[test]
    fn the_window_is_half_open() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let window = AuditWindow { since: Some(at("2026-01-01T00:00:00Z")), until: Some(at("2026-02-01T00:00:00Z")) };
        assert!(within(&window, at("2026-01-01T00:00:00Z")), "since is in");
        assert!(!within(&window, at("2026-02-01T00:00:00Z")), "until is out");
        assert!(!within(&window, at("2025-12-31T23:59:59.999999Z")));
        assert!(within(&AuditWindow::default(), at("1970-01-01T00:00:00Z")));
    }

    #[test]
    fn since_after_until_is_refused() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let request = ExportRequest {
            window: AuditWindow { since: Some(at("2026-02-01T00:00:00Z")), until: Some(at("2026-01-01T00:00:00Z")) },
            format: ExportFormat::Jsonl,
            file: None,
        };
        let error = request.check().unwrap_err();
        assert!(error.contains("--since 2026-02-01T00:00:00Z is after --until 2026-01-01T00:00:00Z"), "{error}");
    }
}
