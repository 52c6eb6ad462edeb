//! Per-window aggregation of parsed lines into per-host series: what a file group
//! (live) and a replay segment both keep for their open windows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use tidemark_jobs::MetricKind;
use tidemark_sources::parse::{parse_decimal, parse_number, Parsed};

use crate::acc::{Acc, Accepted, Hist};
use crate::key::{cmp_keys, push_key_part, SeriesKey};
use crate::plan::{MetricPlan, Plan};
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{EventMs, WindowTime};

mod last_line;
mod room;
mod series_map;
mod stamp;
use last_line::LastLine;
use room::Room;
use series_map::{KeyHasher, SeriesMap};
pub use stamp::{explain, stamp};

/// One window's state: per metric, its series, and where a line's series are.
struct WindowAgg {
    start: EventMs,
    metrics: Vec<MetricSeries>,
    /// Made when the window first uses it: most windows of a job with thousands
    /// of hosts never do.
    lines: Option<Box<LineCache>>,
    /// Lines added (saturating): the cache is used from [`OpenWindows::cache_after`]
    /// on, since a window of a few lines (one host among thousands) would pay for
    /// it more than it saves.
    added: u32,
}

/// One metric's series in one window, at most 1.5 × its share of `max_series`
/// (see [`crate::limit`]).
#[derive(Default)]
struct MetricSeries {
    /// Each series' key and state, by key and by index: an index, unlike a
    /// reference, can be remembered in the [`LineCache`].
    map: SeriesMap,
    /// Set once the metric had more series than its share: the last key kept. A
    /// key that sorts after it cannot be among the share that sort first, so such
    /// a series is not created.
    bound: Option<SeriesKey>,
    /// Sparse buckets a new histogram series starts with room for.
    hist_buckets: usize,
    /// New histogram series that may still start with that room (the window
    /// before's count, with slack); later ones start empty. Reserved buckets
    /// thus stay within what the window before held.
    hist_reserved: usize,
}

/// A series of a metric, as a [`LineCache`] remembers it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not looked up yet (the line's value was refused, or the cache is new).
    Unknown,
    /// Past the metric's bound: lines of it are dropped. Stays true until the
    /// next cut, which clears the cache ([`MetricSeries::cut_to`] only lowers
    /// the bound, but it also moves states).
    Refused,
    /// The state at this index of [`MetricSeries::map`].
    At(u32),
}

/// Per window, the key of a line's host and label values (every label any metric
/// reads, [`Plan::line_slots`]) to its series in each metric: lines repeat a few
/// combinations, so most lines are one lookup instead of one per metric. Only a
/// cache — a line it does not know is looked up metric by metric as before, and
/// it is cleared whenever a metric's series move — so what a window holds is
/// exactly what one lookup per metric gives. Holds at most `1.5 × max_series`
/// keys; past that, new combinations are not remembered.
#[derive(Default)]
struct LineCache {
    /// Key to the offset of its entry in `slots` (one [`Slot`] per metric).
    map: HashMap<Box<[u8]>, u32, ahash::RandomState>,
    slots: Vec<Slot>,
}

impl LineCache {
    /// The offset of `key`'s slots, added if new and there is room.
    fn entry(&mut self, key: &[u8], metrics: usize, cap: usize) -> Option<usize> {
        if let Some(&off) = self.map.get(key) {
            return Some(off as usize);
        }
        if self.map.len() >= cap {
            return None;
        }
        let off = self.slots.len();
        self.slots.resize(off + metrics, Slot::Unknown);
        self.map.insert(key.into(), off as u32);
        Some(off)
    }

    fn with_capacity(keys: usize) -> Self {
        LineCache {
            map: HashMap::with_capacity_and_hasher(keys, Default::default()),
            slots: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
    }
}

impl MetricSeries {
    fn with_room(room: Room) -> Self {
        MetricSeries {
            map: SeriesMap::with_capacity(room.series, room.key_bytes),
            bound: None,
            hist_buckets: room.hist_buckets,
            hist_reserved: room.hists,
        }
    }

    /// The series of `key` (`Slot::At`, and whether it was created now), or
    /// `Slot::Refused` if it is new and sorts after the bound.
    fn find_or_create(&mut self, hasher: &KeyHasher, key: &[u8], kind: MetricKind) -> (Slot, bool) {
        let bound = self.bound.as_deref();
        let buckets = if self.hist_reserved > 0 {
            self.hist_buckets
        } else {
            0
        };
        let reserved = &mut self.hist_reserved;
        let found = self.map.find_or_make(hasher, key, || {
            let refused = bound.is_some_and(|b| cmp_keys(key, b) == Ordering::Greater);
            if !refused && kind == MetricKind::Histogram {
                *reserved = reserved.saturating_sub(1);
            }
            (!refused).then(|| empty_acc(kind, buckets))
        });
        match found {
            Some((i, created)) => (Slot::At(i), created),
            None => (Slot::Refused, false),
        }
    }

    /// Keeps the `share` series that sort first; returns the lines of the others.
    #[cold]
    fn cut_to(&mut self, hasher: &KeyHasher, share: usize) -> u64 {
        let n = self.map.len();
        let Some(last) = share.checked_sub(1).filter(|&l| l < n) else {
            return 0;
        };
        let mut order: Vec<usize> = (0..n).collect();
        let map = &mut self.map;
        order.select_nth_unstable_by(last, |&a, &b| cmp_keys(map.key(a), map.key(b)));
        let mut keep = vec![false; n];
        for &i in &order[..share] {
            keep[i] = true;
        }
        let dropped = order[share..]
            .iter()
            .filter_map(|&i| map.acc_mut(i).map(|acc| acc.lines()))
            .sum();
        self.bound = Some(map.key(order[last]).into());
        map.retain(hasher, &keep);
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

/// Lines a window takes before its [`LineCache`] is used: below that a window
/// is looked up metric by metric (a cache entry costs more than a lookup per
/// metric for a combination seen once or twice).
const CACHE_AFTER: u32 = 64;

/// Open windows, ascending by start (usually one or two).
pub struct OpenWindows {
    windows: Vec<WindowAgg>,
    /// Lines a window takes before it caches where a line's series are.
    cache_after: u32,
    /// A line's key (host and every label value), and one metric's.
    key_buf: Vec<u8>,
    metric_key_buf: Vec<u8>,
    /// Where each part of the line's key (`key_buf`) ends.
    key_ends: Vec<usize>,
    /// Per metric, `Some(k)` if its labels are the first `k` of the line's
    /// ([`Plan::line_slots`]): its key is then the line key's first `k + 1`
    /// parts, not built again. Made on first use: an `OpenWindows` serves one plan.
    key_prefixes: Vec<Option<usize>>,
    /// Per metric, how large the last drained window's series were, and the
    /// line cache's keys: a new window's maps start that large. A window's
    /// series are mostly the last one's again, so growing each map from empty
    /// (rehashing every key at each doubling) would redo the same work every
    /// window.
    sizes: Vec<Room>,
    cache_size: usize,
    /// The last line's series, for a window too small for its [`LineCache`].
    last: LastLine,
    /// Hashes every window's series keys.
    hasher: KeyHasher,
}

/// Where [`OpenWindows::add`] remembers a line's series.
#[derive(Clone, Copy)]
enum Remembered {
    /// Not found yet (no metric has needed its series).
    NotYet,
    /// Not remembered: each metric looks its series up.
    Nowhere,
    /// At this offset of the window's [`LineCache`] slots.
    Cache(usize),
    /// In [`OpenWindows::last`].
    Last,
}

impl Default for OpenWindows {
    fn default() -> Self {
        OpenWindows {
            windows: Vec::new(),
            cache_after: CACHE_AFTER,
            key_buf: Vec::new(),
            metric_key_buf: Vec::new(),
            key_ends: Vec::new(),
            key_prefixes: Vec::new(),
            sizes: Vec::new(),
            cache_size: 0,
            last: LastLine::default(),
            hasher: KeyHasher::default(),
        }
    }
}

impl OpenWindows {
    /// Windows whose line cache starts after `lines` lines (tests: any value
    /// must give the same windows).
    #[cfg(test)]
    fn caching_after(lines: u32) -> Self {
        OpenWindows {
            cache_after: lines,
            ..OpenWindows::default()
        }
    }

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
        let w = window_for(&mut self.windows, start, &self.sizes, plan.metrics.len());
        // Offsets into the cache's slots are `u32`s.
        let cap = plan
            .max_series
            .saturating_add(plan.max_series / 2)
            .min(u32::MAX as usize / plan.metrics.len().max(1));
        // Where the line's series are remembered: the window's cache once it
        // has taken `cache_after` lines, else the last line (a window of a few
        // lines, one host's minute among thousands, repeats the line before
        // more often than not). Found when a metric first needs its series.
        let use_cache = w.added >= self.cache_after;
        w.added = w.added.saturating_add(1);
        let mut at = match plan.line_slots {
            Some(_) => Remembered::NotYet,
            None => Remembered::Nowhere,
        };
        for (m, mp) in plan.metrics.iter().enumerate() {
            let Some((accepted, value)) = value_of(mp, parsed, stats) else {
                continue;
            };
            if let Remembered::NotYet = at {
                let slots = plan.line_slots.as_deref().unwrap_or_default();
                build_line_key(&mut self.key_buf, &mut self.key_ends, host, slots, parsed);
                if self.key_prefixes.len() != plan.metrics.len() {
                    self.key_prefixes = key_prefixes(plan);
                }
                at = if use_cache {
                    let cache_size = self.cache_size;
                    let lines = w
                        .lines
                        .get_or_insert_with(|| Box::new(LineCache::with_capacity(cache_size)));
                    lines
                        .entry(&self.key_buf, plan.metrics.len(), cap)
                        .map_or(Remembered::Nowhere, Remembered::Cache)
                } else {
                    self.last.find(start, &self.key_buf, plan.metrics.len());
                    Remembered::Last
                };
            }
            let series = &mut w.metrics[m];
            let cached = match (at, w.lines.as_deref()) {
                (Remembered::Cache(o), Some(lines)) => lines.slots[o + m],
                (Remembered::Last, _) => self.last.slot(m),
                _ => Slot::Unknown,
            };
            let (slot, created) = match cached {
                Slot::Unknown => {
                    // The line key's first parts if the metric's labels lead
                    // the line's (the line key is built whenever a metric needs
                    // its series and the plan has `line_slots`), else its own.
                    let prefix = match at {
                        Remembered::NotYet | Remembered::Nowhere if plan.line_slots.is_none() => {
                            None
                        }
                        _ => self.key_prefixes.get(m).copied().flatten(),
                    };
                    let key = match prefix.and_then(|k| self.key_ends.get(k)) {
                        Some(&end) => &self.key_buf[..end],
                        None => {
                            build_key(&mut self.metric_key_buf, host, &mp.label_slots, parsed);
                            &self.metric_key_buf
                        }
                    };
                    let found = series.find_or_create(&self.hasher, key, mp.kind);
                    match (at, w.lines.as_deref_mut()) {
                        (Remembered::Cache(o), Some(lines)) => lines.slots[o + m] = found.0,
                        (Remembered::Last, _) => self.last.set_slot(m, found.0),
                        _ => {}
                    }
                    found
                }
                known => (known, false),
            };
            let Slot::At(i) = slot else {
                stats.count_series_dropped(&mp.name, 1);
                continue;
            };
            // Always there: an index comes from this map, and a cut (which moves
            // states) clears the cache.
            if let Some(acc) = series.map.acc_mut(i as usize) {
                if let Err(reason) = acc.add_accepted(accepted, value, t) {
                    stats.count_value_error(&mp.name, reason);
                }
            }
            if created && series.map.len() > plan.series_share + plan.series_share / 2 {
                let dropped = series.cut_to(&self.hasher, plan.series_share);
                stats.count_series_dropped(&mp.name, dropped);
                // The metric's states moved: what the cache and the last line
                // remember is void.
                if let Some(lines) = w.lines.as_deref_mut() {
                    lines.clear();
                }
                self.last.forget();
                at = Remembered::Nowhere;
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
        if closed > 0 {
            // A window of the same start may open again: the last line's
            // series were in the one drained.
            self.last.forget();
        }
        for w in self.windows.drain(..closed) {
            self.sizes.clear();
            self.sizes.extend(w.metrics.iter().map(Room::of));
            self.cache_size = w.lines.as_ref().map_or(0, |l| l.map.len());
            for (m, series) in w.metrics.into_iter().enumerate() {
                let limited = series.bound.is_some();
                series.map.drain_sorted(|key, acc| {
                    emit(
                        w.start as WindowTime,
                        SeriesState {
                            metric: m as u32,
                            key,
                            limited,
                            acc,
                        },
                    );
                });
            }
        }
        closed as u64
    }

    /// Windows with data not yet drained.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// The start of the earliest window with data not yet drained.
    pub fn first_start(&self) -> Option<WindowTime> {
        self.windows.first().map(|w| w.start as WindowTime)
    }
}

/// The key of `host` and the values of `slots` (a missing field reads as empty).
#[inline]
fn build_key(buf: &mut Vec<u8>, host: &str, slots: &[usize], parsed: &Parsed<'_>) {
    buf.clear();
    push_key_part(buf, host);
    for &s in slots {
        push_key_part(buf, parsed.field(s).unwrap_or(""));
    }
}

/// [`build_key`] for a line's key, noting in `ends` where each part ends.
#[inline]
fn build_line_key(
    buf: &mut Vec<u8>,
    ends: &mut Vec<usize>,
    host: &str,
    slots: &[usize],
    parsed: &Parsed<'_>,
) {
    buf.clear();
    ends.clear();
    push_key_part(buf, host);
    ends.push(buf.len());
    for &s in slots {
        push_key_part(buf, parsed.field(s).unwrap_or(""));
        ends.push(buf.len());
    }
}

/// Per metric of `plan`, `Some(k)` if its labels are the first `k` of
/// [`Plan::line_slots`] (in order): its key is the line key's first `k + 1` parts.
fn key_prefixes(plan: &Plan) -> Vec<Option<usize>> {
    let line = plan.line_slots.as_deref().unwrap_or_default();
    plan.metrics
        .iter()
        .map(|mp| {
            let k = mp.label_slots.len();
            (plan.line_slots.is_some() && line.get(..k) == Some(&mp.label_slots[..])).then_some(k)
        })
        .collect()
}

/// A line's value for metric `mp`, converted for its kind (and the value itself,
/// which only a gauge keeps), or `None` once the reason it cannot be used is
/// counted. A plain decimal goes straight to the fixed-point terms where that is
/// exact ([`Accepted::from_decimal`]); anything else through a float, as always.
#[inline]
fn value_of(mp: &MetricPlan, parsed: &Parsed<'_>, stats: &mut JobStats) -> Option<(Accepted, f64)> {
    if mp.kind == MetricKind::Counter {
        return Some((Accepted::default(), 0.0));
    }
    let Some(raw) = mp.value_slot.and_then(|s| parsed.field(s)) else {
        stats.count_value_error(&mp.name, "field_missing");
        return None;
    };
    let direct = match mp.kind {
        MetricKind::Gauge => None,
        kind => parse_decimal(raw).and_then(|d| Accepted::from_decimal(kind, d)),
    };
    let accepted = match direct {
        Some(a) => a.map(|a| (a, 0.0)),
        None => match parse_number(raw) {
            Some(v) => Acc::accept(mp.kind, v).map(|a| (a, v)),
            None => Err("not_a_number"),
        },
    };
    accepted
        .map_err(|reason| stats.count_value_error(&mp.name, reason))
        .ok()
}

/// A new series' state; a histogram with room for `hist_buckets` sparse buckets.
fn empty_acc(kind: MetricKind, hist_buckets: usize) -> Acc {
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
        MetricKind::Histogram => Acc::Hist(Box::new(Hist::with_buckets(hist_buckets))),
    }
}

/// The window starting at `start`, made if new with room (and some slack) for
/// what the open window before it holds of each metric, or if there is none,
/// for `sizes[m]` of each metric `m` (none past `sizes`' end). A group often
/// reads several minutes of lines in one turn: each window is then complete when
/// the next one opens, long before the watermark drains it.
fn window_for<'w>(
    windows: &'w mut Vec<WindowAgg>,
    start: EventMs,
    sizes: &[Room],
    metrics: usize,
) -> &'w mut WindowAgg {
    // Most lines land in the newest window; search from the back.
    let pos = windows.iter().rposition(|w| w.start <= start);
    let idx = match pos {
        Some(i) if windows[i].start == start => i,
        other => {
            let at = other.map_or(0, |i| i + 1);
            let before = at.checked_sub(1).and_then(|i| windows.get(i));
            let room = |m: usize| match before.and_then(|w| w.metrics.get(m)) {
                Some(series) => Room::of(series),
                None => sizes.get(m).copied().unwrap_or_default(),
            };
            let metrics = (0..metrics)
                .map(|m| MetricSeries::with_room(room(m).with_slack()))
                .collect();
            windows.insert(
                at,
                WindowAgg {
                    start,
                    metrics,
                    lines: None,
                    added: 0,
                },
            );
            at
        }
    };
    &mut windows[idx]
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
