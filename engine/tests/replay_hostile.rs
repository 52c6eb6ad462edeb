//! Hostile input for `tidemark replay`, found by review: each test pinned a bug
//! (now fixed) where replay disagreed with the live run. Each test states what it
//! expects: a replayed window must equal the live `--until-eof` run's.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::{job_from, nginx_line, run_until_eof, write_file, Collected};
use tidemark_engine::replay::plan::PlanOptions;
use tidemark_engine::replay::{
    plan_replay, run_replay, ReplayOptions, ReplayProgress, ReplayRange,
};
use tidemark_engine::ClosedWindow;

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z
const FUTURE: i64 = 4_070_908_800; // 2099-01-01T00:00:00Z
const PRE_1970: i64 = -86_400; // 1969-12-31T00:00:00Z

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

fn job_text(extra_source: &str) -> String {
    format!(
        r#"
name = "review"
[source]
kind = "file"
include = ["logs/*/*.log"]
{extra_source}
host = {{ path_regex = '/logs/(?P<host>[^/]+)/' }}
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[sink]]
kind = "stdout"
series = "all"
"#
    )
}

/// One line stamped in 2099 (a bad clock) opens the file. The live run refuses it
/// (`future_timestamp`, a parse error) and counts every other line; the replay's
/// plan takes 2099 as the file's first time and skips the file ("after the range").
#[test]
fn future_stamped_first_line_does_not_hide_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![nginx_line(FUTURE, "GET", 200, 1, 1)];
    lines.extend((0..600).map(|s| nginx_line(T0 + s, "GET", 200, 1, 1)));
    write_file(&dir.path().join("logs/web-0/access.log"), &lines, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, live_stats) = run_until_eof(&job, 1);
    assert_eq!(live_stats.late_lines, 0);
    assert_eq!(live.len(), 10);
    let (got, _, skipped) = replay(&job, 2, 8, 1, None);
    assert_eq!(
        got,
        in_range(&live, 2, 8),
        "replay differs from live ({skipped} files skipped)"
    );
}

/// A 2099 line at a segment cut: the segment's floor becomes 2099 − d and every
/// other line of the segment is dropped as late. The live run refuses only the
/// 2099 line.
#[test]
fn future_stamped_line_at_a_cut_does_not_drop_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    // 20 lines of equal length; line 10 is from 2099. Cut in 2 at byte 10·L.
    let mut lines: Vec<String> = (0..20)
        .map(|i| nginx_line(T0 + 60 + i * 15, "GET", 200, 1, 1))
        .collect();
    lines[10] = nginx_line(FUTURE, "GET", 200, 1, 1);
    let l = lines[0].len();
    assert!(lines.iter().all(|x| x.len() == l));
    write_file(&dir.path().join("logs/web-0/access.log"), &lines, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, live_stats) = run_until_eof(&job, 1);
    assert_eq!(live_stats.late_lines, 0);
    let (got, stats, _) = replay(&job, 0, 10, 1, Some(10 * l as u64));
    assert_eq!(stats.late_lines, 0, "lines dropped as late in the replay");
    assert!(got == in_range(&live, 0, 10), "replay differs from live");
}

/// A last line stamped before 1970 (the live run refuses it:
/// `timestamp_before_1970`) makes the plan think the file ends before the range.
#[test]
fn pre_1970_last_line_does_not_hide_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..600)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    lines.push(nginx_line(PRE_1970, "GET", 200, 1, 1));
    write_file(&dir.path().join("logs/web-0/access.log"), &lines, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    assert_eq!(live.len(), 10);
    let (got, _, skipped) = replay(&job, 2, 8, 1, None);
    assert_eq!(
        got,
        in_range(&live, 2, 8),
        "replay differs from live ({skipped} files skipped)"
    );
}

/// The live file opens with a pre-1970 line: the plan's "before the range" rule
/// (every line of an older file ≤ first line of a newer one + d) then skips the
/// rotated sibling that holds the whole range.
#[test]
fn pre_1970_first_line_of_newer_file_does_not_skip_older_files() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<String> = (0..600)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&dir.path().join("logs/web-0/access.log.1"), &old, false);
    let mut new = vec![nginx_line(PRE_1970, "GET", 200, 1, 1)];
    new.extend((600..900).map(|s| nginx_line(T0 + s, "GET", 200, 1, 1)));
    write_file(&dir.path().join("logs/web-0/access.log"), &new, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    assert_eq!(live.len(), 15);
    let (got, _, skipped) = replay(&job, 2, 8, 1, None);
    assert_eq!(
        got,
        in_range(&live, 2, 8),
        "replay differs from live ({skipped} files skipped)"
    );
}

/// An archive glob that also matches a rotated sibling of a live group, spelled
/// differently (`..`): the file is read twice and every line counted twice.
#[test]
fn archive_glob_overlapping_include_is_not_double_counted() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<String> = (0..600)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&dir.path().join("logs/web-0/access.log.1"), &old, false);
    let new: Vec<String> = (600..900)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&dir.path().join("logs/web-0/access.log"), &new, false);
    let plain = job_from(&job_text(""), dir.path());
    let (live, _) = run_until_eof(&plain, 1);
    let job = job_from(
        &job_text(r#"archive = ["logs/web-0/../web-0/access.log.*"]"#),
        dir.path(),
    );
    let (got, _, _) = replay(&job, 2, 8, 1, None);
    assert!(
        got == in_range(&live, 2, 8),
        "replay differs from live: {:?}",
        got.first()
    );
}

/// A `.gz` sibling whose stream is damaged, wholly before the range. The live run
/// warns, skips the rest of it and goes on; the replay cannot even be planned
/// (or fails), though the file holds no line of the range.
#[test]
fn damaged_gzip_outside_the_range_does_not_fail_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("logs/web-0");
    std::fs::create_dir_all(&h).unwrap();
    // Gzip magic, then garbage.
    std::fs::write(
        h.join("access.log.2.gz"),
        b"\x1f\x8b\x08\x00garbage-garbage-garbage",
    )
    .unwrap();
    let old: Vec<String> = (0..600)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&h.join("access.log.1"), &old, false);
    let new: Vec<String> = (600..900)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&h.join("access.log"), &new, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, _) = run_until_eof(&job, 1);
    assert_eq!(live.len(), 15);
    let range = ReplayRange::new((T0 + 120) * 1000, (T0 + 480) * 1000, 60_000).unwrap();
    let plan = plan_replay(
        &job,
        range,
        PlanOptions {
            workers: 1,
            segment_bytes: None,
        },
    );
    assert!(plan.is_ok(), "plan failed: {:?}", plan.err());
}

/// A `.gz` cut short (a compressor still writing, a full disk) inside the range:
/// the error blames copytruncate.
#[test]
fn a_truncated_gzip_counts_the_lines_before_the_damage_like_live() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("logs/web-0");
    let old: Vec<String> = (0..3000)
        .map(|s| nginx_line(T0 + s / 5, "GET", 200, s as u64, 1))
        .collect();
    write_file(&h.join("access.log.1.gz"), &old, true);
    let bytes = std::fs::read(h.join("access.log.1.gz")).unwrap();
    std::fs::write(h.join("access.log.1.gz"), &bytes[..bytes.len() * 3 / 4]).unwrap();
    let new: Vec<String> = (600..900)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&h.join("access.log"), &new, false);
    let job = job_from(&job_text(""), dir.path());
    let (live, live_stats) = run_until_eof(&job, 1);
    eprintln!(
        "live: {} windows, read errors? lines {}",
        live.len(),
        live_stats.lines_read
    );
    let range = ReplayRange::new(T0 * 1000, (T0 + 900) * 1000, 60_000).unwrap();
    let plan = plan_replay(
        &job,
        range,
        PlanOptions {
            workers: 1,
            segment_bytes: None,
        },
    )
    .unwrap();
    let out = Collected::default();
    let r = run_replay(
        &job,
        plan,
        ReplayOptions {
            workers: 1,
            rate_limit: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(ReplayProgress::new()),
        },
        tidemark_engine::Sinks::new(vec![Box::new(out.clone())]),
    );
    // Not fatal, as in a live run: the lines before the damage count, and the
    // windows equal the live run's.
    assert!(r.is_ok(), "a damaged .gz failed the replay: {:?}", r.err());
    let got = out.0.lock().unwrap().clone();
    assert!(!got.is_empty());
    assert!(
        got == live,
        "replay differs from the live run over a damaged .gz"
    );
}

/// Issue 11 §2: the replay source dropped the parser's build error (`.ok()`) and
/// failed with "cannot build the job's line parser" alone, so the report did not
/// say why. The parse settings change here between planning and the run (as a
/// library caller may do): the plan's parser needs no field, the run's needs
/// `status`, which the regex never captures.
#[test]
fn replay_parser_error_keeps_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hdir = dir.path().join("logs").join("web-0");
    let lines: Vec<String> = (0..120)
        .map(|s| nginx_line(T0 + s, "GET", 200, 1, 1))
        .collect();
    write_file(&hdir.join("access.log"), &lines, false);
    let mut job = job_from(&job_text(""), dir.path());
    let range = ReplayRange::new(T0 * 1000, (T0 + 120) * 1000, 60_000).unwrap();
    let opts = PlanOptions {
        workers: 1,
        segment_bytes: None,
    };
    let plan = plan_replay(&job, range, opts).unwrap();
    job.parse.format = tidemark_jobs::Format::Regex(r"\[(?P<time_local>[^\]]+)\]".into());
    let e = run_replay(
        &job,
        plan,
        ReplayOptions {
            workers: 1,
            rate_limit: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(ReplayProgress::new()),
        },
        tidemark_engine::Sinks::new(vec![Box::new(Collected::default())]),
    )
    .expect_err("a parser that cannot be built fails the replay");
    let msg = e.to_string();
    assert!(
        msg.contains("cannot build the job's line parser") && msg.contains("`status`"),
        "the report must say why the parser failed: {msg}"
    );
}
