//! Stage 3: recording rules. Every input of one rule output series (host series'
//! contributions, already folded on worker 0 by [`super::rule_fold`]) meets on
//! one worker (routed by rule and output labels), folds in host series order,
//! and becomes one output record.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::PerWindow;
use super::permute::permute;
use super::rule_fold::evaluate;
use crate::plan::Plan;
use crate::series::{Origin, RuleInput, Series};
use crate::time::WindowTime;

/// Extension trait for the stream of rule inputs (host series' contributions to
/// rule output series): stage 3 of the dataflow.
pub trait Rollup<'scope> {
    /// Routes every input of one rule output series (by rule and output labels)
    /// to one worker and, once the window is complete, evaluates it into one
    /// output record per series, folding its inputs in host series order. A
    /// series with no input the rule can use (e.g. only histograms for `sum`)
    /// gives no record.
    ///
    /// # Examples
    /// `sum by (path) (hits)` over three host series of one window: two of path
    /// `/a`, one of `/b`.
    /// ```
    /// use std::path::Path;
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use tidemark_engine::operators::rollup::Rollup;
    /// use tidemark_engine::plan::Plan;
    /// use tidemark_engine::series::{RuleInput, RuleValue};
    /// use tidemark_engine::{Labels, Origin, Series, Value};
    ///
    /// let text = "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
    ///             [parse]\nformat = \"json\"\n\
    ///             [[metric]]\nname = \"hits\"\nkind = \"counter\"\nlabels = [\"path\"]\n\
    ///             [[rule]]\nrecord = \"path:hits\"\nexpr = \"sum by (path) (hits)\"\n\
    ///             [[sink]]\nkind = \"stdout\"\n";
    /// let env = tidemark_jobs::Env::empty();
    /// let job = tidemark_jobs::from_str_with_env(text, "j.toml", Path::new("/"), &env).unwrap();
    /// let plan = Arc::new(Plan::new(&job));
    /// let input = |ord: u32, path: &str, hits: f64| RuleInput {
    ///     rule: 0,
    ///     ord,
    ///     out_labels: Labels::from_pairs(&[("path", path)]),
    ///     value: RuleValue::Num { n: 1, folded: hits },
    /// };
    /// let inputs = vec![input(0, "/a", 2.0), input(1, "/b", 1.0), input(2, "/a", 3.0)];
    /// let windows = timely::example(move |scope| {
    ///     inputs
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .rollup(plan)
    ///         .capture()
    /// });
    /// let series = |path: &str, v: f64| Series {
    ///     record: Arc::from("path:hits"),
    ///     labels: Labels::from_pairs(&[("path", path)]),
    ///     value: Value::Float(v),
    ///     origin: Origin::Rule,
    /// };
    /// let out: Vec<Series> = windows
    ///     .try_iter()
    ///     .filter_map(|event| match event {
    ///         Event::Messages(_window, series) => Some(series),
    ///         Event::Progress(_) => None,
    ///     })
    ///     .flatten()
    ///     .collect();
    /// assert_eq!(out, vec![series("/a", 5.0), series("/b", 1.0)]);
    /// ```
    fn rollup(self, plan: Arc<Plan>) -> Stream<'scope, WindowTime, Vec<Series>>;
}

impl<'scope> Rollup<'scope> for Stream<'scope, WindowTime, Vec<RuleInput>> {
    fn rollup(self, plan: Arc<Plan>) -> Stream<'scope, WindowTime, Vec<Series>> {
        let pact = Exchange::new(|r: &RuleInput| r.route());
        self.per_window(pact, "Rollup", move |_window, inputs| {
            evaluate_rules(inputs, &plan)
        })
    }
}

/// Evaluates one window's rule inputs.
pub(crate) fn evaluate_rules(mut inputs: Vec<RuleInput>, plan: &Plan) -> Vec<Series> {
    let output = sort_inputs(&mut inputs);
    let mut out = Vec::new();
    let mut start = 0;
    while start < inputs.len() {
        let mut end = start + 1;
        while end < inputs.len() && output[end] == output[start] {
            end += 1;
        }
        let group = &inputs[start..end];
        let rule = &plan.rules[group[0].rule as usize];
        if let Some(value) = evaluate(&rule.expr, group) {
            out.push(Series {
                record: rule.record.clone(),
                labels: group[0].out_labels.clone(),
                value,
                origin: Origin::Rule,
            });
        }
        start = end;
    }
    out
}

/// Sorts a window's inputs by (rule, output labels, ord), equal ones in the order
/// they came (what a stable sort by those gives), and returns, per input in that
/// order, its output series' number (the same for the same rule and labels).
///
/// Inputs are many and their output series few (a rule folds many host series
/// into one): each input's labels are looked up once among the output series
/// seen, only those are sorted by labels, and the inputs by plain numbers —
/// comparing the inputs' labels, each read from wherever it is in the heap, at
/// every step of a sort cost more (thousands of hosts).
fn sort_inputs(inputs: &mut [RuleInput]) -> Vec<u32> {
    // Borrowed: rule outputs' labels are held encoded (`Labels::select`).
    let mut ids: HashMap<(u32, Cow<'_, [u8]>), u32, ahash::RandomState> = HashMap::default();
    // One input of each output series, by number.
    let mut firsts: Vec<usize> = Vec::new();
    // (output series, ord, index): a number per output series for now.
    let mut entries: Vec<(u32, u32, u32)> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let next = firsts.len() as u32;
        let id = *ids
            .entry((input.rule, input.out_labels.as_bytes()))
            .or_insert_with(|| {
                firsts.push(i);
                next
            });
        entries.push((id, input.ord, i as u32));
    }
    drop(ids);
    // The output series are distinct (rule, labels): their order is total.
    let mut by_labels: Vec<u32> = (0..firsts.len() as u32).collect();
    by_labels.sort_unstable_by(|&a, &b| {
        let (x, y) = (&inputs[firsts[a as usize]], &inputs[firsts[b as usize]]);
        (x.rule, &x.out_labels).cmp(&(y.rule, &y.out_labels))
    });
    let mut rank = vec![0u32; firsts.len()];
    for (r, &id) in by_labels.iter().enumerate() {
        rank[id as usize] = r as u32;
    }
    // (rank, ord, index) is unique: its sorted order is the one order. The
    // inputs usually come in host series order (ord), as made: then placing
    // each at its rank's next slot, in the order they came, gives it in one
    // pass (checked: else they are sorted).
    let entries = by_rank(entries, &rank);
    permute(inputs, entries.iter().map(|e| e.2).collect());
    entries.into_iter().map(|e| e.0).collect()
}

/// `entries` (output series number, ord, index) with each number replaced by
/// its `rank`, in (rank, ord, index) order.
fn by_rank(entries: Vec<(u32, u32, u32)>, rank: &[u32]) -> Vec<(u32, u32, u32)> {
    let rank_of = |id: u32| rank.get(id as usize).copied().unwrap_or_default();
    // Where each rank's entries start, then the next free slot of each.
    let mut next = vec![0usize; rank.len() + 1];
    for e in &entries {
        if let Some(n) = next.get_mut(rank_of(e.0) as usize + 1) {
            *n += 1;
        }
    }
    for r in 1..next.len() {
        next[r] += next[r - 1];
    }
    let mut out = vec![(0, 0, 0); entries.len()];
    for &(id, ord, i) in &entries {
        let r = rank_of(id);
        if let Some(slot) = next.get_mut(r as usize) {
            if let Some(o) = out.get_mut(*slot) {
                *o = (r, ord, i);
            }
            *slot += 1;
        }
    }
    if !out.is_sorted() {
        out.sort_unstable();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::series::RuleValue;
    use proptest::prelude::*;

    const VALUES: &[&str] = &[
        "",
        "\0",
        "a",
        "a\0",
        "200",
        "2000",
        "aaaaaaaaaaaaaaaaaaaa1",
        "aaaaaaaaaaaaaaaaaaaa2",
    ];

    proptest! {
        #[test]
        fn sorts_as_a_stable_sort_by_rule_labels_and_ord(
            in_ord_order in any::<bool>(),
            raw in prop::collection::vec(
                (0u32..3, 0u32..4, prop::collection::vec(0usize..VALUES.len(), 0..3)),
                0..200,
            ),
        ) {
            // As to_stage2 makes them (ord order, the one-pass placing), or not.
            let mut raw = raw;
            if in_ord_order {
                raw.sort_by_key(|&(_, ord, _)| ord);
            }
            let mut inputs: Vec<RuleInput> = raw
                .iter()
                .enumerate()
                .map(|(i, (rule, ord, values))| {
                    let pairs: Vec<(String, &str)> = values
                        .iter()
                        .enumerate()
                        .map(|(n, &v)| (format!("l{n}"), VALUES[v]))
                        .collect();
                    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), *v)).collect();
                    RuleInput {
                        rule: *rule,
                        ord: *ord,
                        out_labels: Labels::from_pairs(&pairs),
                        value: RuleValue::Num { n: 1, folded: i as f64 },
                    }
                })
                .collect();
            let mut want = inputs.clone();
            want.sort_by(|a, b| (a.rule, &a.out_labels, a.ord).cmp(&(b.rule, &b.out_labels, b.ord)));
            let output = sort_inputs(&mut inputs);
            let tag = |r: &RuleInput| match r.value {
                RuleValue::Num { folded, .. } => folded,
                RuleValue::Hist(_) => -1.0,
            };
            prop_assert_eq!(inputs.iter().map(tag).collect::<Vec<_>>(), want.iter().map(tag).collect::<Vec<_>>());
            // Equal numbers exactly where the rule and labels are equal.
            for (k, pair) in inputs.windows(2).enumerate() {
                let same = pair[0].rule == pair[1].rule && pair[0].out_labels == pair[1].out_labels;
                prop_assert_eq!(output[k] == output[k + 1], same);
            }
        }
    }
}
