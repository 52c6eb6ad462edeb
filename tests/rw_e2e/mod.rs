//! The harness of the remote-write end-to-end tests: recent nginx-like logs, a
//! job that writes them to a JSONL file and to Prometheus, and both outputs read
//! back into the same shape, (record, labels, window end) → value, to compare.
#![allow(dead_code)] // Each test uses a part of it.

pub mod proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::stack;

/// (record, labels without `__name__`, sample time in ms).
pub type Key = (String, BTreeMap<String, String>, i64);

/// A small deterministic generator (xorshift64*), seeded per test.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The seed of a test: `TIDEMARK_TEST_SEED` or the clock; printed so that a
/// failure can be run again.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("TIDEMARK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("{test}: seed {seed} (TIDEMARK_TEST_SEED={seed} to repeat)");
    seed
}

/// The minutes the logs cover: now − 40 min .. now − 5 min, whole minutes (in
/// seconds). Prometheus takes samples up to about an hour behind the newest it
/// holds, and a fresh one holds none.
pub fn time_range() -> (i64, i64) {
    let now = jiff::Timestamp::now().as_second();
    let minute = now - now.rem_euclid(60);
    (minute - 40 * 60, minute - 5 * 60)
}

/// Writes `DIR/logs/HOST/access.log` for three hosts over `time_range()`,
/// `per_minute` lines per host-minute on average, a few seconds out of order.
/// Returns the number of lines.
pub fn write_logs(dir: &Path, seed: u64, per_minute: u64) -> u64 {
    let (from, to) = time_range();
    let mut rng = Rng(seed);
    let mut lines = 0;
    for host in ["web-1", "web-2", "web-3"] {
        let mut text = String::new();
        for minute in (from..to).step_by(60) {
            let n = per_minute / 2 + rng.below(per_minute + 1);
            for i in 0..n {
                // Ascending within the minute, up to 3 s out of order (the job
                // allows 5 s): no line is late.
                let t = (minute + (i * 60 / n.max(1)) as i64 - rng.below(4) as i64).max(from);
                let status = [200, 200, 200, 200, 304, 404, 500, 503][rng.below(8) as usize];
                let method = ["GET", "GET", "GET", "POST", "PUT"][rng.below(5) as usize];
                let bytes = rng.below(50_000);
                let rt_ms = 1 + rng.below(2_000);
                text.push_str(&nginx_line(t, method, status, bytes, rt_ms));
                lines += 1;
            }
        }
        let path = dir.join("logs").join(host).join("access.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    lines
}

pub fn nginx_line(t: i64, method: &str, status: u16, bytes: u64, rt_ms: u64) -> String {
    let ts = jiff::Timestamp::from_second(t).unwrap();
    format!(
        "10.0.0.{} - - [{}] \"{method} /api/items HTTP/1.1\" {status} {bytes} \"-\" \"e2e\" {}.{:03}\n",
        t.rem_euclid(250) + 1,
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        rt_ms / 1000,
        rt_ms % 1000
    )
}

/// The job: counters, a sum and a histogram per host, two rules, every series
/// to `DIR/out/rw.jsonl` and to `url` (remote-write, with `extra` keys).
pub fn write_job(dir: &Path, url: &str, source_extra: &str, sink_extra: &str) -> PathBuf {
    let text = format!(
        r#"name = "rw"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = {{ path_regex = '/(?P<host>[^/]+)/access\.log$' }}
{source_extra}
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "http_response_bytes_total"
kind = "sum"
field = "body_bytes_sent"
labels = ["status"]
[[metric]]
name = "http_request_duration_seconds"
kind = "histogram"
field = "request_time"
quantiles = [0.5, 0.9, 0.99]
[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"
[[rule]]
record = "job:http_request_duration_seconds:p99_1m"
expr = "histogram_quantile(0.99, http_request_duration_seconds)"
[[sink]]
kind = "jsonl"
path = "out/rw.jsonl"
series = "all"
[[sink]]
kind = "prometheus_remote_write"
url = "{url}/api/v1/write"
series = "all"
{sink_extra}
"#
    );
    let path = dir.join("rw.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `tidemark run JOB --until-eof ARGS…`, spawned with its stderr piped.
pub fn spawn_run(job: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(job)
        .arg("--until-eof")
        .args(args)
        .env("TIDEMARK_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark")
}

/// Runs to the end and returns its output (stderr: logs and the summary).
pub fn run(job: &Path, args: &[&str]) -> Output {
    finish(spawn_run(job, args))
}

/// Waits for a run to end, generously for a loaded machine; a run that hangs
/// (e.g. a sink retrying what it must not) is killed and fails the test.
pub fn finish(mut child: Child) -> Output {
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        use std::io::Read;
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
            panic!("tidemark did not finish within 300 s:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: Vec::new(),
        stderr: reader.join().unwrap(),
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A private Prometheus that takes remote-write, scraping nothing (so it holds
/// only what tidemark sends).
pub fn prometheus() -> stack::Component {
    stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    )
}

/// The JSONL file's records, keyed by their window's end (the default sample
/// time of the remote-write sink).
pub fn read_jsonl(path: &Path) -> BTreeMap<Key, f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let end: jiff::Timestamp = v["end"].as_str().unwrap().parse().unwrap();
        let labels = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let value = v["value"].as_f64().unwrap();
        let key = (
            v["record"].as_str().unwrap().to_string(),
            labels,
            end.as_millisecond(),
        );
        assert!(out.insert(key, value).is_none(), "duplicate record {line}");
    }
    out
}

/// Every raw sample Prometheus holds from the last 3 hours (staleness markers
/// do not show in query results).
pub fn read_prometheus(prom: &stack::Component) -> BTreeMap<Key, f64> {
    let now = jiff::Timestamp::now().as_second();
    let q = stack::url_encode("{__name__=~\".+\"}[3h]");
    let (status, body) = prom.get(&format!("/api/v1/query?query={q}&time={now}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["resultType"], "matrix", "{body}");
    let mut out = BTreeMap::new();
    for series in v["data"]["result"].as_array().unwrap() {
        let mut labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let name = labels.remove("__name__").unwrap();
        for s in series["values"].as_array().unwrap() {
            let t_ms = (s[0].as_f64().unwrap() * 1000.0).round() as i64;
            let value: f64 = s[1].as_str().unwrap().parse().unwrap();
            out.insert((name.clone(), labels.clone(), t_ms), value);
        }
    }
    out
}

/// Asserts that Prometheus holds exactly the JSONL's values (every series and
/// window, nothing else), listing the first differences otherwise.
pub fn assert_same(jsonl: &BTreeMap<Key, f64>, prom: &BTreeMap<Key, f64>, context: &str) {
    assert!(!jsonl.is_empty(), "{context}: the JSONL output is empty");
    let mut diffs = Vec::new();
    for (k, v) in jsonl {
        match prom.get(k) {
            None => diffs.push(format!("missing in Prometheus: {k:?} = {v}")),
            Some(p) if p != v => diffs.push(format!("{k:?}: JSONL {v}, Prometheus {p}")),
            Some(_) => {}
        }
    }
    for (k, v) in prom {
        if !jsonl.contains_key(k) {
            diffs.push(format!("only in Prometheus: {k:?} = {v}"));
        }
    }
    eprintln!(
        "{context}: {} samples in the JSONL, {} in Prometheus, {} differences",
        jsonl.len(),
        prom.len(),
        diffs.len()
    );
    if !diffs.is_empty() {
        let n = diffs.len();
        diffs.truncate(15);
        panic!(
            "{context}: Prometheus differs from the JSONL in {n} samples (of {} in the JSONL), first:\n{}",
            jsonl.len(),
            diffs.join("\n")
        );
    }
}

/// Waits (generously, for a loaded machine) until `cond` holds; fails naming
/// `what`, with tidemark's stderr if it exited.
pub fn wait_until(child: &mut Child, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !cond() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("tidemark exited ({status}) before {what}:\n{err}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The summary line that starts with `prefix`, if any.
pub fn summary_line<'a>(stderr: &'a str, prefix: &str) -> Option<&'a str> {
    stderr.lines().find(|l| l.trim_start().starts_with(prefix))
}
