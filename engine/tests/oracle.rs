//! Oracle property test: random multi-host nginx logs — disorder inside the bound,
//! random rotation points, gzipped siblings, hosts spread over two file groups, and
//! now and then a line beyond the bound (late), a lone line hours ahead (an outlier)
//! or a real jump of hours — run through the engine with 1–4 workers; every window,
//! host series and rule, and the late and outlier counts, must equal a naive
//! recomputation from the generated events. Some cases set a small `max_series`:
//! the oracle then keeps, per window and metric, the share that sorts first by
//! (host, labels), and counts the lines of the rest.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{flatten, job_from, nginx_line, run_until_eof, write_file};
use proptest::prelude::*;

const WINDOW_S: i64 = 60;
const DISORDER_S: i64 = 5;
/// The job leaves `max_jump` at its default: 1m (more than the disorder bound).
const MAX_JUMP_S: i64 = 60;
const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z

#[derive(Debug, Clone)]
struct Event {
    t: i64,
    method: &'static str,
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
                0i64..40,
                0..=DISORDER_S,
                0usize..4,
                prop::sample::select(vec![200u16, 200, 200, 404, 500]),
                0u64..5000,
                0u32..2000,
                0u8..40,
                0i64..7200,
            ),
            0..120,
        ),
        prop::collection::vec(0usize..120, 0..3),
    )
        .prop_map(|(steps, mut cuts)| {
            let mut max_t = T0;
            let mut events = Vec::new();
            for (advance, back, m, status, bytes, rt_ms, kind, far) in steps {
                max_t += advance;
                let t = match kind {
                    // A lone line stamped 1 to 3 hours ahead: the stream goes on
                    // where it was.
                    0 => max_t + 3600 + far,
                    // A real jump (a host quiet for hours): the stream goes on there.
                    1 => {
                        max_t += 3600 + far;
                        max_t
                    }
                    // Further back than the bound: late, unless an earlier line
                    // was an outlier.
                    2 => max_t - DISORDER_S - 1 - far % 300,
                    // Within the bound.
                    _ => max_t - back,
                };
                events.push(Event {
                    t,
                    method: ["GET", "GET", "POST", "PUT"][m],
                    status,
                    bytes,
                    rt_ms,
                });
            }
            cuts.iter_mut().for_each(|c| *c = (*c).min(events.len()));
            cuts.sort();
            Stream { events, cuts }
        })
}

const JOB: &str = r#"
name = "oracle"
[source]
kind = "file"
include = ["logs/*/*.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "bytes"
kind = "sum"
field = "body_bytes_sent"
labels = ["status"]
[[metric]]
name = "last_bytes"
kind = "gauge"
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
record = "host_status:reqs"
expr = "sum without (method) (reqs)"
[[rule]]
record = "total:reqs"
expr = "sum(reqs)"
[[rule]]
record = "status:reqs:min"
expr = "min by (status) (reqs)"
[[rule]]
record = "status:reqs:max"
expr = "max by (status) (reqs)"
[[rule]]
record = "status:reqs:avg"
expr = "avg by (status) (reqs)"
[[rule]]
record = "status:reqs:series"
expr = "count by (status) (reqs)"
[[rule]]
record = "total:bytes"
expr = "sum(bytes)"
[[rule]]
record = "total:rt:count"
expr = "sum(rt_count)"
[[rule]]
record = "total:rt:p90"
expr = "histogram_quantile(0.9, rt)"
[[rule]]
record = "host:rt:p99"
expr = "histogram_quantile(0.99, sum by (host) (rt))"
[[sink]]
kind = "stdout"
series = "all"
"#;

type Key = common::SeriesKey;

/// Per-host series state, recomputed the obvious way.
#[derive(Default)]
struct HostWindow {
    reqs: BTreeMap<(String, String), u64>,
    bytes: BTreeMap<String, f64>,
    last: Option<(i64, f64)>,
    rts: Vec<f64>,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// The lines of one file group that count (in reading order), and how many were
/// late and how many were outliers, recomputed the obvious way: the watermark is
/// the largest confirmed time minus the bound; a line more than `max_jump` ahead of
/// the confirmed time counts, but is confirmed only if the next line is not more
/// than `max_jump` behind it. A group's first line waits for confirmation too; a
/// line that rejects it starts the group's time.
fn judge(events: &[Event]) -> (Vec<&Event>, u64, u64) {
    let (mut kept, mut late, mut outliers) = (Vec::new(), 0, 0);
    let mut confirmed: Option<i64> = None;
    let mut suspect: Option<i64> = None;
    for e in events {
        let mut rejected = false;
        if let Some(s) = suspect.take() {
            rejected = e.t < s - MAX_JUMP_S;
            if rejected {
                outliers += 1;
            } else {
                confirmed = Some(confirmed.map_or(s, |c| c.max(s)));
            }
        }
        if confirmed.is_some_and(|c| e.t < c - DISORDER_S) {
            late += 1;
            continue;
        }
        let waits = match confirmed {
            Some(c) => e.t > c + MAX_JUMP_S,
            None => !rejected,
        };
        if waits {
            suspect = Some(e.t);
        } else {
            confirmed = Some(confirmed.map_or(e.t, |c| c.max(e.t)));
        }
        kept.push(e);
    }
    (kept, late, outliers)
}

/// Per window, the series `max_series` lets through (each metric's `share` that
/// sort first by host, then label values in the metric's label order), and the
/// lines of the others by metric.
#[derive(Default)]
struct Admitted {
    reqs: BTreeSet<(String, String, String)>,
    bytes: BTreeSet<(String, String)>,
    /// Hosts of `last_bytes` and `rt` (no labels: the same series).
    hosts: BTreeSet<String>,
}

fn admit(
    hosts: &[(&String, &mut HostWindow)],
    share: usize,
    dropped: &mut BTreeMap<String, u64>,
) -> Admitted {
    let mut reqs: Vec<((String, String, String), u64)> = Vec::new();
    let mut bytes: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut per_host: Vec<(String, u64)> = Vec::new();
    for (host, hw) in hosts {
        for ((status, method), n) in &hw.reqs {
            reqs.push((((*host).clone(), status.clone(), method.clone()), *n));
            *bytes.entry(((*host).clone(), status.clone())).or_default() += n;
        }
        per_host.push(((*host).clone(), hw.rts.len() as u64));
    }
    reqs.sort();
    per_host.sort();
    let mut drop = |metric: &str, n: u64| *dropped.entry(metric.to_string()).or_default() += n;
    for (_, n) in reqs.iter().skip(share) {
        drop("reqs", *n);
    }
    for (_, n) in bytes.iter().skip(share) {
        drop("bytes", *n);
    }
    for (_, n) in per_host.iter().skip(share) {
        drop("last_bytes", *n);
        drop("rt", *n);
    }
    dropped.retain(|_, n| *n > 0);
    Admitted {
        reqs: reqs.into_iter().take(share).map(|(k, _)| k).collect(),
        bytes: bytes.into_keys().take(share).collect(),
        hosts: per_host.into_iter().take(share).map(|(h, _)| h).collect(),
    }
}

/// Expected output (with each metric's `share` of `max_series`); quantile keys
/// carry the exact value (compared within 1%); the late and outlier line counts;
/// and the lines `max_series` leaves out by metric.
#[allow(clippy::type_complexity)]
fn oracle(
    hosts: &[(String, Vec<Stream>)],
    share: usize,
) -> (
    BTreeMap<Key, f64>,
    Vec<Key>,
    u64,
    u64,
    BTreeMap<String, u64>,
) {
    let mut per: BTreeMap<(i64, String), HostWindow> = BTreeMap::new();
    let (mut late, mut outliers) = (0, 0);
    for (host, groups) in hosts {
        // Groups in path order, lines in reading order: the gauge's tie order.
        for g in groups {
            let (kept, l, o) = judge(&g.events);
            late += l;
            outliers += o;
            for e in kept {
                let w = (e.t - e.t.rem_euclid(WINDOW_S)) * 1000;
                let hw = per.entry((w, host.clone())).or_default();
                *hw.reqs
                    .entry((e.status.to_string(), e.method.to_string()))
                    .or_default() += 1;
                *hw.bytes.entry(e.status.to_string()).or_default() += e.bytes as f64;
                if hw.last.is_none_or(|(t, _)| e.t * 1000 >= t) {
                    hw.last = Some((e.t * 1000, e.bytes as f64));
                }
                hw.rts.push(e.rt_ms as f64 / 1000.0);
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut quantile_keys = Vec::new();
    let mut by_window: BTreeMap<i64, Vec<(&String, &mut HostWindow)>> = BTreeMap::new();
    for ((w, host), hw) in per.iter_mut() {
        by_window.entry(*w).or_default().push((host, hw));
    }
    let mut dropped = BTreeMap::new();
    for (w, hosts) in by_window {
        let admitted = admit(&hosts, share, &mut dropped);
        let mut status_vals: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut all_rts = Vec::new();
        let mut total_bytes = 0.0;
        let mut total_reqs = 0.0;
        for (host, hw) in hosts {
            let h = host.as_str();
            for ((status, method), n) in &hw.reqs {
                if !admitted
                    .reqs
                    .contains(&(host.clone(), status.clone(), method.clone()))
                {
                    continue;
                }
                out.insert(
                    (
                        w,
                        "reqs".into(),
                        labels(&[("host", h), ("status", status), ("method", method)]),
                    ),
                    *n as f64,
                );
                status_vals
                    .entry(status.clone())
                    .or_default()
                    .push(*n as f64);
                *out.entry((w, "status:reqs".into(), labels(&[("status", status)])))
                    .or_insert(0.0) += *n as f64;
                *out.entry((
                    w,
                    "host_status:reqs".into(),
                    labels(&[("host", h), ("status", status)]),
                ))
                .or_insert(0.0) += *n as f64;
                total_reqs += *n as f64;
            }
            for (status, b) in &hw.bytes {
                if !admitted.bytes.contains(&(host.clone(), status.clone())) {
                    continue;
                }
                out.insert(
                    (
                        w,
                        "bytes".into(),
                        labels(&[("host", h), ("status", status)]),
                    ),
                    *b,
                );
                total_bytes += b;
            }
            if !admitted.hosts.contains(host) {
                continue;
            }
            if let Some((_, v)) = hw.last {
                out.insert((w, "last_bytes".into(), labels(&[("host", h)])), v);
            }
            hw.rts.sort_by(f64::total_cmp);
            let n = hw.rts.len() as f64;
            out.insert((w, "rt_count".into(), labels(&[("host", h)])), n);
            out.insert(
                (w, "rt_sum".into(), labels(&[("host", h)])),
                hw.rts.iter().sum(),
            );
            for q in ["0.5", "0.99"] {
                let k = (w, "rt".to_string(), labels(&[("host", h), ("quantile", q)]));
                out.insert(k.clone(), quantile(&hw.rts, q.parse().unwrap()));
                quantile_keys.push(k);
            }
            let k = (w, "host:rt:p99".to_string(), labels(&[("host", h)]));
            out.insert(k.clone(), quantile(&hw.rts, 0.99));
            quantile_keys.push(k);
            all_rts.extend(hw.rts.iter().copied());
        }
        for (status, vals) in status_vals {
            let l = labels(&[("status", &status)]);
            let n = vals.len() as f64;
            let sum: f64 = vals.iter().sum();
            out.insert(
                (w, "status:reqs:min".into(), l.clone()),
                vals.iter().copied().fold(f64::MAX, f64::min),
            );
            out.insert(
                (w, "status:reqs:max".into(), l.clone()),
                vals.iter().copied().fold(f64::MIN, f64::max),
            );
            out.insert((w, "status:reqs:avg".into(), l.clone()), sum / n);
            out.insert((w, "status:reqs:series".into(), l), n);
        }
        out.insert((w, "total:reqs".into(), vec![]), total_reqs);
        out.insert((w, "total:bytes".into(), vec![]), total_bytes);
        out.insert((w, "total:rt:count".into(), vec![]), all_rts.len() as f64);
        all_rts.sort_by(f64::total_cmp);
        let k = (w, "total:rt:p90".to_string(), vec![]);
        out.insert(k.clone(), quantile(&all_rts, 0.9));
        quantile_keys.push(k);
    }
    (out, quantile_keys, late, outliers, dropped)
}

fn write_stream(dir: &std::path::Path, name: &str, s: &Stream, gzip_oldest: bool) {
    let lines: Vec<String> = s
        .events
        .iter()
        .map(|e| nginx_line(e.t, e.method, e.status, e.bytes, e.rt_ms))
        .collect();
    // cuts split the stream into rotated files: the first chunk is the oldest.
    let mut bounds = vec![0];
    bounds.extend(s.cuts.iter().copied());
    bounds.push(lines.len());
    let chunks: Vec<&[String]> = bounds.windows(2).map(|b| &lines[b[0]..b[1]]).collect();
    let n = chunks.len();
    for (i, chunk) in chunks.iter().enumerate() {
        let age = n - 1 - i; // 0 = live file
        if age == 0 {
            write_file(&dir.join(name), chunk, false);
        } else {
            let gz = gzip_oldest && age >= 2;
            let file = format!("{name}.{age}{}", if gz { ".gz" } else { "" });
            write_file(&dir.join(file), chunk, gz);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_naive_recomputation(
        hosts in prop::collection::vec((stream(), prop::option::of(stream())), 1..4),
        workers in 1usize..=4,
        gzip in any::<bool>(),
        max_series in prop::option::of(4usize..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Vec::new();
        for (i, (main, extra)) in hosts.iter().enumerate() {
            let host = format!("web-{i}");
            let hdir = dir.path().join("logs").join(&host);
            std::fs::create_dir_all(&hdir).unwrap();
            write_stream(&hdir, "access.log", main, gzip);
            let mut groups = vec![main.clone()];
            if let Some(extra) = extra {
                write_stream(&hdir, "other.log", extra, gzip);
                groups.push(extra.clone());
            }
            model.push((host, groups));
        }
        let text = match max_series {
            Some(n) => JOB.replace("[window]\n", &format!("[window]\nmax_series = {n}\n")),
            None => JOB.to_string(),
        };
        let job = job_from(&text, dir.path());
        // Four metrics share max_series equally.
        let share = job.window.max_series / 4;
        let (windows, stats) = run_until_eof(&job, workers);
        let got = flatten(&windows);
        let (want, quantile_keys, late, outliers, dropped) = oracle(&model, share);
        prop_assert_eq!(&stats.series_limit_dropped, &dropped);
        prop_assert_eq!(stats.late_lines, late);
        prop_assert_eq!(stats.outlier_lines, outliers);
        prop_assert_eq!(stats.parse_errors_total(), 0);
        let got_keys: Vec<_> = got.keys().collect();
        let want_keys: Vec<_> = want.keys().collect();
        prop_assert_eq!(got_keys, want_keys);
        for (k, w) in &want {
            let g = got[k];
            if quantile_keys.contains(k) {
                // hdrhistogram with 2 significant digits: within 1% of the exact value.
                prop_assert!(g >= *w - 1e-9 && g <= *w * 1.01 + 1e-6, "{k:?}: got {g}, exact {w}");
            } else {
                prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{k:?}: got {g}, want {w}");
            }
        }
    }
}
