//! Stage 2½, on worker 0: the job-wide `max_series` cut. Every worker's merged
//! series of a complete window meet here, sorted by (metric, host, labels); each
//! metric keeps its first `share` (see `crate::limit`), a window that lost series
//! is counted and warned about (paced: a job always over the limit must not log
//! one warning per window), and the kept series become the host series for the
//! sinks and the inputs of every rule that reads their metric.

use std::sync::Arc;

use tidemark_jobs::{MetricKind, RuleExpr, SeriesSelector};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::{per_window_split, PerWindow};
use super::rule_fold::{shared_folds, Contribution, RuleFolds};
use crate::acc::Acc;
use crate::key::cmp_keys;
use crate::labels::{KeyNames, Labels};
use crate::limit::keep_share;
use crate::plan::{rule_labels, selector_of, MetricPlan, Plan};
use crate::series::{MergedSeries, Origin, RuleInput, Series, Value};
use crate::stats::SharedStats;
use crate::time::{EventMs, WindowTime};

/// What this stage produces of a window's kept series: each one's records for
/// the sinks, and per rule output series the kept series' contributions to it,
/// folded (the two are split apart again before rollup).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Stage2 {
    /// A per-host record for the sinks: a counter's count, a sum, a gauge, or one
    /// of a histogram's quantiles, `_count` and `_sum` records. Only built when
    /// some sink prints per-host series.
    Host(Series),
    /// The kept series' contributions to one rule output series, folded in
    /// host series order (`operators::rule_fold`).
    Rule(RuleInput),
}

/// Extension trait for the stream of merged per-host series (stage 2's output):
/// the job-wide `max_series` cut.
pub trait SeriesLimit<'scope> {
    /// Sends every merged series to worker 0 and, once a window is complete,
    /// keeps each metric's first `plan.series_share` series by (host, label
    /// values), then turns the kept ones into host records and rule inputs. A
    /// window that lost series is counted in `stats` (`series_limited_windows`,
    /// and the lines of the series left out as dropped for their metric) and
    /// warned about, paced: the first few windows each, then at most once an hour.
    ///
    /// # Examples
    /// `max_series = 2` with one metric: of three hosts in a window, the first
    /// two by name are kept and the window is counted as limited.
    /// ```
    /// use std::path::Path;
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use tidemark_engine::acc::Acc;
    /// use tidemark_engine::operators::series_limit::{SeriesLimit, Stage2};
    /// use tidemark_engine::plan::Plan;
    /// use tidemark_engine::series::MergedSeries;
    /// use tidemark_engine::stats::JobStats;
    /// use tidemark_engine::Value;
    ///
    /// let text = "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
    ///             [parse]\nformat = \"json\"\n[window]\nmax_series = 2\n\
    ///             [[metric]]\nname = \"hits\"\nkind = \"counter\"\n\
    ///             [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
    /// let env = tidemark_jobs::Env::empty();
    /// let job = tidemark_jobs::from_str_with_env(text, "j.toml", Path::new("/"), &env).unwrap();
    /// let plan = Arc::new(Plan::new(&job));
    /// // A series key of the host alone (the metric has no labels): its length as a
    /// // little-endian u32, then its bytes.
    /// let merged = |host: &str, lines: u64| {
    ///     let mut key = (host.len() as u32).to_le_bytes().to_vec();
    ///     key.extend_from_slice(host.as_bytes());
    ///     MergedSeries { metric: 0, limited: false, key: key.into(), acc: Acc::Count(lines) }
    /// };
    /// let series = vec![merged("web3", 4), merged("web1", 2), merged("web2", 1)];
    /// let stats = Arc::new(Mutex::new(JobStats::default()));
    /// let shared = stats.clone();
    /// let windows = timely::example(move |scope| {
    ///     series
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .series_limit(plan, shared)
    ///         .capture()
    /// });
    /// let kept: Vec<(String, Value)> = windows
    ///     .try_iter()
    ///     .filter_map(|event| match event {
    ///         Event::Messages(_window, out) => Some(out),
    ///         Event::Progress(_) => None,
    ///     })
    ///     .flatten()
    ///     .map(|out| match out {
    ///         Stage2::Host(s) => (s.labels.get("host").unwrap().to_string(), s.value),
    ///         Stage2::Rule(_) => panic!("the job has no rules"),
    ///     })
    ///     .collect();
    /// assert_eq!(kept, vec![("web1".to_string(), Value::Int(2)), ("web2".to_string(), Value::Int(1))]);
    /// assert_eq!(stats.lock().unwrap().series_limited_windows, 1);
    /// ```
    fn series_limit(
        self,
        plan: Arc<Plan>,
        stats: SharedStats,
    ) -> Stream<'scope, WindowTime, Vec<Stage2>>;
}

impl<'scope> SeriesLimit<'scope> for Stream<'scope, WindowTime, Vec<MergedSeries>> {
    fn series_limit(
        self,
        plan: Arc<Plan>,
        stats: SharedStats,
    ) -> Stream<'scope, WindowTime, Vec<Stage2>> {
        let mut cut = Cutter::new(plan, stats, false);
        let pact = Exchange::new(|_: &MergedSeries| 0u64);
        self.per_window(pact, "SeriesLimit", move |window, series| {
            let (hosts, rules) = cut.window(window, series);
            let hosts = hosts.into_iter().map(Stage2::Host);
            hosts.chain(rules.into_iter().map(Stage2::Rule)).collect()
        })
    }
}

/// [`SeriesLimit::series_limit`] of host merge's output
/// ([`super::host_merge::HostMerge`]), its host records and rule inputs on
/// two streams, each window's as one container. Each worker sends a window's
/// series sorted, so on a single worker, whose series are the window's only
/// input and come in the order they were sent, they arrive sorted and are not
/// checked again (with more workers their runs interleave, and are).
pub(crate) fn series_limit_of_merged<'scope>(
    merged: Stream<'scope, WindowTime, Vec<MergedSeries>>,
    plan: Arc<Plan>,
    stats: SharedStats,
) -> (
    Stream<'scope, WindowTime, Vec<Series>>,
    Stream<'scope, WindowTime, Vec<RuleInput>>,
) {
    let one_worker = merged.scope().peers() == 1;
    let mut cut = Cutter::new(plan, stats, one_worker);
    let pact = Exchange::new(|_: &MergedSeries| 0u64);
    per_window_split(merged, pact, "SeriesLimit", move |window, series| {
        cut.window(window, series)
    })
}

/// The stage's work on one complete window: the cut, then its records.
struct Cutter {
    plan: Arc<Plan>,
    stats: SharedStats,
    /// The input arrives sorted by (metric, key).
    sorted: bool,
    pace: WarnPace,
    /// Each histogram metric's quantiles as label values, made once rather
    /// than formatted again for every host series of every window.
    quantiles: Vec<Vec<String>>,
    /// Where the host records reach the sinks as they are made (no sort, no
    /// comparison of their labels), each metric's label names with the key
    /// parts they name: a host series' labels are then its key read through
    /// them. Otherwise the labels are encoded, which sort faster.
    names: Option<Vec<Arc<KeyNames>>>,
    kept: Vec<Vec<Option<u64>>>,
    /// Per rule, the rule whose folds it copies ([`shared_folds`]).
    shared: Vec<Option<u32>>,
}

impl Cutter {
    fn new(plan: Arc<Plan>, stats: SharedStats, sorted: bool) -> Cutter {
        let quantiles = plan
            .metrics
            .iter()
            .map(|mp| mp.quantiles.iter().map(|&q| format_quantile(q)).collect())
            .collect();
        let names = host_records_in_output_order(&plan).then(|| {
            plan.metrics
                .iter()
                .map(|mp| Arc::new(KeyNames::new(&mp.output_labels)))
                .collect()
        });
        let kept = kept_places(&plan);
        let shared = shared_of(&plan);
        Cutter {
            plan,
            stats,
            sorted,
            pace: WarnPace::default(),
            quantiles,
            names,
            kept,
            shared,
        }
    }

    fn window(
        &mut self,
        window: WindowTime,
        mut series: Vec<MergedSeries>,
    ) -> (Vec<Series>, Vec<RuleInput>) {
        let by = |a: &MergedSeries, b: &MergedSeries| {
            a.metric
                .cmp(&b.metric)
                .then_with(|| cmp_keys(&a.key, &b.key))
        };
        // Otherwise each worker's series come sorted (host merge's order),
        // the whole window too when there is one: seen in one pass, where
        // the stable sort would first allocate its scratch buffer (as large
        // as the window's series) to find that out.
        debug_assert!(!self.sorted || series.is_sorted_by(|a, b| by(a, b).is_le()));
        if !self.sorted && !series.is_sorted_by(|a, b| by(a, b).is_le()) {
            series.sort_by(by);
        }
        let plan = &self.plan;
        let cut = keep_share(&mut series, plan.series_share, plan.metrics.len());
        if cut.any() {
            report(window as EventMs, &cut, plan, &self.stats, &mut self.pace);
        }
        let names = self.names.as_deref();
        to_stage2(
            series,
            plan,
            &self.quantiles,
            names,
            &self.kept,
            &self.shared,
        )
    }
}

/// The kept series (sorted) as host records and rule inputs; `quantiles`: each
/// metric's quantiles as label values; `names`: each metric's label names
/// ([`KeyNames`]) where the labels are to be read from the keys, `None` where
/// they are to be encoded.
fn to_stage2(
    series: Vec<MergedSeries>,
    plan: &Plan,
    quantiles: &[Vec<String>],
    names: Option<&[Arc<KeyNames>]>,
    kept: &[Vec<Option<u64>>],
    shared: &[Option<u32>],
) -> (Vec<Series>, Vec<RuleInput>) {
    // Sized once for all the window's host records rather than regrown
    // through them: each doubling copied the records into pages the kernel
    // faulted in afresh (a fifth of a 2,000-host run's page faults).
    let mut out = Vec::with_capacity(host_records_bound(&series, plan));
    // Encoded: every series' labels in shared buffers (a few allocations per
    // window, not one per series).
    let mut encoded = match names {
        Some(_) => Vec::new(),
        None => Labels::for_keys(series.iter().map(|s| {
            let mp = plan.metrics.get(s.metric as usize)?;
            Some((mp.output_labels.as_slice(), &s.key[..]))
        })),
    }
    .into_iter();
    // Each rule output series' inputs, folded as they come (in ord order).
    let mut folds = RuleFolds::default();
    for (ord, s) in series.into_iter().enumerate() {
        let Some(mp) = plan.metrics.get(s.metric as usize) else {
            encoded.next();
            continue;
        };
        let labels = match names {
            // Read from the key through the metric's names: nothing is copied
            // per series (the sinks read them once, pair by pair).
            Some(names) => match names.get(s.metric as usize) {
                Some(names) => Labels::of_key(names, s.key),
                None => continue,
            },
            None => encoded.next().unwrap_or_default(),
        };
        let kept = kept.get(s.metric as usize).map_or(&[][..], Vec::as_slice);
        for (n, &r) in mp.rules.iter().enumerate() {
            let rule = &plan.rules[r];
            let (grouping, c) = match &rule.expr {
                RuleExpr::Aggregate { grouping, .. } => {
                    let v = match (selector_of(&rule.expr), &s.acc) {
                        (SeriesSelector::Value, Acc::Count(c)) => *c as f64,
                        (SeriesSelector::Value, Acc::Sum { sum, .. }) => sum.value(),
                        (SeriesSelector::Value, Acc::Gauge { v, .. }) => *v,
                        (SeriesSelector::HistogramCount, Acc::Hist(h)) => h.count() as f64,
                        (SeriesSelector::HistogramSum, Acc::Hist(h)) => h.sum.value(),
                        // Validation only lets rules select what the metric has.
                        _ => continue,
                    };
                    (grouping, Contribution::Num(v))
                }
                RuleExpr::HistogramQuantile { grouping, .. } => match &s.acc {
                    // A rule sharing an earlier one's folds still makes its
                    // output series; that rule merges the histogram.
                    Acc::Hist(_) if shared.get(r).is_some_and(Option::is_some) => {
                        (grouping, Contribution::Shared)
                    }
                    Acc::Hist(h) => (grouping, Contribution::Hist(h)),
                    _ => continue,
                },
            };
            let write_labels = |buf: &mut Vec<u8>| match kept.get(n) {
                Some(&Some(at)) => labels.write_selected_at(at, buf),
                _ => buf.extend_from_slice(&rule_labels(grouping, &labels).as_bytes()),
            };
            match kept.get(n) {
                Some(&Some(0)) => folds.add_unlabelled(r as u32, &rule.expr, ord as u32, c),
                _ => folds.add(r as u32, &rule.expr, ord as u32, write_labels, c),
            }
        }
        if mp.host_series {
            let q = quantiles
                .get(s.metric as usize)
                .map_or(&[][..], Vec::as_slice);
            host_series(mp, q, labels, &s.acc, &mut out);
        }
    }
    (out, folds.into_inputs(shared))
}

/// Per rule of `plan`, the rule whose folds it copies ([`shared_folds`]).
fn shared_of(plan: &Plan) -> Vec<Option<u32>> {
    shared_folds(plan.rules.iter().map(|r| &r.expr))
}

/// At most how many host records [`to_stage2`] makes of `series`: per series
/// its records where they are printed (a histogram's one per quantile, `_count`
/// and `_sum`; none for an empty histogram or a quantile it has no value of).
fn host_records_bound(series: &[MergedSeries], plan: &Plan) -> usize {
    let per_metric: Vec<usize> = (plan.metrics.iter())
        .map(|mp| match (mp.host_series, mp.kind) {
            (false, _) => 0,
            (true, MetricKind::Histogram) => mp.quantiles.len() + 2,
            (true, _) => 1,
        })
        .collect();
    let of = |s: &MergedSeries| per_metric.get(s.metric as usize).copied().unwrap_or(0);
    series.iter().map(of).sum()
}

/// Per metric, per rule that reads it (as `mp.rules`): the places of the
/// metric's output labels the rule's grouping keeps, as bits
/// ([`Labels::select_at`]); `None` past 64 labels (then the names are
/// compared, [`rule_labels`]).
fn kept_places(plan: &Plan) -> Vec<Vec<Option<u64>>> {
    plan.metrics
        .iter()
        .map(|mp| {
            mp.rules
                .iter()
                .map(|&r| {
                    let grouping = match &plan.rules.get(r)?.expr {
                        RuleExpr::Aggregate { grouping, .. } => grouping,
                        RuleExpr::HistogramQuantile { grouping, .. } => grouping,
                    };
                    if mp.output_labels.len() > 64 {
                        return None;
                    }
                    // The kept names, as `rule_labels` keeps them.
                    let names =
                        Labels::from_sorted(mp.output_labels.iter().map(|(n, _)| (n.as_str(), "")));
                    let kept = rule_labels(grouping, &names);
                    let kept: Vec<&str> = kept.iter().map(|(n, _)| n).collect();
                    Some(
                        mp.output_labels
                            .iter()
                            .enumerate()
                            .filter(|(_, (n, _))| kept.contains(&n.as_str()))
                            .fold(0u64, |m, (i, _)| m | 1 << i),
                    )
                })
                .collect()
        })
        .collect()
}

/// Whether the host records [`to_stage2`] makes of a window's series (sorted by
/// (metric, key)) are already in the order the sinks get a window in, (record,
/// labels) ([`super::record_order`]), and are all of the window's records: the
/// job has no rules (whose outputs join them), no histogram is printed (its
/// series make records of three names), the printed metrics' record names
/// increase with their index, and each one's label names, sorted, name the
/// key's parts in their order (two series' labels, names alike, then compare
/// as their keys do). They are made on worker 0 alone, and reach the collect
/// stage there in the order they were made, with any number of workers.
pub(crate) fn host_records_in_output_order(plan: &Plan) -> bool {
    if !plan.rules.is_empty() {
        return false;
    }
    let mut last: Option<&str> = None;
    for mp in plan.metrics.iter().filter(|mp| mp.host_series) {
        let in_key_order = mp
            .output_labels
            .iter()
            .map(|&(_, part)| part)
            .eq(0..mp.output_labels.len());
        if mp.kind == MetricKind::Histogram
            || last.is_some_and(|l| l >= &*mp.record)
            || !in_key_order
        {
            return false;
        }
        last = Some(&mp.record);
    }
    true
}

/// `quantiles`: `mp.quantiles` as label values.
fn host_series(
    mp: &MetricPlan,
    quantiles: &[String],
    labels: Labels,
    acc: &Acc,
    out: &mut Vec<Series>,
) {
    let mut push = |record: &Arc<str>, labels: Labels, value: Value| {
        out.push(Series {
            record: record.clone(),
            labels,
            value,
            origin: Origin::Host,
        })
    };
    match acc {
        Acc::Count(c) => push(&mp.record, labels, Value::Int(*c)),
        Acc::Sum { sum, .. } => push(&mp.record, labels, Value::Float(sum.value())),
        Acc::Gauge { v, .. } => push(&mp.record, labels, Value::Float(*v)),
        Acc::Hist(h) => {
            if h.count() == 0 {
                return;
            }
            let mut with_q: Vec<(&str, &str)> = labels.iter().collect();
            for (&q, text) in mp.quantiles.iter().zip(quantiles) {
                if let Some(v) = h.quantile(q) {
                    // Where a sort of the pairs would put it (they are sorted).
                    let at = with_q.partition_point(|&p| p < ("quantile", text.as_str()));
                    with_q.insert(at, ("quantile", text));
                    push(
                        &mp.record,
                        Labels::from_sorted(with_q.iter().copied()),
                        Value::Float(v),
                    );
                    with_q.remove(at);
                }
            }
            push(&mp.count_record, labels.clone(), Value::Int(h.count()));
            push(&mp.sum_record, labels, Value::Float(h.sum.value()));
        }
    }
}

/// `0.99` → "0.99", `1.0` → "1": the shortest text that reads back as `q`.
fn format_quantile(q: f64) -> String {
    let s = format!("{q}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

mod warn;
use warn::{report, WarnPace};

#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod fold_tests;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod tests;
