//! Per-window aggregation of parsed lines into per-host series: what a file group
//! (live) and a replay segment both keep for their open windows.

use std::collections::HashMap;

use tidemark_jobs::MetricKind;
use tidemark_sources::parse::{parse_number, LineParser, Parsed};

use crate::acc::{Acc, Hist};
use crate::plan::Plan;
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{EventMs, WindowTime};

type SeriesMap = HashMap<Box<[u8]>, Acc, ahash::RandomState>;

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

/// One window's state: per metric, series key → accumulator.
struct WindowAgg {
    start: EventMs,
    metrics: Vec<SeriesMap>,
}

/// One series' final state in one window, as [`OpenWindows::drain`] hands it out.
pub struct SeriesState {
    pub metric: u32,
    pub host: String,
    /// Label values in the metric's label order.
    pub labels: Vec<String>,
    pub acc: Acc,
}

impl SeriesState {
    /// This state as a partial of the stream `group` (at `seq` within it).
    pub fn into_partial(self, group: &str, seq: u32) -> HostPartial {
        HostPartial {
            metric: self.metric,
            host: self.host,
            labels: self.labels,
            group: group.to_string(),
            seq,
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
    /// still counts for the others.
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
            key_buf.clear();
            push_part(key_buf, host);
            for &s in &mp.label_slots {
                push_part(key_buf, parsed.field(s).unwrap_or(""));
            }
            let series = &mut w.metrics[m];
            let acc = match series.get_mut(key_buf.as_slice()) {
                Some(a) => a,
                None => series
                    .entry(key_buf.as_slice().into())
                    .or_insert_with(|| empty_acc(mp.kind)),
            };
            match acc {
                Acc::Count(c) => *c += 1,
                Acc::Sum(s) => {
                    if let Err(reason) = s.add(value) {
                        stats.count_value_error(&mp.name, reason);
                    }
                }
                Acc::Gauge { t: gt, v } => {
                    if t >= *gt {
                        *gt = t;
                        *v = value;
                    }
                }
                Acc::Hist(h) => {
                    if let Err(reason) = h.record(value) {
                        stats.count_value_error(&mp.name, reason);
                    }
                }
            }
        }
    }

    /// Removes the windows starting before `below` (all of them if `None`), handing
    /// each series to `emit` with its window start. Returns how many windows.
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
                for (key, acc) in series {
                    let (host, labels) = decode_key(&key);
                    emit(
                        w.start as WindowTime,
                        SeriesState {
                            metric: m as u32,
                            host,
                            labels,
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

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

fn empty_acc(kind: MetricKind) -> Acc {
    match kind {
        MetricKind::Counter => Acc::Count(0),
        MetricKind::Sum => Acc::Sum(Default::default()),
        MetricKind::Gauge => Acc::Gauge {
            t: EventMs::MIN,
            v: 0.0,
        },
        MetricKind::Histogram => Acc::Hist(Hist::new()),
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
                    metrics: (0..metrics).map(|_| SeriesMap::default()).collect(),
                },
            );
            at
        }
    };
    &mut windows[idx]
}

/// Series keys are length-prefixed parts, so no label value can forge another key.
fn push_part(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn decode_key(mut key: &[u8]) -> (String, Vec<String>) {
    let mut parts = Vec::new();
    while key.len() >= 4 {
        let n = u32::from_le_bytes([key[0], key[1], key[2], key[3]]) as usize;
        let end = (4 + n).min(key.len());
        parts.push(String::from_utf8_lossy(&key[4..end]).into_owned());
        key = &key[end..];
    }
    let mut it = parts.into_iter();
    let host = it.next().unwrap_or_default();
    (host, it.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_separators_in_values() {
        let mut b = Vec::new();
        push_part(&mut b, "web\u{1f}1");
        push_part(&mut b, "");
        push_part(&mut b, "200");
        assert_eq!(
            decode_key(&b),
            (
                "web\u{1f}1".to_string(),
                vec![String::new(), "200".to_string()]
            )
        );
    }
}
