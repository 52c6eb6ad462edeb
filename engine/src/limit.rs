//! `max_series`: which series a window keeps when its input has more distinct
//! series than the job allows, decided the same way for any number of workers,
//! live or replay, and after a restart — and bounded before the window is complete.
//!
//! **The rule.** A job's `max_series` is shared equally by its metrics: each may
//! hold `share = max_series / metrics` per-host series per window (so one exploding
//! label cannot starve the other metrics). When a window has more series of a metric
//! than that, it keeps the `share` whose keys sort first by (host, label values in
//! the metric's label order, compared as strings) — [`crate::key::cmp_keys`]. Which
//! series are kept depends only on which series the window has, never on the order
//! their lines arrived in, which worker read them or how a replay cut the files.
//!
//! **Applied piecewise.** A series among the `share` first of the whole window is
//! also among the `share` first of any part of the window (fewer series sort before
//! it there). So each stage may cut its part to `share` without losing a series the
//! whole window keeps, and every series that is kept is kept whole:
//! 1. each file group (in a replay, each segment) holds at most `share + share / 2`
//!    series per metric and open window ([`crate::agg`]). When it has more, it keeps
//!    the `share` first and from then on refuses a new series that sorts after the
//!    last one kept (it cannot be among the first);
//! 2. stage 2 ([`crate::operators::host_merge`]) merges each series' partials, and
//!    each worker keeps the `share` first of its series per metric;
//! 3. worker 0 ([`crate::operators::series_limit`]) gets the rest of every worker, and
//!    keeps the `share` first per metric: the window's final series, the only ones
//!    the sinks and the rules see. It warns about windows that lost series (paced).
//!
//! A job-wide count decided in arrival order would not be deterministic (workers
//! race); a limit per group alone would let the output and the rules grow with the
//! number of groups. This rule is deterministic, bounds every group while its window
//! is open, and bounds the job's output once the window closes.
//!
//! **Memory** per open window: a file group holds at most 1.5 × `max_series` series
//! (plus one per metric); a worker's merge at most what its groups sent; worker 0 at
//! most workers × `max_series`; the rules and the sinks at most `max_series` host
//! series (a rule's output has at most as many series as the metric it reads). So at
//! worst, with every group over the limit, about 1.5 × `max_series` per file group.
//!
//! **Counting.** Every line of a series left out is counted once, where its series
//! was left out, under its metric in [`crate::stats::JobStats::series_limit_dropped`].

use std::collections::BTreeSet;

use crate::series::MergedSeries;
use crate::time::EventMs;

/// Which windows lost series, as far as the checkpoint must remember: a finite
/// run resumed after limited windows were committed must still exit 3, though it
/// never sees those windows again. Windows at or past the committed frontier are
/// recomputed after a restart, so only those below it are carried over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LimitedWindows {
    /// Limited windows below the last committed frontier, from every run.
    committed: u64,
    /// Starts of the limited windows of this run not yet below it.
    pending: BTreeSet<EventMs>,
}

impl LimitedWindows {
    /// A run resuming from a checkpoint that recorded `committed` limited windows.
    pub fn resumed(committed: u64) -> LimitedWindows {
        LimitedWindows {
            committed,
            pending: BTreeSet::new(),
        }
    }

    pub fn record(&mut self, window_start: EventMs) {
        self.pending.insert(window_start);
    }

    /// The count to record in a checkpoint of `frontier_ms`.
    pub fn commit(&mut self, frontier_ms: EventMs) -> u64 {
        let later = self.pending.split_off(&frontier_ms);
        self.committed += std::mem::replace(&mut self.pending, later).len() as u64;
        self.committed
    }

    /// Limited windows of earlier runs (below the frontier this run resumed from).
    pub fn committed(&self) -> u64 {
        self.committed
    }
}

/// What cutting one window's series (or one worker's share of them) to each
/// metric's share left out, per metric.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Lines of the series left out here.
    pub dropped_lines: Vec<u64>,
    /// Whether the metric lost series here or before (the series say so).
    pub limited: Vec<bool>,
}

impl Cut {
    pub fn any(&self) -> bool {
        self.limited.iter().any(|&l| l)
    }
}

/// Keeps the first `share` series of each metric of `series`, which is sorted by
/// (metric, key), and marks the kept series of a metric that lost any as limited.
pub fn keep_share(series: &mut Vec<MergedSeries>, share: usize, metrics: usize) -> Cut {
    let mut cut = Cut {
        dropped_lines: vec![0; metrics],
        limited: vec![false; metrics],
    };
    // No metric can have more than `share` series, and none came marked:
    // nothing to cut or mark (the pass below costs ~30 instructions a
    // series, run on every window of a wide label twice).
    if series.len() <= share && !series.iter().any(|s| s.limited) {
        return cut;
    }
    let mut current = None;
    let mut seen = 0usize;
    // Whether any series came marked limited: if none did and none is cut,
    // every mark below stays as it is, and the second pass is skipped (it
    // wrote ~30k of them per window of a wide label, twice: the cut runs per
    // worker and job-wide).
    let mut marked = false;
    series.retain(|s| {
        if current != Some(s.metric) {
            current = Some(s.metric);
            seen = 0;
        }
        seen += 1;
        marked |= s.limited;
        let m = s.metric as usize;
        if let Some(limited) = cut.limited.get_mut(m) {
            *limited |= s.limited || seen > share;
        }
        if seen <= share {
            return true;
        }
        if let Some(lines) = cut.dropped_lines.get_mut(m) {
            *lines += s.acc.lines();
        }
        false
    });
    if marked || cut.any() {
        for s in series.iter_mut() {
            s.limited = cut.limited.get(s.metric as usize).copied().unwrap_or(false);
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acc::Acc;
    use crate::key::push_key_part;

    fn series(metric: u32, label: &str, lines: u64, limited: bool) -> MergedSeries {
        let mut key = Vec::new();
        push_key_part(&mut key, "web");
        push_key_part(&mut key, label);
        MergedSeries {
            metric,
            limited,
            key: key.into(),
            acc: Acc::Count(lines),
        }
    }

    #[test]
    fn only_limited_windows_below_the_frontier_are_committed() {
        let mut w = LimitedWindows::resumed(2);
        w.record(60_000);
        w.record(180_000);
        assert_eq!(w.commit(120_000), 3);
        assert_eq!(w.commit(120_000), 3);
        assert_eq!(w.commit(240_000), 4);
    }

    #[test]
    fn each_metric_keeps_its_first_share_and_counts_the_lines_of_the_rest() {
        let mut s = vec![
            series(0, "a", 1, false),
            series(0, "b", 2, false),
            series(0, "c", 4, false),
            series(1, "a", 8, false),
            series(2, "a", 16, true),
        ];
        let cut = keep_share(&mut s, 2, 3);
        let kept: Vec<(u32, bool)> = s.iter().map(|s| (s.metric, s.limited)).collect();
        assert_eq!(
            kept,
            [(0, true), (0, true), (1, false), (2, true)],
            "metric 0 lost `c`; metric 2 had lost series before"
        );
        assert_eq!(cut.dropped_lines, [4, 0, 0]);
        assert_eq!(cut.limited, [true, false, true]);
        assert!(cut.any());
        let mut under = vec![series(0, "a", 1, false)];
        assert!(!keep_share(&mut under, 1, 1).any());
        assert!(!under[0].limited);
        // A mark of a metric the job does not have is cleared, though
        // nothing is cut: the marks are rewritten whenever any came set.
        let mut stray = vec![series(0, "a", 1, false), series(3, "a", 1, true)];
        assert!(!keep_share(&mut stray, 5, 1).any());
        assert_eq!(
            stray.iter().map(|s| s.limited).collect::<Vec<_>>(),
            [false, false]
        );
    }
}
