use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::stats::sink::{Rejection, SinkState};
use crate::stats::{GroupGauges, SinkMeter, SinkMeters};

/// A job's stats with something in every corner /metrics reports on.
fn busy_job() -> JobStats {
    let mut s = JobStats {
        lines_read: 120,
        bytes_read: 9_000,
        lines_counted: 100,
        late_lines: 7,
        oversize_lines: 2,
        outlier_lines: 1,
        windows_emitted: 4,
        frontier_ms: Some(1_795_168_920_000),
        checkpoints_written: 3,
        last_checkpoint: Some((1_795_168_925_000, 12_500)),
        duplicate_paths: 2,
        series_limited_windows: 1,
        alerts_evaluated: 8,
        alert_transitions: 3,
        alerts_firing: 1,
        ..JobStats::default()
    };
    s.parse_errors.insert("bad timestamp", 5);
    s.parse_errors.insert("too few fields", 6);
    s.series_limit_dropped.insert("requests".into(), 9);
    // Every family needs a sample here for `every_metric_is_documented` to see it.
    s.value_errors
        .insert("bytes".into(), BTreeMap::from([("not_a_number", 3)]));
    s.clock_behind_ms
        .insert(PathBuf::from("/var/log/web-1/access.log"), 4_000);
    s.open_files.insert(0, (2, 1));
    s.groups.insert(
        PathBuf::from("/var/log/web-1/access.log"),
        GroupGauges {
            lines_read: 70,
            bytes_read: 5_000,
            lag_bytes: 42,
            watermark_ms: Some(1_795_168_921_000),
            idle: true,
            file_open: true,
        },
    );
    s.unreadable_files.insert(
        PathBuf::from("/var/log/web-2/access.log"),
        vec![(
            PathBuf::from("/var/log/web-2/access.log.1"),
            "denied".into(),
        )],
    );
    let meter = SinkMeter::named("jsonl /out/rollups.jsonl");
    meter
        .records_written
        .store(33, std::sync::atomic::Ordering::Relaxed);
    meter.reject(Rejection::TooOld, 4);
    meter.set_state(SinkState::Retrying);
    meter.set_backlogged(true);
    s.sink_meters = SinkMeters(vec![meter]);
    s.output_pauses = 2;
    s
}

const WALL_MS: i64 = 1_795_168_930_000;

/// Every sample line of `text` as (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").expect("label");
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels, value.parse().expect("value"))
        })
        .collect()
}

fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
}

#[test]
fn a_snapshot_renders_named_typed_and_labelled_series() {
    let s = busy_job();
    let text = render(&[("web", &s)], WALL_MS, Format::Text);
    let job = [("tidemark_job", "web")];
    assert_eq!(
        value(&text, "tidemark_lines_read_total", &job),
        Some(120.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "tidemark_read_bytes_total", &job),
        Some(9000.0)
    );
    assert_eq!(
        value(&text, "tidemark_lines_counted_total", &job),
        Some(100.0)
    );
    assert_eq!(value(&text, "tidemark_lines_late_total", &job), Some(7.0));
    assert_eq!(
        value(&text, "tidemark_lines_too_long_total", &job),
        Some(2.0)
    );
    assert_eq!(value(&text, "tidemark_lines_future_total", &job), Some(1.0));
    assert_eq!(
        value(
            &text,
            "tidemark_lines_malformed_total",
            &[("reason", "too few fields")]
        ),
        Some(6.0)
    );
    assert_eq!(
        value(
            &text,
            "tidemark_series_limit_dropped_lines_total",
            &[("metric", "requests")]
        ),
        Some(9.0)
    );
    assert_eq!(
        value(&text, "tidemark_windows_emitted_total", &job),
        Some(4.0)
    );
    assert_eq!(value(&text, "tidemark_read_pauses_total", &job), Some(2.0));
    assert_eq!(value(&text, "tidemark_reads_paused", &job), Some(1.0));
    let idle = JobStats::default();
    let quiet = render(&[("web", &idle)], WALL_MS, Format::Text);
    assert_eq!(value(&quiet, "tidemark_reads_paused", &job), Some(0.0));
    assert_eq!(
        value(&text, "tidemark_alert_evaluations_total", &job),
        Some(8.0)
    );
    assert_eq!(
        value(&text, "tidemark_alert_transitions_total", &job),
        Some(3.0)
    );
    assert_eq!(value(&text, "tidemark_alerts_firing", &job), Some(1.0));
    assert_eq!(value(&text, "tidemark_files_open", &job), Some(2.0));
    assert_eq!(value(&text, "tidemark_files_failing", &job), Some(1.0));
    assert_eq!(
        value(&text, "tidemark_watermark_timestamp_seconds", &job),
        Some(1_795_168_920.0)
    );
    assert_eq!(
        value(&text, "tidemark_watermark_lag_seconds", &job),
        Some(10.0)
    );
    assert_eq!(value(&text, "tidemark_checkpoints_total", &job), Some(3.0));
    assert_eq!(
        value(&text, "tidemark_duplicate_paths_total", &job),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "tidemark_symlink_loops_total", &job),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "tidemark_series_limited_windows_total", &job),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "tidemark_checkpoint_age_seconds", &job),
        Some(5.0)
    );
    assert_eq!(
        value(&text, "tidemark_checkpoint_duration_seconds", &job),
        Some(0.0125)
    );
    let group = [
        ("tidemark_job", "web"),
        ("group", "/var/log/web-1/access.log"),
    ];
    assert_eq!(
        value(&text, "tidemark_group_lines_read_total", &group),
        Some(70.0)
    );
    assert_eq!(
        value(&text, "tidemark_group_read_bytes_total", &group),
        Some(5000.0)
    );
    assert_eq!(
        value(&text, "tidemark_group_read_lag_bytes", &group),
        Some(42.0)
    );
    assert_eq!(
        value(&text, "tidemark_group_watermark_lag_seconds", &group),
        Some(9.0)
    );
    assert_eq!(value(&text, "tidemark_group_idle", &group), Some(1.0));
    assert_eq!(value(&text, "tidemark_group_files_open", &group), Some(1.0));
    assert_eq!(
        value(
            &text,
            "tidemark_group_files_failing",
            &[("group", "/var/log/web-2/access.log")]
        ),
        Some(1.0)
    );
    let sink = [
        ("tidemark_job", "web"),
        ("sink", "jsonl /out/rollups.jsonl"),
    ];
    assert_eq!(
        value(&text, "tidemark_sink_records_written_total", &sink),
        Some(33.0)
    );
    assert_eq!(
        value(
            &text,
            "tidemark_sink_rejected_samples_total",
            &[("reason", "too_old")]
        ),
        Some(4.0)
    );
    assert_eq!(
        value(&text, "tidemark_sink_state", &[("state", "retrying")]),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "tidemark_sink_state", &[("state", "ok")]),
        Some(0.0)
    );
    // Types, in the classic format: a counter's family is named as its samples.
    assert!(
        text.contains("# TYPE tidemark_lines_read_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# HELP tidemark_lines_read_total "), "{text}");
    assert!(
        text.contains("# TYPE tidemark_group_idle gauge\n"),
        "{text}"
    );
    assert!(
        !text.contains("# EOF") && !text.contains("# UNIT"),
        "{text}"
    );
    // No series is labelled `job`: Prometheus owns that label.
    assert!(samples(&text)
        .iter()
        .all(|(_, l, _)| !l.contains_key("job")));
    assert!(samples(&text)
        .iter()
        .all(|(_, l, _)| l.get("tidemark_job").map(String::as_str) == Some("web")));
}

#[test]
fn openmetrics_keeps_its_own_family_names_and_ends_with_eof() {
    let s = busy_job();
    let text = render(&[("web", &s)], WALL_MS, Format::OpenMetrics);
    assert!(
        text.contains("# TYPE tidemark_lines_read counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT tidemark_read_bytes bytes\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(value(&text, "tidemark_lines_read_total", &[]), Some(120.0));
}

#[test]
fn no_watermark_or_checkpoint_before_there_is_one() {
    let s = JobStats {
        frontier_ms: Some(EventMs::MIN),
        ..JobStats::default()
    };
    let text = render(&[("web", &s)], WALL_MS, Format::Text);
    assert_eq!(
        value(&text, "tidemark_watermark_lag_seconds", &[]),
        None,
        "{text}"
    );
    assert_eq!(
        value(&text, "tidemark_checkpoint_age_seconds", &[]),
        None,
        "{text}"
    );
    assert_eq!(value(&text, "tidemark_lines_read_total", &[]), Some(0.0));
}

#[test]
fn two_jobs_are_told_apart_by_their_label() {
    let a = busy_job();
    let b = JobStats {
        lines_read: 5,
        ..JobStats::default()
    };
    let text = render(&[("web", &a), ("api", &b)], WALL_MS, Format::Text);
    assert_eq!(
        value(
            &text,
            "tidemark_lines_read_total",
            &[("tidemark_job", "api")]
        ),
        Some(5.0)
    );
    assert_eq!(
        value(
            &text,
            "tidemark_lines_read_total",
            &[("tidemark_job", "web")]
        ),
        Some(120.0)
    );
}

#[test]
fn a_path_label_is_escaped_as_in_logs() {
    let mut s = JobStats::default();
    s.groups
        .insert(PathBuf::from("/l/a\"b\nc.log"), GroupGauges::default());
    let text = render(&[("web", &s)], WALL_MS, Format::Text);
    // EscapedPath turns the newline into `\n`; the encoder escapes `"` and `\`.
    assert!(text.contains(r#"group="/l/a\"b\\nc.log""#), "{text}");
}

#[test]
fn negotiation_prefers_openmetrics_only_when_asked() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    assert_eq!(Format::negotiate(None), Format::Text);
}

/// `q=0` refuses a type, and media types compare in any case (RFC 9110):
/// before, any Accept containing the exact lower-case type got OpenMetrics.
#[test]
fn negotiation_honours_q_0_and_ignores_case() {
    let refused = "application/openmetrics-text;version=1.0.0;q=0,text/plain;version=0.0.4";
    assert_eq!(Format::negotiate(Some(refused)), Format::Text);
    let spaced = "application/openmetrics-text ; q = 0.0 , */*";
    assert_eq!(Format::negotiate(Some(spaced)), Format::Text);
    let upper = "Application/OpenMetrics-Text; version=1.0.0";
    assert_eq!(Format::negotiate(Some(upper)), Format::OpenMetrics);
    let text_first = "text/plain;q=0.9,application/openmetrics-text;q=0.5";
    assert_eq!(Format::negotiate(Some(text_first)), Format::Text);
    let bad_q = "application/openmetrics-text;q=high";
    assert_eq!(Format::negotiate(Some(bad_q)), Format::Text);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text")),
        Format::OpenMetrics
    );
}

/// docs/metrics.md lists every metric /metrics can show.
#[test]
fn every_metric_is_documented() {
    let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"));
    let text = render(&[("web", &busy_job())], WALL_MS, Format::Text);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(names.len() > 40, "{names:?}");
    for family in [
        "tidemark_value_errors_total",
        "tidemark_group_clock_behind_seconds",
    ] {
        assert!(names.contains(&family), "busy_job shows no {family}");
    }
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !doc.contains(&format!("| `{n}` |")))
        .collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
}

/// A labelled counter shows at 0 before its first event, so `rate()` and
/// `increase()` see the first one (before: no series until then).
#[test]
fn labelled_counters_start_at_0_before_their_first_event() {
    let s = JobStats {
        metric_names: vec!["requests".into(), "bytes".into()],
        ..JobStats::default()
    };
    let text = render(&[("web", &s)], WALL_MS, Format::Text);
    for e in tidemark_sources::parse::LineError::ALL {
        let reason = [("tidemark_job", "web"), ("reason", e.reason())];
        assert_eq!(
            value(&text, "tidemark_lines_malformed_total", &reason),
            Some(0.0),
            "{text}"
        );
    }
    for metric in ["requests", "bytes"] {
        let m = [("tidemark_job", "web"), ("metric", metric)];
        assert_eq!(
            value(&text, "tidemark_series_limit_dropped_lines_total", &m),
            Some(0.0),
            "{text}"
        );
        for reason in crate::stats::VALUE_ERROR_REASONS {
            let mr = [("metric", metric), ("reason", reason)];
            assert_eq!(
                value(&text, "tidemark_value_errors_total", &mr),
                Some(0.0),
                "{text}"
            );
        }
    }
    // Bare defaults: every malformed reason still shows (the reasons are fixed).
    let text = render(&[("web", &JobStats::default())], WALL_MS, Format::Text);
    let n = samples(&text)
        .iter()
        .filter(|(n, _, _)| n == "tidemark_lines_malformed_total")
        .count();
    assert_eq!(n, tidemark_sources::parse::LineError::ALL.len(), "{text}");
}

/// Each group has one clock figure, whichever map holds it, and 0 once caught
/// up (before: a group released then caught up had no series; one in both maps
/// had two figures, the last written winning).
#[test]
fn group_clock_behind_is_one_figure_per_group_and_0_once_caught_up() {
    let mut s = JobStats::default();
    let (stuck, trailing, caught_up) = (
        PathBuf::from("/l/stuck.log"),
        PathBuf::from("/l/trailing.log"),
        PathBuf::from("/l/caught-up.log"),
    );
    s.clock_lag_ms.insert(stuck.clone(), 7_000);
    s.clock_behind_ms.insert(stuck, 0);
    s.clock_behind_ms.insert(trailing.clone(), 3_000);
    s.clock_lag_ms.insert(trailing, 0);
    // Released (stuck), then caught up: only ever in the released map.
    s.clock_lag_ms.insert(caught_up, 0);
    let text = render(&[("web", &s)], WALL_MS, Format::Text);
    let of = |g: &str| {
        samples(&text)
            .into_iter()
            .filter(|(n, l, _)| {
                n == "tidemark_group_clock_behind_seconds"
                    && l.get("group").map(String::as_str) == Some(g)
            })
            .map(|(_, _, v)| v)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("/l/stuck.log"), [7.0], "{text}");
    assert_eq!(of("/l/trailing.log"), [3.0], "{text}");
    assert_eq!(of("/l/caught-up.log"), [0.0], "{text}");
}

/// In a cluster each member's groups show under its `member` label, their
/// failing files and clock included (before: process 0's groups only).
#[test]
fn a_members_groups_show_with_its_member_label_failing_files_and_clock() {
    let live = PathBuf::from("/var/log/web-1/access.log");
    let mut member = JobStats::default();
    member.groups.insert(
        live.clone(),
        GroupGauges {
            lines_read: 150,
            ..GroupGauges::default()
        },
    );
    member.unreadable_files.insert(
        live.clone(),
        vec![(live.with_extension("log.1"), "denied".into())],
    );
    member.clock_behind_ms.insert(live.clone(), 2_000);
    let report = crate::stats::MemberStats::from(&member);
    let mut own = busy_job();
    own.member_index = Some(0);
    own.member_groups.insert(1, report.groups);
    let text = render(&[("web", &own)], WALL_MS, Format::Text);
    let of = |name: &str, m: &str| {
        let want = [("group", "/var/log/web-1/access.log"), ("member", m)];
        value(&text, name, &want)
    };
    assert_eq!(
        of("tidemark_group_lines_read_total", "1"),
        Some(150.0),
        "{text}"
    );
    assert_eq!(
        of("tidemark_group_lines_read_total", "0"),
        Some(70.0),
        "{text}"
    );
    assert_eq!(of("tidemark_group_files_failing", "1"), Some(1.0), "{text}");
    assert_eq!(
        of("tidemark_group_clock_behind_seconds", "1"),
        Some(2.0),
        "{text}"
    );
    // Process 0's own, labelled too: every group series has `member` in a cluster.
    assert_eq!(
        of("tidemark_group_clock_behind_seconds", "0"),
        Some(4.0),
        "{text}"
    );
}
