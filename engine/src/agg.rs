//! Per-window aggregation of parsed lines into per-host series: what a file group
//! (live) and a replay segment both keep for their open windows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use tidemark_jobs::MetricKind;
use tidemark_sources::parse::{parse_number, LineParser, Parsed};

use crate::acc::Acc;
use crate::key::{cmp_keys, push_key_part, sort_unique, SeriesKey};
use crate::plan::Plan;
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{EventMs, WindowTime};

type SeriesMap = HashMap<SeriesKey, Acc, ahash::RandomState>;

/// Parses a line and takes its event time, or says why the line cannot be used
/// (counted in `stats.parse_errors` under that reason; the caller logs it).
///
/// A line stamped more than `max_clock_skew` ahead of this machine's clock
/// (`future_limit`) is refused: a bad clock, or local time logged as UTC, would
/// drag the watermark into the future and make every later line late.
pub fn stamp<'a>(
    parser: &'a mut LineParser,
    line: &'a [u8],
    future_limit: EventMs,
    stats: &mut JobStats,
) -> Result<(Parsed<'a>, EventMs), &'static str> {
    let reason = match parser.parse(line) {
        Ok(parsed) => {
            if parsed.lossy_utf8() {
                stats.invalid_utf8_lines += 1;
            }
            let t = parsed.event_ms();
            if t < 0 {
                "timestamp_before_1970"
            } else if t > future_limit {
                "future_timestamp"
            } else {
                return Ok((parsed, t));
            }
        }
        Err(e) => {
            count_if_invalid_utf8(line, stats);
            e.reason()
        }
    };
    *stats.parse_errors.entry(reason).or_default() += 1;
    Err(reason)
}

/// A binary line fails to parse, but it is invalid UTF-8 all the same: checked
/// again here, off the hot path (only lines that failed pay).
#[cold]
#[inline(never)]
fn count_if_invalid_utf8(line: &[u8], stats: &mut JobStats) {
    if std::str::from_utf8(line).is_err() {
        stats.invalid_utf8_lines += 1;
    }
}

/// What to tell a user about a line refused for `reason`.
pub fn explain(reason: &'static str) -> &'static str {
    match reason {
        "future_timestamp" => "future_timestamp: more than [window] max_clock_skew ahead of this machine's clock; check the host's clock and time zone, or raise max_clock_skew",
        r => r,
    }
}

/// One window's state: per metric, its series.
struct WindowAgg {
    start: EventMs,
    metrics: Vec<MetricSeries>,
}

/// One metric's series in one window, at most 1.5 × its share of `max_series`
/// (see [`crate::limit`]).
#[derive(Default)]
struct MetricSeries {
    map: SeriesMap,
    /// Set once the metric had more series than its share: the last key kept. A
    /// key that sorts after it cannot be among the share that sort first, so such
    /// a series is not created.
    bound: Option<SeriesKey>,
}

impl MetricSeries {
    fn refuses(&self, key: &[u8]) -> bool {
        self.bound
            .as_deref()
            .is_some_and(|b| cmp_keys(key, b) == Ordering::Greater)
    }

    /// Keeps the `share` series that sort first; returns the lines of the others.
    #[cold]
    fn cut_to(&mut self, share: usize) -> u64 {
        let mut all: Vec<(SeriesKey, Acc)> = self.map.drain().collect();
        let Some(last) = share.checked_sub(1).filter(|&l| l < all.len()) else {
            self.map.extend(all);
            return 0;
        };
        all.select_nth_unstable_by(last, |a, b| cmp_keys(&a.0, &b.0));
        let dropped = all[share..].iter().map(|(_, acc)| acc.lines()).sum();
        all.truncate(share);
        self.bound = Some(all[last].0.clone());
        self.map.extend(all);
        dropped
    }
}

/// One series' final state in one window, as [`OpenWindows::drain`] hands it out.
pub struct SeriesState {
    pub metric: u32,
    pub key: SeriesKey,
    /// Whether its metric had more series than its share in this window.
    pub limited: bool,
    pub acc: Acc,
}

impl SeriesState {
    /// This state as a partial of the stream `group` (at `seq` within it).
    pub fn into_partial(self, group: &Arc<str>, seq: u32) -> HostPartial {
        HostPartial {
            metric: self.metric,
            seq,
            limited: self.limited,
            key: self.key,
            group: group.clone(),
            acc: self.acc,
        }
    }
}

/// Open windows, ascending by start (usually one or two).
#[derive(Default)]
pub struct OpenWindows {
    windows: Vec<WindowAgg>,
    key_buf: Vec<u8>,
}

impl OpenWindows {
    /// Folds a parsed line stamped `t` (in the window starting at `start`) into
    /// every metric of the plan. A value a metric cannot use is counted; the line
    /// still counts for the others. A series past its metric's share of
    /// `max_series` is not created; the line is counted as dropped for that metric.
    pub fn add(
        &mut self,
        plan: &Plan,
        parsed: &Parsed<'_>,
        t: EventMs,
        start: EventMs,
        host: &str,
        stats: &mut JobStats,
    ) {
        let w = window_for(&mut self.windows, start, plan.metrics.len());
        let key_buf = &mut self.key_buf;
        for (m, mp) in plan.metrics.iter().enumerate() {
            let value = match mp.kind {
                MetricKind::Counter => 0.0,
                _ => {
                    let raw = mp.value_slot.and_then(|s| parsed.field(s));
                    match raw.map(parse_number) {
                        Some(Some(v)) => v,
                        Some(None) => {
                            stats.count_value_error(&mp.name, "not_a_number");
                            continue;
                        }
                        None => {
                            stats.count_value_error(&mp.name, "field_missing");
                            continue;
                        }
                    }
                }
            };
            let accepted = match Acc::accept(mp.kind, value) {
                Ok(a) => a,
                Err(reason) => {
                    stats.count_value_error(&mp.name, reason);
                    continue;
                }
            };
            key_buf.clear();
            push_key_part(key_buf, host);
            for &s in &mp.label_slots {
                push_key_part(key_buf, parsed.field(s).unwrap_or(""));
            }
            let series = &mut w.metrics[m];
            let mut created = false;
            let acc = match series.map.get_mut(key_buf.as_slice()) {
                Some(a) => a,
                None => {
                    if series.refuses(key_buf) {
                        stats.count_series_dropped(&mp.name, 1);
                        continue;
                    }
                    created = true;
                    series
                        .map
                        .entry(key_buf.as_slice().into())
                        .or_insert_with(|| empty_acc(mp.kind))
                }
            };
            if let Err(reason) = acc.add_accepted(accepted, value, t) {
                stats.count_value_error(&mp.name, reason);
            }
            if created && series.map.len() > plan.series_share + plan.series_share / 2 {
                let dropped = series.cut_to(plan.series_share);
                stats.count_series_dropped(&mp.name, dropped);
            }
        }
    }

    /// Removes the windows starting before `below` (all of them if `None`), handing
    /// each series to `emit` with its window start, each metric's series in key
    /// order ([`cmp_keys`]). Returns how many windows.
    ///
    /// Sorted here, where a window's keys are unique (an unstable sort gives the
    /// one order) and a series is small to move: the merge, the `max_series` cut
    /// and the sinks after it then find their input in sorted runs, one per file
    /// group, which their sorts merge instead of sorting again.
    pub fn drain(
        &mut self,
        below: Option<WindowTime>,
        mut emit: impl FnMut(WindowTime, SeriesState),
    ) -> u64 {
        let closed = self
            .windows
            .iter()
            .take_while(|w| below.is_none_or(|b| (w.start as WindowTime) < b))
            .count();
        for w in self.windows.drain(..closed) {
            for (m, series) in w.metrics.into_iter().enumerate() {
                let limited = series.bound.is_some();
                for (key, acc) in sort_unique(series.map.into_iter().collect()) {
                    emit(
                        w.start as WindowTime,
                        SeriesState {
                            metric: m as u32,
                            key,
                            limited,
                            acc,
                        },
                    );
                }
            }
        }
        closed as u64
    }

    /// Windows with data not yet drained.
    pub fn len(&self) -> usize {
        self.windows.len()
    }
}

fn empty_acc(kind: MetricKind) -> Acc {
    match kind {
        MetricKind::Counter => Acc::Count(0),
        MetricKind::Sum => Acc::Sum {
            sum: Default::default(),
            lines: 0,
        },
        MetricKind::Gauge => Acc::Gauge {
            t: EventMs::MIN,
            v: 0.0,
            lines: 0,
        },
        MetricKind::Histogram => Acc::Hist(Box::default()),
    }
}

fn window_for(windows: &mut Vec<WindowAgg>, start: EventMs, metrics: usize) -> &mut WindowAgg {
    // Most lines land in the newest window; search from the back.
    let pos = windows.iter().rposition(|w| w.start <= start);
    let idx = match pos {
        Some(i) if windows[i].start == start => i,
        other => {
            let at = other.map_or(0, |i| i + 1);
            windows.insert(
                at,
                WindowAgg {
                    start,
                    metrics: (0..metrics).map(|_| MetricSeries::default()).collect(),
                },
            );
            at
        }
    };
    &mut windows[idx]
}

#[cfg(test)]
mod tests;
