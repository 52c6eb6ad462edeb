//! Stage 2: per-host series. Partials of one series (from every file group that
//! holds lines of that host) meet on one worker, fold in group order, and become
//! the host series and the inputs of every rule that reads the metric.

use std::sync::Arc;

use tidemark_jobs::{MetricKind, RuleExpr, SeriesSelector};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use super::per_window::per_window;
use crate::acc::Acc;
use crate::plan::{rule_labels, selector_of, Plan};
use crate::series::{HostPartial, Origin, RuleInput, RuleValue, Series, Value};
use crate::time::WindowTime;

/// What stage 2 produces: host series for sinks, and inputs for rules.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Stage2 {
    Host(Series),
    Rule(RuleInput),
}

pub fn host_merge<'scope>(
    partials: Stream<'scope, WindowTime, Vec<HostPartial>>,
    plan: Arc<Plan>,
) -> Stream<'scope, WindowTime, Vec<Stage2>> {
    let pact = Exchange::new(|p: &HostPartial| p.route());
    per_window(partials, pact, "HostMerge", move |parts| {
        merge_window(parts, &plan)
    })
}

/// Folds one window's partials into host series and rule inputs.
pub fn merge_window(mut parts: Vec<HostPartial>, plan: &Plan) -> Vec<Stage2> {
    parts.sort_by(|a, b| {
        (a.metric, &a.host, &a.labels, &a.group, a.seq)
            .cmp(&(b.metric, &b.host, &b.labels, &b.group, b.seq))
    });
    let mut out = Vec::new();
    let mut it = parts.into_iter().peekable();
    while let Some(first) = it.next() {
        let HostPartial {
            metric,
            host,
            labels,
            mut acc,
            ..
        } = first;
        while let Some(next) = it.peek() {
            if next.metric != metric || next.host != host || next.labels != labels {
                break;
            }
            if let Some(next) = it.next() {
                acc.merge(&next.acc);
            }
        }
        let Some(mp) = plan.metrics.get(metric as usize) else {
            continue;
        };
        let mut series_labels: Vec<(String, String)> = mp
            .label_names
            .iter()
            .cloned()
            .zip(labels.iter().cloned())
            .collect();
        series_labels.push(("host".to_string(), host.clone()));
        series_labels.sort();
        if plan.want_host_series {
            host_series(
                &mp.name,
                mp.kind,
                &mp.quantiles,
                &series_labels,
                &acc,
                &mut out,
            );
        }
        for &r in &mp.rules {
            let rule = &plan.rules[r];
            let (grouping, value) = match &rule.expr {
                RuleExpr::Aggregate { grouping, .. } => {
                    let v = match (selector_of(&rule.expr), &acc) {
                        (SeriesSelector::Value, Acc::Count(c)) => *c as f64,
                        (SeriesSelector::Value, Acc::Sum(s)) => s.value(),
                        (SeriesSelector::Value, Acc::Gauge { v, .. }) => *v,
                        (SeriesSelector::HistogramCount, Acc::Hist(h)) => h.count() as f64,
                        (SeriesSelector::HistogramSum, Acc::Hist(h)) => h.sum.value(),
                        // Validation only lets rules select what the metric has.
                        _ => continue,
                    };
                    (grouping, RuleValue::Num(v))
                }
                RuleExpr::HistogramQuantile { grouping, .. } => match &acc {
                    Acc::Hist(h) => (grouping, RuleValue::Hist(h.clone())),
                    _ => continue,
                },
            };
            out.push(Stage2::Rule(RuleInput {
                rule: r as u32,
                out_labels: rule_labels(grouping, &series_labels),
                host: host.clone(),
                labels: labels.clone(),
                value,
            }));
        }
    }
    out
}

fn host_series(
    name: &str,
    kind: MetricKind,
    quantiles: &[f64],
    labels: &[(String, String)],
    acc: &Acc,
    out: &mut Vec<Stage2>,
) {
    let mut push = |record: String, labels: Vec<(String, String)>, value: Value| {
        out.push(Stage2::Host(Series {
            record,
            labels,
            value,
            origin: Origin::Host,
        }))
    };
    match (kind, acc) {
        (_, Acc::Count(c)) => push(name.to_string(), labels.to_vec(), Value::Int(*c)),
        (_, Acc::Sum(s)) => push(name.to_string(), labels.to_vec(), Value::Float(s.value())),
        (_, Acc::Gauge { v, .. }) => push(name.to_string(), labels.to_vec(), Value::Float(*v)),
        (_, Acc::Hist(h)) => {
            if h.count() == 0 {
                return;
            }
            push(
                format!("{name}_count"),
                labels.to_vec(),
                Value::Int(h.count()),
            );
            push(
                format!("{name}_sum"),
                labels.to_vec(),
                Value::Float(h.sum.value()),
            );
            for &q in quantiles {
                if let Some(v) = h.quantile(q) {
                    let mut l = labels.to_vec();
                    l.push(("quantile".to_string(), format_quantile(q)));
                    l.sort();
                    push(name.to_string(), l, Value::Float(v));
                }
            }
        }
    }
}

/// `0.99` → "0.99", `1.0` → "1": the shortest text that reads back as `q`.
pub fn format_quantile(q: f64) -> String {
    let s = format!("{q}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
