//! MariaDB's reads of its replicas, for the replica tracker
//! (`common::replicas`, docs/operations.md "Pacing by the replicas"): each
//! of `database.replicas` answers `SHOW REPLICA STATUS`, whose
//! `Seconds_Behind_Master` is its lag. It is NULL while the replica's SQL
//! thread is stopped (by hand, or by an error), so no lag is known and the
//! replica counts as over the limit. The primary lists no replicas it can
//! be asked about, so only `database.replicas` are read.

use std::time::Duration;

use sqlx::Row;
use sqlx::mysql::{MySql, MySqlPool};

use super::sql;
use crate::store::common::{Replayed, ReplicaReads};

pub(super) struct ReplicaStatus;

impl ReplicaReads for ReplicaStatus {
    type Db = MySql;
    const DEFAULT_PORT: u16 = 3306;

    async fn replica(pool: &MySqlPool) -> Result<Replayed, String> {
        let status = sqlx::raw_sql(sql::REPLICA_STATUS).fetch_optional(pool).await.map_err(|e| e.to_string())?;
        let Some(status) = status else {
            return Err("not a replica (SHOW REPLICA STATUS shows no replication)".into());
        };
        // Read as text, as the server sends it (SHOW is not prepared).
        let text =
            |column: &str| status.try_get_unchecked::<Option<String>, _>(column).ok().flatten().unwrap_or_default();
        if let Ok(seconds) = text("Seconds_Behind_Master").parse::<u64>() {
            return Ok(Replayed::Behind(Duration::from_secs(seconds)));
        }
        // NULL: why, from the threads' states and last errors.
        let columns = ["Slave_SQL_Running", "Slave_IO_Running", "Last_SQL_Error", "Last_IO_Error"];
        let known = columns.into_iter().map(|column| (column, text(column))).filter(|(_, value)| !value.is_empty());
        let why: Vec<String> = known.map(|(column, value)| format!("{column}: {value}")).collect();
        Err(format!("replication is not running ({})", why.join(", ")))
    }
}
