//! The `prometheus_remote_write` sink against a real Prometheus (2.42, with
//! `--web.enable-remote-write-receiver`): what Prometheus holds afterwards,
//! read back raw through its HTTP API, equals the JSONL output of the same run
//! for every series and window (issue 12 §1).

mod stack;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

/// splitmix64: deterministic logs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// nginx lines stamped `from_s..to_s` (seconds), a few per second, for two
/// hosts' folders under `dir/logs/`. Prometheus takes samples only within
/// about an hour of its newest, so tests stamp them minutes before now.
fn write_logs(dir: &Path, from_s: i64, to_s: i64, seed: u64) {
    let mut rng = Rng(seed);
    for host in ["web-1", "web-2"] {
        let mut text = String::new();
        for t in from_s..to_s {
            for _ in 0..rng.next() % 4 {
                let ts = jiff::Timestamp::from_second(t).unwrap();
                // Some statuses only now and then: their series stop and
                // start again (staleness markers in between).
                let status = if rng.next().is_multiple_of(100) {
                    "418"
                } else {
                    rng.pick(&["200", "200", "200", "404", "500", "503"])
                };
                let rt_ms = rng.next() % 900;
                // Now and then an empty user agent: an empty label value,
                // which Prometheus holds as no label at all.
                let agent = rng.pick(&["t", "t", "t", ""]);
                text.push_str(&format!(
                    "10.0.0.1 - - [{}] \"GET /x HTTP/1.1\" {status} 10 \"-\" \"{agent}\" 0.{rt_ms:03}\n",
                    ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                ));
            }
        }
        let folder = dir.join("logs").join(host);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("access.log"), text).unwrap();
    }
}

/// A job reading `dir/logs/*/access.log` into `dir/out.jsonl` and `url`, all
/// series (rules, per-host counters, a histogram's quantiles, _count, _sum).
fn write_job(dir: &Path, url: &str) -> std::path::PathBuf {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"name = "rw"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = {{ path_regex = "logs/(?P<host>[^/]+)/" }}
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status"]
[[metric]]
name = "requests_by_agent"
kind = "counter"
labels = ["http_user_agent"]
[[metric]]
name = "http_request_duration_seconds"
kind = "histogram"
field = "request_time"
[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "all"
[[sink]]
kind = "prometheus_remote_write"
url = "{url}"
series = "all"
external_labels = {{ source = "tidemark-test" }}
max_samples_per_send = 7
"#
        ),
    )
    .unwrap();
    job
}

/// (record, labels) → [(sample time ms, value)], in time order.
type Samples = BTreeMap<(String, BTreeMap<String, String>), Vec<(i64, f64)>>;

/// The JSONL's records as samples stamped with their window's end; a label
/// with an empty value is absent (as in Prometheus, and as the sink sends it).
fn jsonl_samples(path: &Path) -> Samples {
    let mut out = Samples::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let labels: BTreeMap<String, String> = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.as_str() != Some(""))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let end = v["end"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
        out.entry((v["record"].as_str().unwrap().to_string(), labels))
            .or_default()
            .push((end.as_millisecond(), v["value"].as_f64().unwrap()));
    }
    out
}

/// Every raw sample Prometheus holds from the last 3 hours (a range selector
/// at `now` returns them unevaluated; staleness markers are left out of it).
fn prometheus_samples(prom: &stack::Component, now_s: i64) -> Samples {
    let q = stack::url_encode("{source=\"tidemark-test\"}[3h]");
    let (status, body) = prom.get(&format!("/api/v1/query?query={q}&time={now_s}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["resultType"], "matrix", "{body}");
    let mut out = Samples::new();
    for series in v["data"]["result"].as_array().unwrap() {
        let mut labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let name = labels.remove("__name__").unwrap();
        assert_eq!(labels.remove("source").as_deref(), Some("tidemark-test"));
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
fn prometheus_holds_exactly_the_jsonl_values_for_every_series_and_window() {
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    println!("seed {seed}");
    let prom = stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    // Whole minutes, 40 to 5 minutes ago.
    let from = (now_s - 40 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 35 * 60, seed);
    let url = format!("{}/api/v1/write", prom.url());
    let job = write_job(dir.path(), &url);
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--until-eof")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", prom.log());
    assert!(!stderr.contains("incomplete"), "{stderr}");

    let want = jsonl_samples(&dir.path().join("out.jsonl"));
    let got = prometheus_samples(&prom, now_s + 60);
    let windows: usize = want.values().map(Vec::len).sum();
    assert!(want.len() > 20 && windows > 500, "{} series", want.len());
    println!(
        "{} series, {windows} samples: Prometheus holds exactly the JSONL's",
        want.len()
    );
    // Some series stopped and came back: the staleness markers between did
    // not become values.
    assert!(want
        .values()
        .any(|v| v.windows(2).any(|p| p[1].0 - p[0].0 > 60_000)));
    // Lines with an empty user agent made series without that label.
    assert!(want
        .keys()
        .any(|(r, l)| r == "requests_by_agent" && !l.contains_key("http_user_agent")));
    assert!(std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .contains("\"http_user_agent\":\"\""));
    for (key, samples) in &want {
        assert_eq!(got.get(key), Some(samples), "{key:?}");
    }
    assert_eq!(got.len(), want.len(), "series only in Prometheus");
}

#[test]
fn a_finite_run_whose_samples_the_receiver_refused_says_so_and_exits_3() {
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    println!("seed {seed}");
    let prom = stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 30 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 20 * 60, seed);
    let job = write_job(dir.path(), &format!("{}/api/v1/write", prom.url()));
    let run = || {
        tidemark()
            .arg("run")
            .arg(&job)
            .args(["--until-eof", "--overwrite"])
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // A second fresh run (no checkpoint: it does not know it repeats the first)
    // sends every window again: Prometheus holds newer samples of each series,
    // so all but the last window's requests are refused as out of order.
    let second = run();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the receiver refused sample(s) for good (")
            && stderr.contains(" out_of_order)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("prometheus_remote_write http://"),
        "{stderr}"
    );
    // Nothing changed in Prometheus: still exactly the JSONL.
    let want = jsonl_samples(&dir.path().join("out.jsonl"));
    assert_eq!(prometheus_samples(&prom, now_s + 60), want);
}

#[test]
fn a_stop_while_the_receiver_is_down_does_not_hang_and_the_next_run_sends_everything() {
    use std::io::{BufRead, BufReader};
    let seed = jiff::Timestamp::now().as_nanosecond() as u64;
    println!("seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 20 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 10 * 60, seed);
    // Nothing listens there: every attempt is refused, and retried.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/v1/write", l.local_addr().unwrap())
    };
    let job = write_job(dir.path(), &down);
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("size = \"1m\"", "size = \"1m\"\nidle_timeout = \"1s\"");
    std::fs::write(&job, text).unwrap();
    let state = dir.path().join("state");
    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--state-dir")
        .arg(&state)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(live.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("is failing") {
            break;
        }
    }
    assert!(seen.contains(&down), "{seen}");
    let killed = Command::new("kill")
        .args(["-TERM", &live.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // It ends (the retries stop), failing: nothing it could not send is committed.
    let status = live.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let rest = rest.join("\n");
    assert!(!status.success(), "{rest}");
    assert!(rest.contains("not committed"), "{rest}");

    // The receiver is up (another url: an operational key): the resumed run
    // sends every window the stopped one could not.
    let prom = stack::prometheus(
        "global: {}\n",
        None,
        &["--web.enable-remote-write-receiver"],
    );
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace(&down, &format!("{}/api/v1/write", prom.url()));
    std::fs::write(&job, text).unwrap();
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--state-dir")
        .arg(&state)
        .arg("--until-eof")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let want = jsonl_samples(&dir.path().join("out.jsonl"));
    assert!(want.values().map(Vec::len).sum::<usize>() > 100);
    assert_eq!(prometheus_samples(&prom, now_s + 60), want);
}

#[test]
fn a_prometheus_without_the_receiver_fails_the_run_with_a_hint() {
    let prom = stack::prometheus("global: {}\n", None, &[]);
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 20 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 5 * 60, 7);
    let job = write_job(dir.path(), &format!("{}/api/v1/write", prom.url()));
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--until-eof")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(
        stderr.contains("Prometheus runs with --web.enable-remote-write-receiver"),
        "{stderr}"
    );
    assert!(stderr.contains(&prom.url()), "{stderr}");
    println!("{stderr}");
}

#[test]
fn a_replay_does_not_send_to_the_live_runs_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 20 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 5 * 60, 3);
    // A receiver that counts requests and refuses them (so a replay that
    // sent would fail, not hang).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let requests = requests.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
    }
    let job = write_job(dir.path(), &down);
    let (start, end) = (
        jiff::Timestamp::from_second(from).unwrap().to_string(),
        jiff::Timestamp::from_second(from + 5 * 60)
            .unwrap()
            .to_string(),
    );
    let out = dir.path().join("replayed.jsonl");
    let o = tidemark()
        .arg("replay")
        .arg(&job)
        .args(["--from", &start, "--to", &end, "--output"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("not sending to the job's prometheus_remote_write sink"),
        "{stderr}"
    );
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(std::fs::read_to_string(&out).unwrap().lines().count() > 10);
    // A job whose only sink is remote-write needs --output.
    let only = std::fs::read_to_string(&job).unwrap();
    let only = only.replace(
        "[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\nseries = \"all\"\n",
        "",
    );
    std::fs::write(&job, only).unwrap();
    let o = tidemark()
        .arg("replay")
        .arg(&job)
        .args(["--from", &start, "--to", &end])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--output PATH"), "{stderr}");
}

#[test]
fn a_backfill_replay_makes_the_series_the_remote_write_sink_sends() {
    let dir = tempfile::tempdir().unwrap();
    let now_s = jiff::Timestamp::now().as_second();
    let from = (now_s - 20 * 60) / 60 * 60;
    write_logs(dir.path(), from, from + 3 * 60, 11);
    let job = write_job(dir.path(), "http://127.0.0.1:9/api/v1/write");
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "max_samples_per_send = 7",
        "max_samples_per_send = 7\ntimestamp = \"start\"",
    );
    std::fs::write(&job, text).unwrap();
    let (start, end) = (
        jiff::Timestamp::from_second(from).unwrap().to_string(),
        jiff::Timestamp::from_second(from + 3 * 60)
            .unwrap()
            .to_string(),
    );
    let om = dir.path().join("backfill.om");
    let replay = |extra: &[&str]| {
        let _ = std::fs::remove_file(&om);
        let o = tidemark()
            .arg("replay")
            .arg(&job)
            .args([
                "--from",
                &start,
                "--to",
                &end,
                "--format",
                "openmetrics",
                "--output",
            ])
            .arg(&om)
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        (std::fs::read_to_string(&om).unwrap(), stderr)
    };
    // The sink's external label and sample time (the window's start).
    let (text, stderr) = replay(&[]);
    assert!(
        stderr.contains("as the job's prometheus_remote_write sink sends them"),
        "{stderr}"
    );
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.len() > 10, "{text}");
    assert!(
        samples
            .iter()
            .all(|l| l.contains("source=\"tidemark-test\"")),
        "{text}"
    );
    assert!(
        samples.iter().any(|l| l.ends_with(&format!(" {from}"))),
        "{text}"
    );
    // Flags win.
    let (text, _) = replay(&["--timestamp", "end", "--external-label", "source=other"]);
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        samples.iter().all(|l| l.contains("source=\"other\"")),
        "{text}"
    );
    assert!(
        !samples.iter().any(|l| l.ends_with(&format!(" {from}"))),
        "{text}"
    );
}
