//! Running the `retentiond` binary: an [`Invocation`] with a clean
//! environment, its outcome ([`Out`]), or the process while it runs ([`Running`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_retentiond");

/// How long one invocation of the binary may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of one invocation of the binary.
#[derive(Debug, Clone)]
pub struct Out {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    /// Panics with the whole invocation unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "expected exit code {code}, got {}\n{}", self.code, self.describe());
        self
    }

    /// Parses stdout as JSON (the command must have been given `--output json`).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    /// Whether stderr names line `n` (`line 3`, not `line 30`).
    pub fn stderr_names_line(&self, n: usize) -> bool {
        mentions_line(&self.stderr, n)
    }

    pub fn describe(&self) -> String {
        format!(
            "command: retentiond {}\nexit code: {}\nelapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.elapsed,
            truncate_for_display(&self.stdout),
            truncate_for_display(&self.stderr)
        )
    }
}

fn truncate_for_display(s: &str) -> &str {
    const MAX: usize = 8000;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `text` contains `line N` with N not followed by another digit.
pub fn mentions_line(text: &str, n: usize) -> bool {
    let needle = format!("line {n}");
    let lower = text.to_lowercase();
    lower.match_indices(&needle).any(|(i, _)| {
        let after = lower[i + needle.len()..].chars().next();
        !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// A command ready to run: the binary with a clean `RETENTIOND*` environment.
pub struct Invocation {
    pub(super) args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    /// The process's open-file limit (`RLIMIT_NOFILE`, soft and hard), when set.
    open_files: Option<u64>,
    /// Whether stdout is a pipe kept full, so the first write blocks.
    stdout_stuck: bool,
}

impl Invocation {
    pub fn new<S: AsRef<str>>(args: &[S]) -> Invocation {
        Invocation {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            open_files: None,
            stdout_stuck: false,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Invocation {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, env: &[(K, V)]) -> Invocation {
        for (k, v) in env {
            self.env.push((k.as_ref().to_string(), v.as_ref().to_string()));
        }
        self
    }

    pub fn stdin(mut self, input: &[u8]) -> Invocation {
        self.stdin = Some(input.to_vec());
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Invocation {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Starts the process with at most `limit` open files (as `ulimit -n`),
    /// set in the child before it runs the binary.
    pub fn open_file_limit(mut self, limit: u64) -> Invocation {
        self.open_files = Some(limit);
        self
    }

    /// Gives the process a stdout that nobody reads and that is already
    /// full: its first write to stdout blocks until it is killed. A command
    /// that prints only its result then waits after all its work is done.
    pub fn stdout_stuck(mut self) -> Invocation {
        self.stdout_stuck = true;
        self
    }

    /// The command to start: the binary with this invocation's arguments and
    /// environment. The child sees only the configuration a test gives it: no
    /// inherited `RETENTIOND*`, `PG*`, `RUST_LOG` or systemd variables.
    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let upper = key.to_string_lossy().to_ascii_uppercase();
            // PG* (PGSSLMODE, PGPASSWORD…) and CREDENTIALS_DIRECTORY change
            // how the binary connects: a test sets them when it means to.
            if upper.starts_with("RETENTIOND")
                || upper == "NOTIFY_SOCKET"
                || upper.starts_with("WATCHDOG_")
                || upper.starts_with("PG")
                || upper == "CREDENTIALS_DIRECTORY"
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("RUST_LOG");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(limit) = self.open_files {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        cmd
    }

    /// Starts the process; the caller waits with [`Running::wait`].
    pub fn spawn(self) -> Running {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let stuck_stdout = self.stdout_stuck.then(|| {
            let (reader, writer) = full_pipe();
            cmd.stdout(writer);
            reader
        });
        if stuck_stdout.is_none() {
            cmd.stdout(Stdio::piped());
        }
        cmd.stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdin_writer = self.stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin is piped");
            std::thread::spawn(move || {
                // The child may exit without reading everything; that is its business.
                let _ = pipe.write_all(&input);
            })
        });
        // A stuck stdout is read only once the process has ended (by `wait`).
        let stdout = match child.stdout.take() {
            Some(pipe) => read_in_background(pipe),
            None => std::thread::spawn(String::new),
        };
        let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
        Running { args: self.args, child, started, stdout, stderr, stdin_writer, stuck_stdout }
    }

    pub fn run(self) -> Out {
        self.spawn().wait()
    }
}

/// A pipe filled to its last byte: a blocking write to it waits until the
/// reader reads, which the caller does not do while the writer runs.
fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    let fd = writer.as_raw_fd();
    let set_nonblocking = |on: bool| {
        // SAFETY: F_GETFL/F_SETFL on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            let flags = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags), 0, "fcntl F_SETFL on a pipe");
        }
    };
    set_nonblocking(true);
    // Large writes first, then single bytes: the pipe is full once not even
    // one byte fits.
    for chunk in [&[b'.'; 4096][..], &[b'.'][..]] {
        loop {
            match writer.write(chunk) {
                Ok(_) => continue,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => panic!("filling a pipe: {error}"),
            }
        }
    }
    // The flag belongs to the open pipe, which the child shares: it must block.
    set_nonblocking(false);
    (reader, writer)
}

fn read_in_background<R: Read + Send + 'static>(mut pipe: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A started process.
pub struct Running {
    args: Vec<String>,
    child: std::process::Child,
    started: Instant,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    stdin_writer: Option<std::thread::JoinHandle<()>>,
    /// The read end of a stuck stdout ([`Invocation::stdout_stuck`]).
    stuck_stdout: Option<std::io::PipeReader>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process (at most [`COMMAND_TIMEOUT`], then kills it and fails).
    pub fn wait(mut self) -> Out {
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for child") {
                break status;
            }
            if self.started.elapsed() > COMMAND_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("retentiond {} did not finish within {COMMAND_TIMEOUT:?}", self.args.join(" "));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        if let Some(writer) = self.stdin_writer {
            let _ = writer.join();
        }
        let stdout = match self.stuck_stdout {
            // What the process wrote after the filling, if it got to write.
            Some(mut pipe) => {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                String::from_utf8_lossy(&buf).trim_start_matches('.').to_owned()
            }
            None => self.stdout.join().unwrap_or_default(),
        };
        let stderr = self.stderr.join().unwrap_or_default();
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            -(status.signal().unwrap_or(0))
        });
        Out { args: self.args, code, stdout, stderr, elapsed }
    }
}

/// Writes a secret file (a password, a key) with the permissions `mode`.
pub fn write_secret(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Neither output of the run shows `password`.
#[track_caller]
pub fn assert_no_password(out: &Out, password: &str) {
    assert!(!out.stdout.contains(password) && !out.stderr.contains(password), "the password shows\n{}", out.describe());
}

/// The run could not reach its database (exit 69) and said why: `cause`.
#[track_caller]
pub fn expect_unreachable(out: &Out, cause: &str) {
    out.expect_code(69);
    assert!(out.stderr.contains(cause), "expected {cause:?} in stderr\n{}", out.describe());
    eprintln!("{}: {}", out.args.join(" "), out.stderr.trim());
}
