//! docs/design.md, "The daemon", the logs' form: with `log.format = "auto"` (the default) the
//! logs on stderr are pretty for a person when stderr is a terminal, one
//! JSON object a line otherwise. The terminal is a pseudo-terminal the test
//! opens; the process is started with an empty environment but for the
//! store's URL, so nothing else chooses the format.

#[macro_use]
mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// A pseudo-terminal: its controlling side and the terminal a child writes to.
fn open_pty() -> (std::fs::File, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    let done = unsafe {
        libc::openpty(&mut controller, &mut terminal, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(done, 0, "openpty: {}", std::io::Error::last_os_error());
    unsafe { (std::fs::File::from_raw_fd(controller), OwnedFd::from_raw_fd(terminal)) }
}

/// `purge --dry-run` on `env`'s store, logging at `info` to `stderr`.
fn dry_run(env: &TestEnv, stderr: Stdio) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("RETENTIOND__DATABASE__URL", &env.url)
        .current_dir(env.dir())
        .args(["--log-level", "info", "purge", "--dry-run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    cmd
}

#[test]
fn logs_are_pretty_on_a_terminal_and_json_otherwise() {
    let env = TestEnv::new(Engine::Sqlite, "logs_are_pretty_on_a_terminal_and_json_otherwise").expect("sqlite");
    env.import_ok(&[job("old-one", "Completed", days_ago(120))]);

    // On a terminal: lines for a person, none of them JSON.
    let (mut controller, terminal) = open_pty();
    let mut child = dry_run(&env, Stdio::from(terminal)).spawn().expect("start retentiond");
    // The child holds the only other end now: reading ends (EIO) when it exits.
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = controller.read(&mut chunk) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let status = child.wait().expect("wait");
    let shown = reader.join().expect("reader");
    assert!(status.success(), "{status}\n{shown}");
    let lines: Vec<&str> = shown.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged on the terminal");
    for line in &lines {
        assert!(serde_json::from_str::<Value>(line).is_err(), "a JSON line on a terminal: {line}");
    }
    assert!(lines.iter().any(|l| l.contains("INFO")), "no INFO line on the terminal:\n{shown}");

    // On a pipe: every line one JSON object with a level and a message.
    let out = dry_run(&env, Stdio::piped()).output().expect("run retentiond");
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{logged}", out.status);
    let lines: Vec<&str> = logged.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged on the pipe");
    for line in &lines {
        let log: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(log["level"].is_string() && log["fields"]["message"].is_string(), "{line}");
    }
    assert_eq!(lines.len(), shown.lines().filter(|l| !l.trim().is_empty()).count(), "the same lines, in two forms");
}
