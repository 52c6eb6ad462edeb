//! How a rule folds its inputs, once for both places that fold them.
//!
//! Every host series of a window meets on worker 0 (the job-wide `max_series`
//! cut, [`super::series_limit`]) in (metric, host, labels) order, which is the
//! order a rule folds its inputs in. So that stage folds each rule output
//! series' inputs as it makes them ([`RuleFolds`]), and rollup
//! ([`super::rollup`]) receives one input per rule output series instead of one
//! per host series and rule: a 2,000-host window made ~28,000 inputs, each
//! with labels in a buffer of its own, a histogram cloned, and a trip through
//! the exchange, a sort and a hash map, where it now makes ~10. Rollup folds
//! what it receives with the same functions ([`evaluate`]); one input folds to
//! itself, so the numbers are those of folding every host series there, bit
//! for bit.

use std::collections::HashMap;

use tidemark_jobs::{AggOp, Grouping, RuleExpr};

use crate::acc::Hist;
use crate::labels::Labels;
use crate::series::{RuleInput, RuleValue, Value};

/// One host series' contribution to one rule, borrowed from the series.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Contribution<'a> {
    /// Its number (a count, sum, gauge…), for the aggregations.
    Num(f64),
    /// Its histogram, for `histogram_quantile`.
    Hist(&'a Hist),
    /// Nothing: the rule shares the folds of an earlier one ([`shared_folds`]),
    /// which folds this series' histogram. The output series is still made.
    Shared,
}

/// Per rule (by index), the earlier rule whose folds it takes a copy of: a
/// `histogram_quantile` of the same metric and grouping as one before it (p50
/// and p99 of one histogram) folds the very same histograms in the very same
/// order, so its folds are that rule's, bit for bit, without merging every
/// host's histogram once more (2,000 merges a window per quantile).
pub(crate) fn shared_folds<'r>(exprs: impl Iterator<Item = &'r RuleExpr>) -> Vec<Option<u32>> {
    let mut firsts: Vec<(usize, &Grouping, u32)> = Vec::new();
    exprs
        .enumerate()
        .map(|(r, expr)| {
            let RuleExpr::HistogramQuantile {
                grouping, metric, ..
            } = expr
            else {
                return None;
            };
            let first = firsts
                .iter()
                .find(|(m, g, _)| m == metric && *g == grouping)
                .map(|&(_, _, first)| first);
            if first.is_none() {
                firsts.push((*metric, grouping, r as u32));
            }
            first
        })
        .collect()
}

/// What an aggregation's fold starts from.
fn identity(op: AggOp) -> f64 {
    match op {
        AggOp::Min => f64::INFINITY,
        AggOp::Max => f64::NEG_INFINITY,
        // What `Iterator::sum` starts from (-0.0 in current Rust), so a sum
        // is the one `sum()` of the numbers gives. `count` reads only `n`.
        AggOp::Sum | AggOp::Avg | AggOp::Count => std::iter::empty::<f64>().sum(),
    }
}

/// `acc` with `v` folded in as `op` folds numbers.
fn fold_num(op: AggOp, acc: f64, v: f64) -> f64 {
    match op {
        AggOp::Min => min_num(acc, v),
        AggOp::Max => max_num(acc, v),
        AggOp::Sum | AggOp::Avg => acc + v,
        AggOp::Count => acc,
    }
}

/// The smaller of `a` and `b`, a NaN ignored (as `f64::min`), and -0 below
/// +0: `f64::min` may give either zero, depending on how it was compiled, so
/// `min` over a +0 and a -0 gave 0 in one build of a fold and -0 in another
/// (regression test `min_and_max_of_signed_zeros_do_not_depend_on_the_build`).
fn min_num(a: f64, b: f64) -> f64 {
    if a.is_nan() || b < a || (b == a && b.is_sign_negative()) {
        b
    } else {
        a
    }
}

/// The larger of `a` and `b`, a NaN ignored, and +0 above -0 (see [`min_num`]).
fn max_num(a: f64, b: f64) -> f64 {
    if a.is_nan() || b > a || (b == a && a.is_sign_negative()) {
        b
    } else {
        a
    }
}

/// A rule's value before any input is folded in.
fn empty(expr: &RuleExpr) -> RuleValue {
    match expr {
        RuleExpr::Aggregate { op, .. } => RuleValue::Num {
            n: 0,
            folded: identity(*op),
        },
        RuleExpr::HistogramQuantile { .. } => RuleValue::Hist(Box::default()),
    }
}

/// Folds one host series' contribution into `value`. A contribution of the
/// wrong kind (a histogram for `sum`) is not folded: stage 2½ makes none.
fn fold_contribution(value: &mut RuleValue, expr: &RuleExpr, c: Contribution<'_>) {
    match (value, expr, c) {
        (RuleValue::Num { n, folded }, RuleExpr::Aggregate { op, .. }, Contribution::Num(v)) => {
            *n += 1;
            *folded = fold_num(*op, *folded, v);
        }
        (RuleValue::Hist(h), RuleExpr::HistogramQuantile { .. }, Contribution::Hist(x)) => {
            h.merge(x)
        }
        (_, _, Contribution::Shared) => {}
        _ => debug_assert!(false, "a contribution a rule cannot read"),
    }
}

/// One window's rule output series on worker 0, each with its inputs folded so
/// far, in the order they were first seen.
#[derive(Default)]
pub(crate) struct RuleFolds {
    /// (rule, output labels' encoding) → place in `folds`.
    index: HashMap<Vec<u8>, usize, ahash::RandomState>,
    folds: Vec<RuleInput>,
    /// The key being looked up (reused: most lookups find their series).
    key: Vec<u8>,
    /// Per rule, its output series without labels, once seen: `sum(x)` and
    /// `histogram_quantile(q, x)` fold every host series into one, and are
    /// most of a job's rule inputs; they skip the lookup.
    unlabelled: Vec<Option<usize>>,
}

impl RuleFolds {
    /// Folds host series `ord`'s contribution `c` to rule `rule` (`expr`)
    /// into the output series whose labels `write_labels` encodes (as
    /// [`Labels::as_bytes`] gives them). Host series come in `ord` order.
    pub(crate) fn add(
        &mut self,
        rule: u32,
        expr: &RuleExpr,
        ord: u32,
        write_labels: impl FnOnce(&mut Vec<u8>),
        c: Contribution<'_>,
    ) {
        self.key.clear();
        self.key.extend_from_slice(&rule.to_le_bytes());
        write_labels(&mut self.key);
        let at = match self.index.get(self.key.as_slice()) {
            Some(&at) => at,
            None => {
                let at = self.folds.len();
                self.folds.push(RuleInput {
                    rule,
                    ord,
                    out_labels: Labels::from_encoding(&self.key[4..]),
                    value: empty(expr),
                });
                self.index.insert(self.key.clone(), at);
                at
            }
        };
        if let Some(input) = self.folds.get_mut(at) {
            fold_contribution(&mut input.value, expr, c);
        }
    }

    /// [`RuleFolds::add`] for an output series without labels (a rule that
    /// keeps none of its metric's).
    pub(crate) fn add_unlabelled(
        &mut self,
        rule: u32,
        expr: &RuleExpr,
        ord: u32,
        c: Contribution<'_>,
    ) {
        let cached = self.unlabelled.get(rule as usize).copied().flatten();
        match cached.and_then(|at| self.folds.get_mut(at)) {
            Some(input) => fold_contribution(&mut input.value, expr, c),
            None => {
                self.add(rule, expr, ord, |_| {}, c);
                let at = self.index.get(&rule.to_le_bytes()[..]).copied();
                let slot = rule as usize;
                if self.unlabelled.len() <= slot {
                    self.unlabelled.resize(slot + 1, None);
                }
                self.unlabelled[slot] = at;
            }
        }
    }

    /// The folded inputs, one per rule output series; those of a rule that
    /// shares folds (`shared`, from [`shared_folds`]) are copies of its first
    /// rule's of the same output labels.
    pub(crate) fn into_inputs(mut self, shared: &[Option<u32>]) -> Vec<RuleInput> {
        for i in 0..self.folds.len() {
            let Some(first) = shared.get(self.folds[i].rule as usize).copied().flatten() else {
                continue;
            };
            self.key.clear();
            self.key.extend_from_slice(&first.to_le_bytes());
            self.key
                .extend_from_slice(&self.folds[i].out_labels.as_bytes());
            // Always there: the first rule was given every series this one was.
            if let Some(&at) = self.index.get(self.key.as_slice()) {
                let value = self.folds[at].value.clone();
                self.folds[i].value = value;
            }
        }
        self.folds
    }
}

/// The value of one rule output series from its inputs (in host series order),
/// each already a fold of one or more host series; `None` when none of them
/// holds anything the rule can use.
pub(crate) fn evaluate(expr: &RuleExpr, group: &[RuleInput]) -> Option<Value> {
    match expr {
        RuleExpr::Aggregate { op, .. } => {
            let (mut n, mut acc) = (0u64, identity(*op));
            for input in group {
                if let RuleValue::Num { n: m, folded } = input.value {
                    if m > 0 {
                        n += m;
                        acc = fold_num(*op, acc, folded);
                    }
                }
            }
            if n == 0 {
                return None;
            }
            Some(match op {
                AggOp::Count => Value::Int(n),
                AggOp::Sum | AggOp::Min | AggOp::Max => Value::Float(acc),
                AggOp::Avg => Value::Float(acc / n as f64),
            })
        }
        RuleExpr::HistogramQuantile { q, .. } => {
            let mut hists = group.iter().filter_map(|i| match &i.value {
                RuleValue::Hist(h) => Some(&**h),
                RuleValue::Num { .. } => None,
            });
            let first = hists.next()?;
            let quantile = match hists.next() {
                None => first.quantile(*q),
                Some(second) => {
                    let mut merged = Hist::new();
                    for h in [first, second].into_iter().chain(hists) {
                        merged.merge(h);
                    }
                    merged.quantile(*q)
                }
            };
            quantile.map(Value::Float)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
