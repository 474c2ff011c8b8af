//! libfaketime (Debian's `faketime`): a process started with
//! [`FakeClock::env`] reads the clock the test chose instead of the host's.
//! Without the library the tests that need it say so and pass, unless
//! `RETENTIOND_TEST_REQUIRE_FAKETIME=1` (CI), where they fail.

use std::path::PathBuf;

use super::require::Requirement;

/// Debian installs the library in `/usr/lib/<architecture>/faketime/`.
const LIB_DIR: &str = "/usr/lib";

/// The preloadable library.
pub struct FakeClock {
    library: PathBuf,
}

impl FakeClock {
    /// The library when it is installed; otherwise `None` after saying so,
    /// or a failure when it is required.
    #[track_caller]
    pub fn find(test: &str) -> Option<FakeClock> {
        let found = std::fs::read_dir(LIB_DIR)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|entry| Some(entry.ok()?.path().join("faketime/libfaketime.so.1")))
            .find(|path| path.exists());
        match found {
            Some(library) => Some(FakeClock { library }),
            None => {
                Requirement::Faketime.skip(test, "libfaketime (Debian package faketime) is not installed");
                None
            }
        }
    }

    /// The environment that puts a process on `faketime`, in libfaketime's
    /// syntax: `@2026-03-29 00:59:30` starts the clock there (read in UTC)
    /// and lets it run, `+10d` keeps it ten days ahead of the host's.
    pub fn env(&self, faketime: &str) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".to_owned(), self.library.display().to_string()),
            ("FAKETIME".to_owned(), faketime.to_owned()),
            ("TZ".to_owned(), "UTC".to_owned()),
        ]
    }
}
