//! Alerts through the CLI (issue 12 §4): the alert transcript a jsonl sink
//! writes is the same, byte for byte (records and transcript lines in window
//! order), when the job runs uninterrupted, when it is killed with SIGKILL
//! mid-stream and resumed from its checkpoints several times, and when the
//! range is replayed with `tidemark replay` — a replay is a back-test.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// 2026-11-20T10:00:00Z.
const T0: i64 = 1_795_168_800;
const MINUTES: i64 = 150;

fn job(dir: &Path, out: &str, rate_limit: &str) -> String {
    format!(
        r#"
name = "alerting"
[source]
kind = "file"
include = ["{logs}/*.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)\.log' }}
{rate_limit}
[parse]
format = "json"
[window]
size = "1m"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "latency"
kind = "gauge"
field = "ms"
[[rule]]
record = "status:reqs:sum1m"
expr = "sum by (status) (reqs)"
[[alert]]
name = "HighErrorRate"
expr = 'status:reqs:sum1m{{status=~"5.."}} > 20'
for = "2m"
keep_firing_for = "1m"
resolve_below = 12
labels = {{ severity = "page" }}
annotations = {{ summary = "{{{{ $labels.status }}}} errors at {{{{ $value }}}}/min" }}
[[alert]]
name = "SlowHost"
expr = 'latency > 300'
average_over = "3m"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "rules"
alerts = true
"#,
        logs = dir.join("logs").display(),
    )
}

/// A deterministic pseudo-random sequence (xorshift), seeded.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Two hosts' logs: per minute some 200s and a varying number of 503s (bursts
/// that fire and resolve the error alert), a latency gauge, and stretches of
/// minutes with no line at all (gap windows, in which alerts resolve).
fn write_logs(dir: &Path, seed: u64) {
    let mut rng = Rng(seed | 1);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    for host in ["a", "b"] {
        let mut text = String::new();
        for m in 0..MINUTES {
            if (40..46).contains(&m) || (100..103).contains(&m) {
                continue;
            }
            let burst = (m / 10) % 3 == 1;
            let errors = if burst {
                8 + rng.below(10)
            } else {
                rng.below(6)
            };
            let ok = 60 + rng.below(40);
            let slow = (m / 7) % 4 == 2;
            for i in 0..(ok + errors) {
                let t = T0 + m * 60 + (i * 59 / (ok + errors)) as i64;
                let ts = jiff::Timestamp::from_second(t).unwrap();
                let status = if i % 7 == 3 && i / 7 < errors {
                    "503"
                } else {
                    "200"
                };
                let ms = if slow {
                    250 + rng.below(200)
                } else {
                    20 + rng.below(100)
                };
                writeln!(
                    text,
                    r#"{{"time":"{ts}","status":"{status}","ms":{ms},"host":"{host}"}}"#
                )
                .unwrap();
            }
        }
        std::fs::write(dir.join(format!("logs/{host}.log")), text).unwrap();
    }
}

fn tidemark_run(job: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.arg("run")
        .arg(job)
        .args(["--until-eof", "-w", "2", "--checkpoint-interval", "20ms"])
        .arg("--state-dir")
        .arg(state)
        .env("TIDEMARK_LOG", "warn")
        .stdout(Stdio::null());
    c
}

fn ok(what: &str, o: Output) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn checkpoint_id(state: &Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(state.join("alerting").join("checkpoint")).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

/// Waits (generous deadline; the loop ends at the event) until `done`, or
/// returns false if the child exited first.
fn wait_until(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn the_transcript_is_the_same_live_resumed_after_sigkill_and_replayed() {
    let seed: u64 = std::env::var("ALERTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!("alerts_cli: seed {seed} (ALERTS_SEED to repeat)");
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed);

    // Uninterrupted.
    let whole = d.path().join("whole.toml");
    std::fs::write(&whole, job(d.path(), "out/whole.jsonl", "")).unwrap();
    ok(
        "uninterrupted run",
        tidemark_run(&whole, &d.path().join("state-whole"))
            .output()
            .unwrap(),
    );
    let want = std::fs::read_to_string(d.path().join("out/whole.jsonl")).unwrap();
    let firing = want.matches(r#""state":"firing""#).count();
    let resolved = want.matches(r#""state":"resolved""#).count();
    assert!(
        firing >= 4 && resolved >= 4,
        "the data fires and resolves alerts: {firing} firing, {resolved} resolved\n{want}"
    );
    assert!(want.contains(r#""alert":"SlowHost""#), "{want}");
    assert!(
        want.contains(r#""annotations":{"summary":"503 errors at "#),
        "{want}"
    );

    // Killed with SIGKILL after each new checkpoint (reads are paced so the
    // run is mid-stream), then finished.
    let killed = d.path().join("killed.toml");
    std::fs::write(
        &killed,
        job(d.path(), "out/killed.jsonl", "rate_limit = \"400KiB/s\""),
    )
    .unwrap();
    let state = d.path().join("state-killed");
    let out = d.path().join("out/killed.jsonl");
    let len = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let mut rng = Rng(seed ^ 0x5eed);
    let mut kills = 0;
    for _ in 0..5 {
        let mut child = tidemark_run(&killed, &state)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let before = len();
        let cp = checkpoint_id(&state);
        let alive = wait_until(&mut child, "no window written", || len() > before)
            && wait_until(&mut child, "no checkpoint after it", || {
                checkpoint_id(&state).is_some_and(|id| Some(id) != cp)
            });
        if !alive {
            break; // it finished: nothing left to interrupt
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 2, "the run was interrupted only {kills} times");
    ok(
        "final resumed run",
        tidemark_run(&killed, &state).output().unwrap(),
    );
    let got = std::fs::read_to_string(&out).unwrap();
    assert_same("after SIGKILLs", &got, &want);

    // A replay of the whole range is a back-test: the same transcript.
    let replayed = d.path().join("out/replayed.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&whole)
        .args([
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T14:00:00Z",
            "-w",
            "2",
            "--progress",
            "none",
            "--output",
        ])
        .arg(&replayed)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    ok("replay", o);
    assert_same(
        "replayed",
        &std::fs::read_to_string(&replayed).unwrap(),
        &want,
    );
    eprintln!(
        "alerts_cli: {kills} kills, {firing} firing and {resolved} resolved lines, {} bytes",
        want.len()
    );
}

fn assert_same(what: &str, got: &str, want: &str) {
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        let show = |s: &str| {
            s.lines()
                .skip(first.saturating_sub(2))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{what}: the output differs from the uninterrupted run's at line {}\n--- got\n{}\n--- want\n{}",
            first + 1,
            show(got),
            show(want)
        );
    }
}

#[test]
fn a_changed_alert_on_resume_starts_its_state_fresh_with_a_warning_not_a_refusal() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), 3);
    let path = d.path().join("job.toml");
    let text = job(d.path(), "out/a.jsonl", "");
    std::fs::write(&path, &text).unwrap();
    let state = d.path().join("state");
    let run = || tidemark_run(&path, &state).output().unwrap();
    ok("first run", run());
    // Unchanged: resumes quietly.
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok("unchanged resume", o);
    assert!(!err.contains("alert state starts fresh"), "{err}");
    // Alerts decide no window's records: a changed threshold is not refused
    // like a changed window size, but the saved state no longer applies.
    std::fs::write(&path, text.replace("> 20'", "> 25'")).unwrap();
    let o = run();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok("resume with a changed alert", o);
    assert!(err.contains("alert state starts fresh"), "{err}");
}

/// A live run (no `--until-eof`): once its files went quiet, the idle group
/// stops holding the windows back, the windows after the last line close
/// without records, and the alert whose series stopped resolves in the first of
/// them, with no new line needed.
#[test]
fn a_live_alert_resolves_when_its_series_stops_without_waiting_for_a_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    let now = jiff::Timestamp::now().as_second();
    // Ten minutes of 30 errors a minute, ending 5 minutes ago.
    let start = (now / 60 - 15) * 60;
    let mut text = String::new();
    for m in 0..10 {
        for i in 0..30 {
            let ts = jiff::Timestamp::from_second(start + m * 60 + i).unwrap();
            writeln!(text, r#"{{"time":"{ts}","status":"503","ms":10}}"#).unwrap();
        }
    }
    std::fs::write(d.path().join("logs/a.log"), text).unwrap();
    let path = d.path().join("job.toml");
    let job = job(d.path(), "out/live.jsonl", "")
        .replace("idle_timeout = \"1h\"", "idle_timeout = \"1s\"");
    std::fs::write(&path, job).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&path)
        .env("TIDEMARK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = d.path().join("out/live.jsonl");
    let read = || std::fs::read_to_string(&out).unwrap_or_default();
    let resolved = wait_until(&mut child, "the alert did not resolve", || {
        read().contains(r#""alert":"HighErrorRate","state":"resolved""#)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(resolved, "tidemark exited early: {}", read());
    let text = read();
    let line = |state: &str| {
        text.lines()
            .find(|l| l.contains(&format!(r#""alert":"HighErrorRate","state":"{state}""#)))
            .unwrap_or_else(|| panic!("no {state} line: {text}"))
            .to_string()
    };
    // Fired after `for` (2 windows); kept firing (keep_firing_for = 1m) in the
    // first window without records, resolved in the second: no line came
    // after the last one.
    let field = |l: &str, k: &str| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v[k].as_str().unwrap().to_string()
    };
    let at = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
    assert_eq!(field(&line("firing"), "start"), at(start + 60));
    assert_eq!(field(&line("resolved"), "start"), at(start + 660));
    assert!(line("resolved").contains(r#""value":null"#), "{text}");
}

/// Review finding (issue 12 fix 1): the transcript depended on how fast the
/// input was read. Ten minutes of a slow gauge, then thirty minutes of lines
/// without its field: they move the watermark but feed no series. A paced run
/// saw a frontier past the last window with records mid-run and resolved the
/// alert in the gap windows; a full-speed run and a replay saw only the end of
/// input and never resolved it. Now all three end at the same bound (the final
/// watermark's first open window) and write the same transcript.
#[test]
fn trailing_lines_without_the_metric_give_the_same_transcript_paced_unpaced_and_replayed() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    let mut text = String::new();
    for m in 0..40 {
        for i in 0..30 {
            let ts = jiff::Timestamp::from_second(T0 + m * 60 + i * 2).unwrap();
            if m < 10 {
                writeln!(text, r#"{{"time":"{ts}","ms":200,"path":"/a/{i}"}}"#).unwrap();
            } else {
                writeln!(text, r#"{{"time":"{ts}","path":"/a/{i}/padding"}}"#).unwrap();
            }
        }
    }
    std::fs::write(d.path().join("logs/a.log"), text).unwrap();
    let job = |out: &str, rate_limit: &str| {
        format!(
            r#"
name = "trailing"
[source]
kind = "file"
include = ["{logs}/*.log"]
{rate_limit}
[parse]
format = "json"
[window]
size = "1m"
[[metric]]
name = "lat"
kind = "gauge"
field = "ms"
[[alert]]
name = "Slow"
expr = 'lat > 100'
[[sink]]
kind = "jsonl"
path = "{out}"
series = "none"
alerts = true
"#,
            logs = d.path().join("logs").display(),
        )
    };
    let run = |name: &str, rate_limit: &str| {
        let path = d.path().join(format!("{name}.toml"));
        std::fs::write(&path, job(&format!("out/{name}.jsonl"), rate_limit)).unwrap();
        ok(
            name,
            tidemark_run(&path, &d.path().join(format!("state-{name}")))
                .output()
                .unwrap(),
        );
        (
            path.clone(),
            std::fs::read_to_string(d.path().join(format!("out/{name}.jsonl"))).unwrap(),
        )
    };
    let (path, unpaced) = run("unpaced", "");
    let (_, paced) = run("paced", "rate_limit = \"20KiB/s\"");
    let replayed = d.path().join("out/replayed.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&path)
        .args([
            "--from",
            "2026-11-20T09:00:00Z",
            "--to",
            "2026-11-20T12:00:00Z",
            "-w",
            "2",
            "--progress",
            "none",
            "--output",
        ])
        .arg(&replayed)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    ok("replay", o);
    let replayed = std::fs::read_to_string(&replayed).unwrap();
    eprintln!("unpaced:\n{unpaced}paced:\n{paced}replayed:\n{replayed}");
    // The alert resolves in the first window without the gauge: the windows
    // after it closed, whatever the speed the lines moving the watermark came at.
    let resolved = r#""alert":"Slow","state":"resolved""#;
    let line = unpaced
        .lines()
        .find(|l| l.contains(resolved))
        .unwrap_or_else(|| panic!("the full-speed run never resolves: {unpaced}"));
    assert!(line.contains(r#""start":"2026-11-20T10:10:00Z""#), "{line}");
    assert_same("paced", &paced, &unpaced);
    assert_same("replayed", &replayed, &unpaced);

    // Resumed: a first run ends inside the trailing lines (its checkpoint is
    // at its own end bound, with the alert state there), the rest is appended
    // and the run resumed: the same transcript.
    let full = std::fs::read_to_string(d.path().join("logs/a.log")).unwrap();
    let cut = full.match_indices('\n').nth(20 * 30 - 1).unwrap().0 + 1;
    std::fs::create_dir_all(d.path().join("later")).unwrap();
    let later = d.path().join("later/a.log");
    std::fs::write(&later, &full[..cut]).unwrap();
    let path = d.path().join("resumed.toml");
    let text = job("out/resumed.jsonl", "").replace(
        &d.path().join("logs").display().to_string(),
        &d.path().join("later").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    let state = d.path().join("state-resumed");
    ok("first part", tidemark_run(&path, &state).output().unwrap());
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&later)
        .unwrap();
    std::io::Write::write_all(&mut more, full[cut..].as_bytes()).unwrap();
    ok("resumed", tidemark_run(&path, &state).output().unwrap());
    let resumed = std::fs::read_to_string(d.path().join("out/resumed.jsonl")).unwrap();
    assert_same("resumed", &resumed, &unpaced);
}

/// Review finding (issue 12 fix 2): changing one alert reset every alert's
/// state on resume — an unchanged alert fired a second time without having
/// resolved — and the changed alert's firing instances were never resolved.
/// Now each alert's state is kept by name with its own fingerprint.
#[test]
fn changing_one_alert_keeps_the_others_state_and_resolves_its_own_firing_instances() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    let minutes = |from: i64, to: i64| {
        let mut text = String::new();
        for m in from..to {
            for i in 0..30 {
                let ts = jiff::Timestamp::from_second(T0 + m * 60 + i).unwrap();
                writeln!(text, r#"{{"time":"{ts}","status":"503","ms":400}}"#).unwrap();
            }
        }
        text
    };
    let log = d.path().join("logs/a.log");
    std::fs::write(&log, minutes(0, 10)).unwrap();
    let path = d.path().join("job.toml");
    let text = job(d.path(), "out/a.jsonl", "");
    std::fs::write(&path, &text).unwrap();
    let state = d.path().join("state");
    ok("first run", tidemark_run(&path, &state).output().unwrap());
    let out = || std::fs::read_to_string(d.path().join("out/a.jsonl")).unwrap();
    let first = out();
    for alert in ["HighErrorRate", "SlowHost"] {
        let firing = format!(r#""alert":"{alert}","state":"firing""#);
        assert_eq!(first.matches(&firing).count(), 1, "{first}");
    }
    // SlowHost changes (its threshold); HighErrorRate is only respaced.
    let changed = text
        .replace("'latency > 300'", "'latency > 350'")
        .replace("}} > 20'", "}}>20'");
    assert_ne!(changed, text);
    std::fs::write(&path, changed).unwrap();
    let mut more = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut more, minutes(10, 20).as_bytes()).unwrap();
    let o = tidemark_run(&path, &state).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok("resume with a changed alert", o);
    let all = out();
    let kinds: Vec<(String, String, String)> = all
        .lines()
        .filter(|l| l.contains(r#""state":"#))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("alert"), s("state"), s("start"))
        })
        .collect();
    let at = |m: i64| {
        jiff::Timestamp::from_second(T0 + m * 60)
            .unwrap()
            .to_string()
    };
    let of = |alert: &str| {
        kinds
            .iter()
            .filter(|k| k.0 == alert)
            .map(|k| (k.1.as_str(), k.2.clone()))
            .collect::<Vec<_>>()
    };
    // Unchanged: it fired once and still fires — no second `firing`.
    assert_eq!(of("HighErrorRate"), vec![("firing", at(1))], "{all}");
    // Changed: the old instance is resolved at the resume window, before the
    // new definition fires afresh there.
    assert_eq!(
        of("SlowHost"),
        vec![("firing", at(0)), ("resolved", at(10)), ("firing", at(10))],
        "{all}"
    );
    assert!(err.contains("SlowHost: its definition"), "{err}");
    assert!(!err.contains("HighErrorRate: its definition"), "{err}");
}

/// Review item (issue 12 fix 10): a replay over an inner range used to start
/// its alerts fresh at the range's start, so an alert already pending or
/// firing there fired late (or not at all). It now reads the longest `for`,
/// `keep_firing_for` or `average_over` before the range for the alerts only:
/// the records are the uninterrupted run's, and so is every alert line, except
/// that an instance already firing at the start is written as `firing` in the
/// range's first window (with the time it really started).
#[test]
fn a_replay_over_an_inner_range_warms_its_alerts_up_before_the_range() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), 12);
    let whole = d.path().join("whole.toml");
    std::fs::write(&whole, job(d.path(), "out/whole.jsonl", "")).unwrap();
    ok(
        "uninterrupted run",
        tidemark_run(&whole, &d.path().join("state"))
            .output()
            .unwrap(),
    );
    let lines = |path: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&d.path().join("out/whole.jsonl"));
    let at = |m: i64| {
        jiff::Timestamp::from_second(T0 + m * 60)
            .unwrap()
            .to_string()
    };
    // Minute 72 is inside an error burst (minutes 70-79, `for` = 2m) and a slow
    // stretch (70-76, averaged over 3m): both alerts fire at its start.
    let (from, to) = (at(72), at(132));
    let replayed = d.path().join("out/replayed.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&whole)
        .args([
            "--from",
            &from,
            "--to",
            &to,
            "-w",
            "2",
            "--progress",
            "none",
            "--output",
        ])
        .arg(&replayed)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    ok("replay", o);
    let got = lines(&replayed);
    let start = |v: &serde_json::Value| v["start"].as_str().unwrap().to_string();
    let inside = |v: &serde_json::Value| start(v) >= from && start(v) < to;
    let records = |vs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        vs.iter()
            .filter(|v| v.get("record").is_some())
            .cloned()
            .collect()
    };
    let want_records: Vec<_> = records(&all).into_iter().filter(inside).collect();
    assert!(!want_records.is_empty());
    assert_eq!(records(&got), want_records, "the records are the run's");
    // Alert lines as (alert, labels, state, since).
    let key = |v: &serde_json::Value| {
        (
            v["alert"].as_str().unwrap().to_string(),
            v["labels"].to_string(),
            v["state"].as_str().unwrap().to_string(),
            v["since"].as_str().unwrap().to_string(),
        )
    };
    let alerts = |vs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        vs.iter()
            .filter(|v| v.get("alert").is_some())
            .cloned()
            .collect()
    };
    // What fires at the range's start in the run: its last line before it.
    let mut firing_at_start = std::collections::BTreeMap::new();
    for v in alerts(&all).iter().filter(|v| start(v) < from) {
        let (alert, labels, state, since) = key(v);
        if state == "firing" {
            firing_at_start.insert((alert, labels), since);
        } else {
            firing_at_start.remove(&(alert, labels));
        }
    }
    assert!(
        !firing_at_start.is_empty(),
        "the data has alerts firing at the start: {firing_at_start:?}"
    );
    let carried: Vec<_> = firing_at_start
        .iter()
        .map(|((a, l), since)| (a.clone(), l.clone(), "firing".to_string(), since.clone()))
        .collect();
    let got_alerts = alerts(&got);
    let (first, rest): (Vec<_>, Vec<_>) = got_alerts
        .iter()
        .enumerate()
        .partition(|(i, v)| *i < carried.len() && start(v) == from);
    let first: Vec<_> = first.into_iter().map(|(_, v)| key(v)).collect();
    assert_eq!(first, carried, "what fired before the range, first");
    let rest: Vec<_> = rest.into_iter().map(|(_, v)| key(v)).collect();
    let want: Vec<_> = alerts(&all).iter().filter(|v| inside(v)).map(key).collect();
    assert_eq!(rest, want, "then the run's alert lines");
    assert!(err.contains("the alerts warm up from"), "{err}");
}
