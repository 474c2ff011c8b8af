//! retentiond: deletes finished import/export jobs after their retention
//! period, with an audit row for every deletion. `main.rs` only parses the
//! command line and calls [`app::run`]; each concept has its own module.

pub mod app;
pub mod atomic_file;
pub mod batch;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod error;
pub mod export;
pub mod forecast;
pub mod generate;
pub mod http;
pub mod identity;
pub mod import;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod output;
pub mod policy;
pub mod scheduler;
pub mod seed;
pub mod signals;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod tls;
pub mod ui;
