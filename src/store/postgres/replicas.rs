//! PostgreSQL's reads of its standbys, for the replica tracker
//! (`common::replicas`, docs/operations.md "Pacing by the replicas"): on the
//! primary, its WAL position and the standbys it streams to
//! (`pg_stat_replication`, whose positions need `pg_monitor`); on a standby
//! of `database.replicas`, the position it replayed
//! (`pg_last_wal_replay_lsn()`). Positions are WAL bytes.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgPool, Postgres};

use super::sql;
use crate::store::common::{Db, Primary, Replayed, ReplicaReads, Streaming};

pub(super) struct Standbys;

impl ReplicaReads for Standbys {
    type Db = Postgres;
    const DEFAULT_PORT: u16 = 5432;
    const LISTED_IN: &'static str = "pg_stat_replication";

    async fn primary(pool: &PgPool) -> Result<Option<Primary>, String> {
        let rows = Postgres::query(sql::STANDBYS, &[]).fetch_all(pool).await;
        let rows = rows.map_err(|error| format!("cannot read pg_stat_replication on the primary: {error}"))?;
        let position = rows.first().map_or(0, |row| row.get::<i64, _>("primary_position"));
        let streaming = rows
            .iter()
            .filter_map(|row| {
                let replayed = row.get::<Option<i64>, _>("replay_position").ok_or_else(|| {
                    "pg_stat_replication hides its positions from this role: grant it pg_monitor (docs/security.md)"
                        .to_owned()
                });
                let reported = row.get::<Option<f64>, _>("replay_lag").map(Duration::from_secs_f64);
                Some(Streaming { replica: row.get::<Option<String>, _>("replica")?, replayed, reported })
            })
            .collect();
        Ok(Some(Primary { position, streaming }))
    }

    async fn replica(pool: &PgPool) -> Result<Replayed, String> {
        let row = Postgres::query(sql::REPLAYED, &[]).fetch_one(pool).await.map_err(|error| error.to_string())?;
        if !row.get::<bool, _>("standby") {
            return Err("not a standby (pg_is_in_recovery() is false)".into());
        }
        match row.get::<Option<i64>, _>("replay_position") {
            Some(replayed) => Ok(Replayed::UpTo(replayed)),
            None => Err("pg_last_wal_replay_lsn() is NULL: the standby has replayed nothing".into()),
        }
    }
}
