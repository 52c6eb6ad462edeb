//! Stage 2: per-host series. Partials of one series (from every file group that
//! holds lines of that host) meet on one worker and fold in group order; each worker
//! then keeps its first `share` series of each metric (see [`crate::limit`]) and
//! sends them to the job-wide cut ([`super::series_limit`]).

use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::per_window;
use crate::key::cmp_keys;
use crate::limit::keep_share;
use crate::plan::Plan;
use crate::series::{HostPartial, MergedSeries};
use crate::stats::SharedStats;
use crate::time::WindowTime;

pub fn host_merge<'scope>(
    partials: Stream<'scope, WindowTime, Vec<HostPartial>>,
    plan: Arc<Plan>,
    stats: SharedStats,
) -> Stream<'scope, WindowTime, Vec<MergedSeries>> {
    let pact = Exchange::new(|p: &HostPartial| p.route());
    per_window(partials, pact, "HostMerge", move |_window, parts| {
        let mut merged = merge_partials(parts);
        let cut = keep_share(&mut merged, plan.series_share, plan.metrics.len());
        if cut.dropped_lines.iter().any(|&n| n > 0) {
            if let Ok(mut s) = stats.lock() {
                for (mp, &n) in plan.metrics.iter().zip(&cut.dropped_lines) {
                    s.count_series_dropped(&mp.name, n);
                }
            }
        }
        merged
    })
}

/// Folds one window's partials into one state per series, in (metric, key) order.
pub fn merge_partials(mut parts: Vec<HostPartial>) -> Vec<MergedSeries> {
    parts.sort_by(|a, b| {
        a.metric
            .cmp(&b.metric)
            .then_with(|| cmp_keys(&a.key, &b.key))
            .then_with(|| a.group.cmp(&b.group))
            .then_with(|| a.seq.cmp(&b.seq))
    });
    // In place: a window's partials can be many; no second buffer of them.
    parts.dedup_by(|next, kept| {
        let same = next.metric == kept.metric && next.key == kept.key;
        if same {
            kept.acc.merge(&next.acc);
            kept.limited |= next.limited;
        }
        same
    });
    parts
        .into_iter()
        .map(|p| MergedSeries {
            metric: p.metric,
            limited: p.limited,
            key: p.key,
            acc: p.acc,
        })
        .collect()
}
