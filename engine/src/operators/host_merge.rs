//! Stage 2: per-host series. Partials of one series (from every file group that
//! holds lines of that host) meet on one worker and fold in group order; each worker
//! then keeps its first `share` series of each metric (see `crate::limit`) and
//! sends them to the job-wide cut ([`super::series_limit`]).

use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::{concat, PerWindow};
use super::permute::permute;
use crate::key::{cmp_keys, shared_host_len, sorted_order, KeyPrefix};
use crate::limit::keep_share;
use crate::plan::Plan;
use crate::series::{HostPartial, MergedSeries};
use crate::stats::SharedStats;
use crate::time::WindowTime;

/// Extension trait for the stream of per-group partial series (stage 1's output):
/// stage 2 of the dataflow.
pub trait HostMerge<'scope> {
    /// Merges each window's partials of one series into one state (routed by
    /// series to one worker, folded in file group order, so the result does not
    /// depend on which worker read which file) and keeps each
    /// metric's first `plan.series_share` series on this worker; the lines of the
    /// series left out are counted in `stats` as dropped for their metric.
    ///
    /// # Examples
    /// Two files of host `web1` and one of `web2` each send a partial count; the
    /// two `web1` partials become one series.
    /// ```
    /// use std::path::Path;
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use tidemark_engine::acc::Acc;
    /// use tidemark_engine::operators::host_merge::HostMerge;
    /// use tidemark_engine::plan::Plan;
    /// use tidemark_engine::series::HostPartial;
    ///
    /// let text = "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
    ///             [parse]\nformat = \"json\"\n\
    ///             [[metric]]\nname = \"hits\"\nkind = \"counter\"\n\
    ///             [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
    /// let env = tidemark_jobs::Env::empty();
    /// let job = tidemark_jobs::from_str_with_env(text, "j.toml", Path::new("/"), &env).unwrap();
    /// let plan = Arc::new(Plan::new(&job));
    /// // A series key of the host alone (the metric has no labels): its length as a
    /// // little-endian u32, then its bytes.
    /// let key = |host: &str| -> Vec<u8> {
    ///     let mut key = (host.len() as u32).to_le_bytes().to_vec();
    ///     key.extend_from_slice(host.as_bytes());
    ///     key
    /// };
    /// let partial = |host: &str, file: &str, lines: u64| HostPartial {
    ///     metric: 0,
    ///     seq: 0,
    ///     limited: false,
    ///     key: key(host).into(),
    ///     group: Arc::from(file),
    ///     acc: Acc::Count(lines),
    /// };
    /// let partials = vec![
    ///     partial("web1", "/l/a.log", 2),
    ///     partial("web2", "/l/c.log", 1),
    ///     partial("web1", "/l/b.log", 3),
    /// ];
    /// let stats = Arc::new(Mutex::new(Default::default()));
    /// let windows = timely::example(move |scope| {
    ///     partials
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .host_merge(plan, stats)
    ///         .capture()
    /// });
    /// // Every record comes out at window 0, where it went in.
    /// let merged: Vec<(Vec<u8>, u64)> = windows
    ///     .try_iter()
    ///     .filter_map(|event| match event {
    ///         Event::Messages(stamp, series) => Some((stamp, series)),
    ///         Event::Progress(_) => None,
    ///     })
    ///     .inspect(|(stamp, _)| assert_eq!(stamp.least(), Some(&0)))
    ///     .flat_map(|(_, series)| series)
    ///     .map(|s| (s.key.to_vec(), s.acc.lines()))
    ///     .collect();
    /// assert_eq!(merged, vec![(key("web1"), 5), (key("web2"), 1)]);
    /// ```
    fn host_merge(
        self,
        plan: Arc<Plan>,
        stats: SharedStats,
    ) -> Stream<'scope, WindowTime, Vec<MergedSeries>>;
}

impl<'scope> HostMerge<'scope> for Stream<'scope, WindowTime, Vec<HostPartial>> {
    fn host_merge(
        self,
        plan: Arc<Plan>,
        stats: SharedStats,
    ) -> Stream<'scope, WindowTime, Vec<MergedSeries>> {
        let pact = Exchange::new(|p: &HostPartial| p.route());
        self.per_window_batches(pact, "HostMerge", move |_window, batches| {
            let mut merged = merge_partials(batches);
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
}

/// Folds one window's partials (the batches they came in) into one state per
/// series, in (metric, key) order.
///
/// A window read by one file group (one host's file, or a single worker's
/// only group) comes as one run in strictly increasing (metric, key) order:
/// the group's aggregation drains each metric's series sorted, one partial
/// per series. Seen in one pass of comparisons over the batches, such a run
/// needs no sort and nothing folds: each partial becomes its series as it
/// is, with no pass looking for equal neighbours.
pub(crate) fn merge_partials(batches: Vec<Vec<HostPartial>>) -> Vec<MergedSeries> {
    if strictly_increasing(&batches) {
        // Straight from the batches, without gathering them into one `Vec`
        // first. (Under glibc's malloc this flipped its arena trimming, 4x the
        // page faults; the binary allocates with jemalloc, where it faults
        // no more than gathering them did: benches/README.md.)
        let mut merged = Vec::with_capacity(batches.iter().map(Vec::len).sum());
        for batch in batches {
            merged.extend(batch.into_iter().map(merged_alone));
        }
        return merged;
    }
    let mut parts = concat(batches);
    if let Some(order) = order_of_disjoint_runs(&parts) {
        permute(&mut parts, order);
        return parts.into_iter().map(merged_alone).collect();
    }
    sort_partials(&mut parts);
    // In place: a window's partials can be many; no second buffer of them.
    parts.dedup_by(|next, kept| {
        let same = next.metric == kept.metric && next.key == kept.key;
        if same {
            kept.acc.merge(&next.acc);
            kept.limited |= next.limited;
        }
        same
    });
    parts.into_iter().map(merged_alone).collect()
}

/// A partial as the series it makes when no other partial folds into it.
fn merged_alone(p: HostPartial) -> MergedSeries {
    MergedSeries {
        metric: p.metric,
        limited: p.limited,
        key: p.key,
        acc: p.acc,
    }
}

/// Whether each partial's (metric, key) is below the next one's, across the
/// batches in order: sorted, and no two of one series (which would fold).
fn strictly_increasing(batches: &[Vec<HostPartial>]) -> bool {
    let below = |a: &HostPartial, b: &HostPartial| {
        a.metric
            .cmp(&b.metric)
            .then_with(|| cmp_keys(&a.key, &b.key))
            .is_lt()
    };
    let mut last: Option<&HostPartial> = None;
    for batch in batches.iter().filter(|b| !b.is_empty()) {
        if let (Some(a), Some(b)) = (last, batch.first()) {
            if !below(a, b) {
                return false;
            }
        }
        if !batch.windows(2).all(|w| below(&w[0], &w[1])) {
            return false;
        }
        last = batch.last();
    }
    true
}

/// The order that sorts `parts` by (metric, key), where it is made of runs in
/// strictly increasing order that do not overlap one another: each file
/// group's partials of one metric, when no two groups hold the same series
/// (one file group per host, thousands of hosts). Then placing the runs by
/// their first partials sorts them all, with a comparison per partial and a
/// sort of the runs rather than of the partials; no two partials are of one
/// series, so none folds, and the order is the one a stable sort gives.
/// `None` where some run overlaps another (two groups hold one series).
fn order_of_disjoint_runs(parts: &[HostPartial]) -> Option<Vec<u32>> {
    let below = |a: &HostPartial, b: &HostPartial| {
        a.metric
            .cmp(&b.metric)
            .then_with(|| cmp_keys(&a.key, &b.key))
            .is_lt()
    };
    let same_group =
        |a: &HostPartial, b: &HostPartial| Arc::ptr_eq(&a.group, &b.group) || a.group == b.group;
    // Each run's metric, start and end. A run ends where its group or metric
    // does (so that a group's runs of different metrics interleave with the
    // others', and two groups' runs that happen to follow in order are still
    // placed apart).
    let mut runs: Vec<(u32, u32, u32)> = Vec::new();
    let mut start = 0;
    for i in 1..=parts.len() {
        let ends = i == parts.len()
            || parts[i].metric != parts[i - 1].metric
            || !same_group(&parts[i - 1], &parts[i])
            || !below(&parts[i - 1], &parts[i]);
        if ends {
            runs.push((parts[start].metric, start as u32, i as u32));
            start = i;
        }
    }
    let first = |r: &(u32, u32, u32)| &parts[r.1 as usize];
    let last = |r: &(u32, u32, u32)| &parts[r.2 as usize - 1];
    // The runs by metric (in the order they came), then each metric's by
    // their first keys: by the keys' numbers, radix-sorted where they are
    // many ([`sorted_order`]; thousands of hosts make thousands of runs a
    // window, which a comparison sort took ~500 instructions each to place).
    runs.sort_by_key(|r| r.0);
    let mut placed: Vec<(u32, u32, u32)> = Vec::with_capacity(runs.len());
    for metric in runs.chunk_by(|a, b| a.0 == b.0) {
        let order = sorted_order(metric.len(), |i| &first(&metric[i]).key[..]);
        placed.extend(order.iter().map(|&i| metric[i as usize]));
    }
    if !placed.windows(2).all(|w| below(last(&w[0]), first(&w[1]))) {
        return None;
    }
    Some(placed.iter().flat_map(|r| r.1..r.2).collect())
}

/// Sorts a window's partials by (metric, key, group, seq), equal ones kept in
/// the order they came (what a stable sort by those gives).
///
/// Many file groups' partials (thousands of hosts) are thousands of short
/// sorted runs, which a sort of the partials compares key by key, each a key
/// read from wherever it is in the heap. So the sort runs on small entries
/// instead: the metric and a number that orders as the key's first bytes do
/// ([`KeyPrefix`]); only entries whose numbers are equal read their partials.
/// The partials are then moved into that order in place (no second buffer of
/// them: a window's partials can be many).
fn sort_partials(parts: &mut [HostPartial]) {
    // One file group's partials (a single host) come as one sorted run: seen
    // in one pass, which stops at the first pair out of order otherwise.
    let ordered = |a: &HostPartial, b: &HostPartial| {
        a.metric
            .cmp(&b.metric)
            .then_with(|| cmp_keys(&a.key, &b.key))
            .then_with(|| a.group.cmp(&b.group))
            .then(a.seq.cmp(&b.seq))
            .is_le()
    };
    if parts.is_sorted_by(ordered) {
        return;
    }
    let skip = shared_host_len(parts.iter().map(|p| &p.key[..]));
    let mut order: Vec<(u32, KeyPrefix, u32)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.metric, KeyPrefix::of(&p.key, skip), i as u32))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then_with(|| {
            let (x, y) = (&parts[a.2 as usize], &parts[b.2 as usize]);
            cmp_keys(&x.key, &y.key)
                .then_with(|| x.group.cmp(&y.group))
                .then(x.seq.cmp(&y.seq))
                // Equal partials keep their order: the sort is then the stable one.
                .then(a.2.cmp(&b.2))
        })
    });
    permute(parts, order.into_iter().map(|(_, _, i)| i).collect());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acc::Acc;
    use crate::key::push_key_part;
    use proptest::prelude::*;

    /// The order the partials were sorted in before [`sort_partials`]: a stable
    /// sort comparing partials whole.
    fn reference(parts: &mut [HostPartial]) {
        parts.sort_by(|a, b| {
            a.metric
                .cmp(&b.metric)
                .then_with(|| cmp_keys(&a.key, &b.key))
                .then_with(|| a.group.cmp(&b.group))
                .then_with(|| a.seq.cmp(&b.seq))
        });
    }

    fn tag(p: &HostPartial) -> u64 {
        match p.acc {
            Acc::Count(n) => n,
            _ => u64::MAX,
        }
    }

    // Parts that tie on a 16-byte prefix, share or differ in hosts, hold NULs
    // and empty values, and whole partials that are equal but for their tag.
    const PARTS: &[&str] = &[
        "",
        "\0",
        "\0\0",
        "a",
        "a\0",
        "web-1",
        "web-10",
        "web-2",
        "aaaaaaaaaaaaaaaaaaaa1",
        "aaaaaaaaaaaaaaaaaaaa2",
        "aaaaaaaaaaaaaaaaaaaa",
    ];

    proptest! {
        #[test]
        fn sorts_as_a_stable_sort_of_whole_partials(
            same_host in any::<bool>(),
            raw in prop::collection::vec(
                (0u32..3, 0usize..PARTS.len(), prop::collection::vec(0usize..PARTS.len(), 0..3),
                 0usize..2, 0u32..2),
                0..200,
            ),
        ) {
            let mut parts: Vec<HostPartial> = raw
                .iter()
                .enumerate()
                .map(|(i, (metric, host, labels, group, seq))| {
                    let mut key = Vec::new();
                    push_key_part(&mut key, if same_host { "web-1" } else { PARTS[*host] });
                    for &l in labels {
                        push_key_part(&mut key, PARTS[l]);
                    }
                    HostPartial {
                        metric: *metric,
                        seq: *seq,
                        limited: false,
                        key: key.into(),
                        group: Arc::from(["/g/a", "/g/b"][*group]),
                        acc: Acc::Count(i as u64),
                    }
                })
                .collect();
            let mut want = parts.clone();
            reference(&mut want);
            sort_partials(&mut parts);
            let got: Vec<u64> = parts.iter().map(tag).collect();
            let want: Vec<u64> = want.iter().map(tag).collect();
            prop_assert_eq!(got, want);
        }

        // A window's partials in batches: one group's run (strictly increasing,
        // the fast path), such a run with one pair swapped (possibly across a
        // batch boundary), sorted partials with repeats (which fold), or any
        // partials. Every way gives the series a whole sort and fold of the
        // partials gives.
        #[test]
        fn merges_batches_as_a_sort_and_fold_of_all_partials(
            kind in 0u8..4,
            swap in any::<prop::sample::Index>(),
            raw in prop::collection::vec(
                (0u32..2, 0usize..PARTS.len(), 0usize..PARTS.len(), any::<bool>()),
                0..120,
            ),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut parts: Vec<HostPartial> = raw
                .iter()
                .enumerate()
                .map(|(i, &(metric, host, value, limited))| {
                    let mut key = Vec::new();
                    push_key_part(&mut key, PARTS[host]);
                    push_key_part(&mut key, PARTS[value]);
                    HostPartial {
                        metric,
                        seq: 0,
                        limited,
                        key: key.into(),
                        group: Arc::from("/g/a"),
                        acc: Acc::Count(i as u64 + 1),
                    }
                })
                .collect();
            if kind < 3 {
                reference(&mut parts);
            }
            if kind < 2 {
                parts.dedup_by(|b, a| a.metric == b.metric && a.key == b.key);
                if kind == 1 && parts.len() > 1 {
                    let i = swap.index(parts.len() - 1);
                    parts.swap(i, i + 1);
                }
            }
            let want = sorted_and_folded(&parts);
            let got = merge_partials(in_batches(parts, &cuts));
            let got: Vec<_> = got.iter().map(|s| (s.metric, s.key.to_vec(), s.limited, s.acc.lines())).collect();
            let want: Vec<_> = want.iter().map(|p| (p.metric, p.key.to_vec(), p.limited, p.acc.lines())).collect();
            prop_assert_eq!(got, want);
        }

        // Many file groups, one host each: each group's partials come as one
        // (metric, key) run, the groups in any order, so runs of different
        // metrics interleave (placed by runs when no two groups share a host;
        // hosts repeat often here, and then the partials are sorted and fold).
        #[test]
        fn merges_many_groups_runs_as_a_sort_and_fold_of_all_partials(
            groups in prop::collection::vec(
                (0usize..PARTS.len(), prop::collection::vec((0u32..3, 0usize..PARTS.len()), 0..6)),
                0..16,
            ).prop_shuffle(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut parts = Vec::new();
            for (g, (host, series)) in groups.iter().enumerate() {
                let mut run: Vec<HostPartial> = series
                    .iter()
                    .map(|&(metric, value)| {
                        let mut key = Vec::new();
                        push_key_part(&mut key, PARTS[*host]);
                        push_key_part(&mut key, PARTS[value]);
                        HostPartial {
                            metric,
                            seq: 0,
                            limited: false,
                            key: key.into(),
                            group: Arc::from(format!("/g/{g:02}")),
                            acc: Acc::Count(parts.len() as u64 + 1),
                        }
                    })
                    .collect();
                reference(&mut run);
                run.dedup_by(|b, a| a.metric == b.metric && a.key == b.key);
                parts.extend(run);
            }
            let want = sorted_and_folded(&parts);
            let got = merge_partials(in_batches(parts, &cuts));
            let got: Vec<_> = got.iter().map(|s| (s.metric, s.key.to_vec(), s.acc.lines())).collect();
            let want: Vec<_> = want.iter().map(|p| (p.metric, p.key.to_vec(), p.acc.lines())).collect();
            prop_assert_eq!(got, want);
        }
    }

    /// What a window's partials make: a whole stable sort of them, each
    /// series' partials folded into the first.
    fn sorted_and_folded(parts: &[HostPartial]) -> Vec<HostPartial> {
        let mut want = parts.to_vec();
        reference(&mut want);
        want.dedup_by(|next, kept| {
            let same = next.metric == kept.metric && next.key == kept.key;
            if same {
                kept.acc.merge(&next.acc);
                kept.limited |= next.limited;
            }
            same
        });
        want
    }

    /// `parts` cut into batches at the places `cuts` pick (empty ones too).
    fn in_batches(parts: Vec<HostPartial>, cuts: &[prop::sample::Index]) -> Vec<Vec<HostPartial>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(parts.len() + 1)).collect();
        at.sort_unstable();
        let mut batches = Vec::new();
        let mut rest = parts;
        for &cut in at.iter().rev() {
            batches.push(rest.split_off(cut.min(rest.len())));
        }
        batches.push(rest);
        batches.reverse();
        batches
    }

    fn partial(metric: u32, host: &str, value: &str, group: &str) -> HostPartial {
        let mut key = Vec::new();
        push_key_part(&mut key, host);
        push_key_part(&mut key, value);
        HostPartial {
            metric,
            seq: 0,
            limited: false,
            key: key.into(),
            group: Arc::from(group),
            acc: Acc::Count(1),
        }
    }

    /// Thousands of hosts' groups (more runs of a metric than the radix sort's
    /// threshold), in an order unlike theirs, hosts that tie on their first 16
    /// bytes among them: placed run by run as a sort and fold would; with two
    /// groups of one host, sorted and folded.
    #[test]
    fn places_thousands_of_groups_runs_as_a_sort_and_fold_would() {
        for shared_host in [false, true] {
            let n = 1500;
            let mut parts = Vec::new();
            for i in 0..n {
                let g = (i * 7919) % n;
                let host = if g % 3 == 0 {
                    format!("aaaaaaaaaaaaaaaaaaaa{g}")
                } else {
                    format!("web-{g}")
                };
                let host = if shared_host && g == 700 {
                    "web-1".to_string()
                } else {
                    host
                };
                for metric in 0..3 {
                    for value in ["200", "404"].iter().take(1 + g % 2) {
                        parts.push(partial(metric, &host, value, &format!("/g/{g}")));
                    }
                }
            }
            let want = sorted_and_folded(&parts);
            assert_eq!(order_of_disjoint_runs(&parts).is_some(), !shared_host);
            let got = merge_partials(vec![parts]);
            let got: Vec<_> = got
                .iter()
                .map(|s| (s.metric, s.key.to_vec(), s.acc.lines()))
                .collect();
            let want: Vec<_> = want
                .iter()
                .map(|p| (p.metric, p.key.to_vec(), p.acc.lines()))
                .collect();
            assert_eq!(got, want, "shared host: {shared_host}");
        }
    }

    /// Two hosts' groups, each with two metrics, come one after the other:
    /// placed run by run. A host read by two groups overlaps: not placed.
    #[test]
    fn places_disjoint_runs_and_refuses_overlapping_ones() {
        let groups = [
            partial(0, "web-2", "200", "/b"),
            partial(0, "web-2", "404", "/b"),
            partial(1, "web-2", "", "/b"),
            partial(0, "web-1", "200", "/a"),
            partial(1, "web-1", "", "/a"),
        ];
        assert_eq!(order_of_disjoint_runs(&groups), Some(vec![3, 0, 1, 4, 2]));
        let overlapping = [
            partial(0, "web-1", "200", "/a"),
            partial(0, "web-1", "404", "/a"),
            partial(0, "web-1", "300", "/b"),
        ];
        assert_eq!(order_of_disjoint_runs(&overlapping), None);
        // Two groups' runs that happen to follow in order are still two runs,
        // placed apart (as one, they would overlap a third group's).
        let following = [
            partial(0, "web-1", "200", "/a"),
            partial(0, "web-3", "200", "/c"),
            partial(0, "web-2", "200", "/b"),
        ];
        assert_eq!(order_of_disjoint_runs(&following), Some(vec![0, 2, 1]));
    }
}
