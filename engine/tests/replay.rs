//! Replay property tests (issue 4): random multi-host logs — disorder inside the
//! bound, random rotation points, gzipped siblings, two file groups per host, and
//! optionally the oldest files moved to an `archive` folder — replayed over a
//! random range with random segment sizes and 1–3 workers. Every replayed window
//! must equal what a live `--until-eof` run (over the files before archiving)
//! wrote for that window, and nothing outside the range may be written.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::{job_from, nginx_line, run_until_eof, write_file, Collected};
use proptest::prelude::*;
use tidemark_engine::replay::plan::PlanOptions;
use tidemark_engine::replay::{
    plan_replay, run_replay, ReplayOptions, ReplayProgress, ReplayRange,
};
use tidemark_engine::ClosedWindow;

const DISORDER_S: i64 = 5;
const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z

#[derive(Debug, Clone)]
struct Event {
    t: i64,
    status: u16,
    bytes: u64,
    rt_ms: u32,
}

/// One file group's lines in reading order, and where rotation cut them.
#[derive(Debug, Clone)]
struct Stream {
    events: Vec<Event>,
    cuts: Vec<usize>,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop::collection::vec(
            (
                0i64..30,
                0..=DISORDER_S,
                prop::sample::select(vec![200u16, 200, 404, 500]),
                0u64..5000,
                0u32..2000,
                0u8..40,
            ),
            0..250,
        ),
        prop::collection::vec(0usize..250, 0..4),
    )
        .prop_map(|(steps, mut cuts)| {
            let mut max_t = T0;
            let mut events = Vec::new();
            let mut after_outlier = false;
            for (advance, back, status, bytes, rt_ms, outlier) in steps {
                max_t += advance;
                // Now and then a lone line 3–5 h ahead (issue 10 §2), never two in
                // a row (the second would confirm the first): the next line
                // rejects it, it counts in its own window, and it must not steer
                // the replay's searches.
                let t = if outlier == 0 && !after_outlier {
                    max_t + 3 * 3600 + i64::from(rt_ms) * 4
                } else {
                    max_t - back
                };
                after_outlier = outlier == 0 && !after_outlier;
                events.push(Event {
                    t,
                    status,
                    bytes,
                    rt_ms,
                });
            }
            cuts.iter_mut().for_each(|c| *c = (*c).min(events.len()));
            cuts.sort();
            cuts.dedup();
            Stream { events, cuts }
        })
}

const METRICS: &str = r#"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "bytes"
kind = "sum"
field = "body_bytes_sent"
[[metric]]
name = "rt"
kind = "histogram"
field = "request_time"
quantiles = [0.5, 0.99]
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[rule]]
record = "total:bytes"
expr = "sum(bytes)"
[[rule]]
record = "total:rt:p90"
expr = "histogram_quantile(0.9, rt)"
"#;

/// A gauge tie (two lines of one host in one window at the same second, in two
/// files) folds in stream order; archived files are not chained into streams, so
/// the gauge is checked only without archiving.
const GAUGE: &str = r#"
[[metric]]
name = "last_bytes"
kind = "gauge"
field = "body_bytes_sent"
"#;

fn replay(
    job: &tidemark_jobs::Job,
    from_min: i64,
    to_min: i64,
    workers: usize,
    segment_bytes: Option<u64>,
) -> (Vec<ClosedWindow>, tidemark_engine::JobStats, u64) {
    common::replay_minutes(job, T0, from_min, to_min, workers, segment_bytes)
}

fn in_range(live: &[ClosedWindow], from_min: i64, to_min: i64) -> Vec<ClosedWindow> {
    common::windows_in(live, T0, from_min, to_min)
}

fn job_text(archive: bool) -> String {
    format!(
        r#"
name = "replay"
[source]
kind = "file"
include = ["logs/*/*.log"]
{}
host = {{ path_regex = '/logs/(?P<host>[^/]+)/' }}
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
{METRICS}
{}
[[sink]]
kind = "stdout"
series = "all"
"#,
        if archive {
            r#"archive = ["archive/logs/*/*"]"#
        } else {
            ""
        },
        if archive { "" } else { GAUGE },
    )
}

/// Writes a stream as rotated files (oldest chunk first); returns the paths of
/// the rotated ones, oldest first.
fn write_stream(dir: &std::path::Path, name: &str, s: &Stream, gzip: bool) -> Vec<String> {
    let lines: Vec<String> = s
        .events
        .iter()
        .map(|e| nginx_line(e.t, "GET", e.status, e.bytes, e.rt_ms))
        .collect();
    let mut bounds = vec![0];
    bounds.extend(s.cuts.iter().copied());
    bounds.push(lines.len());
    let chunks: Vec<&[String]> = bounds.windows(2).map(|b| &lines[b[0]..b[1]]).collect();
    let n = chunks.len();
    let mut rotated = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let age = n - 1 - i;
        if age == 0 {
            write_file(&dir.join(name), chunk, false);
        } else {
            let gz = gzip && age >= 2;
            let file = format!("{name}.{age}{}", if gz { ".gz" } else { "" });
            write_file(&dir.join(&file), chunk, gz);
            rotated.push(file);
        }
    }
    rotated
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn replay_equals_live_for_every_window_in_range(
        hosts in prop::collection::vec((stream(), prop::option::of(stream())), 1..4),
        gzip in any::<bool>(),
        archive in any::<bool>(),
        from_min in 0i64..60,
        from_at_cut in any::<bool>(),
        len_min in 1i64..90,
        workers in 1usize..=3,
        segment_bytes in prop::option::of(64u64..4096),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut rotated = Vec::new();
        for (i, (main, extra)) in hosts.iter().enumerate() {
            let hdir = dir.path().join("logs").join(format!("web-{i}"));
            std::fs::create_dir_all(&hdir).unwrap();
            for r in write_stream(&hdir, "access.log", main, gzip) {
                rotated.push((i, r));
            }
            if let Some(extra) = extra {
                for r in write_stream(&hdir, "other.log", extra, gzip) {
                    rotated.push((i, r));
                }
            }
        }
        let job = job_from(&job_text(archive), dir.path());
        let (live, live_stats) = run_until_eof(&job, 1);
        prop_assert_eq!(live_stats.late_lines, 0);
        if archive {
            // Logrotate's `olddir`: the rotated files move elsewhere, under a
            // new name; `run` no longer sees them, `replay` finds them by glob.
            for (i, name) in &rotated {
                let to = dir.path().join("archive/logs").join(format!("web-{i}"));
                std::fs::create_dir_all(&to).unwrap();
                std::fs::rename(
                    dir.path().join("logs").join(format!("web-{i}")).join(name),
                    to.join(format!("{name}-archived")),
                )
                .unwrap();
            }
        }
        // Often start the range right where a rotation cut the stream: the
        // files on both sides of the cut then hold lines of the first window.
        // Not at an outlier: a range holding only outliers' own windows is not
        // replayed like live (docs/replay.md: an outlier counts in its own window only if
        // it lies in the bytes read for the range).
        let events = &hosts[0].0.events;
        let first_cut = hosts[0].0.cuts.iter().find(|&&c| {
            c > 0 && c < events.len() && events[c].t < T0 + 3 * 3600
        });
        let from_min = match (from_at_cut, first_cut) {
            (true, Some(&c)) => (hosts[0].0.events[c].t - T0).div_euclid(60),
            _ => from_min,
        };
        let to_min = from_min + len_min;
        let (got, stats, _) = replay(&job, from_min, to_min, workers, segment_bytes);
        prop_assert_eq!(stats.late_lines, 0);
        prop_assert_eq!(stats.parse_errors_total(), 0);
        let want = in_range(&live, from_min, to_min);
        prop_assert_eq!(got.len(), want.len(), "windows: got {:?}, want {:?}",
            got.iter().map(|w| w.start_ms).collect::<Vec<_>>(),
            want.iter().map(|w| w.start_ms).collect::<Vec<_>>());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g, w);
        }
    }
}

/// `-w 1` and `-w 2` replays, cut into many segments or few, write the same windows.
#[test]
fn parallel_segments_equal_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = T0;
    for h in 0..3 {
        let hdir = dir.path().join("logs").join(format!("web-{h}"));
        let mut lines = Vec::new();
        for i in 0..6000u64 {
            t += (i % 3) as i64;
            let jitter = (i * 7 % 5) as i64;
            lines.push(nginx_line(
                t - jitter,
                "GET",
                [200, 404, 500][(i % 3) as usize],
                i % 997,
                (i % 1500) as u32,
            ));
        }
        t = T0;
        write_file(&hdir.join("access.log.2.gz"), &lines[..2000], true);
        write_file(&hdir.join("access.log.1"), &lines[2000..4000], false);
        write_file(&hdir.join("access.log"), &lines[4000..], false);
    }
    let job = job_from(&job_text(false), dir.path());
    let (one, _, _) = replay(&job, 10, 80, 1, None);
    assert!(
        one.len() > 30,
        "the range should hold many windows: {}",
        one.len()
    );
    for (workers, seg) in [(2, Some(1000)), (2, None), (3, Some(200))] {
        let (many, _, _) = replay(&job, 10, 80, workers, seg);
        assert!(
            many == one,
            "-w {workers} with segments of {seg:?} differs from -w 1"
        );
    }
    let (live, _) = run_until_eof(&job, 2);
    assert!(
        one == in_range(&live, 10, 80),
        "replay differs from the live run"
    );
}

/// The range starts a few seconds before a rotation: the older files hold the
/// first seconds of the first window, and must not be skipped — neither the plain
/// one (by its last line) nor a compressed one (by the next file's first line).
#[test]
fn a_range_starting_just_before_a_rotation_reads_the_older_files() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("logs").join("web-0");
    let at = |secs: i64| nginx_line(T0 + secs, "GET", 200, 1, 1);
    // 10:00:00–10:05:10 in a compressed file, 10:05:11–10:05:40 in a plain one.
    let old: Vec<String> = (0..=310).step_by(10).map(at).collect();
    write_file(&hdir.join("access.log.2.gz"), &old, true);
    let mid: Vec<String> = (311..=340).map(at).collect();
    write_file(&hdir.join("access.log.1"), &mid, false);
    let new: Vec<String> = (352..=600).step_by(7).map(at).collect();
    write_file(&hdir.join("access.log"), &new, false);
    let job = job_from(&job_text(false), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    for (from, to) in [(5, 6), (5, 10), (4, 6)] {
        let (got, _, _) = replay(&job, from, to, 2, Some(100));
        assert!(
            got == in_range(&live, from, to),
            "[{from}, {to}) differs from live"
        );
    }
}

/// Regression: a segment opened its file by path, so a rotation between planning
/// and reading (rename + create) made it read the new file's bytes as the old
/// one's. Segments now open the planned inode, wherever it was renamed to.
#[test]
fn a_rotation_during_the_replay_does_not_swap_files() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("logs").join("web-0");
    let at = |secs: i64| nginx_line(T0 + secs, "GET", 200, 1, 1);
    let lines: Vec<String> = (0..600).map(at).collect();
    write_file(&hdir.join("access.log"), &lines, false);
    let job = job_from(&job_text(false), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    let range = ReplayRange::new((T0 + 60) * 1000, (T0 + 540) * 1000, 60_000).unwrap();
    let opts = PlanOptions {
        workers: 1,
        segment_bytes: Some(2000),
    };
    let plan = plan_replay(&job, range, opts).unwrap();
    // Rotate, and write a new live file with other lines (as big as the old one).
    std::fs::rename(hdir.join("access.log"), hdir.join("access.log.1")).unwrap();
    let other: Vec<String> = (0..600)
        .map(|s| nginx_line(T0 + s, "GET", 500, 9, 9))
        .collect();
    write_file(&hdir.join("access.log"), &other, false);
    let out = Collected::default();
    run_replay(
        &job,
        plan,
        ReplayOptions {
            workers: 1,
            rate_limit: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(ReplayProgress::new()),
        },
        tidemark_engine::Sinks::new(vec![Box::new(out.clone())]),
    )
    .unwrap();
    let got = out.0.lock().unwrap().clone();
    assert!(
        got == in_range(&live, 1, 9),
        "replay read the new file as the old one"
    );
}

/// Issue 10 §2: a file whose first line is stamped hours ahead (a lone outlier the
/// next line rejects) starts, for a run, at its second line. The replay used the
/// raw first time, judged the file to lie hours after the range and skipped it.
#[test]
fn a_first_line_hours_ahead_does_not_hide_its_file_from_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("logs").join("web-0");
    let mut lines = vec![nginx_line(T0 + 3 * 3600, "GET", 500, 1, 1)];
    lines.extend((1..600).map(|s| nginx_line(T0 + s, "GET", 200, s as u64, 1)));
    write_file(&hdir.join("access.log"), &lines, false);
    let job = job_from(&job_text(false), dir.path());
    let (live, live_stats) = run_until_eof(&job, 1);
    assert_eq!(live_stats.outlier_lines, 1);
    let (got, _, skipped) = replay(&job, 0, 10, 1, None);
    assert_eq!(skipped, 0, "the file was skipped");
    let want = in_range(&live, 0, 10);
    assert_eq!(want.len(), 10);
    assert!(got == want, "replay differs from the live run");
}

/// Issue 10 §2: a line stamped hours ahead inside the range's last window made the
/// search for the range's end stop at it, so the lines after it in that window
/// were never read.
#[test]
fn an_outlier_inside_the_last_window_does_not_end_the_replay_early() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("logs").join("web-0");
    // Over 256 KiB, so the file is searched rather than read whole.
    let lines: Vec<String> = (0..4000)
        .map(|s| match s {
            570 => nginx_line(T0 + s + 3 * 3600, "GET", 500, 1, 1),
            _ => nginx_line(T0 + s, "GET", 200, s as u64, 1),
        })
        .collect();
    write_file(&hdir.join("access.log"), &lines, false);
    assert!(std::fs::metadata(hdir.join("access.log")).unwrap().len() > 256 * 1024);
    let job = job_from(&job_text(false), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    let want = in_range(&live, 0, 10);
    assert_eq!(want.len(), 10);
    for segment_bytes in [None, Some(4096)] {
        let (got, _, _) = replay(&job, 0, 10, 1, segment_bytes);
        assert!(
            got == want,
            "segments of {segment_bytes:?}: replay differs from the live run in windows {:?}",
            got.iter()
                .zip(&want)
                .filter(|(g, w)| g != w)
                .map(|(g, _)| g.start_ms)
                .collect::<Vec<_>>()
        );
    }
}
