//! The database engines retentiond can keep its job store in, told apart by
//! the scheme of `database.url`. The configuration's validation, the store,
//! the tests and the benchmark all ask this one enum; every `match` on it
//! is exhaustive, so a new engine is a compile error until each place says
//! what it does for it.

use std::fmt;

use super::{Refusal, mariadb, postgres, sqlite};

/// A database engine with a folder of its own under `src/store/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The embedded default: a file on this host.
    Sqlite,
    /// PostgreSQL 13 or newer, over the network.
    Postgres,
    /// MariaDB 10.6 or newer, over the network.
    MariaDb,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Sqlite, Engine::Postgres, Engine::MariaDb];

    /// The engine a `database.url` names by its scheme, if any.
    pub fn of_url(url: &str) -> Option<Engine> {
        let scheme = url.split_once(':')?.0;
        Engine::ALL.into_iter().find(|engine| engine.schemes().contains(&scheme))
    }

    /// The engine called `name` (its [`Engine::name`]).
    pub fn named(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|engine| engine.name() == name)
    }

    /// The engines a benchmark's `--backend` names: one engine by its name,
    /// `both` for SQLite and PostgreSQL, or `all` (a benchmark that does not
    /// measure an engine says so when it is named).
    pub fn choose(choice: &str) -> Result<Vec<Engine>, String> {
        match choice {
            "both" => return Ok(vec![Engine::Sqlite, Engine::Postgres]),
            "all" => return Ok(Engine::ALL.to_vec()),
            _ => {}
        }
        let choices = Engine::ALL.iter().map(|engine| engine.name()).chain(["both", "all"]).collect();
        Engine::named(choice).map(|engine| vec![engine]).ok_or_else(|| format!("expected {}", or_list(choices)))
    }

    /// The URL schemes that select it.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Engine::Sqlite => &["sqlite"],
            Engine::Postgres => &["postgres", "postgresql"],
            Engine::MariaDb => &["mariadb", "mysql"],
        }
    }

    /// Its name in file names, test names and the benchmark's summary lines.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::MariaDb => "mariadb",
        }
    }

    /// Its schema's migrations, as `retentiond migrate` applies them.
    pub fn migrator(self) -> &'static sqlx::migrate::Migrator {
        match self {
            Engine::Sqlite => &sqlite::MIGRATOR,
            Engine::Postgres => &postgres::MIGRATOR,
            Engine::MariaDb => &mariadb::migrate::MIGRATOR,
        }
    }

    /// Its name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
        }
    }

    /// The form of a URL that selects it, for messages.
    pub fn url_form(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite://PATH",
            Engine::Postgres => "postgres://…",
            Engine::MariaDb => "mariadb://…",
        }
    }

    /// The URL forms of every engine, for messages: `sqlite://PATH, postgres://… or mariadb://…`.
    pub fn url_forms() -> String {
        or_list(Engine::ALL.map(Engine::url_form).to_vec())
    }

    /// The scheme prefixes of every engine, for messages: `sqlite:, postgres:, postgresql:, mariadb: or mysql:`.
    pub fn scheme_prefixes() -> String {
        or_list(Engine::ALL.iter().flat_map(|engine| engine.schemes()).map(|scheme| format!("{scheme}:")).collect())
    }

    /// What a refusal of this engine's server means, when `error` is one
    /// of its own (recognised by the engine's error codes).
    pub(super) fn classify(self, error: &sqlx::Error) -> Option<Refusal> {
        match self {
            Engine::Sqlite => sqlite::classify(error),
            Engine::Postgres => postgres::classify(error),
            Engine::MariaDb => mariadb::classify(error),
        }
    }
}

/// `a, b or c`.
fn or_list<T: AsRef<str>>(items: Vec<T>) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    match items.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, others)) => format!("{} or {last}", others.join(", ")),
        None => String::new(),
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_chooses_the_engine() {
        assert_eq!(Engine::of_url("sqlite://retentiond.db"), Some(Engine::Sqlite));
        assert_eq!(Engine::of_url("sqlite::memory:"), Some(Engine::Sqlite));
        assert_eq!(Engine::of_url("postgres://db/jobs"), Some(Engine::Postgres));
        assert_eq!(Engine::of_url("postgresql://db/jobs"), Some(Engine::Postgres));
        assert_eq!(Engine::of_url("mariadb://db/jobs"), Some(Engine::MariaDb));
        assert_eq!(Engine::of_url("mysql://db/jobs"), Some(Engine::MariaDb));
        assert_eq!(Engine::of_url("retentiond.db"), None);
        assert_eq!(Engine::url_forms(), "sqlite://PATH, postgres://… or mariadb://…");
        assert_eq!(Engine::scheme_prefixes(), "sqlite:, postgres:, postgresql:, mariadb: or mysql:");
        assert_eq!(Engine::choose("postgres"), Ok(vec![Engine::Postgres]));
        assert_eq!(Engine::choose("both"), Ok(vec![Engine::Sqlite, Engine::Postgres]));
        assert_eq!(Engine::choose("all"), Ok(vec![Engine::Sqlite, Engine::Postgres, Engine::MariaDb]));
        assert_eq!(Engine::choose("mysql"), Err("expected sqlite, postgres, mariadb, both or all".to_owned()));
    }
}
