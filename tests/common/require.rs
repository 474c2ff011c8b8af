//! The flags that turn a skipped test into a failed one: CI sets them
//! (`.ci/run`) so that a missing server or tool cannot pass unnoticed.
//! Every test reads them here, and only here, the same way: `1` or `true`
//! (any case) requires, `0`, `false` or unset does not, and any other value
//! fails the test that reads it rather than being taken for either.
//!
//! Standalone (no other harness module), so the benchmark smoke tests can
//! include it by path without the whole harness.

/// What a test may need that a machine may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// The shared PostgreSQL server, and PostgreSQL's server programs for
    /// the tests that start servers of their own without TLS.
    Postgres,
    /// PostgreSQL's server programs and openssl, for the TLS tests.
    Tls,
    /// The shared MariaDB server (`RETENTIOND_TEST_MARIADB_URL`).
    MariaDb,
    /// `promtool check metrics`.
    Promtool,
    /// Chromium and ChromeDriver, for the status pages' browser test.
    Browser,
    /// libfaketime (Debian's `faketime`), for the tests of other clocks.
    Faketime,
}

impl Requirement {
    /// The environment variable that requires it.
    pub fn var(self) -> &'static str {
        match self {
            Requirement::Postgres => "RETENTIOND_TEST_REQUIRE_POSTGRES",
            Requirement::Tls => "RETENTIOND_TEST_REQUIRE_TLS",
            Requirement::MariaDb => "RETENTIOND_TEST_REQUIRE_MARIADB",
            Requirement::Promtool => "RETENTIOND_TEST_REQUIRE_PROMTOOL",
            Requirement::Browser => "RETENTIOND_TEST_REQUIRE_BROWSER",
            Requirement::Faketime => "RETENTIOND_TEST_REQUIRE_FAKETIME",
        }
    }

    /// Whether its absence must fail the test instead of skipping it.
    #[track_caller]
    pub fn is_required(self) -> bool {
        let value = std::env::var(self.var()).unwrap_or_default();
        parse_flag(&value).unwrap_or_else(|| {
            panic!("{}={value:?}: expected 1 or true (required), 0, false or empty (not required)", self.var())
        })
    }

    /// Says why `test` cannot run and returns, or panics when
    /// [`is_required`](Self::is_required).
    #[track_caller]
    pub fn skip(self, test: &str, missing: &str) {
        if self.is_required() {
            panic!("{test}: {missing}, and {} requires it", self.var());
        }
        eprintln!("skipping {test}: {missing} (set {}=1 to fail instead)", self.var());
    }
}

/// `Some(true)` for `1`/`true`, `Some(false)` for `0`/`false`/empty, `None` otherwise.
fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "" | "0" | "false" => Some(false),
        _ => None,
    }
}
