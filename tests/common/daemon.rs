//! The daemon (`retentiond run`) as a guarded process whose logs are read
//! while it runs, signals, and polling for what it does.

use std::io::{BufRead, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::env::TestEnv;
use super::http::readyz_is;
use super::run::{BIN, Invocation, Out};

/// Polls `condition` every 50 ms until it holds (`true`) or `timeout` passes (`false`).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends signal `name` (`TERM`, `HUP`, `KILL`, …) to `pid` with kill(1);
/// whether kill succeeded.
pub fn send_signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"))
        .success()
}

/// The text of the last `max` bytes of `s` (at a character boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A long-running `retentiond` (the daemon) whose stdout and stderr are
/// collected while it runs. Dropping it kills the process (SIGKILL) if it is
/// still running, so a failing test leaves no daemon behind.
pub struct Daemon {
    args: Vec<String>,
    child: Mutex<(std::process::Child, Option<std::process::ExitStatus>)>,
    pid: u32,
    started: Instant,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect_lines<R: Read + Send + 'static>(pipe: R, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            into.lock().unwrap_or_else(|e| e.into_inner()).push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

impl TestEnv {
    /// `retentiond run` on this store: JSON logs, sweeps on `cron` (not at
    /// start), HTTP on 127.0.0.1:`port`, a 5 s grace. Later `.env(…)` calls
    /// override these.
    pub fn daemon_cmd(&self, port: u16, cron: &str) -> Invocation {
        self.cmd(&["run"])
            .env("RETENTIOND__LOG__FORMAT", "json")
            .env("RETENTIOND__SCHEDULE__CRON", cron)
            .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
            .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
            .env("RETENTIOND__SHUTDOWN__GRACE", "5s")
    }
}

/// Waits until `/readyz` on `port` answers 200; fails at once if the daemon
/// exits, or after 30 s.
#[track_caller]
pub fn wait_ready(daemon: &Daemon, port: u16) {
    let ready = wait_until(Duration::from_secs(30), || !daemon.is_running() || readyz_is(port, 200));
    assert!(ready && daemon.is_running(), "the daemon did not become ready\n{}", daemon.describe());
}

impl Invocation {
    /// Starts the process as a [`Daemon`]: a clean `RETENTIOND*` environment
    /// as with [`spawn`](Self::spawn), output readable while it runs.
    pub fn spawn_daemon(self) -> Daemon {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect_lines(child.stdout.take().expect("stdout is piped"), stdout.clone()),
            collect_lines(child.stderr.take().expect("stderr is piped"), stderr.clone()),
        ];
        let pid = child.id();
        Daemon { args: self.args, child: Mutex::new((child, None)), pid, started, stdout, stderr, readers }
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The JSON log lines on stderr so far (other lines are left out).
    pub fn log_lines(&self) -> Vec<Value> {
        self.stderr().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect()
    }

    /// How many JSON log lines so far have `fields.message == message`.
    pub fn logged(&self, message: &str) -> usize {
        self.log_lines().iter().filter(|l| l["fields"]["message"] == message).count()
    }

    /// The exit code if the process has ended (a signal `s` gives `-s`).
    pub fn exit_code(&self) -> Option<i32> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_none() {
            guard.1 = guard.0.try_wait().expect("try_wait");
        }
        guard.1.map(exit_code_of)
    }

    pub fn is_running(&self) -> bool {
        self.exit_code().is_none()
    }

    /// Sends signal `name` (`TERM`, `HUP`, …), asserting that kill succeeded.
    #[track_caller]
    pub fn signal(&self, name: &str) {
        assert!(send_signal(self.pid, name), "kill -s {name} {} failed\n{}", self.pid, self.describe());
    }

    /// Waits at most `timeout` for the process to end and returns its
    /// outcome (elapsed counts from the start); fails (and kills it) if it
    /// is still running then.
    #[track_caller]
    pub fn wait_exit(mut self, timeout: Duration) -> Out {
        if !wait_until(timeout, || !self.is_running()) {
            panic!("the daemon did not exit within {timeout:?}\n{}", self.describe());
        }
        let code = self.exit_code().expect("exited");
        let elapsed = self.started.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Out {
            args: self.args.clone(),
            code,
            stdout: self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            stderr: self.stderr(),
            elapsed,
        }
    }

    /// The command, its state and the tail of its stderr, for failure messages.
    pub fn describe(&self) -> String {
        let state = match self.exit_code() {
            None => "running".to_string(),
            Some(code) => format!("exited with {code}"),
        };
        let stderr = self.stderr();
        format!(
            "daemon: retentiond {} (pid {}, {state}, {:?} since start)\n--- stderr (tail) ---\n{}",
            self.args.join(" "),
            self.pid,
            self.started.elapsed(),
            tail(&stderr, 12_000)
        )
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -(status.signal().unwrap_or(0))
    })
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_none() && guard.0.try_wait().ok().flatten().is_none() {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
        }
    }
}
