//! Who and where this process is: recorded in audit rows (`deleted_by`) and
//! run records, and used to tell a live sweep from one whose process died.

use std::fs;

/// The running process, as recorded in `retention_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub host: String,
    pub user: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (Linux), so a
    /// reused pid is not mistaken for the process that recorded a run.
    pub started: Option<u64>,
}

impl ProcessIdentity {
    pub fn current() -> ProcessIdentity {
        let pid = std::process::id();
        ProcessIdentity {
            host: whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into()),
            user: whoami::fallible::username().unwrap_or_else(|_| "unknown-user".into()),
            pid,
            started: process_start_ticks(pid),
        }
    }

    /// The `deleted_by` of an audit row: `user@host`.
    pub fn deleted_by(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether the process that recorded a run on this host (`pid`, `started`)
    /// is still alive and is not this process. This process calls it before it
    /// starts a run of its own, so a row with its own identity is a leftover.
    pub fn is_other_live_process(&self, host: &str, pid: i64, started: Option<i64>) -> bool {
        let Ok(pid) = u32::try_from(pid) else { return false };
        if host != self.host || pid == self.pid {
            return false;
        }
        match process_start_ticks(pid) {
            None => false,
            Some(now_started) => started.is_none_or(|started| started == now_started as i64),
        }
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in ticks since boot.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_another_live_one_but_its_parent_is() {
        let me = ProcessIdentity::current();
        assert!(me.started.is_some());
        let started = me.started.map(|s| s as i64);
        assert!(!me.is_other_live_process(&me.host, me.pid.into(), started));
        let parent = std::os::unix::process::parent_id();
        let parent_started = process_start_ticks(parent).map(|s| s as i64);
        assert!(me.is_other_live_process(&me.host, parent.into(), parent_started));
        assert!(!me.is_other_live_process(&me.host, parent.into(), Some(-1)), "a reused pid is not the same process");
        assert!(!me.is_other_live_process("elsewhere", parent.into(), parent_started));
        assert!(!me.is_other_live_process(&me.host, i64::from(u32::MAX), None));
    }
}
