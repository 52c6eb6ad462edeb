//! Alerts through the CLI (issue 12 §4): the alert transcript a jsonl sink
//! writes is the same, byte for byte (records and transcript lines in window
//! order), when the job runs uninterrupted, when it is killed with SIGKILL
//! mid-stream and resumed from its checkpoints several times, and when the
//! range is replayed with `tidemark replay` — a replay is a back-test.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

mod alerts_common;
use alerts_common::*;

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
    std::io::Write::write_all(&mut more, &full.as_bytes()[cut..]).unwrap();
    ok("resumed", tidemark_run(&path, &state).output().unwrap());
    let resumed = std::fs::read_to_string(d.path().join("out/resumed.jsonl")).unwrap();
    assert_same("resumed", &resumed, &unpaced);
}
