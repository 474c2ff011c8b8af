//! An unreachable database exits 69, within `database.connect_timeout`; a
//! reachable PostgreSQL gets no more sessions than a purge needs, and each
//! sends without delay (TCP_NODELAY).

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

const COMMANDS: [&[&str]; 4] = [&["purge"], &["migrate"], &["jobs", "list"], &["purge", "--dry-run"]];

fn run_against(url: &str, args: &[&str], extra: &[(&str, &str)]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    Invocation::new(args).env("RETENTIOND__DATABASE__URL", url).envs(extra).cwd(dir.path()).run()
}

#[test]
fn postgres_closed_port_exits_69_quickly() {
    // A refused connection is a definite answer: no need to wait for the
    // whole connect_timeout (10s by default).
    let out = run_against("postgres://postgres@127.0.0.1:1/x", &["purge"], &[]);
    out.expect_code(69);
    assert!(out.elapsed < Duration::from_secs(5), "a closed port should fail quickly\n{}", out.describe());
    for args in COMMANDS {
        let out =
            run_against("postgres://postgres@127.0.0.1:1/x", args, &[("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")]);
        out.expect_code(69);
        assert!(out.elapsed < Duration::from_secs(5), "connect_timeout=1s\n{}", out.describe());
        assert!(out.stdout.trim().is_empty(), "no result on stdout\n{}", out.describe());
    }
}

/// A server that accepts TCP connections and never says a word.
struct SilentServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer { port, stop, thread: Some(thread) }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn postgres_silent_server_exits_69_within_connect_timeout() {
    let server = SilentServer::start();
    let url = format!("postgres://postgres@127.0.0.1:{}/x", server.port);
    for args in COMMANDS {
        let out = run_against(&url, args, &[("RETENTIOND__DATABASE__CONNECT_TIMEOUT", "1s")]);
        out.expect_code(69);
        assert!(
            out.elapsed < Duration::from_secs(5),
            "connect_timeout=1s but took {:?}\n{}",
            out.elapsed,
            out.describe()
        );
    }
}

#[test]
fn sqlite_in_a_missing_directory_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does").join("not").join("exist").join("test.db");
    let url = format!("sqlite://{}", path.display());
    for args in COMMANDS {
        let out = run_against(&url, args, &[]);
        out.expect_code(69);
        assert!(!path.exists());
    }
}

#[test]
fn sqlite_default_url_creates_the_file() {
    // The built-in default `sqlite://retentiond.db` is created if missing
    // (relative to the working directory).
    let dir = tempfile::tempdir().unwrap();
    let out = Invocation::new(&["purge", "--output", "json"]).cwd(dir.path()).run();
    out.expect_code(0);
    assert_eq!(out.json()["total"], 0, "{}", out.describe());
    assert!(dir.path().join("retentiond.db").exists(), "{}", out.describe());
}

/// `sessions` and `sessions_abandoned` of the test's database in
/// `pg_stat_database`, once they stop moving: a backend adds itself as it
/// exits, moments after its client left.
fn settled_session_counts(env: &TestEnv) -> (i64, i64) {
    let read = || {
        let rows =
            env.rows("SELECT sessions, sessions_abandoned FROM pg_stat_database WHERE datname = current_database()");
        (rows[0][0].as_i64().unwrap(), rows[0][1].as_i64().unwrap())
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        match read() {
            now if now == last => return now,
            now => last = now,
        }
    }
}

/// A purge with more ids than its first statement reads opens four sessions
/// on PostgreSQL, each a TLS handshake and an authentication: the one that
/// found the server reachable, which then asks twice whether it takes
/// writes and holds the run's lease, one per pool (the migrations' check;
/// the batches under the index-order settings), and a second under those
/// settings that reads the next ids while the batches run
/// (src/sweep/pending.rs). It opened six
/// when every question had a session of its own, and a pool opened a second
/// one when a statement followed the one before at once (sqlx had not yet
/// taken the first back). Every command ends its
/// sessions before it exits: the server logs each one a client drops
/// ("could not receive data from client") and counts it as abandoned.
#[test]
fn a_postgres_purge_opens_four_sessions_and_commands_end_theirs() {
    let Some(env) = TestEnv::new(Engine::Postgres, "a_postgres_purge_opens_four_sessions_and_commands_end_theirs")
    else {
        return;
    };
    env.migrate();
    env.import_ok(&[job("old", "Completed", days_ago(100)), job("new", "Completed", days_ago(1))]);
    // Enough for several reads of the next ids and many batches, each
    // statement right after the one before.
    env.execute(
        "INSERT INTO jobs (name, job_type, state, created_at, updated_at, state_changed_at) \
         SELECT 'bulk-' || i, 'Import', 'Completed', now() - interval '200 days', now() - interval '200 days', \
           now() - interval '200 days' FROM generate_series(1, 30000) AS i",
    );
    let (sessions, abandoned) = settled_session_counts(&env);
    let out = env.run(&["purge", "--output", "json", "--batch-size", "500"]);
    out.expect_code(0);
    assert_eq!(out.json()["total"], 30_001, "{}", out.describe());
    let (sessions_after, abandoned_after) = settled_session_counts(&env);
    assert_eq!(sessions_after - sessions, 4, "sessions the purge opened\n{}", out.describe());
    assert_eq!(abandoned_after, abandoned, "sessions the purge dropped\n{}", out.describe());

    let export = env.dir().join("audit.jsonl");
    let commands: [&[&str]; 7] = [
        &["migrate"],
        &["jobs", "list"],
        &["jobs", "show", "new"],
        &["audit", "list"],
        &["audit", "export", "--output", export.to_str().unwrap()],
        &["runs", "list"],
        &["forecast"],
    ];
    for args in commands {
        env.run(args).expect_code(0);
    }
    let (_, abandoned_at_end) = settled_session_counts(&env);
    assert_eq!(abandoned_at_end, abandoned, "sessions dropped by {commands:?}");
}

/// The local ports of this process's TCP sockets that have `TCP_NODELAY` set.
fn local_ports_sending_without_delay() -> Vec<u16> {
    use std::os::fd::{BorrowedFd, RawFd};
    let mut ports = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Some(raw) = entry.file_name().to_str().and_then(|name| name.parse::<RawFd>().ok()) else { continue };
        // SAFETY: only passed to getsockname and getsockopt, which fail
        // cleanly on a descriptor that is closed or not a socket.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let Ok(Some(local)) = rustix::net::getsockname(fd).map(|address| std::net::SocketAddr::try_from(address).ok())
        else {
            continue;
        };
        if rustix::net::sockopt::tcp_nodelay(fd).unwrap_or(false) {
            ports.push(local.port());
        }
    }
    ports
}

/// sqlx 0.9.0 leaves Nagle's algorithm on (an upstream sqlx issue): over TLS, a
/// batch of more than about 1,300 job ids is larger than one TLS record, its
/// second write waited for the server's delayed acknowledgement, and the
/// batch took 40 ms more (3 times as long). Every session of the store, in
/// both pools and the run's own, has `TCP_NODELAY` set.
#[test]
fn every_postgres_session_of_the_store_sends_without_delay() {
    use retentiond::config::{DatabaseSettings, DatabaseUrl, RetentionSettings};
    use retentiond::identity::ProcessIdentity;
    use retentiond::sweep::{SweepPlan, sweep};

    let Some(env) = TestEnv::new(Engine::Postgres, "every_postgres_session_of_the_store_sends_without_delay") else {
        return;
    };
    env.migrate();
    env.import_ok(&[job("old", "Completed", days_ago(100)), job("new", "Completed", days_ago(1))]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let settings = DatabaseSettings { url: DatabaseUrl::new(env.url.clone()), ..DatabaseSettings::default() };
    let store = rt.block_on(async {
        let store = retentiond::store::open(&settings).await.unwrap();
        let plan = SweepPlan::new(&RetentionSettings::default(), "purge");
        let report = sweep(store.as_ref(), &plan, &ProcessIdentity::current(), &Default::default()).await.unwrap();
        assert_eq!(report.total, 1);
        // The sweep ran on the index-order pool; the other pool serves the job commands.
        store.now().await.unwrap();
        store
    });
    let sessions = env.rows(
        "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'retentiond'",
    );
    let ports: Vec<u16> = sessions.iter().map(|row| row[0].as_i64().unwrap() as u16).collect();
    assert!(ports.len() >= 3, "the run's session and one per pool are open: {ports:?}");
    let without_delay = local_ports_sending_without_delay();
    let delayed: Vec<u16> = ports.iter().copied().filter(|port| !without_delay.contains(port)).collect();
    assert!(delayed.is_empty(), "sessions with Nagle's algorithm on, by local port: {delayed:?} of {ports:?}");
    rt.block_on(store.close());
}
