//! `jobs import`: JSON Lines, one job per line, in the job shape of docs/design.md, "The command line".
//! Every line is parsed and checked before anything is written, so an import
//! is all or nothing; an error names the line.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;

use crate::lifecycle::{self, JobState, JobType};
use crate::model::{Drive, Job, truncate};

/// One line as written by the operator. Unknown fields are refused, so a
/// typo cannot silently fall back to a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    name: String,
    job_type: JobType,
    state: JobState,
    #[serde(default)]
    cancel_requested: bool,
    cancel_requested_at: Option<DateTime<Utc>>,
    hold_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: Option<DateTime<Utc>>,
    state_changed_at: Option<DateTime<Utc>>,
    /// Text, parsed here, so that a malformed value or one without a zone
    /// is refused naming the field.
    retain_until: Option<String>,
    #[serde(default)]
    drives: Vec<Drive>,
}

/// A job read from the input, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedJob {
    pub line: usize,
    pub job: Job,
}

/// A line that cannot be imported (exit 65).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

/// Parses and checks every line; blank lines are skipped.
pub fn parse(input: &str) -> Result<Vec<ImportedJob>, ImportError> {
    let mut jobs = Vec::new();
    let mut lines_by_name: HashMap<String, usize> = HashMap::new();
    for (index, text) in input.lines().enumerate() {
        let line = index + 1;
        if text.trim().is_empty() {
            continue;
        }
        let job = parse_line(text).map_err(|message| ImportError { line, message })?;
        if let Some(first) = lines_by_name.insert(job.name.clone(), line) {
            return Err(ImportError {
                line,
                message: format!("job name {} already appears on line {first}", lifecycle::quoted(&job.name)),
            });
        }
        jobs.push(ImportedJob { line, job });
    }
    Ok(jobs)
}

fn parse_line(text: &str) -> Result<Job, String> {
    let raw: ImportLine = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let reason = message.rfind(" at line ").map_or(message.as_str(), |at| &message[..at]);
        format!("column {}: {}", e.column(), excerpt(reason))
    })?;
    lifecycle::validate_name(&raw.name).map_err(|e| e.to_string())?;
    lifecycle::validate_drives(raw.drives.iter().map(|d| (d.drive_id.as_str(), d.bytes))).map_err(|e| e.to_string())?;
    if let Some(reason) = &raw.hold_reason {
        lifecycle::validate_hold_reason("hold_reason", reason).map_err(|e| e.to_string())?;
    }
    let created_at = timestamp("created_at", raw.created_at)?;
    let state_changed_at = timestamp("state_changed_at", raw.state_changed_at.unwrap_or(created_at))?;
    if state_changed_at < created_at {
        return Err("state_changed_at is before created_at".into());
    }
    let updated_at = timestamp("updated_at", raw.updated_at.unwrap_or(created_at))?;
    if updated_at < created_at {
        return Err("updated_at is before created_at".into());
    }
    let cancel_requested_at = match (raw.cancel_requested, raw.cancel_requested_at) {
        (false, Some(_)) => return Err("cancel_requested_at is set but cancel_requested is false".into()),
        (false, None) => None,
        (true, at) => Some(timestamp("cancel_requested_at", at.unwrap_or(updated_at))?),
    };
    if cancel_requested_at.is_some_and(|at| at < created_at) {
        return Err("cancel_requested_at is before created_at".into());
    }
    let retain_until = match raw.retain_until.as_deref() {
        None => None,
        Some(text) => Some(retain_until("retain_until", text)?),
    };
    Ok(Job {
        name: raw.name,
        job_type: raw.job_type,
        state: raw.state,
        cancel_requested: raw.cancel_requested,
        cancel_requested_at,
        hold_reason: raw.hold_reason,
        created_at,
        updated_at,
        state_changed_at,
        retain_until,
        drives: raw.drives,
    })
}

/// The parser's message, cut short: it quotes offending values whole, and
/// an error must not echo megabytes of input.
fn excerpt(message: &str) -> String {
    const LIMIT: usize = 200;
    match message.char_indices().nth(LIMIT) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &message[..at], message.len()),
        None => message.to_owned(),
    }
}

/// A job's `retain_until` given as `field`: an RFC 3339 time with its zone
/// (`Z` or an offset), within what [`timestamp`] takes.
pub fn retain_until(field: &str, text: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text).map(|at| at.to_utc()).map_err(|error| {
        format!("{field} {} ({error}): give an RFC 3339 time with its zone, e.g. 2027-01-01T00:00:00Z", excerpt(text))
    })?;
    timestamp(field, at)
}

/// A job's `retain_until` given as a duration from `now` (`--retain-for`, `--for`) as `field`.
pub fn retain_for(field: &str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("{field} {} is not a duration ({error}), e.g. 30d or 1y", excerpt(text)))?;
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| now.checked_add_signed(duration))
        .filter(|at| at.year() <= 9999)
        .map(truncate)
        .ok_or_else(|| format!("{field} {} reaches past the year 9999", excerpt(text)))
}

/// Timestamps from 1970 to 9999, kept to the microsecond. Leap seconds
/// (`…:60Z`) are refused: the stores cannot keep them.
fn timestamp(field: &str, value: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if value.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(format!("{field}: leap seconds are not supported"));
    }
    if value.timestamp() < 0 || value.year() > 9999 {
        return Err(format!("{field} {} is outside 1970..9999", value.to_rfc3339()));
    }
    Ok(truncate(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"name":"job-1","job_type":"Import","state":"Completed","created_at":"2026-01-01T00:00:00Z","state_changed_at":"2026-02-01T00:00:00.1234567Z","drives":[{"drive_id":"D1","state":"ShippedBack","bytes":5}]}"#;

    #[test]
    fn defaults_and_truncation() {
        let jobs = parse(&format!("\n{GOOD}\n")).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].line, 2);
        let job = &jobs[0].job;
        assert_eq!(job.state_changed_at.to_rfc3339(), "2026-02-01T00:00:00.123456+00:00");
        assert_eq!(job.updated_at, job.created_at, "updated_at defaults to created_at (docs/lifecycle.md)");
        assert_eq!(job.drives.len(), 1);
        assert!(!job.cancel_requested && job.cancel_requested_at.is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("{", "line 2: column 1"),
            (
                r#"{"name":"ab","job_type":"Import","state":"Creating","created_at":"2026-01-01T00:00:00Z"}"#,
                "invalid job name",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Done","created_at":"2026-01-01T00:00:00Z"}"#,
                "unknown variant `Done`",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Creating","created_at":"2026-01-01T00:00:00Z","color":1}"#,
                "unknown field `color`",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Creating","created_at":"1960-01-01T00:00:00Z"}"#,
                "outside 1970..9999",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Creating","created_at":"2026-01-02T00:00:00Z","state_changed_at":"2026-01-01T00:00:00Z"}"#,
                "before created_at",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Creating","created_at":"2026-01-01T00:00:00Z","cancel_requested_at":"2026-01-01T00:00:00Z"}"#,
                "cancel_requested is false",
            ),
            (
                r#"{"name":"abc","job_type":"Import","state":"Creating","created_at":"2026-01-01T00:00:00Z","hold_reason":""}"#,
                "hold reason",
            ),
            (GOOD, "already appears on line 1"),
        ];
        for (line, expected) in cases {
            let message = parse(&format!("{GOOD}\n{line}")).unwrap_err().to_string();
            assert!(message.starts_with("line 2: "), "{message}");
            assert!(message.contains(expected), "{message} should contain {expected}");
        }
    }
}
