//! How the common part talks to any engine's driver in sqlx: it binds [`Arg`]s,
//! runs a statement on a pool or a connection, and reads columns, through
//! [`Db`], written once over every `sqlx::Database` that has the value
//! types the store uses. What differs between engines is their [`Codec`]:
//! how a timestamp is stored and how a list is passed.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::pool::Pool;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::positional;
use crate::store::StoreError;

/// What an engine's driver stores in its own way.
pub(crate) trait Codec: Database {
    /// A timestamp as the engine stores it, also in the JSON of an insert.
    type Time: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Serialize + Send + Sync;
    /// A list of job ids as one parameter.
    type Ids: for<'q> Encode<'q, Self> + Type<Self> + Send;
    /// A list of names (job names, states) as one parameter.
    type Names: for<'q> Encode<'q, Self> + Type<Self> + Send;

    /// Whether the engine's parameters are `?`, bound in the order they
    /// appear: its statements are still written with `$1`, `$2`… as the
    /// others are, and each is bound anew where it appears ([`positional`]).
    const POSITIONAL: bool = false;

    fn store_time(time: DateTime<Utc>) -> Self::Time;
    fn load_time(stored: Self::Time) -> Result<DateTime<Utc>, StoreError>;
    fn ids(ids: &[i64]) -> Self::Ids;
    fn names(names: Vec<String>) -> Self::Names;
}

/// A value bound to a statement's next parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Flag(bool),
    Text(Option<&'a str>),
    Time(Option<DateTime<Utc>>),
    Ids(&'a [i64]),
    Names(Option<Vec<String>>),
    /// JSON text (rows of an insert).
    Json(String),
    /// Binary data (a migration's checksum).
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Flag(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(value: DateTime<Utc>) -> Self {
        Arg::Time(Some(value))
    }
}

impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(value: Option<DateTime<Utc>>) -> Self {
        Arg::Time(value)
    }
}

/// A `LIMIT` value: `None` is no limit.
pub(crate) fn limit(limit: Option<u64>) -> Arg<'static> {
    Arg::Int(Some(limit.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX))))
}

/// Where a statement runs: any session of a pool, or one connection (a
/// transaction's, a kept session's).
pub(crate) enum On<'e, DB: Database> {
    Pool(&'e Pool<DB>),
    Connection(&'e mut DB::Connection),
}

impl<'e, DB: Database> From<&'e Pool<DB>> for On<'e, DB> {
    fn from(pool: &'e Pool<DB>) -> Self {
        On::Pool(pool)
    }
}

/// Binding, running and reading, the same for every engine.
pub(crate) trait Db: Codec {
    /// `sql` with `args` bound in order.
    fn query(sql: &'static str, args: &[Arg<'_>]) -> Query<'static, Self, Self::Arguments>;

    fn fetch_all<'e>(
        on: On<'e, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'e;

    fn fetch_optional<'e>(
        on: On<'e, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'e;

    fn fetch_one<'e>(
        on: On<'e, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> impl Future<Output = Result<Self::Row, StoreError>> + Send + 'e;

    fn execute<'e>(
        on: On<'e, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'e;

    fn int(row: &Self::Row, column: &str) -> Result<i64, StoreError>;
    fn optional_int(row: &Self::Row, column: &str) -> Result<Option<i64>, StoreError>;
    fn flag(row: &Self::Row, column: &str) -> Result<bool, StoreError>;
    fn text(row: &Self::Row, column: &str) -> Result<String, StoreError>;
    fn optional_text(row: &Self::Row, column: &str) -> Result<Option<String>, StoreError>;
    fn bytes(row: &Self::Row, column: &str) -> Result<Vec<u8>, StoreError>;
    fn time(row: &Self::Row, column: &str) -> Result<DateTime<Utc>, StoreError>;
    fn optional_time(row: &Self::Row, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
}

impl<DB> Db for DB
where
    DB: Codec,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row> + Encode<'a, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<DB::Time>: Encode<'q, DB>,
    for<'q> Option<DB::Names>: Encode<'q, DB>,
    Vec<u8>: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    bool: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
{
    fn query(sql: &'static str, args: &[Arg<'_>]) -> Query<'static, Self, Self::Arguments> {
        let bind = |query: Query<'static, Self, Self::Arguments>, arg: &Arg<'_>| match arg {
            Arg::Int(value) => query.bind(*value),
            Arg::Flag(value) => query.bind(*value),
            Arg::Text(value) => query.bind(*value),
            Arg::Time(value) => query.bind(value.map(DB::store_time)),
            Arg::Ids(ids) => query.bind(DB::ids(ids)),
            Arg::Names(names) => query.bind(names.clone().map(DB::names)),
            Arg::Json(text) => query.bind(text.clone()),
            Arg::Bytes(bytes) => query.bind(bytes.to_vec()),
        };
        if DB::POSITIONAL {
            let (sql, order) = positional::of(sql);
            return order.iter().fold(sqlx::query(sql), |query, &n| bind(query, &args[n]));
        }
        args.iter().fold(sqlx::query(sql), bind)
    }

    async fn fetch_all(
        on: On<'_, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> Result<Vec<Self::Row>, StoreError> {
        Ok(match on {
            On::Pool(pool) => query.fetch_all(pool).await?,
            On::Connection(conn) => query.fetch_all(conn).await?,
        })
    }

    async fn fetch_optional(
        on: On<'_, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> Result<Option<Self::Row>, StoreError> {
        Ok(match on {
            On::Pool(pool) => query.fetch_optional(pool).await?,
            On::Connection(conn) => query.fetch_optional(conn).await?,
        })
    }

    async fn fetch_one(
        on: On<'_, Self>,
        query: Query<'static, Self, Self::Arguments>,
    ) -> Result<Self::Row, StoreError> {
        Ok(match on {
            On::Pool(pool) => query.fetch_one(pool).await?,
            On::Connection(conn) => query.fetch_one(conn).await?,
        })
    }

    async fn execute(on: On<'_, Self>, query: Query<'static, Self, Self::Arguments>) -> Result<(), StoreError> {
        match on {
            On::Pool(pool) => query.execute(pool).await?,
            On::Connection(conn) => query.execute(conn).await?,
        };
        Ok(())
    }

    fn int(row: &Self::Row, column: &str) -> Result<i64, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn optional_int(row: &Self::Row, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn flag(row: &Self::Row, column: &str) -> Result<bool, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn text(row: &Self::Row, column: &str) -> Result<String, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn optional_text(row: &Self::Row, column: &str) -> Result<Option<String>, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn bytes(row: &Self::Row, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(row.try_get(column)?)
    }

    fn time(row: &Self::Row, column: &str) -> Result<DateTime<Utc>, StoreError> {
        DB::load_time(row.try_get(column)?)
    }

    fn optional_time(row: &Self::Row, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        row.try_get::<Option<DB::Time>, _>(column)?.map(DB::load_time).transpose()
    }
}
