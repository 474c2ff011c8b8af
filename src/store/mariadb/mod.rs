//! The MariaDB store (10.6 or newer): so far its SQL and its migration
//! runner; the store itself is built on them.

pub mod migrate;
/// Public so that tests can examine the query plans.
pub mod sql;
