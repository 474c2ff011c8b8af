//! The sweep's pause for a replica while it lasts (`replica_pause`): which
//! replica holds it back, why, and since when, for the overview page
//! (src/ui/pages.rs). Kept for the process: the daemon runs one sweep at a
//! time, and the pause is cleared when it ends, however it ends.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A pause going on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedNow {
    /// The replica furthest over the limit, or one that cannot be read.
    pub replica: String,
    /// Its lag against the limit, or why it cannot be read, at the last read.
    pub reason: String,
    pub since: DateTime<Utc>,
}

static PAUSED: Mutex<Option<PausedNow>> = Mutex::new(None);

/// The pause going on now, if any.
pub fn current() -> Option<PausedNow> {
    PAUSED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Shows a pause from its start until it is dropped.
pub(crate) struct Shown {
    since: DateTime<Utc>,
}

impl Shown {
    pub(crate) fn start(replica: String, reason: String) -> Shown {
        let since = Utc::now();
        *PAUSED.lock().unwrap_or_else(|e| e.into_inner()) = Some(PausedNow { replica, reason, since });
        Shown { since }
    }

    /// What the last read found.
    pub(crate) fn update(&self, replica: String, reason: String) {
        *PAUSED.lock().unwrap_or_else(|e| e.into_inner()) = Some(PausedNow { replica, reason, since: self.since });
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        *PAUSED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
