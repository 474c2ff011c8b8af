//! Test harness: runs the real `retentiond` binary against a fresh store of
//! every engine.
//!
//! * SQLite: a new database file in a [`tempfile::TempDir`] per test.
//! * PostgreSQL: a new database per test on the shared server (`pg_db`),
//!   dropped again with the [`TestEnv`]. When the server is unreachable the
//!   test says so and passes, unless `RETENTIOND_TEST_REQUIRE_POSTGRES=1`
//!   (see [`require`]), in which case it fails.
//!
//! Scenarios are written once and instantiated for every engine with
//! [`every_engine!`]: a test `fn foo` becomes `foo::sqlite`, `foo::postgres`.
//! A scenario that needs what not every engine has names it
//! ([`every_engine_with!`], [`Capability`]) and runs on every engine that has
//! it. How each engine differs (its SQL, what it can do): `engines`.
//!
//! - `engines`: the engines, their capabilities, the SQL that differs;
//! - `env`: [`TestEnv`], a fresh store and a scratch directory per test;
//! - `db`: SQL straight to the test's store;
//! - `run`: running the binary;
//! - `data`: jobs and timestamps for the tests;
//! - `daemon`, `http`, `notify`, `proxy`: a running daemon, its HTTP
//!   endpoints, its systemd notifications, a network between it and the server;
//! - `pg_db`, `pg_server`, `pg_standby`, `pki`, `https_server`: servers for the tests;
//! - `faketime`: a process on a clock of the test's choosing;
//! - `held`: what the pacing tests check of a purge held back by a replica;
//! - `plan`: reading query plans; `require`: which skips CI turns into failures.

// Each test file uses a part of the harness.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod data;
pub mod db;
pub mod engines;
pub mod env;
pub mod faketime;
pub mod held;
pub mod http;
pub mod https_server;
pub mod mariadb_db;
pub mod mariadb_server;
pub mod notify;
pub mod pg_db;
pub mod pg_server;
pub mod pg_standby;
pub mod pki;
pub mod plan;
pub mod proxy;
pub mod require;
pub mod run;

pub use daemon::*;
pub use data::*;
pub use engines::*;
pub use env::*;
pub use http::*;
pub use notify::*;
pub use proxy::*;
pub use run::*;

/// Defines one scenario for every engine: `fn name(env: &TestEnv) { ... }`
/// becomes the tests `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! every_engine {
    ($($scenario:tt)*) => { $crate::scenario!([] $($scenario)*); };
}

/// Defines a scenario that needs some [`Capability`]s:
/// `every_engine_with! { ConcurrentSweeps; fn name(env: &TestEnv) { ... } }`
/// runs on every engine that has them all; on another one its test says so
/// and passes.
#[macro_export]
macro_rules! every_engine_with {
    ($($capability:ident),+; $($scenario:tt)*) => { $crate::scenario!([$($capability),+] $($scenario)*); };
}

/// A module `name` holding the scenario and one `#[test]` per engine, of
/// the one list of engines below: the exhaustive `match` over that list
/// makes a new engine a compile error until it is listed, and so has its test.
#[macro_export]
macro_rules! scenario {
    ([$($capability:ident),*] $(#[$meta:meta])* fn $name:ident($env:ident : &TestEnv) $body:block) => {
        $crate::scenario!(@tests [$($capability),*] $(#[$meta])* fn $name($env) $body; sqlite Sqlite, postgres Postgres, mariadb MariaDb);
    };
    (@tests [$($capability:ident),*] $(#[$meta:meta])* fn $name:ident($env:ident) $body:block; $($test:ident $engine:ident),+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            fn scenario($env: &$crate::common::TestEnv) $body

            fn on(engine: $crate::common::Engine) {
                let needs = [$($crate::common::Capability::$capability),*];
                match engine {
                    $($crate::common::Engine::$engine)|+ => {
                        $crate::common::run_scenario(engine, module_path!(), stringify!($name), &needs, scenario)
                    }
                }
            }

            $(
                #[test]
                fn $test() {
                    on($crate::common::Engine::$engine);
                }
            )+
        }
    };
}
