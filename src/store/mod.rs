//! The job store: one set of traits for its callers (`api`), one common
//! part that implements what every engine shares (`common`), and a folder per engine
//! with its connections, sessions, locks, upkeep and SQL (`sqlite/`,
//! `postgres/`, `mariadb/`). The scheme of `database.url` chooses the engine
//! ([`Engine`]). How the parts fit, and what a new engine must provide:
//! `docs/design.md`.

mod api;
pub(crate) mod common;
pub mod engine;
mod error;
pub mod mariadb;
pub mod postgres;
mod records;
pub mod sqlite;

pub use api::{AdminStore, EligibleStore, JobStore, PageStore, Store, SweepStore, TrailStore};
pub use common::PrimaryPositions;
pub use engine::Engine;
pub use error::{ReadOnly, StoreError};
pub(crate) use error::{Refusal, conflict};
pub use records::{
    AuditRemoval, AuditSearch, AuditWindow, Batch, BatchRequest, Candidate, ClockReading, DeletedBatch, DeletedJob,
    DeletedJobs, EligibleIds, EligibleJobs, FirstIds, ForecastCount, ForecastWindow, HeldJob, HeldKey, IdRange,
    JobFilter, NewRun, ReplicaLag, RunOutcome, RunRemoval, TrailKey,
};

use crate::config::DatabaseSettings;

/// Connects to the store that `settings.url` names, without touching its schema.
pub async fn connect(settings: &DatabaseSettings) -> Result<Box<dyn Store>, StoreError> {
    Ok(match engine_of(settings)? {
        Engine::Sqlite => Box::new(sqlite::SqliteStore::connect(settings).await?),
        Engine::Postgres => Box::new(postgres::PostgresStore::connect(settings).await?),
        Engine::MariaDb => Box::new(mariadb::MariaDbStore::connect(settings).await?),
    })
}

/// Connects, then applies the migrations when `auto_migrate` is set, or
/// checks that they have been applied. A read-only database (a standby
/// replicates its primary's schema) is only checked: it cannot be migrated.
pub async fn open(settings: &DatabaseSettings) -> Result<Box<dyn Store>, StoreError> {
    match engine_of(settings)? {
        Engine::Sqlite => ready(sqlite::SqliteStore::connect(settings).await?, settings).await,
        Engine::Postgres => ready(postgres::PostgresStore::connect(settings).await?, settings).await,
        Engine::MariaDb => ready(mariadb::MariaDbStore::connect(settings).await?, settings).await,
    }
}

fn engine_of(settings: &DatabaseSettings) -> Result<Engine, StoreError> {
    Engine::of_url(settings.url.expose()).ok_or_else(|| StoreError::UnsupportedUrl(settings.url.redacted()))
}

/// The schema of a store just connected to, brought up to date or checked.
/// Its pool opens its first session meanwhile: watched for TCP_NODELAY.
async fn ready<D: common::Driver>(store: D, settings: &DatabaseSettings) -> Result<Box<dyn Store>, StoreError> {
    let schema = async {
        let read_only = if settings.auto_migrate { store.read_only().await? } else { None };
        match read_only {
            None if settings.auto_migrate => store.migrate().await,
            None => common::check_migrated(&store).await,
            Some(reason) => {
                tracing::info!(%reason, "the database is read-only: migrations are checked, not applied");
                common::check_migrated(&store).await
            }
        }
    };
    common::nodelay_while(store.tcp_server(), schema).await?;
    Ok(Box::new(store))
}
