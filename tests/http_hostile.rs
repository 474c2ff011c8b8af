//! The daemon's HTTP port against a hostile network (docs/security.md, "The
//! HTTP port"): clients that hold connections without sending a request,
//! more connections than the process has descriptors for, password guessing,
//! `/readyz` telling strangers where the database is, and DNS rebinding.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;

/// The header-read timeout the server is documented with.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack for a machine busy with other tests.
const SLACK: Duration = Duration::from_secs(5);
/// A password long enough for the pages.
const PASSWORD: &str = "correct-horse-battery-staple";

/// Never: at midnight on the 1st of January.
const NEVER: &str = "0 0 0 1 1 *";

/// A connection to 127.0.0.1:`port` from the loopback address `source`.
fn connect_from(source: Ipv4Addr, port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
        let stream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// An answer: status, headers (names lowercased) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `GET path` with exactly `headers` (and `Connection: close`) over
/// `stream`; the answer, read to the end of the stream.
fn exchange(mut stream: TcpStream, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    stream.write_all(format!("{request}\r\n").as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Ok(Answer { status, head: head.to_owned(), body: body.to_owned() })
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    exchange(stream, path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn host(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn basic(password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("anyone:{password}")))
}

/// How long until the server closes `stream` (EOF or reset), while
/// `trickle` bytes are sent one every two seconds; `None` after `limit`.
fn closed_after(mut stream: TcpStream, trickle: &[u8], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut sent = 0;
    let mut buffer = [0u8; 1024];
    while start.elapsed() < limit {
        if sent < trickle.len() && start.elapsed() >= Duration::from_secs(2 * sent as u64) {
            if stream.write_all(&trickle[sent..=sent]).is_err() {
                return Some(start.elapsed());
            }
            sent += 1;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// Whether the server has closed `stream`, without waiting.
fn is_closed(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

/// Lets this test process open `needed` descriptors: its soft open-file
/// limit raised towards the hard one (a CI runner may start it at 1,024).
fn allow_open_files(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write only `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(limit.rlim_cur >= needed, "this test needs {needed} open files; the hard limit is {}", limit.rlim_max);
}

/// The number of descriptors `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

every_engine! {
    /// A client that sends nothing, one that sends a header byte every two
    /// seconds, and a kept-alive connection left idle are closed at the
    /// header-read timeout. With the daemon's open-file limit at 1,024 and
    /// 1,100 idle connections held open, `/healthz` and `/readyz` answer
    /// within a second, the daemon runs out of no descriptor, and a scheduled
    /// sweep deletes an expired job meanwhile.
    fn idle_clients_cannot_hold_the_port(env: &TestEnv) {
        let port = free_port();
        let daemon = env.daemon_cmd(port, "*/2 * * * * *").open_file_limit(1024).spawn_daemon();
        wait_ready(&daemon, port);

        let silent = std::thread::spawn(move || {
            closed_after(TcpStream::connect(("127.0.0.1", port)).unwrap(), b"", HEADER_READ_TIMEOUT * 3)
        });
        let slow = std::thread::spawn(move || {
            let trickle = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            closed_after(TcpStream::connect(("127.0.0.1", port)).unwrap(), trickle, HEADER_READ_TIMEOUT * 3)
        });
        let kept_alive = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            write!(stream, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
            let mut answer = [0u8; 256];
            let read = stream.read(&mut answer).unwrap();
            assert!(answer[..read].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..read]));
            closed_after(stream, b"", HEADER_READ_TIMEOUT * 3)
        });
        for (what, client) in [("silent", silent), ("one byte every 2 s", slow), ("idle after a request", kept_alive)] {
            let closed = client.join().unwrap();
            let closed = closed.unwrap_or_else(|| panic!("{what}: still open after 30 s\n{}", daemon.describe()));
            assert!(
                closed >= HEADER_READ_TIMEOUT - Duration::from_secs(1) && closed <= HEADER_READ_TIMEOUT + SLACK,
                "{what}: closed after {closed:?}, not at the header-read timeout"
            );
        }

        allow_open_files(4_096);
        let flood: Vec<TcpStream> = (0..1_100).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(500));
        for path in ["/healthz", "/readyz", "/healthz", "/readyz"] {
            let start = Instant::now();
            let stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("{path}: cannot connect with 1,100 idle connections: {e}"));
            stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let answer = exchange(stream, path, &[("Host", &host(port))])
                .unwrap_or_else(|e| panic!("{path}: no answer within 1 s with 1,100 idle connections: {e}"));
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
            assert!(start.elapsed() < Duration::from_secs(1), "{path} took {:?}", start.elapsed());
        }
        let closed = flood.iter().filter(|stream| is_closed(stream)).count();
        assert!(closed >= 1_100 - 256, "the server keeps at most 256 connections; {closed} of 1,100 were closed");
        let descriptors = open_descriptors(daemon.pid());
        assert!(descriptors < 512, "the daemon holds {descriptors} descriptors");

        // A sweep runs and deletes while the connections are held.
        env.import_ok(&[job("expired", "Completed", days_ago(200))]);
        let deleted = wait_until(Duration::from_secs(30), || !env.job_exists("expired"));
        assert!(deleted, "no sweep deleted the expired job\n{}", daemon.describe());
        assert_eq!(env.audit_rows("expired").len(), 1);
        drop(flood);

        let stderr = daemon.stderr();
        assert!(!stderr.contains("Too many open files") && !stderr.contains("cannot accept"), "{}", daemon.describe());
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
    }
}

/// A wrong password is counted, logged with the client's address (at most
/// ten lines a minute) and answered 401; after five in a row an address is
/// refused (429, before its password is looked at) until a try comes back
/// six seconds later; other addresses are not. A password file shorter
/// than 16 characters stops the start (exit 78).
#[test]
fn password_guessing_is_counted_logged_and_slowed() {
    let Some(env) = TestEnv::new(Engine::Sqlite, "password_guessing_is_counted_logged_and_slowed") else { return };
    let short = env.write_file("short-password", "fifteen-chars15\n");
    let out = env.daemon_cmd(free_port(), NEVER).env("RETENTIOND__UI__PASSWORD_FILE", path_str(&short)).run();
    out.expect_code(78);
    assert!(
        out.stderr.contains("ui.password_file") && out.stderr.contains("fewer than 16 characters"),
        "{}",
        out.describe()
    );

    let file = env.write_file("password", &format!("{PASSWORD}\n"));
    let port = free_port();
    let daemon = env.daemon_cmd(port, NEVER).env("RETENTIOND__UI__PASSWORD_FILE", path_str(&file)).spawn_daemon();
    wait_ready(&daemon, port);
    let failures = || scrape(port).value("retentiond_ui_auth_failures_total", &[]);
    assert_eq!(failures(), 0.0);
    let page = |source: Ipv4Addr, password: Option<&str>| {
        let mut headers = vec![("Host".to_owned(), host(port))];
        if let Some(password) = password {
            headers.push(("Authorization".to_owned(), basic(password)));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        exchange(connect_from(source, port), "/holds", &headers).unwrap()
    };
    let attacker = Ipv4Addr::new(127, 0, 0, 2);

    // No credentials (a browser's first request): the challenge, not a failure.
    let answer = page(attacker, None);
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.header("www-authenticate").is_some_and(|value| value.starts_with("Basic")), "{answer:?}");
    assert_eq!(failures(), 0.0);

    for n in 1..=5 {
        assert_eq!(page(attacker, Some(&format!("guess-{n}"))).status, 401);
    }
    assert_eq!(failures(), 5.0);
    // The sixth try, even the right password, is refused before it is looked at.
    let refused = page(attacker, Some(PASSWORD));
    assert_eq!(refused.status, 429, "{refused:?}");
    let retry_after: u64 = refused.header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After");
    assert!((1..=6).contains(&retry_after), "{refused:?}");
    assert!(!refused.body.contains("Held jobs"), "{}", refused.body);
    assert_eq!(failures(), 5.0, "a refused try is not a password checked");
    // Another address is not held back.
    assert_eq!(page(Ipv4Addr::new(127, 0, 0, 3), Some(PASSWORD)).status, 200);

    // Logged with the address, at most ten lines a minute: of 5 + 25 wrong
    // passwords from six addresses, 10 lines; all counted.
    for source in 4..=8 {
        for n in 0..5 {
            assert_eq!(page(Ipv4Addr::new(127, 0, 0, source), Some(&format!("wrong-{n}"))).status, 401);
        }
    }
    let flood_ended = Instant::now();
    assert_eq!(failures(), 30.0);
    let wrong_password_lines = || -> Vec<serde_json::Value> {
        daemon
            .log_lines()
            .into_iter()
            .filter(|line| {
                line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("status pages: wrong password"))
            })
            .collect()
    };
    // The log reaches the test through a pipe: wait for the lines, then count them.
    wait_until(Duration::from_secs(5), || wrong_password_lines().len() >= 10);
    let lines = wrong_password_lines();
    assert_eq!(lines.len(), 10, "{}", daemon.describe());
    assert!(lines[0]["fields"]["peer"].as_str().is_some_and(|peer| peer.starts_with("127.0.0.2:")), "{}", lines[0]);

    // A try comes back after Retry-After; a log line after six seconds, saying how many went unlogged.
    std::thread::sleep(Duration::from_secs(retry_after));
    assert_eq!(page(attacker, Some(PASSWORD)).status, 200);
    std::thread::sleep((flood_ended + Duration::from_millis(6_500)).saturating_duration_since(Instant::now()));
    assert_eq!(page(Ipv4Addr::new(127, 0, 0, 9), Some("one-more")).status, 401);
    wait_until(Duration::from_secs(5), || wrong_password_lines().len() >= 11);
    let lines = wrong_password_lines();
    assert_eq!(lines.len(), 11, "{}", daemon.describe());
    assert_eq!(lines[10]["fields"]["not_logged_before"], 20, "{}", lines[10]);
    assert!(!daemon.stderr().contains(PASSWORD) && !daemon.stderr().contains("guess-1"), "{}", daemon.describe());
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
}

/// Off loopback `/readyz` says only a reason word: never the database's
/// address; the details stay in the log and on the overview, behind the
/// password. On loopback it says more.
#[test]
fn readyz_off_loopback_says_one_word() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let unreachable = "postgres://dbuser@127.0.0.1:1/jobsdb?sslmode=disable";
    let start = |listen: String| {
        Invocation::new(&["--log-format", "json", "run"])
            .env("RETENTIOND__DATABASE__URL", unreachable)
            .env("RETENTIOND__METRICS__LISTEN", &listen)
            .env("RETENTIOND__UI__PASSWORD_FILE", path_str(&password_file))
            .cwd(dir.path())
            .spawn_daemon()
    };

    let port = free_port();
    let everywhere = start(format!("0.0.0.0:{port}"));
    let answered = wait_until(Duration::from_secs(20), || {
        http_get(port, "/readyz").is_ok_and(|r| r.body.contains("database_unreachable"))
    });
    assert!(answered, "{}", everywhere.describe());
    let ready = get(port, "/readyz", &[("Host", &host(port))]);
    assert_eq!((ready.status, ready.body.as_str()), (503, "not ready: database_unreachable\n"));
    let overview = get(port, "/", &[("Host", &host(port)), ("Authorization", &basic(PASSWORD))]);
    assert!(
        overview.body.contains("cannot reach the database at postgres://dbuser@127.0.0.1:1/jobsdb"),
        "{overview:?}"
    );
    assert!(everywhere.stderr().contains("127.0.0.1:1/jobsdb"), "the log has the details\n{}", everywhere.describe());

    let port = free_port();
    let loopback = start(format!("127.0.0.1:{port}"));
    let detailed = wait_until(Duration::from_secs(20), || {
        http_get(port, "/readyz").is_ok_and(|r| {
            r.status == 503 && r.body.contains("cannot reach the database at postgres://dbuser@127.0.0.1:1")
        })
    });
    assert!(detailed, "{}", loopback.describe());
    for daemon in [everywhere, loopback] {
        daemon.signal("TERM");
        daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
    }
}

/// Open pages (loopback, no password) answer only a `Host` that names this
/// host's loopback interface with the port: a page whose name resolves to
/// 127.0.0.1 (DNS rebinding) gets 421 and nothing else. `/metrics` and the
/// probes answer whatever the `Host`.
#[test]
fn open_pages_answer_loopback_hosts_only() {
    let Some(env) = TestEnv::new(Engine::Sqlite, "open_pages_answer_loopback_hosts_only") else { return };
    env.import_ok(&[set(job("held-job", "Completed", days_ago(10)), "hold_reason", serde_json::json!("legal"))]);
    let port = free_port();
    let daemon = env.daemon_cmd(port, NEVER).spawn_daemon();
    wait_ready(&daemon, port);

    for name in ["127.0.0.1", "localhost", "[::1]"] {
        let answer = get(port, "/holds", &[("Host", &format!("{name}:{port}"))]);
        assert_eq!(answer.status, 200, "{name}: {answer:?}");
        assert!(answer.body.contains("held-job"), "{name}");
    }
    let other_port = format!("127.0.0.1:{}", port.wrapping_add(1));
    for foreign in ["attacker.example", &format!("attacker.example:{port}"), &other_port, "localhost"] {
        let answer = get(port, "/holds", &[("Host", foreign)]);
        assert_eq!(answer.status, 421, "Host {foreign}: {answer:?}");
        assert!(!answer.body.contains("held-job") && !answer.body.contains("legal"), "Host {foreign}: {}", answer.body);
    }
    assert_eq!(get(port, "/holds", &[]).status, 421, "no Host at all");
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(port, path, &[("Host", "attacker.example")]).status, 200, "{path}");
    }
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30)).expect_code(0);
}
