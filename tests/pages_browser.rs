//! docs/design.md, "Status pages": the status pages in a real browser — Debian's headless
//! Chromium driven through ChromeDriver (WebDriver over HTTP). Every page
//! loads without a console error (a refused style or image, a blocked
//! request, a CSP violation would each log one), carries no script, fits a
//! phone's width without scrolling the page sideways, and the audit search
//! works by its form alone. Screenshots, desktop and phone, go to
//! `target/ui-screenshots/` (CI keeps them as artifacts).
//!
//! Without `chromium` and `chromedriver` the test prints a notice and
//! passes, unless `RETENTIOND_TEST_REQUIRE_BROWSER=1` (as `.ci/run` sets).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};

/// A phone's viewport, in CSS pixels.
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 1000);

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|path| path.is_file())
}

/// ChromeDriver on a port of its own, stopped when dropped.
struct Driver {
    process: Child,
    port: u16,
    session: String,
}

impl Driver {
    fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = free_port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let mut driver = Driver { process, port, session: String::new() };
        let up = wait_until(Duration::from_secs(20), || {
            http_get(port, "/status").is_ok_and(|r| r.status == 200 && r.body.contains("\"ready\":true"))
        });
        assert!(up, "chromedriver did not start on port {port}");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_str().unwrap(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = driver.call("POST", "/session", Some(capabilities));
        driver.session = session["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
        driver
    }

    /// A WebDriver command; its `value`.
    #[track_caller]
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body =
            body.map(|b| b.to_string()).unwrap_or_else(|| if method == "POST" { "{}".into() } else { String::new() });
        let response = http_request(self.port, method, path, &[], &body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let answer: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: not JSON ({e}): {}", response.body));
        assert_eq!(response.status, 200, "chromedriver {method} {path}: {answer}");
        answer["value"].clone()
    }

    fn session_call(&self, method: &str, command: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}/{command}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "url", Some(json!({"url": url})));
    }

    /// The browser's console messages since the last call, as "LEVEL message".
    fn console(&self) -> Vec<String> {
        let entries = self.session_call("POST", "se/log", Some(json!({"type": "browser"})));
        entries
            .as_array()
            .map(|entries| {
                entries.iter().map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"])).collect()
            })
            .unwrap_or_default()
    }

    fn script(&self, script: &str) -> Value {
        self.session_call("POST", "execute/sync", Some(json!({"script": script, "args": []})))
    }

    fn resize(&self, (width, height): (u32, u32)) {
        self.session_call("POST", "window/rect", Some(json!({"width": width, "height": height})));
    }

    fn screenshot(&self, path: &Path) {
        let png = self.session_call("GET", "screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64 PNG")).unwrap();
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call("POST", "element", Some(json!({"using": "css selector", "value": css})));
        found.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("an element id").to_owned()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http_request(self.port, "DELETE", &format!("/session/{}", self.session), &[], "");
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Console messages that are errors: SEVERE ones, and any CSP report.
fn errors(messages: &[String]) -> Vec<&String> {
    messages.iter().filter(|m| m.starts_with("SEVERE") || m.contains("Content Security Policy")).collect()
}

#[test]
fn every_page_loads_in_chromium_without_console_errors() {
    let (Some(chromium), Some(chromedriver)) = (find("chromium"), find("chromedriver")) else {
        common::require::Requirement::Browser
            .skip("the browser test", "chromium or chromedriver is missing (Debian's chromium and chromium-driver)");
        return;
    };
    let env = TestEnv::new(Engine::Sqlite, "every_page_loads_in_chromium").expect("SQLite is always there");
    env.run(&["jobs", "seed", "--count", "3000", "--days", "200", "--prefix", "demo"]).expect_code(0);
    env.import_ok(&[set(
        job("held-by-legal", "Completed", days_ago(150)),
        "hold_reason",
        json!("<script>alert(1)</script> legal & \"audit\" hold"),
    )]);
    env.run(&["purge", "--max-deletes", "400"]).expect_code(0);
    env.run(&["purge"]).expect_code(0);
    let port = free_port();
    let daemon = env
        .cmd(&["run"])
        .env("RETENTIOND__LOG__FORMAT", "json")
        .env("RETENTIOND__SCHEDULE__RUN_ON_START", "false")
        .env("RETENTIOND__METRICS__LISTEN", &format!("127.0.0.1:{port}"))
        .spawn_daemon();
    assert!(wait_until(Duration::from_secs(30), || readyz_is(port, 200)), "{}", daemon.describe());

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/").join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = env.dir().join("chromium-profile");
    let driver = Driver::start(&chromium, &chromedriver, &profile);
    let base = format!("http://127.0.0.1:{port}");

    // The check can fail: a missing page logs a console error.
    driver.open(&format!("{base}/no-such-page"));
    assert!(!errors(&driver.console()).is_empty(), "a 404 should log a console error");

    let pages = [
        ("overview", "/"),
        ("forecast", "/forecast"),
        ("forecast-365", "/forecast?days=365"),
        ("runs", "/runs"),
        ("run", "/runs/1?limit=20"),
        ("audit", "/audit?limit=20"),
        ("audit-prefix", "/audit?job=demo-00001&match=prefix"),
        ("holds", "/holds"),
        ("bad-request", "/forecast?days=999"),
    ];
    for (name, path) in pages {
        for (size, suffix) in [(DESKTOP, ""), (PHONE, "-phone")] {
            driver.resize(size);
            driver.open(&format!("{base}{path}"));
            let console = driver.console();
            // The 400 page's own status is the one error it may log.
            let own_status = |m: &&String| name == "bad-request" && m.contains("status of 400 (Bad Request)");
            let unexpected: Vec<_> = errors(&console).into_iter().filter(|m| !own_status(m)).collect();
            assert!(unexpected.is_empty(), "{path} at {size:?}: console errors {console:#?}");
            let source = driver.session_call("GET", "source", None);
            let source = source.as_str().unwrap_or_default();
            assert!(source.contains("<main>") && !source.contains("<script"), "{path}: {source}");
            // The page never scrolls sideways; wide tables scroll in their own box.
            let overflow =
                driver.script("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
            assert_eq!(overflow, json!(0), "{path} is wider than the {size:?} window");
            driver.screenshot(&shots.join(format!("{name}{suffix}.png")));
        }
    }
    // The hold reason shows as text, not as markup.
    driver.open(&format!("{base}/holds"));
    let shown = driver.script("return document.querySelector('main').innerText");
    assert!(shown.as_str().unwrap().contains("<script>alert(1)</script> legal & \"audit\" hold"), "{shown}");
    assert_eq!(driver.script("return document.scripts.length"), json!(0));

    // The audit search by its form alone: no script involved.
    driver.resize(DESKTOP);
    driver.open(&format!("{base}/audit"));
    let input = driver.element("input[name=job]");
    driver.session_call("POST", &format!("element/{input}/value"), Some(json!({"text": "demo-00005"})));
    let prefix = driver.element("option[value=prefix]");
    driver.session_call("POST", &format!("element/{prefix}/click"), None);
    let button = driver.element("button[type=submit]");
    driver.session_call("POST", &format!("element/{button}/click"), None);
    // A click that submits a form may return before the navigation starts
    // (CI saw the old URL once); ChromeDriver waits for a started one.
    let searched = wait_until(Duration::from_secs(15), || {
        let url = driver.session_call("GET", "url", None);
        url.as_str().is_some_and(|u| u.contains("/audit?job=demo-00005&match=prefix"))
    });
    let url = driver.session_call("GET", "url", None);
    assert!(searched, "the search form did not navigate to its results: still at {url}");
    // Its rows are the first page (50) of the audit rows whose job name has
    // the prefix, by name: not the first names of the trail.
    let shown = driver.script(
        "return Array.from(document.querySelectorAll('tbody tr'), \
         row => row.querySelector('a[href^=\"/audit?job=\"]').textContent)",
    );
    let shown: Vec<String> =
        shown.as_array().expect("job names").iter().map(|name| name.as_str().expect("a name").to_string()).collect();
    let stored = env.strings(
        "SELECT job_name FROM retention_audit WHERE substr(job_name, 1, 10) = 'demo-00005' ORDER BY job_name, id LIMIT 50",
    );
    assert!(!stored.is_empty(), "the seed and the purges deleted some demo-00005* jobs");
    assert_eq!(shown, stored, "the search's rows");
    let console = driver.console();
    assert!(errors(&console).is_empty(), "the search: console errors {console:#?}");
    driver.screenshot(&shots.join("audit-search.png"));
    eprintln!("screenshots in {}", shots.display());
    drop(driver);
    daemon.signal("TERM");
    let _ = daemon.wait_exit(Duration::from_secs(15));
}
