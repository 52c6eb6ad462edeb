//! Model-based test of the line cache: [`OpenWindows::add`] against a naive
//! recomputation that looks each metric's series up on its own, reads every value
//! through a float (the per-metric path before the cache and `parse_decimal`),
//! and cuts each metric to its share the same way.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use tidemark_jobs::{Job, MetricKind};
use tidemark_sources::parse::{parse_number, LineParser, Parsed};

use super::{cmp_keys, empty_acc, push_key_part, stamp, OpenWindows};
use crate::acc::{seeded, Acc};
use crate::plan::Plan;
use crate::stats::JobStats;
use crate::time::{window_start, EventMs, WindowTime};

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
name = "c"
kind = "counter"
labels = ["a", "b"]
[[metric]]
name = "s"
kind = "sum"
field = "v"
labels = ["a"]
[[metric]]
name = "h"
kind = "histogram"
field = "v"
[[metric]]
name = "g"
kind = "gauge"
field = "w"
labels = ["b"]
[[metric]]
name = "s2"
kind = "sum"
field = "w"
labels = ["b", "a"]
[[metric]]
name = "c2"
kind = "counter"
labels = ["a", "w"]
[[sink]]
kind = "stdout"
series = "hosts"
"#
    );
    tidemark_jobs::from_str(&text, "t.toml", std::path::Path::new("/")).unwrap()
}

/// One metric's series in one window, as the naive path keeps them.
#[derive(Default)]
struct NaiveSeries {
    map: HashMap<Vec<u8>, Acc>,
    bound: Option<Vec<u8>>,
}

/// Per window start, per metric.
#[derive(Default)]
struct Naive(BTreeMap<EventMs, Vec<NaiveSeries>>);

impl Naive {
    fn add(
        &mut self,
        plan: &Plan,
        parsed: &Parsed<'_>,
        t: EventMs,
        start: EventMs,
        host: &str,
        stats: &mut JobStats,
    ) {
        let w = self.0.entry(start).or_insert_with(|| {
            (0..plan.metrics.len())
                .map(|_| NaiveSeries::default())
                .collect()
        });
        for (m, mp) in plan.metrics.iter().enumerate() {
            let value = match mp.kind {
                MetricKind::Counter => 0.0,
                _ => match mp
                    .value_slot
                    .and_then(|s| parsed.field(s))
                    .map(parse_number)
                {
                    Some(Some(v)) => v,
                    Some(None) => {
                        stats.count_value_error(&mp.name, "not_a_number");
                        continue;
                    }
                    None => {
                        stats.count_value_error(&mp.name, "field_missing");
                        continue;
                    }
                },
            };
            let accepted = match Acc::accept(mp.kind, value) {
                Ok(a) => a,
                Err(reason) => {
                    stats.count_value_error(&mp.name, reason);
                    continue;
                }
            };
            let mut key = Vec::new();
            push_key_part(&mut key, host);
            for &s in &mp.label_slots {
                push_key_part(&mut key, parsed.field(s).unwrap_or(""));
            }
            let series = &mut w[m];
            let created = !series.map.contains_key(&key);
            if created
                && series
                    .bound
                    .as_deref()
                    .is_some_and(|b| cmp_keys(&key, b).is_gt())
            {
                stats.count_series_dropped(&mp.name, 1);
                continue;
            }
            let acc = series
                .map
                .entry(key)
                .or_insert_with(|| empty_acc(mp.kind, 0));
            if let Err(reason) = acc.add_accepted(accepted, value, t) {
                stats.count_value_error(&mp.name, reason);
            }
            let share = plan.series_share;
            if created && series.map.len() > share + share / 2 {
                let mut all: Vec<(Vec<u8>, Acc)> = series.map.drain().collect();
                all.sort_by(|a, b| cmp_keys(&a.0, &b.0));
                let dropped = all[share..].iter().map(|(_, a)| a.lines()).sum();
                all.truncate(share);
                series.bound = Some(all[share - 1].0.clone());
                series.map.extend(all);
                stats.count_series_dropped(&mp.name, dropped);
            }
        }
    }

    /// Removes the windows starting before `below`, in [`Naive::drain`]'s form.
    fn drain_below(&mut self, below: EventMs) -> Vec<Drained> {
        let kept = self.0.split_off(&below);
        Naive(std::mem::replace(&mut self.0, kept)).drain()
    }

    fn drain(self) -> Vec<Drained> {
        let mut out = Vec::new();
        for (start, metrics) in self.0 {
            for (m, series) in metrics.into_iter().enumerate() {
                let limited = series.bound.is_some();
                for (key, acc) in series.map {
                    out.push((start, m as u32, key, limited, state(&acc)));
                }
            }
        }
        out.sort();
        out
    }
}

/// (window start, metric, key, limited, the state's bytes).
type Drained = (EventMs, u32, Vec<u8>, bool, Vec<u8>);

fn state(acc: &Acc) -> Vec<u8> {
    bincode::serialize(acc).unwrap()
}

/// A value as logs have them: mostly short decimals, sometimes not.
fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[0-9]{1,4}(\\.[0-9]{1,3})?".prop_map(Some),
        1 => "-?[0-9]{0,12}(\\.[0-9]{0,12})?".prop_map(Some),
        1 => prop_oneof![
            Just("1e30"), Just("-0"), Just("2.5e-3"), Just("abc"), Just("-"),
            Just("1125899.90684263"), Just("0.0000005"), Just("12345678901234567"),
        ]
        .prop_map(|s| Some(s.to_string())),
        1 => Just(None),
    ]
}

/// (second of the run, host, a, b, v, w)
type Line = (u32, bool, u8, u8, Option<String>, Option<String>);

fn line() -> impl Strategy<Value = Line> {
    (0..180u32, any::<bool>(), 0..4u8, 0..30u8, value(), value())
}

/// The cache and the last line's series give every window exactly the series,
/// states, limits and counts that looking each metric up on its own gives, with
/// and without cuts; and so do windows opened again after a drain (`drain_every`
/// lines, the windows before the line's are drained, as a group closes them).
/// `labels` narrows the label values, so that lines often repeat the last one.
#[test]
fn one_lookup_per_line_gives_the_windows_of_one_lookup_per_metric() {
    let cases = (
        prop::sample::select(vec![6usize, 10, 25, 60, 100_000]),
        prop::collection::vec(line(), 0..400),
        prop::sample::select(vec![0u32, 1, 30, super::CACHE_AFTER]),
        prop::sample::select(vec![0usize, 3, 17, 60]),
        prop::sample::select(vec![1u8, 2, 30]),
    );
    seeded::runner("one_lookup_per_line", 200)
        .run(
            &cases,
            |(max_series, lines, cache_after, drain_every, labels)| {
                let job = job(max_series);
                let plan = Plan::new(&job);
                let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
                let (mut got, mut want) =
                    (OpenWindows::caching_after(cache_after), Naive::default());
                let (mut got_stats, mut want_stats) = (JobStats::default(), JobStats::default());
                let (mut drained, mut want_drained) = (Vec::new(), Vec::new());
                for (n, (sec, db, a, b, v, w)) in lines.iter().enumerate() {
                    let mut text = format!(
                        "time=2026-11-20T10:{:02}:{:02}Z a=a{} b=b{:02}",
                        sec / 60,
                        sec % 60,
                        a % labels,
                        b % labels
                    );
                    for (k, x) in [("v", v), ("w", w)] {
                        if let Some(x) = x {
                            text.push_str(&format!(" {k}={x}"));
                        }
                    }
                    let host = if *db { "db" } else { "web" };
                    let (parsed, t) = stamp(&mut parser, text.as_bytes(), i64::MAX, &mut got_stats)
                        .expect("a good line");
                    let start = window_start(t, plan.window_ms);
                    if drain_every > 0 && n % drain_every == 0 {
                        got.drain(Some(start as WindowTime), |start, s| {
                            let key = s.key.to_vec();
                            drained.push((
                                start as EventMs,
                                s.metric,
                                key,
                                s.limited,
                                state(&s.acc),
                            ));
                        });
                        want_drained.extend(want.drain_below(start));
                    }
                    got.add(&plan, &parsed, t, start, host, &mut got_stats);
                    want.add(&plan, &parsed, t, start, host, &mut want_stats);
                }
                got.drain(None, |start, s| {
                    let key = s.key.to_vec();
                    drained.push((start as EventMs, s.metric, key, s.limited, state(&s.acc)));
                });
                drained.sort();
                want_drained.extend(want.drain());
                want_drained.sort();
                prop_assert_eq!(drained, want_drained);
                prop_assert_eq!(&got_stats.value_errors, &want_stats.value_errors);
                prop_assert_eq!(
                    &got_stats.series_limit_dropped,
                    &want_stats.series_limit_dropped
                );
                Ok(())
            },
        )
        .unwrap();
}

/// Review R13a: an nginx job whose host is a field of each line, with labels
/// that can be missing (`method` of a `-` request), values that are `-`, missing
/// (`request_time`), odd decimals, and lines hours out of order (many windows
/// open): the cache gives what one lookup per metric gives.
#[test]
fn review_r13a_nginx_host_per_line_and_missing_fields() {
    let job_text = |max_series: usize| {
        format!(
            r#"
name = "t"
[source]
kind = "file"
include = ["/logs/*.log"]
host = {{ field = "remote_addr" }}
[parse]
format = "nginx"
[window]
max_series = {max_series}
max_out_of_orderness = "3h"
[[metric]]
name = "c"
kind = "counter"
labels = ["method"]
[[metric]]
name = "bytes"
kind = "sum"
field = "body_bytes_sent"
labels = ["status", "method"]
[[metric]]
name = "rt"
kind = "histogram"
field = "request_time"
labels = ["status"]
[[metric]]
name = "g"
kind = "gauge"
field = "body_bytes_sent"
labels = ["path"]
[[metric]]
name = "all"
kind = "counter"
[[sink]]
kind = "stdout"
series = "hosts"
"#
        )
    };
    let vals = prop::sample::select(vec![
        "0",
        "-0",
        "+1",
        "1.",
        ".5",
        "0001",
        "1e3",
        "1_000",
        "-",
        "-5",
        "0.1234567",
        "12.5",
        "999999999999999",
        "1125899.906842",
        "NaN",
        "inf",
    ]);
    let line = (
        0..4u32,
        0..240u32,
        0..4u8,
        prop::sample::select(vec![
            "GET / HTTP/1.1",
            "POST /a HTTP/1.1",
            "-",
            "GET /b",
            "",
        ]),
        prop::sample::select(vec!["200", "404", "500"]),
        vals.clone(),
        prop::option::of(vals),
    );
    let cases = (
        prop::sample::select(vec![5usize, 7, 12, 40, 100_000]),
        prop::collection::vec(line, 0..500),
        prop::sample::select(vec![0u32, 1, 5, super::CACHE_AFTER]),
    );
    seeded::runner("review_r13a_nginx", 300)
        .run(&cases, |(max_series, lines, cache_after)| {
            let job = tidemark_jobs::from_str(
                &job_text(max_series),
                "t.toml",
                std::path::Path::new("/"),
            )
            .unwrap();
            let plan = Plan::new(&job);
            let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
            let (mut got, mut want) = (OpenWindows::caching_after(cache_after), Naive::default());
            let (mut got_stats, mut want_stats) = (JobStats::default(), JobStats::default());
            for (hour, min, host, req, status, bytes, rt) in &lines {
                let mut text = format!(
                    "10.0.0.{host} - - [20/Nov/2026:{:02}:{:02}:{:02} +0530] \"{req}\" {status} {bytes} \"-\" \"ua\"",
                    10 + hour,
                    min / 60 * 7,
                    min % 60
                );
                if let Some(rt) = rt {
                    text.push(' ');
                    text.push_str(rt);
                }
                let Ok((parsed, t)) = stamp(&mut parser, text.as_bytes(), i64::MAX, &mut got_stats)
                else {
                    continue;
                };
                let host = parsed.field(0).unwrap_or("").to_string();
                let start = window_start(t, plan.window_ms);
                got.add(&plan, &parsed, t, start, &host, &mut got_stats);
                want.add(&plan, &parsed, t, start, &host, &mut want_stats);
            }
            let mut drained = Vec::new();
            got.drain(None, |start, s| {
                let key = s.key.to_vec();
                drained.push((start as EventMs, s.metric, key, s.limited, state(&s.acc)));
            });
            drained.sort();
            prop_assert_eq!(drained, want.drain());
            prop_assert_eq!(&got_stats.value_errors, &want_stats.value_errors);
            prop_assert_eq!(
                &got_stats.series_limit_dropped,
                &want_stats.series_limit_dropped
            );
            Ok(())
        })
        .unwrap();
}
