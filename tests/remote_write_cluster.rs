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
