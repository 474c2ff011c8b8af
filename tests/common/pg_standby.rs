//! A PostgreSQL primary and its streaming standby of a test's own, for
//! what needs a real standby (a daemon against a hot standby, a purge paced
//! by a standby's lag). `initdb`, `pg_ctl` and `pg_basebackup` come from
//! [`bindir`]; they run as the `postgres` user when the test runs as root
//! (PostgreSQL refuses to run as root), on free ports, with their sockets
//! in a scratch directory; both servers are stopped when the
//! [`PrimaryAndStandby`] is dropped.
//!
//! The purge benchmark's pacing run (`bench/purge/pacing.rs`) includes this
//! file too, so it needs nothing else of the tests' harness.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of PostgreSQL's server programs (initdb, pg_ctl,
/// pg_basebackup): `pg_config --bindir`, else the newest of Debian's
/// `/usr/lib/postgresql/N/bin`; `None` when neither has initdb.
pub fn bindir() -> Option<PathBuf> {
    Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists())
        .or_else(|| {
            let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            versions.sort();
            let dir = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", versions.last()?));
            dir.join("initdb").exists().then_some(dir)
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// The uid and gid of the postgres user when running as root; `None`
/// otherwise, to run as ourselves.
fn server_user() -> Option<(u32, u32)> {
    let id = |flag: &str, user: Option<&str>| -> Option<u32> {
        let out = Command::new("id").arg(flag).args(user).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    (id("-u", None)? == 0).then(|| Some((id("-u", Some("postgres"))?, id("-g", Some("postgres"))?))).flatten()
}

/// A primary, started by [`PrimaryAndStandby::new`], and its standby, made
/// and started by [`PrimaryAndStandby::start_standby`].
pub struct PrimaryAndStandby {
    bindir: PathBuf,
    pub dir: tempfile::TempDir,
    user: Option<(u32, u32)>,
    pub primary_port: u16,
    pub standby_port: u16,
}

impl PrimaryAndStandby {
    /// A fresh primary (initdb, trust authentication), started.
    pub fn new(bindir: PathBuf) -> PrimaryAndStandby {
        let dir = tempfile::Builder::new().prefix("retentiond-standby-").tempdir().expect("temp dir");
        let user = server_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the scratch directory");
        }
        let servers = PrimaryAndStandby { bindir, dir, user, primary_port: free_port(), standby_port: free_port() };
        servers.run("initdb", &["-D", &servers.path("primary"), "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"]);
        servers.start("primary", servers.primary_port);
        servers
    }

    /// The superuser's URL of the server on `port`.
    pub fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    /// A streaming standby of the primary (`standby.signal` and
    /// `primary_conninfo` written by `pg_basebackup -R`), started and
    /// answering read-only queries.
    pub fn start_standby(&self) {
        let port = self.primary_port.to_string();
        let data = self.path("standby");
        let args = ["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &data, "-R", "-X", "stream", "-c", "fast"];
        self.run("pg_basebackup", &args);
        self.restart_standby();
    }

    /// Starts the standby's server again after [`Self::stop_standby`].
    pub fn restart_standby(&self) {
        self.start("standby", self.standby_port);
    }

    pub fn stop_standby(&self) {
        self.run("pg_ctl", &["-D", &self.path("standby"), "-m", "fast", "-w", "-t", "60", "stop"]);
    }

    pub fn promote_standby(&self) {
        self.run("pg_ctl", &["-D", &self.path("standby"), "-w", "-t", "60", "promote"]);
    }

    /// Runs SQL as the superuser over the Unix socket; the unaligned result.
    #[track_caller]
    pub fn psql(&self, port: u16, sql: &str) -> String {
        self.run("psql", &self.psql_args(port, sql).iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Runs SQL as [`Self::psql`] does, in the background until it ends or is killed.
    pub fn spawn_psql(&self, port: u16, sql: &str) -> std::process::Child {
        let mut command = self.tool("psql", &[]);
        command.args(self.psql_args(port, sql)).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        command.spawn().unwrap_or_else(|e| panic!("cannot run psql: {e}"))
    }

    fn psql_args(&self, port: u16, sql: &str) -> Vec<String> {
        let args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", &self.path(""), "-p", &port.to_string()];
        let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        args.extend(["-U", "postgres", "-d", "postgres", "-c", sql].map(str::to_owned));
        args
    }

    /// Both servers' logs, for a failure's message.
    pub fn describe_logs(&self) -> String {
        ["primary.log", "standby.log"]
            .iter()
            .map(|log| format!("--- {log}\n{}", std::fs::read_to_string(self.path(log)).unwrap_or_default()))
            .collect()
    }

    /// `pg_ctl start` of the cluster in `data` on `port`, sockets in the
    /// scratch directory; no fsync, since nothing outlives the test.
    fn start(&self, data: &str, port: u16) {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.path("")
        );
        let log = self.path(&format!("{data}.log"));
        self.run("pg_ctl", &["-D", &self.path(data), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    fn tool(&self, name: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.bindir.join(name));
        command.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Runs a server program; its trimmed output, or a failure with it.
    #[track_caller]
    fn run(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args).output().unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn path(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        path.to_str().unwrap_or_else(|| panic!("non UTF-8 path {path:?}")).to_owned()
    }
}

impl Drop for PrimaryAndStandby {
    fn drop(&mut self) {
        for data in ["standby", "primary"] {
            if Path::new(&self.path(data)).join("postmaster.pid").exists() {
                let _ = self.tool("pg_ctl", &["-D", &self.path(data), "-m", "immediate", "-w", "stop"]).output();
            }
        }
    }
}
