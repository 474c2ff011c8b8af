//! The database servers a benchmark creates its stores on, as the purge and
//! migration benchmarks take them from the command line.

use retentiond::store::Engine;

#[derive(Debug, Clone, clap::Args)]
pub struct Servers {
    /// A PostgreSQL role allowed to create databases and to run CHECKPOINT (pg_checkpoint).
    #[arg(
        long,
        env = "RETENTIOND_TEST_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,

    /// A MariaDB user allowed to create and drop databases.
    #[arg(
        long,
        env = "RETENTIOND_TEST_MARIADB_URL",
        hide_env_values = true,
        default_value = "mysql://root@127.0.0.1:3306/"
    )]
    pub mariadb_url: String,
}

impl Servers {
    /// The server a store of `engine` is made on (none for SQLite: its
    /// stores are files, and the PostgreSQL URL is passed along unused).
    pub fn admin_url(&self, engine: Engine) -> &str {
        if engine == Engine::MariaDb { &self.mariadb_url } else { &self.postgres_url }
    }
}
