//! Errors of the benchmark: any error, boxed, behind a sentence saying what
//! was being done, so a failure names its phase and its store. The project
//! has no error-context crate, and this much is all the benchmark needs.

use std::fmt::Display;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub type Result<T> = std::result::Result<T, Error>;

/// Puts what was being done in front of an error.
pub trait Context<T> {
    fn context(self, what: impl Display) -> Result<T>;

    /// The same, with the sentence made only when there is an error.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|error| format!("{what}: {error}").into())
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|error| format!("{}: {error}", what()).into())
    }
}
