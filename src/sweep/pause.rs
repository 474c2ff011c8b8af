//! The pause between two batches (of jobs, or of the audit trail's rows):
//! the store's own work, then time for the application's writers.
//!
//! On SQLite a batch holds the write lock, and the writers that arrive
//! meanwhile queue up behind it; once it commits they go one after another.
//! The pause lasts at least `retention.batch_pause` or the store's least
//! pause from the commit, whichever is longer, and then goes on in short
//! steps while other connections keep committing, up to [`MAX_EXTENSION`]
//! more: a queue that built up behind a long batch drains before the next
//! batch takes the lock, instead of waiting behind that one too.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::SweepPlan;
use crate::store::{Store, StoreError};

/// How often a pause looks again whether writers are still committing.
const STEP: Duration = Duration::from_millis(5);

/// The most a pause is extended while writers keep committing: a steady
/// stream of writes slows a sweep down this much per batch, never stops it.
const MAX_EXTENSION: Duration = Duration::from_millis(50);

/// After a batch that committed at `committed`; cut short by `stop`.
pub(crate) async fn settle(
    store: &dyn Store,
    plan: &SweepPlan,
    committed: Instant,
    stop: &CancellationToken,
) -> Result<(), StoreError> {
    let before = store.commit_counter().await?;
    store.after_batch().await?;
    let least = plan.batch_pause.max(store.pause_between_batches());
    sleep(least.saturating_sub(committed.elapsed()), stop).await;
    let Some(mut seen) = before else { return Ok(()) };
    let extended_until = Instant::now() + MAX_EXTENSION;
    while !stop.is_cancelled() && Instant::now() < extended_until {
        let now = store.commit_counter().await?.unwrap_or(seen);
        if now == seen {
            break;
        }
        seen = now;
        sleep(STEP, stop).await;
    }
    Ok(())
}

/// Sleeps `pause`, cut short by `stop`.
pub(super) async fn sleep(pause: Duration, stop: &CancellationToken) {
    if !pause.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{ConnectOptions, Connection};

    use super::*;
    use crate::config::{DatabaseSettings, DatabaseUrl, RetentionSettings};

    /// A SQLite store in a temporary directory, and a connection of an
    /// application writer to the same file.
    async fn sqlite_store(dir: &tempfile::TempDir) -> (Box<dyn Store>, sqlx::SqliteConnection) {
        let url = format!("sqlite://{}", dir.path().join("pause.db").display());
        let settings = DatabaseSettings { url: DatabaseUrl::new(url.clone()), ..DatabaseSettings::default() };
        let store = crate::store::open(&settings).await.unwrap();
        let mut writer = url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().connect().await.unwrap();
        sqlx::query("CREATE TABLE writes (at INTEGER)").execute(&mut writer).await.unwrap();
        (store, writer)
    }

    async fn write(writer: &mut sqlx::SqliteConnection) {
        sqlx::query("INSERT INTO writes VALUES (1)").execute(writer).await.unwrap();
    }

    #[tokio::test]
    async fn the_commit_counter_moves_with_the_commits_of_other_connections() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut writer) = sqlite_store(&dir).await;
        let first = store.commit_counter().await.unwrap().expect("SQLite on a file has one");
        assert_eq!(store.commit_counter().await.unwrap(), Some(first), "nobody committed");
        write(&mut writer).await;
        let second = store.commit_counter().await.unwrap().unwrap();
        assert_ne!(second, first, "the writer committed");
        assert_eq!(store.commit_counter().await.unwrap(), Some(second));
        store.close().await;
        writer.close().await.unwrap();
    }

    /// A writer that keeps committing holds the pause open past the store's
    /// least pause. Only one extension is asserted: whether the writer also
    /// commits within every later step depends on the machine's scheduler.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pause_goes_on_while_writers_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut writer) = sqlite_store(&dir).await;
        let plan = SweepPlan::new(&RetentionSettings::default(), "purge");
        let least = plan.batch_pause.max(store.pause_between_batches());
        let stop = CancellationToken::new();
        let writing = tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                write(&mut writer).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let committed = Instant::now();
        settle(store.as_ref(), &plan, committed, &stop).await.unwrap();
        let paused = committed.elapsed();
        assert!(paused >= least + STEP, "paused {paused:?} while the writer went on committing");
        writing.await.unwrap();
        store.close().await;
    }
}
