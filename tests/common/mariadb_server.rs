//! A MariaDB server of a test's own, for what the shared server cannot show:
//! TLS with the test's certificates, a replica of another server, a
//! read-only or `innodb_read_only` server. `mariadb-install-db` makes a
//! data directory in a temp dir, and `mariadbd` serves it on 127.0.0.1 on a
//! free port, as the `mysql` user when the test runs as root. The server
//! is stopped and its directory removed when the [`MariaDbServer`] is
//! dropped, so a failing test leaves none behind.
//!
//! Without the programs the tests that need them print why and pass,
//! unless `RETENTIOND_TEST_REQUIRE_TLS=1` (CI), where they fail.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::{Issued, TestCa, openssl_available, skip};

/// How long a server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `mariadb-install-db`, `mariadbd` and `mariadb` (and openssl, for
/// the certificates) are installed; otherwise `false` after saying so, or a
/// failure under `RETENTIOND_TEST_REQUIRE_TLS=1` (see [`skip`]).
pub fn tools(test: &str) -> bool {
    for program in ["mariadb-install-db", "mariadbd", "mariadb"] {
        if which(program).is_none() {
            return skip(test, &format!("{program} is not installed"));
        }
    }
    openssl_available() || skip(test, "openssl is not installed")
}

/// `program` on PATH or in /usr/sbin (Debian puts `mariadbd` there).
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').chain(["/usr/sbin", "/usr/bin"]).map(|dir| Path::new(dir).join(program)).find(|p| p.exists())
}

/// The server's TLS files: its certificate and key, and the CA whose client
/// certificates it accepts.
pub struct ServerTls<'a> {
    pub server: &'a Issued,
    pub client_ca: &'a TestCa,
}

/// What kind of server to start.
#[derive(Default)]
pub struct ServerOptions<'a> {
    /// TLS on with these files; off without.
    pub tls: Option<ServerTls<'a>>,
    /// Refuse connections without TLS (`require_secure_transport`).
    pub require_tls: bool,
    /// Write a binary log (row format), so that replicas can follow it.
    pub binlog: bool,
    /// Start as a replica of this server (`CHANGE MASTER TO`, `START
    /// REPLICA`, GTID), `read_only` on, as replicas are run.
    pub replica_of: Option<&'a MariaDbServer>,
    /// Further `mariadbd` options (`--innodb-read-only`, say).
    pub extra: Vec<String>,
}

pub struct MariaDbServer {
    /// Holds the data directory, the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    pub port: u16,
    /// The `server_id`, unique among the servers of a test process.
    pub server_id: u32,
    child: Option<Child>,
    /// The server's own uid and gid: `mysql`'s when the test runs as root.
    owner: Option<(u32, u32)>,
    args: Vec<String>,
}

impl MariaDbServer {
    /// Initialises a data directory and starts a server on it; returns once
    /// it answers. A replica is replicating when this returns.
    pub fn start(options: ServerOptions<'_>) -> MariaDbServer {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let server_id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::Builder::new().prefix("retentiond-mariadb-").tempdir().unwrap();
        let owner = (unsafe { libc::geteuid() } == 0).then(mysql_user);
        let port = super::free_port();
        let mut server = MariaDbServer { dir, port, server_id, child: None, owner, args: Vec::new() };
        let data = server.data_dir();
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(server.tmp_dir()).unwrap();
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--socket={}", server.socket().display()),
            format!("--pid-file={}", server.dir.path().join("server.pid").display()),
            format!("--tmpdir={}", server.tmp_dir().display()),
            format!("--log-error={}", server.log_path().display()),
            format!("--server-id={server_id}"),
            // Small and quick: a test server holds little, and durability is not tested on it.
            "--innodb-buffer-pool-size=32M".to_owned(),
            "--innodb-log-file-size=16M".to_owned(),
            "--innodb-flush-log-at-trx-commit=0".to_owned(),
            "--max-connections=40".to_owned(),
        ];
        if let Some(tls) = &options.tls {
            // Copies the server can read (it runs as mysql).
            for (from, name, option) in [
                (&tls.server.cert, "server.crt", "ssl-cert"),
                (&tls.server.key, "server.key", "ssl-key"),
                (&tls.client_ca.cert, "client-ca.crt", "ssl-ca"),
            ] {
                let to = server.dir.path().join(name);
                std::fs::copy(from, &to).unwrap();
                args.push(format!("--{option}={}", to.display()));
            }
            std::fs::set_permissions(server.dir.path().join("server.key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
            if options.require_tls {
                args.push("--require-secure-transport=ON".to_owned());
            }
        }
        if options.binlog || options.replica_of.is_some() {
            args.push(format!("--log-bin={}", server.dir.path().join("binlog").display()));
            args.push("--binlog-format=ROW".to_owned());
        }
        if options.replica_of.is_some() {
            args.push("--read-only=ON".to_owned());
        }
        args.extend(options.extra.iter().cloned());
        server.args = args;
        server.give_to_server_user(server.dir.path());
        server.install_db();
        server.launch();
        if let Some(primary) = options.replica_of {
            server.follow(primary);
        }
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A temporary directory of the server's own: bootstraps running at the
    /// same time in a shared /tmp were seen to remove each other's files.
    fn tmp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("server.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// The server's error log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A URL of this server for `database` as `root` without a password,
    /// with `query` (`ssl-mode=…`) appended when not empty.
    pub fn url(&self, database: &str, query: &str) -> String {
        let query = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("mysql://root@127.0.0.1:{}/{database}{query}", self.port)
    }

    /// Runs SQL as root over the server's Unix socket with the `mariadb`
    /// client; returns its output (tab-separated, no headers); panics on an error.
    #[track_caller]
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-N", "-B"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-e", sql])
            .output()
            .expect("run the mariadb client");
        assert!(
            out.status.success(),
            "mariadb: {sql}\n{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server (a clean shutdown) and starts it again on the same
    /// data directory with `extra` options in place of the ones it had.
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        self.args.extend(extra.iter().map(|option| option.to_string()));
        self.launch();
    }

    /// Waits until this replica has applied everything the primary wrote so
    /// far (its GTID position reaches the primary's).
    pub fn wait_for_replay_of(&self, primary: &MariaDbServer) {
        let target = primary.sql("SELECT @@global.gtid_binlog_pos");
        let waited = self.sql(&format!("SELECT MASTER_GTID_WAIT('{target}', 30)"));
        assert_eq!(waited, "0", "the replica did not reach {target} within 30 s:\n{}", self.log());
    }

    fn install_db(&self) {
        let mut command = Command::new(which("mariadb-install-db").expect("mariadb-install-db"));
        command
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--tmpdir={}", self.tmp_dir().display()));
        if self.owner.is_some() {
            command.arg("--user=mysql");
        }
        let out = command.output().expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts `mariadbd` with the server's options and waits until it answers.
    fn launch(&mut self) {
        let mut command = Command::new(which("mariadbd").expect("mariadbd"));
        command.args(&self.args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().expect("start mariadbd"));
        let started = Instant::now();
        loop {
            let ping = Command::new("mariadb-admin")
                .args(["--no-defaults", "-u", "root", "--connect-timeout=2"])
                .arg(format!("--socket={}", self.socket().display()))
                .arg("ping")
                .output();
            if ping.is_ok_and(|out| out.status.success()) {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                panic!("mariadbd exited with {status}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "mariadbd did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Makes this server a replica of `primary` from the start of its binary
    /// log, over TCP as root, and waits until both replication threads run.
    fn follow(&self, primary: &MariaDbServer) {
        self.sql(&format!(
            "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'root', \
             MASTER_PASSWORD = '', MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1; START REPLICA",
            primary.port
        ));
        let started = Instant::now();
        loop {
            let status = self.replica_status();
            let running = |field: &str| status.iter().any(|(name, value)| name == field && value == "Yes");
            if running("Slave_IO_Running") && running("Slave_SQL_Running") {
                return;
            }
            assert!(started.elapsed() < START_TIMEOUT, "replication did not start: {status:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `SHOW REPLICA STATUS` as (field, value) pairs.
    pub fn replica_status(&self) -> Vec<(String, String)> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-E"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-e", "SHOW REPLICA STATUS"])
            .output()
            .expect("run the mariadb client");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect()
    }

    /// Makes `path` (recursively) the server user's, when the test runs as root.
    fn give_to_server_user(&self, path: &Path) {
        if self.owner.is_some() {
            let status = Command::new("chown").args(["-R", "mysql:mysql"]).arg(path).status().unwrap();
            assert!(status.success(), "chown -R mysql {}", path.display());
        }
    }

    /// A clean shutdown (SIGTERM), waited for; SIGKILL after 30 s.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let started = Instant::now();
        while child.try_wait().ok().flatten().is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The uid and gid of the `mysql` user, which the Debian packages create.
fn mysql_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "mysql"]).output().expect("run id");
        assert!(out.status.success(), "there is no mysql user to run mariadbd as");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        self.stop();
    }
}
