//! One job must not fail another (issue 10): a job whose files exceed the
//! member's limit on open files is kept within its share, and an unrelated job
//! keeps running and exact, with the API answering throughout.

mod member;

use member::{append_host, expected, out_dir, text, wait_for_output, windows_before, Member, T0};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `idle`: the idle_timeout. A job whose input arrives later needs a long one: its
/// windows then close by the data's watermark only (an idle group follows the
/// wall clock, and lines of 2026-11-20 would be late).
fn job_toml(name: &str, logs: &Path, out: &Path, idle: &str) -> String {
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
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        logs = logs.display(),
        out = out.display()
    )
}

/// `tidemark cluster -w 2` under `prlimit --nofile=LIMIT:LIMIT` (the hard limit
/// too: the member cannot raise it), waiting for its API.
fn start_limited(dir: &Path, limit: u32) -> Member {
    let state = dir.join("state");
    let log = dir.join("member.log");
    let out = out_dir(&state);
    let child = Command::new("/usr/bin/prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(env!("CARGO_BIN_EXE_tidemark"))
        .args(["cluster", "-w", "2", "--api", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .arg("--allow-root")
        .arg(dir)
        .arg("--output-root")
        .arg(&out)
        .env("TIDEMARK_LOG", "info")
        .env_remove("TIDEMARK_API_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut m = Member {
        child,
        api: String::new(),
        log,
        state,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = m.log();
        if let Some(rest) = t.split("control API on http://").nth(1) {
            m.api = rest.split(';').next().unwrap().to_string();
            return m;
        }
        if let Ok(Some(status)) = m.child.try_wait() {
            panic!("the member exited ({status}):\n{t}");
        }
        assert!(Instant::now() < deadline, "the member did not start:\n{t}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_of(m: &Member, job: &str) -> String {
    let o = m.job(&["status", job]);
    assert!(
        o.status.success(),
        "the API must answer: {}\n{}",
        text(&o),
        m.log()
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    s["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_job_that_exhausts_file_descriptors_does_not_fail_another() {
    let d = tempfile::tempdir().unwrap();
    let (logs_a, logs_b) = (d.path().join("a"), d.path().join("b"));
    append_host(&logs_a.join("web-1"), T0, 240);
    for h in 0..300 {
        append_host(&logs_b.join(format!("web-{h}")), T0, 120);
    }
    let out = out_dir(&d.path().join("state"));
    let (out_a, out_b) = (out.join("a.jsonl"), out.join("b.jsonl"));
    let (job_a, job_b) = (
        job_toml("a", &logs_a, &out_a, "1h"),
        job_toml("b", &logs_b, &out_b, "1s"),
    );
    let (a, b) = (d.path().join("a.toml"), d.path().join("b.toml"));
    std::fs::write(&a, &job_a).unwrap();
    std::fs::write(&b, &job_b).unwrap();
    let want_b = expected(d.path(), &job_b, &out_b);

    let m = start_limited(d.path(), 160);
    let o = m.job(&["submit", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let first = windows_before(&expected(d.path(), &job_a, &out_a), 3);
    assert!(!first.is_empty());
    wait_for_output(&out_a, &first, &m);

    let o = m.job(&["submit", b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // While B opens its 300 files, A gets more lines; the API answers each poll.
    append_host(&logs_a.join("web-1"), T0 + 240, 240);
    let want_a = windows_before(&expected(d.path(), &job_a, &out_a), 7);
    for _ in 0..20 {
        assert_eq!(state_of(&m, "a"), "running", "{}", m.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_output(&out_b, &want_b, &m);
    wait_for_output(&out_a, &want_a, &m);
    assert_eq!(state_of(&m, "a"), "running", "{}", m.log());
    assert_eq!(state_of(&m, "b"), "running", "{}", m.log());
    let o = m.job(&["status", "b"]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let open = s["open_files"]["open"].as_u64().unwrap();
    assert!(open <= 38, "B keeps within its share: {s}");
    assert!(s["open_files"]["parked"].as_u64().unwrap() > 0, "{s}");
    assert!(
        m.log().contains("max_open_files 256 lowered to"),
        "{}",
        m.log()
    );
}
