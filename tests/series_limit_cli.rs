//! `max_series`, black-box: a window with more distinct series than the job allows is
//! bounded (the series that sort first are kept, whole), the lines of the rest are
//! counted per metric, each such window is warned about once, and a finite run that
//! left lines out says so in its exit status.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

const JOB: &str = r#"
name = "paths"
[source]
kind = "file"
include = ["logs/*.log"]
host = { value = "web" }
[parse]
format = "logfmt"
[window]
max_series = 100
[[metric]]
name = "hits"
kind = "counter"
labels = ["path"]
[[metric]]
name = "all_hits"
kind = "counter"
[[rule]]
record = "job:hits"
expr = "sum(hits)"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "all"
"#;

fn line(minute: u32, i: u32, path: u32) -> String {
    format!(
        "time=2026-11-20T10:{minute:02}:{:02}Z path=/p{path:03}\n",
        i * 59 / 300
    )
}

/// Two file groups of one host. Window 10:00: 300 paths in a scrambled order in
/// a.log, every third one again in b.log; 10:01: 10 paths; 10:02: paths 100..300.
fn write_logs(dir: &Path) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut a = String::new();
    for i in 0..300 {
        a.push_str(&line(0, i, i * 7919 % 300));
    }
    for i in 0..10 {
        a.push_str(&line(1, i * 30, i));
    }
    for i in 0..200 {
        a.push_str(&line(2, i, 100 + (i * 7919 % 200)));
    }
    let b: String = (0..300)
        .rev()
        .filter(|p| p % 3 == 0)
        .enumerate()
        .map(|(i, p)| line(0, i as u32 * 3, p))
        .collect();
    std::fs::write(logs.join("a.log"), a).unwrap();
    std::fs::write(logs.join("b.log"), b).unwrap();
}

fn run(dir: &Path, workers: usize) -> (Output, String) {
    let _ = std::fs::remove_file(dir.join("out.jsonl"));
    let out = tidemark()
        .arg("run")
        .arg(dir.join("job.toml"))
        .args(["--until-eof", "-w", &workers.to_string()])
        .output()
        .unwrap();
    let jsonl = std::fs::read_to_string(dir.join("out.jsonl")).unwrap_or_default();
    (out, jsonl)
}

#[test]
fn a_window_with_more_series_than_max_series_is_bounded_counted_and_warned_once() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("job.toml"), JOB).unwrap();
    write_logs(d.path());
    let (out, jsonl) = run(d.path(), 2);
    let err = String::from_utf8_lossy(&out.stderr);

    // Per window: the `hits` paths written, and the values of `all_hits` and `job:hits`.
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut values: BTreeMap<(String, String), u64> = BTreeMap::new();
    for l in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let start = v["start"].as_str().unwrap()[11..16].to_string();
        let record = v["record"].as_str().unwrap().to_string();
        if record == "hits" {
            paths
                .entry(start)
                .or_default()
                .insert(v["labels"]["path"].as_str().unwrap().to_string());
            assert!(v["value"].as_u64().unwrap() >= 1, "{l}");
        } else {
            values.insert((start, record), v["value"].as_u64().unwrap());
        }
    }
    // max_series = 100 over two metrics: each keeps at most 50 series a window,
    // the 50 that sort first, whatever order their lines came in.
    let want =
        |r: std::ops::Range<u32>| -> BTreeSet<String> { r.map(|p| format!("/p{p:03}")).collect() };
    assert_eq!(paths.get("10:00"), Some(&want(0..50)), "{err}");
    assert_eq!(paths.get("10:01"), Some(&want(0..10)), "{err}");
    assert_eq!(paths.get("10:02"), Some(&want(100..150)), "{err}");
    // A kept series is whole: /p000 has its line in a.log and in b.log.
    assert!(jsonl.contains(r#""labels":{"host":"web","path":"/p000"},"value":2"#));
    // The metric without labels loses nothing; the rule sees only kept series.
    let v = |w: &str, r: &str| values.get(&(w.to_string(), r.to_string())).copied();
    assert_eq!(v("10:00", "all_hits"), Some(400));
    assert_eq!(v("10:00", "job:hits"), Some(50 + 17));
    assert_eq!(v("10:01", "job:hits"), Some(10));
    assert_eq!(v("10:02", "job:hits"), Some(50));

    // Once per window that hit the limit (10:00 and 10:02), naming the metric.
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("max_series")).collect();
    let per_window: Vec<&str> = warnings
        .iter()
        .copied()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert_eq!(per_window.len(), 2, "{err}");
    assert!(per_window[0].contains("2026-11-20T10:00:00Z"), "{err}");
    assert!(per_window[1].contains("2026-11-20T10:02:00Z"), "{err}");
    assert!(per_window.iter().all(|l| l.contains("hits")), "{err}");
    // Counted per metric: 400 - 67 lines in 10:00, 200 - 50 in 10:02.
    assert!(
        err.lines()
            .any(|l| l.contains("series_limit_dropped") && l.ends_with("hits: 483")),
        "{err}"
    );
    assert!(err.contains("windows that reached max_series: 2"), "{err}");
    // A finite run that left lines out does not exit 0.
    assert_eq!(out.status.code(), Some(3), "{err}");

    // The same for any number of workers.
    for workers in [1, 4] {
        let (out, again) = run(d.path(), workers);
        assert_eq!(out.status.code(), Some(3));
        assert!(again == jsonl, "-w {workers} output differs from -w 2");
    }
}

#[test]
fn validate_refuses_a_max_series_below_the_number_of_metrics() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(&job, JOB.replace("max_series = 100", "max_series = 1")).unwrap();
    let out = tidemark().arg("validate").arg(&job).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("job.toml:10:14: error: "), "{err}");
    assert!(err.contains("max_series"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// `minute`'s lines: 300 paths in a scrambled order, two lines each.
fn minute_lines(minute: u32) -> String {
    (0..600)
        .map(|i| {
            format!(
                "time=2026-11-20T10:{minute:02}:{:02}Z path=/p{:03}\n",
                i / 10,
                (i * 7919 + minute * 31) % 300
            )
        })
        .collect()
}

#[test]
fn a_run_killed_and_resumed_keeps_the_same_series_under_max_series() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    // One group; windows close only by the watermark (no idle closing in the test).
    let text = JOB.replace("[window]\n", "[window]\nidle_timeout = \"1h\"\n");
    std::fs::write(&job, text).unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("a.log");
    std::fs::write(&log, (0..5).map(minute_lines).collect::<String>()).unwrap();
    let (out_file, state) = (d.path().join("out.jsonl"), d.path().join("state"));

    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .args(["-w", "2", "--checkpoint-interval", "100ms", "--state-dir"])
        .arg(&state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Windows 10:00 to 10:03 close; 10:04 stays open (its lines read, not written).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains(
            r#""start":"2026-11-20T10:03:00Z","end":"2026-11-20T10:04:00Z","record":"job:hits""#,
        )
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the live run wrote no windows"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    live.kill().unwrap(); // SIGKILL
    live.wait().unwrap();

    // More lines for the open window and the next ones, then finish from the checkpoint.
    let mut more = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(
        &mut more,
        (4..7).map(minute_lines).collect::<String>().as_bytes(),
    )
    .unwrap();
    let resumed = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "-w", "2", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        resumed.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let err = String::from_utf8_lossy(&resumed.stderr);
    let read: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("lines read: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    // It resumed: the closed windows were not read again, the open one was.
    assert!((1800..4200).contains(&read), "{err}");
    let after_kill = std::fs::read_to_string(&out_file).unwrap();

    std::fs::remove_file(&out_file).unwrap();
    let fresh = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "-w", "1"])
        .output()
        .unwrap();
    assert_eq!(fresh.status.code(), Some(3));
    let once = std::fs::read_to_string(&out_file).unwrap();
    assert!(once.contains(r#""start":"2026-11-20T10:06:00Z""#));
    assert!(
        after_kill == once,
        "output after kill -9 and resume differs from one run"
    );
}

/// The first of two finite runs over one state folder left series out; the
/// second, resumed from its checkpoint, read only new lines that fit, and exited
/// 0, as if the output were complete. The checkpoint now carries how many
/// committed windows were limited.
#[test]
fn a_finite_run_resumed_after_limited_windows_still_exits_3() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(&job, JOB).unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("a.log");
    std::fs::write(&log, (0..3).map(minute_lines).collect::<String>()).unwrap();
    let state = d.path().join("state");
    let run = || {
        tidemark()
            .arg("run")
            .arg(&job)
            .args(["--until-eof", "--state-dir"])
            .arg(&state)
            .output()
            .unwrap()
    };
    let first = run();
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(3), "{err}");
    assert!(err.contains("incomplete: 3 window(s)"), "{err}");

    // Later minutes, 10 paths each: under the limit.
    let mut more = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let few: String = (5..7)
        .flat_map(|m| (0..10).map(move |i| line(m, i * 30, i)))
        .collect();
    std::io::Write::write_all(&mut more, few.as_bytes()).unwrap();
    let second = run();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("lines read: 20"), "it resumed: {err}");
    assert_eq!(second.status.code(), Some(3), "{err}");
    assert!(err.contains("incomplete: 3 window(s)"), "{err}");
    // And so does a run with nothing new to read.
    assert_eq!(run().status.code(), Some(3));
}

/// Every window over max_series was warned about: a job always over it (a label
/// with a new value per request) wrote a multi-line warning per window, forever.
/// The first few are warned about each, then at most once an hour, saying how
/// many went unwarned; every one is counted.
#[test]
fn a_job_always_over_max_series_is_not_warned_about_once_per_window() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(&job, JOB).unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("a.log"),
        (0..12).map(minute_lines).collect::<String>(),
    )
    .unwrap();
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--until-eof")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let warned = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("more series than max_series"))
        .count();
    assert_eq!(warned, 3, "{err}");
    assert!(err.contains("at most once an hour"), "{err}");
    assert!(err.contains("windows that reached max_series: 12"), "{err}");
}
