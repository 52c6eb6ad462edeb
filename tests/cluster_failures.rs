//! Cluster failure paths (found by review, now fixed): a failed job can be stopped
//! and its name reused; a second member on one state folder is refused.

mod member;

use member::{out_dir, text, tidemark, Member};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn job_toml(name: &str, logs: &Path, out: &Path) -> String {
    format!(
        r#"
name = "{name}"
[source]
kind = "file"
include = ["{logs}/*/access.log"]
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        logs = logs.display(),
        out = out.display()
    )
}

/// A job that failed (its sink cannot open) can be stopped, and then its name
/// can be used again. (It used to stay "Stopping" forever, its name refused
/// as a duplicate until the member restarted.)
#[test]
fn a_failed_job_can_be_stopped_and_its_name_reused() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(logs.join("web-1")).unwrap();
    std::fs::write(logs.join("web-1/access.log"), "").unwrap();
    // The sink's path is a folder: opening it fails in the member, after the API accepted it.
    let bad_out = out_dir(&d.path().join("state")).join("a-folder");
    std::fs::create_dir_all(&bad_out).unwrap();
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, job_toml("a", &logs, &bad_out)).unwrap();
    let m = Member::start(&d.path().join("state"), &d.path().join("m.log"), &[]);

    let o = m.job(&["submit", bad.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = String::from_utf8(m.job(&["list"]).stdout).unwrap();
        if list.contains("a\tFailed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job a did not fail: {list}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let o = m.job(&["stop", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = String::from_utf8(m.job(&["list"]).stdout).unwrap();
        if !list.contains("a\t") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed job a was never removed after stop: {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let good = d.path().join("good.toml");
    let out = out_dir(&d.path().join("state")).join("a.jsonl");
    std::fs::write(&good, job_toml("a", &logs, &out)).unwrap();
    let o = m.job(&["submit", good.to_str().unwrap()]);
    assert!(o.status.success(), "resubmitting a: {}", text(&o));
}

/// Two members on one state folder share `submitted/` and `jobs/` with no lock
/// of their own: the second should refuse to start.
#[test]
fn a_second_member_on_the_same_state_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let logs = d.path().join("logs");
    std::fs::create_dir_all(logs.join("web-1")).unwrap();
    std::fs::write(logs.join("web-1/access.log"), "").unwrap();
    let job = d.path().join("a.toml");
    let out = out_dir(&state).join("a.jsonl");
    std::fs::write(&job, job_toml("a", &logs, &out)).unwrap();
    let first = Member::start(&state, &d.path().join("m1.log"), &[]);
    let o = first.job(&["submit", job.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(500));

    let err = std::fs::File::create(d.path().join("m2.log")).unwrap();
    let mut second = tidemark()
        .args(["cluster", "--api", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .arg("--allow-root")
        .arg(&logs)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let exited = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = second.kill();
    let _ = second.wait();
    let log = std::fs::read_to_string(d.path().join("m2.log")).unwrap_or_default();
    assert!(
        exited.is_some_and(|s| !s.success()),
        "a second member on the same state folder kept running:\n{log}"
    );
}
