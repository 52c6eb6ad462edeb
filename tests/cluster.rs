//! Black-box tests of `tidemark cluster` and `tidemark job` (issue 5): a member
//! process on 127.0.0.1 with its control API, driven by the `job` commands.
//! Output is compared byte for byte with `tidemark run --until-eof` over the same
//! files. A cluster of one process; `cluster_two_processes.rs` runs two.

mod member;

use member::{
    append_host, expected, out_dir, text, tidemark, wait_for_output, windows_before, Member, T0,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Appends `secs` seconds of lines (one every 2 s per host) from `from`.
fn append_logs(logs: &Path, from: i64, secs: i64) {
    for h in 1..=2 {
        append_host(&logs.join(format!("web-{h}")), from, secs);
    }
}

/// `idle`: the job's idle_timeout — short, windows close soon after the input
/// stops (by the wall clock); long, they close only as data moves the watermark.
fn job_toml(name: &str, logs: &Path, out: &Path, rule: &str, idle: &str) -> String {
    format!(
        r#"
name = "{name}"
[source]
kind = "file"
include = ["{logs}/*/access.log"]
host = {{ path_regex = '/(?P<host>web-[0-9]+)/' }}
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "{idle}"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "{rule}"
expr = "sum by (status) (reqs)"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        logs = logs.display(),
        out = out.display()
    )
}

#[test]
fn jobs_are_submitted_listed_refused_and_stopped_and_match_run() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    append_logs(&logs, T0, 300);
    let out = out_dir(&d.path().join("state"));
    let (out_a, out_b) = (out.join("a.jsonl"), out.join("b.jsonl"));
    let job_a = job_toml("a", &logs, &out_a, "status:reqs", "1s");
    let job_b = job_toml("b", &logs, &out_b, "by_status:reqs", "1s");
    std::fs::write(d.path().join("a.toml"), &job_a).unwrap();
    std::fs::write(d.path().join("b.toml"), &job_b).unwrap();
    let (want_a, want_b) = (
        expected(d.path(), &job_a, &out_a),
        expected(d.path(), &job_b, &out_b),
    );
    let m = Member::start(&d.path().join("state"), &d.path().join("member.log"), &[]);

    let a = d.path().join("a.toml");
    let o = m.job(&["submit", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for_output(&out_a, &want_a, &m);

    // A second job while the first runs.
    let b = d.path().join("b.toml");
    let o = m.job(&["submit", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for_output(&out_b, &want_b, &m);

    // Refusals: duplicate (409), invalid (400, with validate's message), unknown (404).
    let o = m.job(&["submit", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("already running") && text(&o).contains("409"),
        "{}",
        text(&o)
    );
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\n").unwrap();
    let o = m.job(&["submit", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "{}:1:1: error: missing required key `source`",
            bad.display()
        )),
        "{}",
        text(&o)
    );
    let o = m.job(&["status", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no job named") && text(&o).contains("404"),
        "{}",
        text(&o)
    );

    // Status of a running job: its counts and its last window.
    let o = m.job(&["status", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["state"], "running");
    assert_eq!(s["last_closed_window"]["start"], "2026-11-20T10:04:00Z");
    assert!(s["lines_per_sec"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(s["errors"]["late"], 0, "{s}");

    // Stop one: it is gone, the other keeps running.
    let o = m.job(&["stop", "b"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = String::from_utf8(m.job(&["list"]).stdout).unwrap();
        if !list.contains("b\t") {
            assert!(list.contains("a\tRunning"), "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "job b was not stopped: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Stopped means forgotten, checkpoint too: submitted again, it starts afresh
    // and writes its whole output again (not only what came after the stop).
    std::fs::remove_file(&out_b).unwrap();
    let o = m.job(&["submit", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for_output(&out_b, &want_b, &m);
}

#[test]
fn after_kill_9_the_restarted_member_resumes_its_jobs_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    append_logs(&logs, T0, 200); // 10:00:00 – 10:03:18
    let out = out_dir(&d.path().join("state")).join("a.jsonl");
    // Windows close by the data's watermark only (idle_timeout 1h), so lines that
    // arrive while the member is down are not late.
    let job = job_toml("a", &logs, &out, "status:reqs", "1h");
    let path = d.path().join("a.toml");
    std::fs::write(&path, &job).unwrap();
    let state = d.path().join("state");
    // Watermark 10:03:13: the windows before 10:03 are closed.
    let first = windows_before(&expected(d.path(), &job, &out), 3);
    {
        let m = Member::start(
            &state,
            &d.path().join("m1.log"),
            &["--checkpoint-interval", "50ms"],
        );
        let o = m.job(&["submit", path.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        wait_for_output(&out, &first, &m);
        std::thread::sleep(Duration::from_millis(300)); // a checkpoint after them
    } // SIGKILL
      // More lines arrive while the member is down: up to 10:08:18.
    append_logs(&logs, T0 + 200, 300);
    let all = windows_before(&expected(d.path(), &job, &out), 8);
    assert!(all.len() > first.len() && all.starts_with(&first));
    let m = Member::start(&state, &d.path().join("m2.log"), &[]);
    wait_for_output(&out, &all, &m);
    assert!(
        m.log().contains("installing kept job \"a\" again"),
        "{}",
        m.log()
    );
    assert!(m.log().contains("resuming from"), "{}", m.log());
    let list = String::from_utf8(m.job(&["list"]).stdout).unwrap();
    assert!(list.starts_with("a\tRunning"), "{list}");
    // Nothing more arrives: the output stays exactly once.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read(&out).unwrap(), all);
}

/// A token given with --token-file is the one the API needs; the member then
/// creates none in its state folder. (Without one it makes its own: see
/// `cluster_security.rs`.)
#[test]
fn a_given_token_file_is_the_one_the_api_needs() {
    let d = tempfile::tempdir().unwrap();
    let token = d.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let state = d.path().join("s1");
    let m = Member::start(
        &state,
        &d.path().join("m.log"),
        &["--token-file", token.to_str().unwrap()],
    );
    assert!(!state.join("api-token").exists());
    let o = m.job(&["list"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("api-token"), "{}", text(&o));
    let o = tidemark()
        .args(["job", "list", "--api", &m.api])
        .env("TIDEMARK_API_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));
    let o = tidemark()
        .args(["job", "list", "--api", &m.api, "--token-file"])
        .arg(&token)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn allow_root_holds_for_every_file_read_even_through_a_symlink() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    append_host(&root.join("web-1"), T0, 300);
    // web-2's log is a link to a file outside the allowed root.
    append_host(&d.path().join("outside/web-2"), T0, 300);
    std::fs::create_dir_all(root.join("web-2")).unwrap();
    std::os::unix::fs::symlink(
        d.path().join("outside/web-2/access.log"),
        root.join("web-2/access.log"),
    )
    .unwrap();
    let out = out_dir(&d.path().join("state")).join("a.jsonl");
    let job = job_toml("a", &root, &out, "status:reqs", "1s");
    let path = d.path().join("a.toml");
    std::fs::write(&path, &job).unwrap();
    // What web-1 alone gives.
    let only_web_1 = job.replace("*/access.log", "web-1/access.log");
    let want = expected(d.path(), &only_web_1, &out);
    let m = Member::start(
        &d.path().join("state"),
        &d.path().join("member.log"),
        &["--allow-root", root.to_str().unwrap()],
    );
    let o = m.job(&["submit", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for_output(&out, &want, &m);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read(&out).unwrap(), want);
    assert!(
        m.log().contains("outside") && m.log().contains("--allow-root"),
        "{}",
        m.log()
    );
}
