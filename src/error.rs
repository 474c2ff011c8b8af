//! The errors a command can end with, and the exit code of each (docs/design.md, "The command line").

use crate::config::ConfigError;
use crate::export::ExportError;
use crate::http::ListenError;
use crate::import::ImportError;
use crate::lifecycle::ValidationError;
use crate::metrics::MetricsError;
use crate::scheduler::ScheduleError;
use crate::store::{ReadOnly, StoreError};
use crate::sweep::SweepError;

/// Exit codes of docs/design.md, "The command line".
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const INVALID_INPUT: u8 = 65;
    pub const UNREACHABLE: u8 = 69;
    pub const INVALID_CONFIG: u8 = 78;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A line of an import names a job that exists already.
    #[error("line {line}: {source}")]
    ImportConflict {
        line: usize,
        #[source]
        source: StoreError,
    },
    /// Input that cannot be read at all (a missing import file, say).
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// `purge` found the database read-only and deleted nothing.
    #[error("purge deleted nothing: the database is read-only: {0} (a dry run still works)")]
    PurgeReadOnly(ReadOnly),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Schedule(_) => exit::INVALID_CONFIG,
            Error::Store(error) => store_exit_code(error),
            Error::Metrics(MetricsError::PushSetup { .. }) => exit::INVALID_CONFIG,
            // A server that turned read-only or went away between purge's
            // check and its first deletion; after one, it is a failure while working.
            Error::Sweep(SweepError {
                deleted: 0,
                source: StoreError::ReadOnly(_) | StoreError::Unreachable { .. },
                ..
            }) => exit::UNREACHABLE,
            Error::Sweep(_) | Error::Io(_) | Error::Metrics(_) | Error::Listen(_) => exit::FAILURE,
            Error::Invalid(_) | Error::Import(_) | Error::Input(_) => exit::INVALID_INPUT,
            Error::ImportConflict { .. } => exit::CONFLICT,
            Error::PurgeReadOnly(_) => exit::UNREACHABLE,
            Error::Usage(_) => exit::USAGE,
            Error::Export(ExportError::Store(error)) => store_exit_code(error),
            Error::Export(ExportError::Write { .. } | ExportError::Interrupted { .. }) => exit::FAILURE,
        }
    }
}

fn store_exit_code(error: &StoreError) -> u8 {
    match error {
        StoreError::UnsupportedUrl(_) | StoreError::File(_) => exit::INVALID_CONFIG,
        StoreError::Unreachable { .. } | StoreError::UnsupportedServer(_) | StoreError::ReadOnly(_) => {
            exit::UNREACHABLE
        }
        StoreError::NotFound(_) => exit::NOT_FOUND,
        StoreError::Conflict { .. } | StoreError::NameTaken { .. } => exit::CONFLICT,
        StoreError::NotMigrated(_)
        | StoreError::StatementTimeout(_)
        | StoreError::Deadlock(_)
        | StoreError::Database(_) => exit::FAILURE,
    }
}
