//! A job submitted to a cluster sends to Prometheus through the remote-write
//! sink too (the same opener as `tidemark run`), with its bearer token read
//! from a file under the cluster's `--allow-root` (issue 12 §1).

mod member;
mod stack;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use member::{out_dir, text, Member};

/// (record, labels) → [(window end ms, value)].
type Samples = BTreeMap<(String, BTreeMap<String, String>), Vec<(i64, f64)>>;

fn labels_of(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn jsonl_samples(path: &Path) -> Samples {
    let mut out = Samples::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let end: jiff::Timestamp = v["end"].as_str().unwrap().parse().unwrap();
        out.entry((
            v["record"].as_str().unwrap().into(),
            labels_of(&v["labels"]),
        ))
        .or_default()
        .push((end.as_millisecond(), v["value"].as_f64().unwrap()));
    }
    out
}

fn prometheus_samples(prom: &stack::Component, now_s: i64) -> Samples {
    let q = stack::url_encode("{cluster=\"test\"}[3h]");
    let (status, body) = prom.get(&format!("/api/v1/query?query={q}&time={now_s}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out = Samples::new();
    for series in v["data"]["result"].as_array().unwrap() {
        let mut labels = labels_of(&series["metric"]);
        let name = labels.remove("__name__").unwrap();
        labels.remove("cluster");
        let values = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, p[1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect();
        out.insert((name, labels), values);
    }
    out
}

#[test]
fn a_submitted_job_sends_its_windows_to_prometheus() {
    let d = tempfile::tempdir().unwrap();
    let prom = stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    // Minutes before now: Prometheus takes samples within about an hour of its newest.
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 20 * 60) / 60 * 60;
    for h in 1..=2 {
        let dir = d.path().join(format!("logs/web-{h}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for t in (from..from + 5 * 60).step_by(2) {
            let ts = jiff::Timestamp::from_second(t).unwrap();
            let status = if t % 6 == 0 { 500 } else { 200 };
            text.push_str(&format!(
                "10.0.0.{h} - - [{}] \"GET /x HTTP/1.1\" {status} 1 \"-\" \"t\" 0.010\n",
                ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
            ));
        }
        std::fs::write(dir.join("access.log"), text).unwrap();
    }
    // Under the allowed root (the test folder), as every file a job reads.
    let token = d.path().join("secrets/token");
    std::fs::create_dir_all(token.parent().unwrap()).unwrap();
    std::fs::write(&token, "t0k3n\n").unwrap();
    let out = out_dir(&d.path().join("state")).join("rw.jsonl");
    let job = d.path().join("rw.toml");
    std::fs::write(
        &job,
        format!(
            r#"name = "rw"
[source]
kind = "file"
include = ["{logs}/*/access.log"]
host = {{ path_regex = '/(?P<host>web-[0-9]+)/' }}
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
idle_timeout = "1s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
[[sink]]
kind = "prometheus_remote_write"
url = "{url}/api/v1/write"
series = "all"
external_labels = {{ cluster = "test" }}
bearer_token_file = "{token}"
"#,
            logs = d.path().join("logs").display(),
            out = out.display(),
            url = prom.url(),
            token = token.display(),
        ),
    )
    .unwrap();
    let m = Member::start(&d.path().join("state"), &d.path().join("member.log"), &[]);
    let o = m.job(&["submit", job.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    // Every window of the 5 minutes closes (idle timeout); Prometheus ends
    // holding exactly what the jsonl file holds.
    let last_end = (from + 5 * 60) * 1000;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = jsonl_samples(&out);
        let complete = want
            .values()
            .any(|v| v.last().is_some_and(|(t, _)| *t >= last_end));
        if complete && prometheus_samples(&prom, now_s + 60) == want {
            assert!(want.len() >= 6, "{want:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus does not hold the jsonl's samples:\n{:?}\n{:?}\n{}",
            want,
            prometheus_samples(&prom, now_s + 60),
            m.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!m.log().contains("t0k3n"), "the token was logged");
}

/// A remote-write job whose receiver is down must not freeze the member: in
/// the cluster worker 0 runs every job's collector and applies the commands,
/// so a sink blocking there (waiting for acknowledgements before a checkpoint,
/// or on a full queue) stopped every other job, `job stop` and SIGTERM. Now
/// the sink only says it is not ready/settled and the collector waits on it
/// without blocking.
#[test]
fn a_down_receiver_does_not_freeze_the_member() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let out = out_dir(&state);
    for (dir, from) in [("rw-logs/web-1", member::T0), ("b-logs/web-1", member::T0)] {
        member::append_host(&d.path().join(dir), from, 600);
    }
    let job = |name: &str, logs: &str, sink: &str| {
        format!(
            r#"name = "{name}"
[source]
kind = "file"
include = ["{logs}/*/access.log"]
host = {{ path_regex = '/(?P<host>web-[0-9]+)/' }}
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
idle_timeout = "1s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
{sink}
"#,
            logs = d.path().join(logs).display(),
        )
    };
    // Nothing listens on port 1: every attempt fails at once, and is retried.
    let rw = job(
        "rw",
        "rw-logs",
        "[[sink]]\nkind = \"prometheus_remote_write\"\nurl = \"http://127.0.0.1:1/api/v1/write\"\nseries = \"hosts\"\n\
         queue_capacity = 10\nmax_samples_per_send = 5\n",
    );
    let out_b = out.join("b.jsonl");
    let b = job(
        "b",
        "b-logs",
        &format!(
            "[[sink]]\nkind = \"jsonl\"\npath = \"{}\"\nseries = \"all\"\n",
            out_b.display()
        ),
    );
    std::fs::write(d.path().join("rw.toml"), &rw).unwrap();
    std::fs::write(d.path().join("b.toml"), &b).unwrap();
    let want_b = member::expected(d.path(), &b, &out_b);
    let mut m = Member::start(&state, &d.path().join("member.log"), &[]);

    let o = m.job(&["submit", d.path().join("rw.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !m.log().contains("is failing for") {
        assert!(Instant::now() < deadline, "no retry:\n{}", m.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let the first job reach its checkpoint and its full queue.
    std::thread::sleep(Duration::from_secs(2));

    // Another job runs to its end meanwhile.
    let o = m.job(&["submit", d.path().join("b.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    member::wait_for_output(&out_b, &want_b, &m);

    // The stuck job stops when told to.
    let o = m.job(&["stop", "rw"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = String::from_utf8(m.job(&["list"]).stdout).unwrap();
        if !list.contains("rw\t") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job rw was not stopped: {list}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Submitted again, it is stuck again: one SIGTERM still ends the member.
    let o = m.job(&["submit", d.path().join("rw.toml").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(2));
    let status = m.terminate();
    assert!(status.code().is_some(), "{status:?}\n{}", m.log());
}
