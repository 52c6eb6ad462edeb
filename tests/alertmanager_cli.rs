//! Alerts to a real Alertmanager through the CLI (issue 12 §4): a live `run`
//! whose alert fires after `for` on its logs shows it in `GET /api/v2/alerts`
//! with the labels, annotations and `startsAt` of the transcript, and takes it
//! out when the logs resolve it; a `replay` of the same range never pages.

mod stack;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const AM_CONFIG: &str = "route:\n  receiver: none\nreceivers:\n  - name: none\n";

fn job(dir: &Path, am_url: &str) -> String {
    format!(
        r#"
name = "paging"
[source]
kind = "file"
include = ["{logs}/*.log"]
host = {{ value = "web-1" }}
poll_interval = "50ms"
[parse]
format = "json"
[window]
size = "1m"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs:sum1m"
expr = "sum by (status) (reqs)"
[[alert]]
name = "HighErrorRate"
expr = 'status:reqs:sum1m{{status=~"5.."}} > 5'
for = "2m"
labels = {{ severity = "page" }}
annotations = {{ summary = "{{{{ $labels.status }}}} errors at {{{{ $value }}}}/min" }}
[[sink]]
kind = "jsonl"
path = "out/transcript.jsonl"
series = "none"
alerts = true
[[sink]]
kind = "alertmanager"
url = "{am_url}"
resend_interval = "1m"
generator_url = "http://tidemark.example/jobs/paging"
"#,
        logs = dir.join("logs").display(),
    )
}

/// Lines of minute `m` after `base` (seconds): `errors` 503s and ten 200s.
fn minute(text: &mut String, base: i64, m: i64, errors: u32) {
    for i in 0..(10 + errors) {
        let t = jiff::Timestamp::from_second(base + m * 60 + i as i64 * 3).unwrap();
        let status = if i < errors { 503 } else { 200 };
        writeln!(text, r#"{{"time":"{t}","status":"{status}"}}"#).unwrap();
    }
}

/// A line at `s` seconds after `base`: moves the watermark past earlier windows.
fn one_line(text: &mut String, base: i64, s: i64, status: u32) {
    let t = jiff::Timestamp::from_second(base + s).unwrap();
    writeln!(text, r#"{{"time":"{t}","status":"{status}"}}"#).unwrap();
}

fn alerts(am: &stack::Component) -> Vec<Value> {
    let (status, body) = am.get("/api/v2/alerts");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Polls Alertmanager until `done` (generous deadline: a loaded machine),
/// failing early if tidemark exited.
fn wait_for(
    am: &stack::Component,
    child: &mut Child,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = alerts(am);
        if done(&list) {
            return list;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what}: tidemark exited with {status}; Alertmanager lists {list:?}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: Alertmanager lists {list:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_alert_fires_after_for_shows_in_alertmanager_and_resolves() {
    let am = stack::alertmanager(AM_CONFIG);
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    let path = d.path().join("job.toml");
    std::fs::write(&path, job(d.path(), &am.url())).unwrap();
    // Recent event times (a live run's): eight minutes ago, on a minute.
    let now = jiff::Timestamp::now().as_second();
    let base = now - now.rem_euclid(60) - 8 * 60;

    // 503s in four windows; a line in the fifth closes the fourth. The alert
    // holds from the first window and fires at the end of the second (`for`).
    let mut text = String::new();
    for m in 0..4 {
        minute(&mut text, base, m, 8);
    }
    one_line(&mut text, base, 4 * 60 + 10, 503);
    let log = d.path().join("logs/web.log");
    std::fs::write(&log, &text).unwrap();
    let mut run = Running(
        Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg("run")
            .arg(&path)
            .arg("--state-dir")
            .arg(d.path().join("state"))
            .arg("--no-status")
            .env("TIDEMARK_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut run.0;
    let list = wait_for(&am, child, "the alert firing", |l| !l.is_empty());
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "HighErrorRate", "severity": "page", "status": "503"})
    );
    assert_eq!(a["annotations"]["summary"], "503 errors at 8/min");
    assert_eq!(a["generatorURL"], "http://tidemark.example/jobs/paging");
    assert_eq!(a["status"]["state"], "active");
    let ts = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert_eq!(ts(&a["startsAt"]).as_second(), base + 2 * 60);
    assert!(ts(&a["endsAt"]).as_second() > now + 3 * 60, "{a}");

    // Two quiet windows after the one-503 window: the condition no longer
    // holds at the fifth window, and the alert resolves there.
    let mut more = String::new();
    for m in 5..7 {
        minute(&mut more, base, m, 0);
    }
    one_line(&mut more, base, 7 * 60 + 10, 200);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, more.as_bytes()).unwrap();
    wait_for(&am, child, "the alert resolving", |l| l.is_empty());

    // The transcript says the same: fired at the end of the second window,
    // resolved at the end of the fifth.
    let deadline = Instant::now() + Duration::from_secs(60);
    let transcript = d.path().join("out/transcript.jsonl");
    let lines = loop {
        let t = std::fs::read_to_string(&transcript).unwrap_or_default();
        if t.contains(r#""state":"resolved""#) || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let changes: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(changes.len(), 2, "{lines}");
    assert_eq!(changes[0]["state"], "firing");
    assert_eq!(changes[1]["state"], "resolved");
    assert_eq!(ts(&changes[1]["end"]).as_second(), base + 5 * 60, "{lines}");
}

#[test]
fn a_replay_never_pages() {
    let am = stack::alertmanager(AM_CONFIG);
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    let path = d.path().join("job.toml");
    std::fs::write(&path, job(d.path(), &am.url())).unwrap();
    let now = jiff::Timestamp::now().as_second();
    let base = now - now.rem_euclid(60) - 8 * 60;
    let mut text = String::new();
    for m in 0..4 {
        minute(&mut text, base, m, 8);
    }
    one_line(&mut text, base, 4 * 60 + 10, 503);
    std::fs::write(d.path().join("logs/web.log"), &text).unwrap();
    // The range ends with the alert firing: sent, it would be listed.
    let at = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
    let out = d.path().join("replayed.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&path)
        .args(["--from", &at(base), "--to", &at(base + 4 * 60)])
        .args(["--progress", "none", "--output"])
        .arg(&out)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "the alertmanager sink {} is not opened: a replay never pages",
            am.url()
        )),
        "{err}"
    );
    let transcript = std::fs::read_to_string(&out).unwrap();
    assert!(
        transcript.contains(r#""alert":"HighErrorRate","state":"firing""#),
        "the replay fired the alert: {transcript}"
    );
    // Give a sender that should not exist time to post.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(alerts(&am), Vec::<Value>::new());
}

/// A tidemark process, killed when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stand-in Alertmanager that answers every request with `status` and
/// keeps each request's head (its headers).
fn answering(status: u16) -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let (mut head, mut len) = (String::new(), 0);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"
            );
            let _ = tx.send(head);
        }
    });
    (url, rx)
}

/// A finished job (`run --until-eof`) whose alert fires at its end, with its
/// alertmanager sink's `extra` keys; returns the run's exit code and stderr.
fn run_to_the_end(am_url: &str, extra: &str, dir: &Path) -> (Option<i32>, String) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let base = 1_795_168_800; // 2026-11-20T10:00:00Z
    let mut text = String::new();
    for m in 0..4 {
        minute(&mut text, base, m, 8);
    }
    std::fs::write(dir.join("logs/web.log"), &text).unwrap();
    let path = dir.join("job.toml");
    let job = job(dir, am_url).replace(
        "resend_interval = \"1m\"",
        &format!("resend_interval = \"1m\"\n{extra}"),
    );
    std::fs::write(&path, job).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&path)
        .arg("--until-eof")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_refusing_alertmanager_fails_the_run_with_the_status_and_never_shows_the_token() {
    let (url, heads) = answering(401);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("am-token"), "s3cr3t-t0ken\n").unwrap();
    let (code, err) = run_to_the_end(&url, "bearer_token_file = \"am-token\"", d.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("alertmanager {url}")), "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("bearer_token_file or basic_auth"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    // It was sent, once: a refusal is not retried.
    let head = heads.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer s3cr3t-t0ken\r\n"),
        "{head}"
    );
    assert!(heads.try_recv().is_err());
}

#[test]
fn an_alertmanager_that_stays_down_fails_a_finite_run_after_its_patience() {
    let (url, heads) = answering(503);
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run_to_the_end(&url, "timeout = \"1s\"", d.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did not reach Alertmanager"), "{err}");
    assert!(err.contains("HTTP 503"), "{err}");
    // Retried meanwhile.
    assert!(heads.try_iter().count() >= 2);
}

#[test]
fn a_missing_secret_file_is_a_usage_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run_to_the_end(
        "http://127.0.0.1:9",
        "bearer_token_file = \"no-such-token\"",
        d.path(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such-token"), "{err}");
    assert!(
        err.contains("cannot read the sink's bearer_token_file"),
        "{err}"
    );
}

#[test]
fn a_replay_of_a_job_that_only_pages_needs_an_output() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    std::fs::write(d.path().join("logs/web.log"), "").unwrap();
    let text = job(d.path(), "http://127.0.0.1:9");
    // Only the alertmanager sink left.
    let only = text.replace(
        "[[sink]]\nkind = \"jsonl\"\npath = \"out/transcript.jsonl\"\nseries = \"none\"\nalerts = true\n",
        "",
    );
    assert_ne!(only, text);
    let path = d.path().join("job.toml");
    std::fs::write(&path, only).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&path)
        .args([
            "--from",
            "2026-11-20T10:00:00Z",
            "--to",
            "2026-11-20T11:00:00Z",
        ])
        .args(["--progress", "none"])
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("write the replay to a file with --output PATH"),
        "{err}"
    );
}

/// After a restart the restored firing set reached Alertmanager only with the
/// first window this run evaluated: with windows open longer than the alert's
/// validity, Alertmanager expired it meanwhile. A resumed run now sends what
/// fires as it starts, before any window closes.
#[test]
fn a_resumed_run_tells_alertmanager_what_fires_before_any_window_closes() {
    let (url, heads) = answering(200);
    let d = tempfile::tempdir().unwrap();
    let (code, err) = run_to_the_end(&url, "", d.path());
    assert_eq!(code, Some(0), "{err}");
    // (The stand-in reports a request once it answered it: wait for that.)
    assert!(
        heads.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the first run sent nothing"
    );
    while heads.recv_timeout(Duration::from_millis(500)).is_ok() {}
    let transcript = std::fs::read_to_string(d.path().join("out/transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"firing\""), "{transcript}");
    // The same logs again: a resume with nothing new, no window to close.
    let (code, err) = run_to_the_end(&url, "", d.path());
    assert_eq!(code, Some(0), "{err}");
    assert!(
        heads.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the resumed run did not send what fires: {err}"
    );
    // Nothing changed: the transcript is as it was.
    assert_eq!(
        std::fs::read_to_string(d.path().join("out/transcript.jsonl")).unwrap(),
        transcript
    );
}
