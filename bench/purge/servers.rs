//! The database servers a benchmark creates its stores on, and the engines
//! it measures, as the purge and migration benchmarks take them from the
//! command line.

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

/// The engines one `--backend` names (an alias, so that clap takes the list as one value).
pub type Engines = Vec<Engine>;

/// The engines every `--backend` given names together, each once, in
/// `Engine::ALL`'s order; all of them when none is given.
pub fn chosen_engines(backends: &[Engines]) -> Vec<Engine> {
    let chosen: Vec<Engine> = backends.iter().flatten().copied().collect();
    Engine::ALL.into_iter().filter(|engine| chosen.is_empty() || chosen.contains(engine)).collect()
}
