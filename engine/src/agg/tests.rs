use std::collections::BTreeMap;

use tidemark_jobs::Job;
use tidemark_sources::parse::LineParser;

use super::*;
use crate::key::decode_key;

fn job(max_series: usize) -> Job {
    let text = format!(
        r#"
name = "t"
[source]
kind = "file"
include = ["/logs/*.log"]
host = {{ value = "web" }}
[parse]
format = "logfmt"
[window]
max_series = {max_series}
[[metric]]
name = "hits"
kind = "counter"
labels = ["path"]
[[metric]]
name = "ms"
kind = "sum"
field = "ms"
labels = ["path"]
[[sink]]
kind = "stdout"
series = "hosts"
"#
    );
    tidemark_jobs::from_str(&text, "t.toml", std::path::Path::new("/")).unwrap()
}

/// Feeds `paths` (one line each, all in one window) and returns the windows.
fn feed(
    job: &Job,
    paths: &[u32],
    stats: &mut JobStats,
    mut check: impl FnMut(&OpenWindows),
) -> OpenWindows {
    let plan = Plan::new(job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut ow = OpenWindows::default();
    for (i, p) in paths.iter().enumerate() {
        let line = format!("time=2026-11-20T10:00:{:02}Z path=/p{p:04} ms=1.5", i % 60);
        let (parsed, t) = stamp(&mut parser, line.as_bytes(), i64::MAX, stats).unwrap();
        let start = crate::time::window_start(t, plan.window_ms);
        ow.add(&plan, &parsed, t, start, "web", stats);
        check(&ow);
    }
    ow
}

/// Per metric: path → (lines, limited).
fn drain(ow: &mut OpenWindows) -> BTreeMap<(u32, String), (u64, bool)> {
    let mut out = BTreeMap::new();
    ow.drain(None, |_, s| {
        let (host, labels) = decode_key(&s.key);
        assert_eq!(host, "web");
        out.insert((s.metric, labels[0].clone()), (s.acc.lines(), s.limited));
    });
    out
}

#[test]
fn a_group_holds_at_most_one_and_a_half_shares_and_keeps_the_first_series_whole() {
    // 300 paths, 3 lines each, in a scrambled order; share = 20 / 2 metrics = 10.
    let paths: Vec<u32> = (0..900u32).map(|i| (i * 7919) % 300).collect();
    let mut stats = JobStats::default();
    let mut most = 0;
    let mut ow = feed(&job(20), &paths, &mut stats, |ow| {
        for m in &ow.windows[0].metrics {
            most = most.max(m.map.len());
        }
    });
    assert!(most <= 15, "held {most} series of one metric");
    let got = drain(&mut ow);
    for metric in [0, 1] {
        let kept: Vec<(&String, &(u64, bool))> = got
            .iter()
            .filter(|((m, _), _)| *m == metric)
            .map(|((_, p), v)| (p, v))
            .collect();
        assert!(kept.len() >= 10 && kept.len() <= 15, "{kept:?}");
        // The ten that sort first are there, whole, and flagged.
        for (i, (path, (lines, limited))) in kept.iter().take(10).enumerate() {
            assert_eq!(**path, format!("/p{i:04}"));
            assert_eq!((*lines, *limited), (3, true));
        }
        let held: u64 = kept.iter().map(|(_, (n, _))| n).sum();
        let name = ["hits", "ms"][metric as usize];
        assert_eq!(
            held + stats.series_limit_dropped[name],
            900,
            "every line held or counted"
        );
    }
}

#[test]
fn a_window_within_its_share_loses_nothing() {
    let paths: Vec<u32> = (0..40u32).map(|i| i % 10).collect();
    let mut stats = JobStats::default();
    let mut ow = feed(&job(20), &paths, &mut stats, |_| {});
    let got = drain(&mut ow);
    assert_eq!(got.len(), 20);
    assert!(got.values().all(|&(lines, limited)| lines == 4 && !limited));
    assert!(stats.series_limit_dropped.is_empty());
}

/// A line whose value the metric refuses (here a sum term too large to add) used
/// to create its series first: an empty series took a slot of the metric's share
/// (and could push out a real one), and once the share was full the line was
/// counted as dropped by `max_series` instead of as a value error.
#[test]
fn a_refused_value_neither_takes_a_series_slot_nor_counts_as_dropped() {
    let job = job(20); // share: 10 series per metric
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut ow = OpenWindows::default();
    let mut stats = JobStats::default();
    let mut feed = |path: u32, ms: &str, stats: &mut JobStats| {
        let line = format!("time=2026-11-20T10:00:00Z path=/p{path:04} ms={ms}");
        let (parsed, t) = stamp(&mut parser, line.as_bytes(), i64::MAX, stats).unwrap();
        let start = crate::time::window_start(t, plan.window_ms);
        ow.add(&plan, &parsed, t, start, "web", stats);
    };
    // Refused values on paths that sort first, then 20 good paths.
    for p in 0..5 {
        feed(p, "1e30", &mut stats);
    }
    for p in 100..120 {
        feed(p, "1", &mut stats);
    }
    // Past the share now: a refused value on a path after the last kept one.
    feed(999, "1e30", &mut stats);
    let got = drain(&mut ow);
    let sums: Vec<&String> = got
        .keys()
        .filter(|(m, _)| *m == 1)
        .map(|(_, p)| p)
        .collect();
    let want: Vec<String> = (100..110).map(|p| format!("/p{p:04}")).collect();
    assert_eq!(
        sums,
        want.iter().collect::<Vec<_>>(),
        "the first 10 good series"
    );
    assert_eq!(stats.value_errors["ms"]["too_large"], 6);
    assert_eq!(
        stats.series_limit_dropped.get("ms"),
        Some(&10),
        "the 10 good series left out"
    );
    assert_eq!(stats.series_limit_dropped.get("hits"), Some(&16));
}

/// A window's series leave in (metric, key) order, whatever order their lines came
/// in: the stages after the drain count on sorted runs.
#[test]
fn a_window_drains_each_metric_in_key_order() {
    let paths: Vec<u32> = (0..600u32).map(|i| (i * 7919) % 300).collect();
    let mut stats = JobStats::default();
    let mut ow = feed(&job(10_000), &paths, &mut stats, |_| {});
    let mut order = Vec::new();
    ow.drain(None, |_, s| {
        let (_, labels) = decode_key(&s.key);
        order.push((s.metric, labels[0].clone()));
    });
    assert_eq!(order.len(), 600);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

/// Review R17e: a new window's histogram series start with room for the
/// buckets the window before averaged, but only as many series as that window
/// had: after a window of a few wide histograms, a window of many new
/// one-value series reserved ~1 KiB for each (2.8x the peak RSS).
#[test]
fn a_window_of_many_new_histograms_reserves_no_more_than_the_window_before_held() {
    let text = r#"
name = "t"
[source]
kind = "file"
include = ["/logs/*.log"]
host = { value = "web" }
[parse]
format = "logfmt"
[[metric]]
name = "ms"
kind = "histogram"
field = "ms"
labels = ["path"]
[[sink]]
kind = "stdout"
series = "hosts"
"#;
    let job = tidemark_jobs::from_str(text, "t.toml", std::path::Path::new("/")).unwrap();
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut stats = JobStats::default();
    let mut ow = OpenWindows::default();
    let mut add = |ow: &mut OpenWindows, minute: u32, second: u32, path: u32, ms: f64| {
        let line = format!("time=2026-11-20T10:{minute:02}:{second:02}Z path=/p{path} ms={ms}");
        let (parsed, t) = stamp(&mut parser, line.as_bytes(), i64::MAX, &mut stats).unwrap();
        let start = crate::time::window_start(t, plan.window_ms);
        ow.add(&plan, &parsed, t, start, "web", &mut stats);
    };
    // Minute 0: two series of 40 distinct values each (40 buckets each).
    for i in 0..40u32 {
        for path in 0..2 {
            add(&mut ow, 0, i, path, 1.0 + f64::from(i) * 7.0);
        }
    }
    // Minute 1: 500 new series of one value each.
    for path in 0..500 {
        add(&mut ow, 1, path % 60, 1000 + path, 3.0);
    }
    assert_eq!(ow.windows.len(), 2);
    let second = ow.windows.iter().max_by_key(|w| w.start).unwrap();
    let reserved: usize = second.metrics[0]
        .map
        .accs()
        .iter()
        .map(|acc| match acc {
            crate::acc::Acc::Hist(h) => h.sparse_capacity(),
            _ => 0,
        })
        .sum();
    // The window before held 80 buckets; a few series of slack may take the
    // average each, the rest start with what one value needs.
    assert!(
        reserved <= 80 * 2 + 500 * 4,
        "reserved {reserved} buckets for 500 one-value series"
    );
}
