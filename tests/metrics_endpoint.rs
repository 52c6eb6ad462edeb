//! `tidemark run --metrics-addr` serves the job's self-metrics at `GET /metrics`
//! (issue 12 §3): the real `promtool check metrics` finds nothing to say about
//! them, their values are the run's summary, and a real Prometheus scrapes them.
//! Also: the example Prometheus config in deploy/ passes `promtool check config`.

mod stack;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: only a machine stalled for minutes misses it.
const PATIENCE: Duration = Duration::from_secs(120);

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

/// What the run's summary (stderr) says after `label: `, e.g. `lines read`.
fn summary_value(summary: &str, label: &str) -> u64 {
    let prefix = format!("{label}: ");
    summary
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in the summary:\n{summary}"))
}

/// The demo's data and job in `dir`, the job closing idle windows after 1 s
/// (so that a live run completes every window of this old data), one
/// malformed line added to a file; the demo's own (finite) summary.
fn demo(dir: &Path) -> (PathBuf, String) {
    let out = tidemark()
        .args(["demo", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{summary}");
    let job = dir.join("nginx.toml");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("idle_timeout = \"30s\"", "idle_timeout = \"1s\"");
    std::fs::write(&job, text).unwrap();
    std::fs::remove_file(dir.join("out/nginx.jsonl")).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("sample/web-2/access.log"))
        .unwrap();
    f.write_all(b"this is not an nginx line\n").unwrap();
    (job, summary)
}

/// A live run of `job` serving /metrics on a port the OS picks.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: String,
}

impl Live {
    fn start(job: &Path, extra: &[&str]) -> Live {
        let mut child = tidemark()
            .arg("run")
            .arg(job)
            .args(["--metrics-addr", "127.0.0.1:0", "--no-status"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => match l.strip_prefix("metrics: serving http://") {
                    Some(rest) => break rest.trim_end_matches("/metrics").to_string(),
                    None => seen.push(l),
                },
                Err(_) => panic!("the run never said where /metrics is: {seen:#?}"),
            }
        };
        Live { child, lines, addr }
    }

    fn scrape(&self) -> String {
        let mut r = ureq::get(format!("http://{}/metrics", self.addr))
            .call()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        assert_eq!(r.status(), 200);
        let ct = r.headers().get("content-type").unwrap().to_str().unwrap();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        r.body_mut().read_to_string().unwrap()
    }

    /// Stops the run (SIGTERM); its summary.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        let summary = rest.join("\n");
        assert!(exit.success(), "{summary}");
        summary
    }
}

/// The value of the sample `name` whose labels include each of `labels`.
fn sample(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn sum_of(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the real `promtool check metrics` on `body`: (success, what it printed).
fn promtool_check_metrics(body: &str) -> (bool, String) {
    let mut child = Command::new(stack::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn a_live_run_serves_metrics_that_promtool_accepts_with_the_summary_s_values() {
    let d = tempfile::tempdir().unwrap();
    let (job, demo_summary) = demo(d.path());
    let lines = summary_value(&demo_summary, "lines read") + 1;
    let windows = summary_value(&demo_summary, "windows emitted");
    let state = d.path().join("state");
    let live = Live::start(&job, &["--state-dir", state.to_str().unwrap()]);
    // Until every line is read, every window written, and every group's
    // figures (published about once a second) caught up with them.
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let body = live.scrape();
        let done = sample(&body, "tidemark_lines_read_total", &[]) == Some(lines as f64)
            && sample(&body, "tidemark_windows_emitted_total", &[]) == Some(windows as f64)
            && sum_of(&body, "tidemark_group_lines_read_total") == lines as f64;
        if done {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the run never got there:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (ok, said) = promtool_check_metrics(&body);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{body}");

    let job = [("tidemark_job", "nginx")];
    assert_eq!(
        sample(
            &body,
            "tidemark_lines_malformed_total",
            &[("reason", "format_mismatch")]
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "tidemark_lines_counted_total", &job),
        Some((lines - 1) as f64)
    );
    assert_eq!(sample(&body, "tidemark_lines_late_total", &job), Some(0.0));
    assert_eq!(
        sample(
            &body,
            "tidemark_group_lines_read_total",
            &[(
                "group",
                &format!("{}/sample/web-2/access.log", d.path().display())
            )]
        ),
        Some(((lines - 1) / 3 + 1) as f64),
        "{body}"
    );
    assert!(sample(&body, "tidemark_watermark_lag_seconds", &job).unwrap() > 0.0);
    // Checkpoints (--state-dir): at least the one at the start and one per
    // frontier move, each timed.
    assert!(
        sample(&body, "tidemark_checkpoints_total", &job).unwrap() >= 2.0,
        "{body}"
    );
    assert!(sample(&body, "tidemark_checkpoint_age_seconds", &job).unwrap() >= 0.0);
    assert!(sample(&body, "tidemark_checkpoint_duration_seconds", &job).unwrap() > 0.0);
    let sink = format!("jsonl {}/out/nginx.jsonl", d.path().display());
    assert_eq!(
        sample(&body, "tidemark_sink_windows_total", &[("sink", &sink)]),
        Some(windows as f64),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            "tidemark_sink_state",
            &[("sink", &sink), ("state", "ok")]
        ),
        Some(1.0)
    );
    // Only /metrics is served.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .get(format!("http://{}/jobs", live.addr))
        .call()
        .unwrap();
    assert_eq!(r.status(), 404);

    let bytes = sample(&body, "tidemark_read_bytes_total", &job).unwrap();
    let summary = live.stop();
    assert_eq!(summary_value(&summary, "lines read"), lines, "{summary}");
    assert_eq!(
        summary_value(&summary, "bytes read") as f64,
        bytes,
        "{summary}"
    );
    assert_eq!(
        summary_value(&summary, "windows emitted"),
        windows,
        "{summary}"
    );
    assert_eq!(
        summary_value(&summary, "malformed lines (skipped)"),
        1,
        "{summary}"
    );
}

#[test]
fn a_real_prometheus_scrapes_a_live_run() {
    let d = tempfile::tempdir().unwrap();
    let (job, demo_summary) = demo(d.path());
    let lines = summary_value(&demo_summary, "lines read") + 1;
    let live = Live::start(&job, &[]);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tidemark\n    \
         scrape_interval: 1s\n    static_configs:\n      - targets: ['{}']\n",
        live.addr
    );
    let prom = stack::prometheus(&config, None, &[]);
    // Every line, and each group's watermark (published about once a second).
    let deadline = Instant::now() + PATIENCE;
    let got = loop {
        let now = jiff::Timestamp::now().as_second();
        let got = stack::query(&prom, "tidemark_lines_read_total", now);
        let groups = stack::query(
            &prom,
            "count(tidemark_group_watermark_timestamp_seconds)",
            now,
        );
        let all_lines = got.iter().any(|(_, v)| v == &lines.to_string());
        if all_lines && groups.first().map(|(_, v)| v.as_str()) == Some("3") {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw {lines} lines and 3 groups: {got:?} {groups:?}\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (labels, _) = &got[0];
    assert_eq!(
        labels.get("job").map(String::as_str),
        Some("tidemark"),
        "{got:?}"
    );
    assert_eq!(
        labels.get("tidemark_job").map(String::as_str),
        Some("nginx"),
        "{got:?}"
    );
    // The scrape itself is healthy (no sample refused for its format).
    let now = jiff::Timestamp::now().as_second();
    let up = stack::query(&prom, "up{job=\"tidemark\"}", now);
    assert_eq!(up.first().map(|(_, v)| v.as_str()), Some("1"), "{up:?}");
    live.stop();
}

#[test]
fn an_address_in_use_fails_the_run_before_it_reads() {
    let d = tempfile::tempdir().unwrap();
    let (job, _) = demo(d.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--metrics-addr", &addr, "--no-status"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve /metrics on {addr}")),
        "{err}"
    );
    assert!(!d.path().join("out/nginx.jsonl").exists(), "it ran: {err}");
}

/// deploy/prometheus.yml is a valid Prometheus config (with its token file in
/// place, which promtool checks exists).
#[test]
fn the_example_prometheus_config_passes_promtool() {
    let d = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus.yml");
    let text = std::fs::read_to_string(&example).unwrap();
    let token = d.path().join("tidemark-metrics-token");
    std::fs::write(&token, "not-a-real-token\n").unwrap();
    const TOKEN_PATH: &str = "/etc/prometheus/tidemark-metrics-token";
    assert!(text.contains(TOKEN_PATH), "{text}");
    let config = d.path().join("prometheus.yml");
    std::fs::write(&config, text.replace(TOKEN_PATH, token.to_str().unwrap())).unwrap();
    let out = Command::new(stack::promtool())
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

/// The `group` values /metrics shows right now (any per-group family).
fn groups_shown(body: &str) -> std::collections::BTreeSet<String> {
    body.lines()
        .filter(|l| l.starts_with("tidemark_group_"))
        .filter_map(|l| Some(l.split_once("group=\"")?.1.split_once('"')?.0.to_string()))
        .collect()
}

/// A group whose file is deleted (and was read to its end) leaves /metrics:
/// app-1 … app-4 created and deleted in turn on a live run, only the one
/// still there is shown at the end (before: every file ever seen stayed).
#[test]
fn groups_of_deleted_files_leave_metrics() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let job = d.path().join("churn.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"churn\"\n[source]\nkind = \"file\"\ninclude = [\"{}/app-*.log\"]\n\
             host = {{ value = \"h\" }}\npoll_interval = \"50ms\"\n[parse]\nformat = \"nginx\"\n\
             [[metric]]\nname = \"reqs\"\nkind = \"counter\"\n[[sink]]\nkind = \"jsonl\"\n\
             path = \"{}/out.jsonl\"\nseries = \"hosts\"\n",
            logs.display(),
            d.path().display()
        ),
    )
    .unwrap();
    let live = Live::start(&job, &[]);
    let name = |i: u32| logs.join(format!("app-{i}.log")).display().to_string();
    let deadline = Instant::now() + PATIENCE;
    let wait_for = |what: &str, done: &dyn Fn(&str) -> bool| loop {
        let body = live.scrape();
        if done(&body) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for i in 1..=4 {
        std::fs::write(name(i), "not an nginx line\nnor this\n").unwrap();
        let group = name(i);
        wait_for(&format!("read app-{i}"), &|body| {
            sample(
                body,
                "tidemark_group_lines_read_total",
                &[("group", &group)],
            ) == Some(2.0)
        });
        if i > 1 {
            std::fs::remove_file(name(i - 1)).unwrap();
        }
    }
    let only_last = std::collections::BTreeSet::from([name(4)]);
    wait_for("only app-4's group left", &|body| {
        groups_shown(body) == only_last
    });
    let body = live.scrape();
    assert_eq!(sample(&body, "tidemark_lines_read_total", &[]), Some(8.0));
    live.stop();
}

/// The file and stdout sinks count what they write (after their `series`
/// filter) and their syncs or windows as batches (before: both stayed at 0).
#[test]
fn jsonl_and_stdout_sinks_count_the_records_they_write() {
    let d = tempfile::tempdir().unwrap();
    let (job, demo_summary) = demo(d.path());
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("series = \"rules\"", "series = \"all\"");
    std::fs::write(&job, text).unwrap();
    let windows = summary_value(&demo_summary, "windows emitted");
    let state = d.path().join("state");
    let live = Live::start(&job, &["--state-dir", state.to_str().unwrap()]);
    let jsonl = format!("jsonl {}/out/nginx.jsonl", d.path().display());
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let body = live.scrape();
        let synced = sample(&body, "tidemark_sink_batches_total", &[("sink", &jsonl)])
            .is_some_and(|b| b >= 1.0);
        if sample(&body, "tidemark_windows_emitted_total", &[]) == Some(windows as f64) && synced {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the run never got there:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let records = std::fs::read_to_string(d.path().join("out/nginx.jsonl"))
        .unwrap()
        .lines()
        .count() as f64;
    assert!(records > 0.0);
    for sink in [jsonl.as_str(), "stdout table"] {
        let s = [("sink", sink)];
        let handed = sample(&body, "tidemark_sink_records_total", &s);
        let written = sample(&body, "tidemark_sink_records_written_total", &s);
        assert_eq!(handed, Some(records), "{sink}\n{body}");
        assert_eq!(written, handed, "{sink}\n{body}");
    }
    assert_eq!(
        sample(
            &body,
            "tidemark_sink_batches_total",
            &[("sink", "stdout table")]
        ),
        Some(windows as f64),
        "{body}"
    );
    live.stop();
}
