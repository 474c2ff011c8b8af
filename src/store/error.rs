//! What can go wrong in the store, whatever the engine. Messages never
//! contain the password. What an engine's own refusals mean (a statement
//! cancelled at its timeout, a transaction rolled back in a deadlock, a
//! write refused by a read-only server) is decided by the engine's folder
//! from its error codes ([`Engine::classify`]).

use crate::config::DatabaseUrl;
use crate::lifecycle::LifecycleError;

use super::Engine;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url {0} is not supported: use {forms}", forms = Engine::url_forms())]
    UnsupportedUrl(String),
    /// The server is not one the store supports (its kind or its version, or a setting it runs with).
    #[error("the database server is not supported: {0}")]
    UnsupportedServer(String),
    #[error("cannot reach the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A password, key or certificate file named by the settings is unusable.
    #[error(transparent)]
    File(#[from] crate::credentials::FileError),
    #[error(
        "the database schema is not up to date ({0}); run `retentiond migrate` or set database.auto_migrate = true"
    )]
    NotMigrated(String),
    #[error("job {0} not found")]
    NotFound(String),
    #[error("job {name}: {source}")]
    Conflict {
        name: String,
        #[source]
        source: LifecycleError,
    },
    #[error("a job named {name} already exists")]
    NameTaken {
        name: String,
        /// Position of the offending job in the batch given to `create_jobs`.
        index: usize,
    },
    /// The server cancelled a statement at `database.statement_timeout`; its transaction rolled back.
    #[error("database error: {0}")]
    StatementTimeout(String),
    /// The server rolled back a transaction whole to break a deadlock (or a
    /// serialization failure); run again, it may succeed.
    #[error("database error: {0}")]
    Deadlock(String),
    #[error("database error: {0}")]
    Database(String),
    /// The database refuses writes; nothing was written.
    #[error("the database is read-only: {0}")]
    ReadOnly(#[from] ReadOnly),
}

/// Why a database refuses writes, in its engine's words (each engine's
/// folder says what it checks).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReadOnly(Box<dyn std::error::Error + Send + Sync>);

impl ReadOnly {
    pub fn new(reason: impl std::error::Error + Send + Sync + 'static) -> ReadOnly {
        ReadOnly(Box::new(reason))
    }
}

/// What an engine's refusal of a statement means beyond "it failed".
pub(crate) enum Refusal {
    /// Cancelled at `database.statement_timeout` (or by hand).
    StatementTimeout,
    /// Rolled back whole to break a deadlock with another transaction.
    Deadlock,
    /// A write refused by a database that takes none.
    ReadOnly(ReadOnly),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match Engine::ALL.into_iter().find_map(|engine| engine.classify(&error)) {
            Some(Refusal::StatementTimeout) => StoreError::StatementTimeout(error.to_string()),
            Some(Refusal::Deadlock) => StoreError::Deadlock(error.to_string()),
            Some(Refusal::ReadOnly(reason)) => StoreError::ReadOnly(reason),
            None => StoreError::Database(error.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(format!("migration failed: {error}"))
    }
}

impl StoreError {
    /// The server `url` names cannot be reached, for `reason`, which may
    /// quote the URL: its password is taken out.
    pub(crate) fn unreachable(url: &DatabaseUrl, reason: &str) -> StoreError {
        StoreError::Unreachable { url: url.redacted(), reason: url.scrub(reason) }
    }
}

pub(crate) fn conflict(name: &str, source: LifecycleError) -> StoreError {
    StoreError::Conflict { name: crate::lifecycle::quoted(name), source }
}
