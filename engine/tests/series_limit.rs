//! `max_series` in the engine: which series a window keeps does not depend on the
//! number of workers, on live vs replay, or on how a replay cuts the files into
//! segments; a kept series is whole (every group's lines of it); rules see only kept
//! series; every line of a series left out is counted under its metric.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{flatten, job_from, replay_minutes, run_until_eof, windows_in, write_file};
use tidemark_engine::ClosedWindow;

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z
const MINUTES: i64 = 4;

const JOB: &str = r#"
name = "limit"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = { field = "h" }
[parse]
format = "logfmt"
[window]
max_series = MAX
[[metric]]
name = "hits"
kind = "counter"
labels = ["path"]
[[metric]]
name = "last"
kind = "gauge"
field = "ms"
labels = ["path"]
[[metric]]
name = "lat"
kind = "histogram"
field = "ms"
[[rule]]
record = "path:hits"
expr = "sum by (path) (hits)"
[[rule]]
record = "job:lat:p90"
expr = "histogram_quantile(0.9, lat)"
[[sink]]
kind = "stdout"
series = "all"
"#;

/// Three folders, each a live file and a rotated one; every line names one of
/// three hosts, so several groups hold lines of the same series. Deterministic.
fn write_logs(dir: &std::path::Path) {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for folder in ["a", "b", "c"] {
        let mut lines = Vec::new();
        let mut t = T0;
        while t < T0 + MINUTES * 60 {
            t += next(2) as i64;
            let shown = t - next(3) as i64; // disorder within the 5 s bound
            let ts = jiff::Timestamp::from_second(shown).unwrap();
            lines.push(format!(
                "time={ts} h=web-{} path=/p{:03} ms={}\n",
                next(3),
                next(150),
                next(1000)
            ));
        }
        let half = lines.len() / 2;
        let d = dir.join("logs").join(folder);
        write_file(&d.join("access.log.1"), &lines[..half], false);
        write_file(&d.join("access.log"), &lines[half..], false);
    }
}

fn job(dir: &std::path::Path, max_series: usize) -> tidemark_jobs::Job {
    job_from(&JOB.replace("MAX", &max_series.to_string()), dir)
}

type Flat = BTreeMap<common::SeriesKey, f64>;

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// What a limited run must write, from an unlimited one: per window, the `share`
/// (host, path) series of `hits` and `last` that sort first, with their full values;
/// `path:hits` summed over the kept `hits` series only; the rest as it was. Also the
/// lines left out per metric.
fn expected(full: &Flat, share: usize) -> (Flat, BTreeMap<String, u64>) {
    let mut keys: BTreeMap<i64, BTreeSet<(String, String)>> = BTreeMap::new();
    for (w, record, labels) in full.keys() {
        if record == "hits" {
            keys.entry(*w).or_default().insert((
                label(labels, "host").to_string(),
                label(labels, "path").to_string(),
            ));
        }
    }
    let kept = |w: i64, labels: &[(String, String)]| {
        let key = (
            label(labels, "host").to_string(),
            label(labels, "path").to_string(),
        );
        keys[&w].iter().take(share).any(|k| *k == key)
    };
    let mut want = Flat::new();
    let mut dropped = BTreeMap::new();
    for ((w, record, labels), v) in full {
        match record.as_str() {
            "hits" | "last" if !kept(*w, labels) => {
                if record == "hits" {
                    // Every line has both: `last` holds as many lines as `hits`.
                    *dropped.entry("hits".to_string()).or_default() += *v as u64;
                    *dropped.entry("last".to_string()).or_default() += *v as u64;
                }
            }
            "path:hits" => {}
            _ => {
                want.insert((*w, record.clone(), labels.clone()), *v);
            }
        }
    }
    for ((w, record, labels), v) in full {
        if record == "hits" && kept(*w, labels) {
            let path = vec![("path".to_string(), label(labels, "path").to_string())];
            *want.entry((*w, "path:hits".to_string(), path)).or_default() += v;
        }
    }
    (want, dropped)
}

#[test]
fn series_kept_under_max_series_are_whole_and_the_same_for_any_workers_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let (full_windows, full_stats) = run_until_eof(&job(dir.path(), 1_000_000), 2);
    let full = flatten(&full_windows);
    assert!(full_stats.series_limit_dropped.is_empty());
    // 3 metrics share 60: 20 series each per window, of about 3 × 150 there are.
    let limited = job(dir.path(), 60);
    let (windows, stats) = run_until_eof(&limited, 1);
    let (want, dropped) = expected(&full, 20);
    assert_eq!(flatten(&windows), want);
    assert_eq!(stats.series_limit_dropped, dropped);
    let hits_per_window = |ws: &[ClosedWindow]| -> Vec<usize> {
        ws.iter()
            .map(|w| w.series.iter().filter(|s| &*s.record == "hits").count())
            .collect()
    };
    // The first and last windows hold the few lines stamped across the minute.
    let over: Vec<usize> = hits_per_window(&full_windows)
        .into_iter()
        .map(|n| n.min(20))
        .collect();
    assert_eq!(hits_per_window(&windows), over);
    let limited_windows = hits_per_window(&full_windows)
        .iter()
        .filter(|&&n| n > 20)
        .count() as u64;
    assert!(limited_windows >= MINUTES as u64 - 1, "{over:?}");
    assert_eq!(stats.series_limited_windows, limited_windows);

    for workers in [2, 4] {
        let (again, s) = run_until_eof(&limited, workers);
        assert!(again == windows, "-w {workers} differs from -w 1");
        assert_eq!(s.series_limit_dropped, dropped, "-w {workers}");
    }
    // A replay cuts each file into segments of a few KiB, read by other workers:
    // a window's series come from several pieces of each group.
    for (workers, segment_bytes) in [(1, None), (3, Some(2048)), (2, Some(700))] {
        let (replayed, s, _) = replay_minutes(&limited, T0, 0, MINUTES, workers, segment_bytes);
        assert!(
            replayed == windows_in(&windows, T0, 0, MINUTES),
            "replay -w {workers}, segments {segment_bytes:?}, differs from the live run"
        );
        assert_eq!(s.series_limit_dropped, dropped, "replay -w {workers}");
        assert_eq!(s.series_limited_windows, limited_windows);
    }
}
