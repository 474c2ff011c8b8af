//! Lifecycle rules of a job (docs/design.md, "Jobs and their lifecycle"): the states, the transition table, the
//! cancel, delete and hold rules, and validation of names, drives and hold
//! reasons.
//!
//! Everything here is a pure function of a job's current status. The stores
//! call these rules inside a transaction with the job's row locked, so a rule
//! is always checked against the state that the write will replace.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a job is in its life. `Completed` and `Closed` are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum JobState {
    Creating,
    Shipping,
    Received,
    Transferring,
    Packaging,
    /// Finished without errors, or cancelled.
    Completed,
    /// Finished with errors.
    Closed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Creating,
        JobState::Shipping,
        JobState::Received,
        JobState::Transferring,
        JobState::Packaging,
        JobState::Completed,
        JobState::Closed,
    ];

    /// The name stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Creating => "Creating",
            JobState::Shipping => "Shipping",
            JobState::Received => "Received",
            JobState::Transferring => "Transferring",
            JobState::Packaging => "Packaging",
            JobState::Completed => "Completed",
            JobState::Closed => "Closed",
        }
    }

    /// Whether the transition table allows `self → to`. `Received → Packaging`
    /// is listed here but additionally needs a cancellation (see [`set_state`]).
    fn may_move_to(self, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, to),
            (Creating, Shipping)
                | (Shipping, Received)
                | (Shipping, Closed)
                | (Received, Transferring)
                | (Received, Packaging)
                | (Transferring, Packaging)
                | (Packaging, Completed)
                | (Packaging, Closed)
        )
    }

    /// Cancellation is accepted only before `Packaging`.
    fn is_cancellable(self) -> bool {
        matches!(self, JobState::Creating | JobState::Shipping | JobState::Received | JobState::Transferring)
    }

    /// A job may be deleted before its disks ship, or once it has completed.
    fn is_deletable(self) -> bool {
        matches!(self, JobState::Creating | JobState::Completed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    /// Case-insensitive, so `completed` and `Completed` both work on the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown job state '{s}' (expected one of {})", names(&JobState::ALL)))
    }
}

/// Whether the customer ships data in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobType {
    Import,
    Export,
}

impl JobType {
    pub const ALL: [JobType; 2] = [JobType::Import, JobType::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Import => "Import",
            JobType::Export => "Export",
        }
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown job type '{s}' (expected Import or Export)"))
    }
}

/// The state of one drive of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DriveState {
    Specified,
    Received,
    NeverReceived,
    Transferring,
    Completed,
    CompletedMoreInfo,
    ShippedBack,
}

impl DriveState {
    pub const ALL: [DriveState; 7] = [
        DriveState::Specified,
        DriveState::Received,
        DriveState::NeverReceived,
        DriveState::Transferring,
        DriveState::Completed,
        DriveState::CompletedMoreInfo,
        DriveState::ShippedBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DriveState::Specified => "Specified",
            DriveState::Received => "Received",
            DriveState::NeverReceived => "NeverReceived",
            DriveState::Transferring => "Transferring",
            DriveState::Completed => "Completed",
            DriveState::CompletedMoreInfo => "CompletedMoreInfo",
            DriveState::ShippedBack => "ShippedBack",
        }
    }
}

impl fmt::Display for DriveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DriveState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DriveState::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown drive state '{s}' (expected one of {})", names(&DriveState::ALL)))
    }
}

fn names<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// What the rules need to know about a job to decide on an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus<'a> {
    pub state: JobState,
    pub cancel_requested: bool,
    pub hold_reason: Option<&'a str>,
}

/// An operation an operator asks for (`jobs …`, `docs/lifecycle.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    SetState(JobState),
    Cancel,
    Hold(String),
    Release,
    Delete,
    /// Set or clear the job's own retention (`jobs retain`).
    Retain(Option<DateTime<Utc>>),
}

/// What the store must write once an operation is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Enter a new state (sets `state_changed_at` and `updated_at`).
    EnterState(JobState),
    /// Set `cancel_requested` and `cancel_requested_at`.
    RequestCancel,
    /// Place or replace the hold.
    PlaceHold(String),
    /// Remove the hold.
    ReleaseHold,
    /// Set (or clear) `retain_until`.
    RetainUntil(Option<DateTime<Utc>>),
    /// Delete the job with its drives and write the audit row.
    Delete,
    /// The operation is already in effect (a repeated cancel or release).
    Nothing,
}

/// Why the rules refuse an operation: a conflict with the job's state or hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot move from {from} to {to}: not an allowed transition")]
    Transition { from: JobState, to: JobState },
    #[error("cannot move from Received to Packaging: only a cancelled job skips the data copy")]
    SkipCopyWithoutCancel,
    #[error("cannot cancel in {state}: cancellation is accepted only in Creating, Shipping, Received or Transferring")]
    Cancel { state: JobState },
    #[error("cannot delete in {state}: only Creating and Completed jobs can be deleted")]
    Delete { state: JobState },
    #[error("the job is held ({reason}); release it first")]
    Held { reason: String },
}

/// Decides whether `operation` is allowed on a job with `status`, and what to write.
pub fn decide(status: &JobStatus<'_>, operation: &Operation) -> Result<Effect, LifecycleError> {
    match operation {
        Operation::SetState(to) => set_state(status, *to),
        Operation::Cancel => cancel(status),
        Operation::Hold(reason) => Ok(Effect::PlaceHold(reason.clone())),
        Operation::Release => Ok(match status.hold_reason {
            Some(_) => Effect::ReleaseHold,
            None => Effect::Nothing,
        }),
        Operation::Delete => delete(status),
        Operation::Retain(until) => Ok(Effect::RetainUntil(*until)),
    }
}

fn set_state(status: &JobStatus<'_>, to: JobState) -> Result<Effect, LifecycleError> {
    let from = status.state;
    if !from.may_move_to(to) {
        return Err(LifecycleError::Transition { from, to });
    }
    if (from, to) == (JobState::Received, JobState::Packaging) && !status.cancel_requested {
        return Err(LifecycleError::SkipCopyWithoutCancel);
    }
    Ok(Effect::EnterState(to))
}

fn cancel(status: &JobStatus<'_>) -> Result<Effect, LifecycleError> {
    if !status.state.is_cancellable() {
        return Err(LifecycleError::Cancel { state: status.state });
    }
    Ok(if status.cancel_requested { Effect::Nothing } else { Effect::RequestCancel })
}

fn delete(status: &JobStatus<'_>) -> Result<Effect, LifecycleError> {
    if let Some(reason) = status.hold_reason {
        return Err(LifecycleError::Held { reason: reason.to_owned() });
    }
    if !status.state.is_deletable() {
        return Err(LifecycleError::Delete { state: status.state });
    }
    Ok(Effect::Delete)
}

/// At most this many drives per job.
pub const MAX_DRIVES: usize = 10;
/// Hold reasons longer than this are refused.
pub const MAX_HOLD_REASON: usize = 500;

/// Input that breaks the job model's rules (exit 65).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid job name {0}: use 3 to 64 characters of A-Z a-z 0-9 - _, starting with a letter or digit")]
    Name(String),
    #[error("invalid drive id {0}: use 1 to 64 characters of A-Z a-z 0-9 - _")]
    DriveId(String),
    #[error("a job has at most {MAX_DRIVES} drives, got {0}")]
    TooManyDrives(usize),
    #[error("drive id {0} appears twice; drive ids are unique within a job")]
    DuplicateDrive(String),
    #[error("drive {0} has negative bytes")]
    NegativeBytes(String),
    #[error("invalid hold reason: it must be 1 to {MAX_HOLD_REASON} characters with no control characters")]
    HoldReason,
    /// A `retain_until` that is no time, or a `--retain-for` that is no
    /// duration; the message starts with the field.
    #[error("invalid {0}")]
    Retention(String),
    /// A character stored text may not hold, at a position counted in characters from 1.
    #[error(
        "invalid {field}: character {position} is U+{:04X}, {}; control characters and bidirectional controls are \
         refused",
        u32::from(*character),
        describe_forbidden(*character)
    )]
    ForbiddenCharacter { field: &'static str, position: usize, character: char },
}

/// Quotes a user-supplied value for an error message, shortened so that a
/// megabyte of garbage does not become a megabyte of log.
pub fn quoted(value: &str) -> String {
    const SHOWN: usize = 70;
    let mut shown: String = value.chars().take(SHOWN).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Job names: 3–64 characters of `A-Z a-z 0-9 - _`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let valid = (3..=64).contains(&name.len())
        && name.chars().all(is_name_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if valid { Ok(()) } else { Err(ValidationError::Name(quoted(name))) }
}

/// Drive ids: 1–64 characters of `A-Z a-z 0-9 - _`.
pub fn validate_drive_id(drive_id: &str) -> Result<(), ValidationError> {
    let valid = (1..=64).contains(&drive_id.len()) && drive_id.chars().all(is_name_char);
    if valid { Ok(()) } else { Err(ValidationError::DriveId(quoted(drive_id))) }
}

/// A job's drive list: at most [`MAX_DRIVES`], ids valid and unique, bytes not negative.
pub fn validate_drives<'a>(drives: impl ExactSizeIterator<Item = (&'a str, i64)>) -> Result<(), ValidationError> {
    if drives.len() > MAX_DRIVES {
        return Err(ValidationError::TooManyDrives(drives.len()));
    }
    let mut seen = Vec::with_capacity(drives.len());
    for (drive_id, bytes) in drives {
        validate_drive_id(drive_id)?;
        if seen.contains(&drive_id) {
            return Err(ValidationError::DuplicateDrive(quoted(drive_id)));
        }
        if bytes < 0 {
            return Err(ValidationError::NegativeBytes(quoted(drive_id)));
        }
        seen.push(drive_id);
    }
    Ok(())
}

/// Hold reasons: 1–500 characters, none of them forbidden ([`forbidden_character`]).
/// `field` names the reason where it was given (`--reason`, `hold_reason`).
pub fn validate_hold_reason(field: &'static str, reason: &str) -> Result<(), ValidationError> {
    if let Some((position, character)) = forbidden_character(reason) {
        return Err(ValidationError::ForbiddenCharacter { field, position, character });
    }
    let valid = !reason.trim().is_empty() && reason.chars().count() <= MAX_HOLD_REASON;
    if valid { Ok(()) } else { Err(ValidationError::HoldReason) }
}

/// The first character that text stored from input may not hold, and its
/// position (counted in characters from 1): control characters, which
/// would break logs and tables, and the bidirectional controls (Unicode's
/// Bidi_Control: embeddings, overrides, isolates and marks), which reorder
/// what a terminal or a page shows (`ok \u{202E}txt.exe` reads `ok exe.txt`).
pub fn forbidden_character(text: &str) -> Option<(usize, char)> {
    text.chars().zip(1..).find(|(c, _)| c.is_control() || is_bidi_control(*c)).map(|(c, position)| (position, c))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn describe_forbidden(c: char) -> &'static str {
    if c.is_control() { "a control character" } else { "a bidirectional control, which can disguise the text" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    fn status(state: JobState) -> JobStatus<'static> {
        JobStatus { state, cancel_requested: false, hold_reason: None }
    }

    const ALLOWED: [(JobState, JobState); 8] = [
        (Creating, Shipping),
        (Shipping, Received),
        (Shipping, Closed),
        (Received, Transferring),
        (Received, Packaging),
        (Transferring, Packaging),
        (Packaging, Completed),
        (Packaging, Closed),
    ];

    #[test]
    fn every_transition_of_the_table_and_nothing_else() {
        for from in JobState::ALL {
            for to in JobState::ALL {
                for cancel_requested in [false, true] {
                    let job = JobStatus { state: from, cancel_requested, hold_reason: None };
                    let result = decide(&job, &Operation::SetState(to));
                    let listed = ALLOWED.contains(&(from, to));
                    let expected = if !listed {
                        Err(LifecycleError::Transition { from, to })
                    } else if (from, to) == (Received, Packaging) && !cancel_requested {
                        Err(LifecycleError::SkipCopyWithoutCancel)
                    } else {
                        Ok(Effect::EnterState(to))
                    };
                    assert_eq!(result, expected, "{from} -> {to}, cancel_requested={cancel_requested}");
                }
            }
        }
    }

    #[test]
    fn a_conflict_names_both_states() {
        let message = decide(&status(Completed), &Operation::SetState(Creating)).unwrap_err().to_string();
        assert!(message.contains("Completed") && message.contains("Creating"), "{message}");
    }

    #[test]
    fn cancel_in_every_state() {
        for state in JobState::ALL {
            let first = decide(&status(state), &Operation::Cancel);
            let again = decide(&JobStatus { cancel_requested: true, ..status(state) }, &Operation::Cancel);
            if matches!(state, Creating | Shipping | Received | Transferring) {
                assert_eq!(first, Ok(Effect::RequestCancel), "{state}");
                assert_eq!(again, Ok(Effect::Nothing), "cancel is idempotent in {state}");
            } else {
                assert_eq!(first, Err(LifecycleError::Cancel { state }), "{state}");
                assert_eq!(again, Err(LifecycleError::Cancel { state }), "{state}");
            }
        }
    }

    #[test]
    fn delete_in_every_state_held_or_not() {
        for state in JobState::ALL {
            let free = decide(&status(state), &Operation::Delete);
            if matches!(state, Creating | Completed) {
                assert_eq!(free, Ok(Effect::Delete), "{state}");
            } else {
                assert_eq!(free, Err(LifecycleError::Delete { state }), "{state}");
            }
            let held = JobStatus { hold_reason: Some("legal"), ..status(state) };
            assert_eq!(
                decide(&held, &Operation::Delete),
                Err(LifecycleError::Held { reason: "legal".into() }),
                "a hold wins in {state}"
            );
        }
    }

    #[test]
    fn hold_and_release_in_every_state() {
        for state in JobState::ALL {
            assert_eq!(decide(&status(state), &Operation::Hold("audit".into())), Ok(Effect::PlaceHold("audit".into())));
            let held = JobStatus { hold_reason: Some("audit"), ..status(state) };
            assert_eq!(decide(&held, &Operation::Release), Ok(Effect::ReleaseHold));
            assert_eq!(decide(&status(state), &Operation::Release), Ok(Effect::Nothing));
        }
    }

    #[test]
    fn a_hold_does_not_block_lifecycle_moves() {
        let held = JobStatus { hold_reason: Some("legal"), ..status(Packaging) };
        assert_eq!(decide(&held, &Operation::SetState(Completed)), Ok(Effect::EnterState(Completed)));
    }

    #[test]
    fn names() {
        for good in ["abc", "Job-1_x", "9lives", &"a".repeat(64)] {
            assert_eq!(validate_name(good), Ok(()), "{good}");
        }
        for bad in ["ab", "-abc", "_abc", "a b c", "abc;", "ab'c", "ab\"c", "a\0bc", "jöb", "", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let message = validate_name(&"x".repeat(1 << 20)).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
    }

    #[test]
    fn drives() {
        assert_eq!(validate_drives([("D1", 0), ("D2", 5)].into_iter()), Ok(()));
        assert_eq!(
            validate_drives([("D1", 0), ("D1", 5)].into_iter()),
            Err(ValidationError::DuplicateDrive("\"D1\"".into()))
        );
        assert_eq!(validate_drives([("D1", -1)].into_iter()), Err(ValidationError::NegativeBytes("\"D1\"".into())));
        assert!(validate_drives([("bad id", 0)].into_iter()).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("D{i}")).collect();
        assert_eq!(validate_drives(eleven.iter().map(|d| (d.as_str(), 0))), Err(ValidationError::TooManyDrives(11)));
    }

    #[test]
    fn hold_reasons() {
        assert_eq!(validate_hold_reason("--reason", "legal hold #42, Ünïcode ✓ עברית"), Ok(()));
        for bad in ["", "   ", "a\nb", "a\0b", &"r".repeat(MAX_HOLD_REASON + 1)] {
            assert!(validate_hold_reason("--reason", bad).is_err(), "{bad:?}");
        }
        let bidi = ['\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'];
        for control in bidi.into_iter().chain(['\u{7}', '\u{85}']) {
            let reason = format!("ok é{control}txt.exe");
            let error = validate_hold_reason("hold_reason", &reason).unwrap_err();
            assert_eq!(
                error,
                ValidationError::ForbiddenCharacter { field: "hold_reason", position: 5, character: control }
            );
        }
        assert_eq!(
            validate_hold_reason("--reason", "ok \u{202E}txt.exe").unwrap_err().to_string(),
            "invalid --reason: character 4 is U+202E, a bidirectional control, which can disguise the text; control \
             characters and bidirectional controls are refused"
        );
    }

    #[test]
    fn parsing_is_case_insensitive_and_names_the_value() {
        assert_eq!("completed".parse::<JobState>(), Ok(Completed));
        assert_eq!("EXPORT".parse::<JobType>(), Ok(JobType::Export));
        assert_eq!("shippedback".parse::<DriveState>(), Ok(DriveState::ShippedBack));
        assert!("Done".parse::<JobState>().unwrap_err().contains("'Done'"));
    }
}
