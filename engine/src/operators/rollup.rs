//! Stage 3: recording rules. Every host series' contribution to one rule output
//! series meets on one worker (routed by rule and output labels), folds in host
//! series order, and becomes one output record.

use std::sync::Arc;

use tidemark_jobs::{AggOp, RuleExpr};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::per_window;
use crate::acc::Hist;
use crate::plan::Plan;
use crate::series::{Origin, RuleInput, RuleValue, Series, Value};
use crate::time::WindowTime;

pub fn rollup<'scope>(
    inputs: Stream<'scope, WindowTime, Vec<RuleInput>>,
    plan: Arc<Plan>,
) -> Stream<'scope, WindowTime, Vec<Series>> {
    let pact = Exchange::new(|r: &RuleInput| r.route());
    per_window(inputs, pact, "Rollup", move |_window, inputs| {
        evaluate_rules(inputs, &plan)
    })
}

/// Evaluates one window's rule inputs.
pub fn evaluate_rules(mut inputs: Vec<RuleInput>, plan: &Plan) -> Vec<Series> {
    inputs.sort_by(|a, b| (a.rule, &a.out_labels, a.ord).cmp(&(b.rule, &b.out_labels, b.ord)));
    let mut out = Vec::new();
    let mut start = 0;
    while start < inputs.len() {
        let mut end = start + 1;
        while end < inputs.len()
            && inputs[end].rule == inputs[start].rule
            && inputs[end].out_labels == inputs[start].out_labels
        {
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

fn evaluate(expr: &RuleExpr, group: &[RuleInput]) -> Option<Value> {
    let nums = || {
        group.iter().filter_map(|i| match i.value {
            RuleValue::Num(v) => Some(v),
            RuleValue::Hist(_) => None,
        })
    };
    match expr {
        RuleExpr::Aggregate { op, .. } => {
            let n = nums().count();
            if n == 0 {
                return None;
            }
            Some(match op {
                AggOp::Count => Value::Int(n as u64),
                AggOp::Sum => Value::Float(nums().sum()),
                AggOp::Min => Value::Float(nums().fold(f64::INFINITY, f64::min)),
                AggOp::Max => Value::Float(nums().fold(f64::NEG_INFINITY, f64::max)),
                AggOp::Avg => Value::Float(nums().sum::<f64>() / n as f64),
            })
        }
        RuleExpr::HistogramQuantile { q, .. } => {
            let mut merged = Hist::new();
            for i in group {
                if let RuleValue::Hist(h) = &i.value {
                    merged.merge(h);
                }
            }
            merged.quantile(*q).map(Value::Float)
        }
    }
}
