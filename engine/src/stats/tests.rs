use super::*;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// The file source's edge counters reach the exit summary and each member's
/// report to the cluster (issue 10 §2a, §3, §6).
#[test]
fn the_summary_names_each_sink_once_in_a_total_over_jobs() {
    let a = JobStats {
        sinks: vec!["jsonl a.jsonl".into(), "stdout table".into()],
        ..JobStats::default()
    };
    let b = JobStats {
        sinks: vec!["stdout table".into(), "jsonl b.jsonl".into()],
        ..JobStats::default()
    };
    let mut total = JobStats::default();
    total.add(&a);
    total.add(&b);
    assert!(
        total
            .summary()
            .contains("written to: jsonl a.jsonl; stdout table; jsonl b.jsonl\n"),
        "{}",
        total.summary()
    );
    assert!(!JobStats::default().summary().contains("written to"));
    let rw = crate::stats::sink::SinkMeter::named("prometheus_remote_write http://p/w");
    rw.records_written.store(40, Ordering::Relaxed);
    rw.batches.store(3, Ordering::Relaxed);
    rw.retries.store(2, Ordering::Relaxed);
    rw.reject(crate::stats::sink::Rejection::OutOfOrder, 5);
    let stats = JobStats {
        sink_meters: SinkMeters(vec![SinkMeter::named("jsonl a.jsonl"), rw]),
        ..JobStats::default()
    };
    let text = stats.summary();
    assert!(
        text.contains("prometheus_remote_write http://p/w: 40 sample(s) in 3 request(s) acknowledged, 2 retries, 5 rejected (out_of_order)\n"),
        "{text}"
    );
    assert!(!text.contains("jsonl a.jsonl:"), "{text}");
    // An Alertmanager sink sends alerts, not samples.
    let am = SinkMeter::named("alertmanager http://am:9093");
    am.set_units(crate::stats::sink::Units {
        records: "alert(s)",
        batches: "send(s)",
    });
    am.records_written.store(38, Ordering::Relaxed);
    am.batches.store(12, Ordering::Relaxed);
    let text = JobStats {
        sink_meters: SinkMeters(vec![am]),
        ..JobStats::default()
    }
    .summary();
    assert!(
        text.contains(
            "alertmanager http://am:9093: 38 alert(s) in 12 send(s) acknowledged, 0 retries\n"
        ),
        "{text}"
    );
}

#[test]
fn a_gone_group_leaves_every_per_group_map() {
    let live = PathBuf::from("/l/app-1.log");
    let mut shared = JobStats::default();
    let mut seen = JobStats::default();
    seen.groups.insert(live.clone(), GroupGauges::default());
    seen.lag_bytes.insert(live.clone(), 0);
    seen.clock_lag_ms.insert(live.clone(), 5);
    seen.clock_behind_ms.insert(live.clone(), 5);
    seen.unreadable_files.insert(live.clone(), Vec::new());
    shared.add(&seen);
    let gone = JobStats {
        gone_groups: vec![live],
        ..JobStats::default()
    };
    shared.add(&gone);
    assert!(shared.groups.is_empty() && shared.lag_bytes.is_empty());
    assert!(shared.clock_lag_ms.is_empty() && shared.clock_behind_ms.is_empty());
    assert!(shared.unreadable_files.is_empty() && shared.gone_groups.is_empty());
}

#[test]
fn file_edge_counters_are_summed_printed_and_reported() {
    let mut a = JobStats {
        duplicate_paths: 1,
        not_regular_files: 2,
        symlink_loops: 3,
        damaged_gzip_files: 4,
        file_open_errors: 1,
        ..JobStats::default()
    };
    a.unreadable_files.insert(
        PathBuf::from("/l/web-3/app.log"),
        vec![(
            PathBuf::from("/l/web-3/app.log"),
            "Permission denied".into(),
        )],
    );
    let mut b = a.clone();
    // A later report of the same group replaces the earlier one: resolved.
    b.unreadable_files
        .insert(PathBuf::from("/l/web-3/app.log"), Vec::new());
    let mut total = JobStats::default();
    total.add(&a);
    assert_eq!(total.unreadable().len(), 1);
    let s = total.summary();
    assert!(
        s.contains("files that could not be read: 1\n  /l/web-3/app.log: Permission denied"),
        "{s}"
    );
    assert!(
        s.contains("paths left out as another path to a file already read: 1"),
        "{s}"
    );
    assert!(
        s.contains("matched paths that are not regular files (not read): 2"),
        "{s}"
    );
    assert!(s.contains("symbolic link loops not followed: 3"), "{s}");
    assert!(
        s.contains("damaged compressed files (read up to the damage): 4"),
        "{s}"
    );
    total.add(&b);
    assert!(total.unreadable().is_empty());
    assert_eq!(total.duplicate_paths, 2);
    let mut m = MemberStats::from(&total);
    m.add(&MemberStats::from(&a));
    assert_eq!(
        (
            m.duplicate_paths,
            m.not_regular_files,
            m.symlink_loops,
            m.damaged_gzip_files
        ),
        (3, 6, 9, 12)
    );
}
