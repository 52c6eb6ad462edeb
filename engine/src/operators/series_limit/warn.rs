//! The `max_series` cut's warnings: a window that lost series is counted, and
//! warned about at a pace a job always over the limit cannot flood the log at.

use std::time::{Duration, Instant};

use crate::limit::Cut;
use crate::plan::Plan;
use crate::stats::SharedStats;
use crate::time::{format_ms, EventMs};

/// Windows over `max_series` warned about each; after them a job always over it
/// would flood the log with a warning per window.
const WARNED_EACH: u64 = 3;
/// After the first [`WARNED_EACH`], at most one warning this often, saying how
/// many windows went unwarned (all are counted in `series_limited_windows`).
const WARN_EVERY: Duration = Duration::from_secs(3600);

/// How often windows over `max_series` are warned about.
#[derive(Default)]
pub(super) struct WarnPace {
    warned: u64,
    /// Limited windows since the last warning.
    unwarned: u64,
    last: Option<Instant>,
}

impl WarnPace {
    /// Whether to warn about one more limited window at `now`, and if so how
    /// many went unwarned before it.
    fn next(&mut self, now: Instant) -> Option<u64> {
        let due = self.warned < WARNED_EACH
            || self
                .last
                .is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY);
        if !due {
            self.unwarned += 1;
            return None;
        }
        self.warned += 1;
        self.last = Some(now);
        Some(std::mem::take(&mut self.unwarned))
    }
}

/// Warns (paced) about a window that lost series, and counts it.
pub(super) fn report(
    start: EventMs,
    cut: &Cut,
    plan: &Plan,
    stats: &SharedStats,
    pace: &mut WarnPace,
) {
    if let Some(unwarned) = pace.next(Instant::now()) {
        warn(start, cut, plan, unwarned, pace.warned == WARNED_EACH);
    }
    if let Ok(mut s) = stats.lock() {
        s.series_limited_windows += 1;
        s.limited_windows.record(start);
        for (mp, &n) in plan.metrics.iter().zip(&cut.dropped_lines) {
            s.count_series_dropped(&mp.name, n);
        }
    }
}

fn warn(start: EventMs, cut: &Cut, plan: &Plan, unwarned: u64, last_of_each: bool) {
    let metrics: Vec<&str> = plan
        .metrics
        .iter()
        .zip(&cut.limited)
        .filter(|(_, &limited)| limited)
        .map(|(mp, _)| mp.name.as_str())
        .collect();
    tracing::warn!(
        "window {} .. {}: more series than max_series = {} allows: {} kept only the first {} series (by host, then label values); the others were not created and their lines are counted as series_limit_dropped{}{}\n  hint: raise [window] max_series if the job has the memory for it, or leave out the label with too many values",
        format_ms(start),
        format_ms(start + plan.window_ms),
        plan.max_series,
        metrics.join(", "),
        plan.series_share,
        if unwarned > 0 {
            format!(" ({unwarned} earlier window(s) over max_series were not warned about)")
        } else {
            String::new()
        },
        if last_of_each {
            " — further windows over max_series are warned about at most once an hour (all are counted in the stats)"
        } else {
            ""
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_windows_are_warned_each_then_at_most_once_an_hour() {
        let mut pace = WarnPace::default();
        let t0 = Instant::now();
        let got: Vec<Option<u64>> = (0..6).map(|_| pace.next(t0)).collect();
        assert_eq!(got, [Some(0), Some(0), Some(0), None, None, None]);
        assert_eq!(pace.next(t0 + WARN_EVERY), Some(3));
        assert_eq!(pace.next(t0 + WARN_EVERY), None);
    }
}
