//! A PostgreSQL server of a test's own, for what the shared server cannot
//! show: TLS with the test's certificates, `hostssl`-only access,
//! client-certificate and password authentication. `initdb` and `pg_ctl`
//! come from `pg_config --bindir` (they are not on PATH on Debian). The
//! server runs as the `postgres` user when the test runs as root (it refuses
//! to run as root), listens on 127.0.0.1 on a free port, and is stopped when
//! the [`PgServer`] is dropped, so a failing test leaves none behind.
//!
//! Without the tools (or openssl) the tests that need them print why and
//! pass, unless `RETENTIOND_TEST_REQUIRE_TLS=1` (CI), where they fail.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use super::pg_standby::bindir;
use super::pki::{Issued, TestCa, openssl_available, skip};

/// [`bindir`] when it and openssl are installed; otherwise `None` after
/// saying so, or a failure under `RETENTIOND_TEST_REQUIRE_TLS=1` (see [`skip`]).
pub fn tools(test: &str) -> Option<PathBuf> {
    let bindir = bindir();
    let missing = match (&bindir, openssl_available()) {
        (None, _) => "PostgreSQL's initdb (pg_config --bindir) is not installed",
        (Some(_), false) => "openssl is not installed",
        (Some(_), true) => return bindir,
    };
    skip(test, missing);
    None
}

/// The server's TLS files: its certificate and key, and the CA whose
/// client certificates it accepts.
pub struct ServerTls<'a> {
    pub server: &'a Issued,
    pub client_ca: &'a TestCa,
}

pub struct PgServer {
    bindir: PathBuf,
    /// Holds the data directory, the socket and the log; removed on drop.
    dir: tempfile::TempDir,
    pub port: u16,
    as_postgres: bool,
}

impl PgServer {
    /// Initialises and starts a server: TLS on with `tls`, off without;
    /// `hba` are its `pg_hba.conf` lines for TCP (the Unix socket in its
    /// directory always trusts, for [`PgServer::psql`]).
    pub fn start(bindir: &Path, tls: Option<ServerTls<'_>>, hba: &[&str]) -> PgServer {
        PgServer::start_with_env(bindir, tls, hba, &[])
    }

    /// [`start`](Self::start) with `env` added to the server's environment
    /// (e.g. a clock of its own, see `faketime`).
    pub fn start_with_env(
        bindir: &Path,
        tls: Option<ServerTls<'_>>,
        hba: &[&str],
        env: &[(String, String)],
    ) -> PgServer {
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new().prefix("retentiond-pg-").tempdir().unwrap();
        let port = super::free_port();
        let server = PgServer { bindir: bindir.to_owned(), dir, port, as_postgres };
        let data = server.data_dir();
        let mut conf = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", server.dir.path().display()),
            "fsync = off".to_owned(),
            "synchronous_commit = off".to_owned(),
            "full_page_writes = off".to_owned(),
            "shared_buffers = 16MB".to_owned(),
            "max_connections = 30".to_owned(),
        ];
        if let Some(tls) = &tls {
            // Copies the server can read (it runs as postgres), key 0600 as it demands.
            for (from, name) in [
                (&tls.server.cert, "server.crt"),
                (&tls.server.key, "server.key"),
                (&tls.client_ca.cert, "client-ca.crt"),
            ] {
                std::fs::copy(from, server.dir.path().join(name)).unwrap();
            }
            std::fs::set_permissions(server.dir.path().join("server.key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
            conf.push("ssl = on".to_owned());
            for (key, name) in
                [("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key"), ("ssl_ca_file", "client-ca.crt")]
            {
                conf.push(format!("{key} = '{}'", server.dir.path().join(name).display()));
            }
        } else {
            conf.push("ssl = off".to_owned());
        }
        server.give_to_postgres(server.dir.path());
        server.run_as_server_user(
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        let mut conf_text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf_text.push_str(&(conf.join("\n") + "\n"));
        std::fs::write(data.join("postgresql.conf"), conf_text).unwrap();
        let mut hba_text = String::from("local all all trust\n");
        for line in hba {
            hba_text.push_str(line);
            hba_text.push('\n');
        }
        std::fs::write(data.join("pg_hba.conf"), hba_text).unwrap();
        server.give_to_postgres(server.dir.path());
        let log = server.dir.path().join("server.log");
        let start = ["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"];
        server.run_as_server_user_with_env("pg_ctl", &start, env);
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs SQL as the superuser over the Unix socket; panics on an error.
    #[track_caller]
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", database, "-c", sql])
            .env_remove("PGPASSWORD")
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql: {sql}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Makes `path` (recursively) the server user's, when the test runs as root.
    fn give_to_postgres(&self, path: &Path) {
        if self.as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).status().unwrap();
            assert!(status.success(), "chown -R postgres {}", path.display());
        }
    }

    /// `program` of the server's binaries, to run as the server's user.
    fn server_command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.current_dir(self.dir.path());
        command
    }

    #[track_caller]
    fn run_as_server_user(&self, program: &str, args: &[&str]) {
        self.run_as_server_user_with_env(program, args, &[]);
    }

    #[track_caller]
    fn run_as_server_user_with_env(&self, program: &str, args: &[&str], env: &[(String, String)]) {
        let mut command = self.server_command(program);
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        let out = command.output().expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{program} {} failed:\n{}{}\n--- server log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let args = ["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "-w", "stop"];
        let _ = self.server_command("pg_ctl").args(args).output();
    }
}
