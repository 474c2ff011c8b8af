//! `jobs import`: JSON Lines, all or nothing, errors name the line.

#[macro_use]
mod common;

use common::*;
use serde_json::{Value, json};

fn good(name: &str) -> Value {
    json!({"name": name, "job_type": "Import", "state": "Completed", "created_at": "2024-01-01T00:00:00Z"})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

/// The bad lines every import must refuse with exit 65.
fn invalid_lines() -> Vec<(&'static str, String)> {
    let g = || good("bad-one");
    let s = |v: Value| v.to_string();
    let eleven: Vec<Value> = (0..11).map(|i| json!({"drive_id": format!("d{i}"), "state": "Specified"})).collect();
    vec![
        ("truncated JSON", r#"{"name": "bad-one", "job_type": "Import","#.to_string()),
        ("not JSON", "this is not json".to_string()),
        ("not an object", "[1, 2, 3]".to_string()),
        ("unknown field", s(with(g(), "colour", json!("red")))),
        (
            "unknown drive field",
            s(with(g(), "drives", json!([{"drive_id": "d1", "state": "Specified", "serial": "x"}]))),
        ),
        ("bad state", s(with(g(), "state", json!("Finished")))),
        ("bad job type", s(with(g(), "job_type", json!("Both")))),
        ("missing name", s(without(g(), "name"))),
        ("missing job_type", s(without(g(), "job_type"))),
        ("missing state", s(without(g(), "state"))),
        ("missing created_at", s(without(g(), "created_at"))),
        ("bad timestamp", s(with(g(), "created_at", json!("yesterday")))),
        ("timestamp without offset", s(with(g(), "state_changed_at", json!("2024-01-01T00:00:00")))),
        ("name not a string", s(with(g(), "name", json!(42)))),
        ("name with quote", s(with(g(), "name", json!("bad\"name")))),
        ("name with semicolon", s(with(g(), "name", json!("x;DROP TABLE jobs")))),
        ("name with apostrophe", s(with(g(), "name", json!("o'brien")))),
        ("name with space", s(with(g(), "name", json!("two words")))),
        ("name too long", s(with(g(), "name", json!("a".repeat(65))))),
        ("name too short", s(with(g(), "name", json!("ab")))),
        ("name empty", s(with(g(), "name", json!("")))),
        ("name starting with dash", s(with(g(), "name", json!("-dash")))),
        ("name starting with underscore", s(with(g(), "name", json!("_under")))),
        ("name non-ASCII", s(with(g(), "name", json!("jöb")))),
        ("too many drives", s(with(g(), "drives", Value::Array(eleven)))),
        (
            "duplicate drive id",
            s(with(
                g(),
                "drives",
                json!([{"drive_id": "d1", "state": "Specified"}, {"drive_id": "d1", "state": "Received"}]),
            )),
        ),
        ("bad drive state", s(with(g(), "drives", json!([{"drive_id": "d1", "state": "Lost"}])))),
        ("drive without state", s(with(g(), "drives", json!([{"drive_id": "d1"}])))),
        ("negative bytes", s(with(g(), "drives", json!([{"drive_id": "d1", "state": "Completed", "bytes": -1}])))),
    ]
}

every_engine! {
    /// Every kind of bad line: exit 65, stderr names the line (blank lines
    /// count), and nothing of the file is imported.
    fn invalid_lines_are_refused_and_nothing_is_imported(env: &TestEnv) {
        env.import_ok(&[good("existing")]);
        let before = env.dump_all();
        for (i, (what, bad)) in invalid_lines().into_iter().enumerate() {
            // Vary the bad line's position: 0–2 good lines and maybe a blank line before it.
            let mut lines: Vec<String> = (0..i % 3).map(|k| good(&format!("good-{k}")).to_string()).collect();
            if i % 2 == 1 {
                lines.push(String::new());
            }
            lines.push(bad);
            let line_no = lines.len();
            lines.push(good("good-after").to_string());
            let out = env.import_lines(&lines);
            assert_eq!(out.code, 65, "{what}: expected exit 65\n{}", out.describe());
            assert!(out.stderr_names_line(line_no), "{what}: stderr must name line {line_no}\n{}", out.describe());
            assert_eq!(env.dump_all(), before, "{what}: the store changed");
        }
    }
}

every_engine! {
    /// A name twice in one file is invalid input (65); a name already in the
    /// store is a conflict (4); both name the line and import nothing.
    fn duplicate_names_are_refused(env: &TestEnv) {
        env.import_ok(&[good("existing")]);
        let before = env.dump_all();

        let out = env.import(&[good("dup-a"), good("dup-b"), good("dup-a")]);
        assert_eq!(out.code, 65, "{}", out.describe());
        assert!(out.stderr_names_line(3), "{}", out.describe());
        assert_eq!(env.dump_all(), before);

        let out = env.import(&[good("fresh-1"), good("existing"), good("fresh-2")]);
        assert_eq!(out.code, 4, "{}", out.describe());
        assert!(out.stderr_names_line(2), "{}", out.describe());
        assert_eq!(env.dump_all(), before);

        // Also when the existing job was made by `jobs create`.
        env.json(&["jobs", "create", "created-by-hand", "--type", "export"]);
        let before = env.dump_all();
        let out = env.import_lines(&[good("fresh-1").to_string(), String::new(), String::new(), good("created-by-hand").to_string()]);
        assert_eq!(out.code, 4, "{}", out.describe());
        assert!(out.stderr_names_line(4), "{}", out.describe());
        assert_eq!(env.dump_all(), before);
    }
}

every_engine! {
    /// Unicode's bidirectional controls would reorder a hold reason where it is
    /// shown (`ok \u{202E}txt.exe` reads `ok exe.txt`): `jobs import` and
    /// `jobs hold` refuse them like control characters, exit 65 naming the
    /// field and the character's position, and store nothing.
    fn bidirectional_controls_are_refused_in_stored_text(env: &TestEnv) {
        env.import_ok(&[good("held-here")]);
        let before = env.dump_all();
        for control in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200F}'] {
            let reason = format!("ok {control}txt.exe");
            let code = format!("U+{:04X}", u32::from(control));
            let line = with(good("bidi-import"), "hold_reason", json!(reason));
            let out = env.import(&[good("fine-1"), line]);
            assert_eq!(out.code, 65, "{code}\n{}", out.describe());
            assert!(
                out.stderr_names_line(2) && out.stderr.contains(&format!("invalid hold_reason: character 4 is {code}")),
                "{}",
                out.describe()
            );
            let out = env.run(&["jobs", "hold", "held-here", "--reason", &reason]);
            assert_eq!(out.code, 65, "{code}\n{}", out.describe());
            assert!(out.stderr.contains(&format!("invalid --reason: character 4 is {code}")), "{}", out.describe());
            assert_eq!(env.dump_all(), before, "{code}: the store changed");
        }
        // Right-to-left text itself is fine: only the controls are refused.
        env.json(&["jobs", "hold", "held-here", "--reason", "עצירה משפטית"]);
        assert_eq!(env.show("held-here")["hold_reason"], "עצירה משפטית");
    }
}

/// The keys of a job object in JSON output.
const JOB_KEYS: [&str; 11] = [
    "cancel_requested",
    "cancel_requested_at",
    "created_at",
    "drives",
    "hold_reason",
    "job_type",
    "name",
    "retain_until",
    "state",
    "state_changed_at",
    "updated_at",
];

#[track_caller]
fn assert_same_timestamp(shown: &Value, expected: &str, what: &str) {
    let s = shown.as_str().unwrap_or_else(|| panic!("{what}: not a string: {shown}"));
    assert!(s.ends_with('Z') || s.ends_with("+00:00"), "{what}: output timestamps are UTC: {s}");
    assert_eq!(parse_ts(shown), parse_ts(&json!(expected)), "{what}");
}

every_engine! {
    /// A valid import round-trips: `jobs show` returns exactly the imported
    /// fields; defaults fill what a line leaves out; blank lines are skipped.
    fn valid_import_round_trips(env: &TestEnv) {
        let full = json!({
            "name": "Full_job-01",
            "job_type": "Export",
            "state": "Transferring",
            "cancel_requested": true,
            "cancel_requested_at": "2024-02-03T04:05:06.789012Z",
            "hold_reason": "legal hold #7",
            "created_at": "2024-01-01T00:00:00.000001Z",
            "updated_at": "2024-02-03T04:05:06.789012Z",
            "state_changed_at": "2024-01-20T10:00:00Z",
            "drives": [
                {"drive_id": "drive-0", "state": "Specified", "bytes": 0},
                {"drive_id": "drive-1", "state": "Received", "bytes": 1},
                {"drive_id": "drive-2", "state": "NeverReceived", "bytes": 2},
                {"drive_id": "drive-3", "state": "Transferring", "bytes": 3000000000_i64},
                {"drive_id": "drive-4", "state": "Completed", "bytes": 18000000000000_i64},
                {"drive_id": "drive-5", "state": "CompletedMoreInfo", "bytes": 5},
                {"drive_id": "drive-6", "state": "ShippedBack", "bytes": 6},
                {"drive_id": "drive-7", "state": "Specified", "bytes": 7},
                {"drive_id": "drive-8", "state": "Specified", "bytes": 8},
                {"drive_id": "drive-9", "state": "Specified", "bytes": 9}
            ]
        });
        let minimal = json!({
            "name": "min",
            "job_type": "Import",
            "state": "Creating",
            "created_at": "2023-05-06T07:08:09+02:00",
            "drives": [{"drive_id": "only", "state": "Received"}]
        });
        let long_name = format!("L{}", "x".repeat(63));
        let longest = json!({"name": long_name, "job_type": "Import", "state": "Closed", "created_at": "2023-06-01T00:00:00Z"});
        // created_at order is the file order, so "creation order" is unambiguous.
        let lines = vec![
            minimal.to_string(),
            String::new(),
            longest.to_string(),
            full.to_string(),
            String::new(),
        ];
        let out = env.import_lines(&lines);
        out.expect_code(0);
        assert_eq!(out.json(), json!({"imported": 3}), "{}", out.describe());

        let shown = env.show("Full_job-01");
        let keys: Vec<&str> = shown.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(sorted(&keys), JOB_KEYS.to_vec(), "{shown}");
        for key in ["name", "job_type", "state", "cancel_requested", "hold_reason", "drives"] {
            assert_eq!(shown[key], full[key], "{key}: {shown}");
        }
        for key in ["cancel_requested_at", "created_at", "updated_at", "state_changed_at"] {
            assert_same_timestamp(&shown[key], full[key].as_str().unwrap(), key);
        }

        let shown = env.show("min");
        assert_eq!(shown["job_type"], "Import");
        assert_eq!(shown["state"], "Creating");
        assert_eq!(shown["cancel_requested"], false);
        assert_eq!(shown["cancel_requested_at"], Value::Null);
        assert_eq!(shown["hold_reason"], Value::Null);
        assert_eq!(shown["drives"], json!([{"drive_id": "only", "state": "Received", "bytes": 0}]));
        for key in ["created_at", "updated_at", "state_changed_at"] {
            assert_same_timestamp(&shown[key], "2023-05-06T05:08:09Z", key);
        }

        let shown = env.show(&long_name);
        assert_eq!(shown["state"], "Closed");
        assert_same_timestamp(&shown["updated_at"], "2023-06-01T00:00:00Z", "updated_at defaults to created_at");
        assert_same_timestamp(&shown["state_changed_at"], "2023-06-01T00:00:00Z", "state_changed_at defaults to created_at");
        assert_eq!(shown["drives"], json!([]));

        assert_eq!(env.count("jobs"), 3);
        assert_eq!(env.count("job_drives"), 11);
        let listed = env.json(&["jobs", "list"]);
        assert_eq!(names(&listed), vec!["min".to_string(), long_name.clone(), "Full_job-01".to_string()]);
        assert_eq!(listed[2], env.show("Full_job-01"), "list and show print the same job");
    }
}

every_engine! {
    /// `jobs import -` reads standard input; an empty input imports nothing.
    fn import_from_stdin(env: &TestEnv) {
        let text = format!("{}\n\n{}\n", good("stdin-1"), good("stdin-2"));
        let out = env.cmd(&["jobs", "import", "-", "--output", "json"]).stdin(text.as_bytes()).run();
        out.expect_code(0);
        assert_eq!(out.json(), json!({"imported": 2}));
        assert_eq!(env.job_names(), vec!["stdin-1", "stdin-2"]);

        let bad = format!("{}\n{}\n", good("stdin-3"), with(good("stdin-4"), "state", json!("Nope")));
        let out = env.cmd(&["jobs", "import", "-"]).stdin(bad.as_bytes()).run();
        out.expect_code(65);
        assert!(out.stderr_names_line(2), "{}", out.describe());
        assert_eq!(env.count("jobs"), 2);

        let out = env.cmd(&["jobs", "import", "-", "--output", "json"]).stdin(b"").run();
        out.expect_code(0);
        assert_eq!(out.json(), json!({"imported": 0}));
    }
}

every_engine! {
    /// docs/design.md, "The command line": `updated_at` defaults to `created_at` (not to another field),
    /// even when `state_changed_at` is given.
    fn updated_at_defaults_to_created_at(env: &TestEnv) {
        env.import_ok(&[json!({
            "name": "defaults",
            "job_type": "Import",
            "state": "Closed",
            "created_at": "2023-06-01T00:00:00Z",
            "state_changed_at": "2023-07-01T00:00:00Z"
        })]);
        let shown = env.show("defaults");
        assert_same_timestamp(&shown["state_changed_at"], "2023-07-01T00:00:00Z", "state_changed_at as given");
        assert_same_timestamp(&shown["updated_at"], "2023-06-01T00:00:00Z", "updated_at defaults to created_at");
    }
}

/// `count` jobs named `bulk-00000`…, in that order, each with a hold reason
/// of 480 characters and one drive holding its number: over 17 MiB of JSON,
/// more than one statement carries on MariaDB (`max_allowed_packet`, 16 MiB
/// by default).
fn bulk_lines(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let name = format!("bulk-{i:05}");
            json!({
                "name": name,
                "job_type": "Export",
                "state": "Completed",
                "hold_reason": format!("{name} {}", "r".repeat(469)),
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-02-01T00:00:00Z",
                "state_changed_at": "2024-02-01T00:00:00Z",
                "drives": [{"drive_id": "D1", "state": "ShippedBack", "bytes": i}]
            })
            .to_string()
        })
        .collect()
}

every_engine! {
    /// An import larger than one statement may carry is written in chunks,
    /// all in one transaction (docs/lifecycle.md): with a name already in the
    /// store on its last line (so in its last chunk) nothing of it is written
    /// and the error names that line; then, without the conflict, every job
    /// and drive is written as given, in the file's order.
    fn an_import_larger_than_a_statement_is_all_or_nothing(env: &TestEnv) {
        const COUNT: usize = 25_000;
        let lines = bulk_lines(COUNT);
        assert!(lines.iter().map(String::len).sum::<usize>() > 17 << 20);
        let last = format!("bulk-{:05}", COUNT - 1);
        env.import_ok(&[good(&last)]);
        let before = env.dump_all();
        let out = env.import_lines(&lines);
        assert_eq!(out.code, 4, "{}", out.describe());
        assert!(out.stderr_names_line(COUNT) && out.stderr.contains(&last), "{}", out.describe());
        // Compared whole but not printed: a failure would print megabytes.
        let kept = env.count("jobs") - 1;
        assert!(env.dump_all() == before, "{kept} jobs of the chunks before the conflict were kept");

        env.json(&["jobs", "delete", &last]);
        let out = env.import_lines(&lines);
        out.expect_code(0);
        assert_eq!(out.json(), json!({"imported": COUNT}), "{}", out.describe());
        let stored = env.rows(
            "SELECT j.name, j.hold_reason, d.bytes FROM jobs j JOIN job_drives d ON d.job_id = j.id ORDER BY j.id",
        );
        assert_eq!(stored.len(), COUNT);
        assert_eq!(env.count("jobs"), COUNT as i64);
        for (i, row) in stored.iter().enumerate() {
            let name = format!("bulk-{i:05}");
            assert_eq!(row, &vec![json!(name), json!(format!("{name} {}", "r".repeat(469))), json!(i)], "row {i}");
        }
    }
}
