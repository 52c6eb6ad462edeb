//! Alerts whose definitions change between runs, and replays over an inner
//! range (issue 12, review fixes 2 and 10): the unchanged alerts keep their
//! state, the changed ones resolve what they fired, and a replay warms its
//! alerts up before its range.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

mod alerts_common;
use alerts_common::*;

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
