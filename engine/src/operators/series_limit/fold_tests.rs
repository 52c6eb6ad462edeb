//! Review R18f: stage 2½ folds each rule output series' inputs itself
//! (`rule_fold`, since 152e8f6), and rollup folds what it receives. Checked
//! here against what rollup computed before, when it got one input per host
//! series and rule: each output series' numbers folded in host series order
//! (`sum()`, `fold(∞, min)`, …), histograms merged into an empty one — bit for
//! bit, with values whose float folds depend on their order and grouping
//! (1e308 + 1e308 − 1e308, 1e16 + 1, −0, NaN, ±∞), groupings that keep no
//! label, some, `host`, all but some, and a metric past 64 labels (where the
//! labels are found by name, `rule_labels`). And one input per output series
//! reaches rollup: two would fold as (a + b) + (c + d), not a + b + c + d.
//! And the window's host records fit the vector `host_records_bound` sized.

use std::collections::HashMap;

use proptest::prelude::*;
use tidemark_jobs::RuleExpr;

use super::tests::plan_of;
use super::*;
use crate::acc::Hist;
use crate::key::push_key_part;
use crate::operators::rollup::evaluate_rules;
use crate::operators::rule_fold::tests::naive;

const VALUES: [&str; 6] = ["", "a", "b", "a\0", "\u{e9}", "xxxxxxxxx"];
/// Numbers whose sum, min and max depend on the order they fold in.
const NUMBERS: [f64; 14] = [
    1e308,
    -1e308,
    f64::MAX,
    1e16,
    1.0,
    0.1,
    0.2,
    -0.0,
    0.0,
    5e-324,
    -2.5,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
];
/// Labels of the wide metric: past 64, rules find their places by name.
const WIDE: usize = 65;

/// Every aggregation with every kind of grouping over `g`, some over the wide
/// metric `w`, and quantiles and `_count`/`_sum` aggregations over `lat`.
fn job() -> String {
    let mut text = String::from(
        "[[metric]]\nname = \"g\"\nkind = \"gauge\"\nfield = \"v\"\nlabels = [\"b\", \"a\"]\n\
         [[metric]]\nname = \"lat\"\nkind = \"histogram\"\nfield = \"v\"\nlabels = [\"a\"]\n",
    );
    let wide: Vec<String> = (0..WIDE).map(|i| format!("\"l{i:02}\"")).collect();
    text += &format!(
        "[[metric]]\nname = \"w\"\nkind = \"gauge\"\nfield = \"v\"\nlabels = [{}]\n",
        wide.join(", ")
    );
    let mut rules: Vec<String> = Vec::new();
    for op in ["sum", "min", "max", "avg", "count"] {
        for grouping in [
            "",
            "by (a) ",
            "by (host, b) ",
            "without (a) ",
            "without (host) ",
        ] {
            rules.push(format!("{op} {grouping}(g)"));
        }
        rules.push(format!("{op} by (l03, host) (w)"));
        rules.push(format!("{op} without (l64, host) (w)"));
        rules.push(format!("{op} by (a) (lat_sum)"));
        rules.push(format!("{op} without (host) (lat_count)"));
    }
    rules.push("histogram_quantile(0.9, lat)".into());
    rules.push("histogram_quantile(0.5, sum by (a) (lat))".into());
    rules.push("histogram_quantile(0.99, sum without (a) (lat))".into());
    // Two that share the folds of one above (same metric and grouping).
    rules.push("histogram_quantile(0.5, lat)".into());
    rules.push("histogram_quantile(0.75, sum by (a) (lat))".into());
    for (i, expr) in rules.iter().enumerate() {
        text += &format!("[[rule]]\nrecord = \"r{i}\"\nexpr = \"{expr}\"\n");
    }
    text
}

/// A job whose rules each keep every label (one output series per host
/// series) or none (one in all). (Made when the bound counted rule inputs
/// too, exact for such rules; `host_records_bound` counts host records only,
/// exact when no histogram is empty, and the rule inputs are a `Vec` of
/// their own.)
fn tight_job() -> String {
    let mut text = String::from(
        "[[metric]]\nname = \"g\"\nkind = \"gauge\"\nfield = \"v\"\nlabels = [\"b\", \"a\"]\n\
         [[metric]]\nname = \"lat\"\nkind = \"histogram\"\nfield = \"v\"\nlabels = [\"a\"]\n\
         quantiles = [0.5, 0.9]\n",
    );
    let wide: Vec<String> = (0..WIDE).map(|i| format!("\"l{i:02}\"")).collect();
    text += &format!(
        "[[metric]]\nname = \"w\"\nkind = \"gauge\"\nfield = \"v\"\nlabels = [{}]\n",
        wide.join(", ")
    );
    let rules = [
        "sum(g)",
        "max without () (g)",
        "avg by (host, a, b) (g)",
        // Past 64 labels the bound allows one input per series for any rule
        // (`min(w)` would make it loose): only rules that keep them all.
        "count without () (w)",
        "histogram_quantile(0.9, sum without () (lat))",
        "sum(lat_count)",
    ];
    for (i, expr) in rules.iter().enumerate() {
        text += &format!("[[rule]]\nrecord = \"t{i}\"\nexpr = \"{expr}\"\n");
    }
    text
}

/// One host series: metric, host, label values, and its number (gauges) or
/// histogram values.
type Raw = (u32, usize, Vec<usize>, usize, Vec<f64>);

fn series_of(plan: &Plan, raw: &[Raw]) -> Vec<MergedSeries> {
    let mut series: Vec<MergedSeries> = raw
        .iter()
        .map(|(metric, host, values, number, hist)| {
            let mp = &plan.metrics[*metric as usize];
            let mut key = Vec::new();
            push_key_part(&mut key, &format!("h{host}"));
            for part in 0..mp.output_labels.len() - 1 {
                let v = values.get(part % values.len().max(1)).copied().unwrap_or(0);
                push_key_part(&mut key, VALUES[(v + part) % VALUES.len()]);
            }
            let acc = match mp.kind {
                MetricKind::Histogram => {
                    let mut h = Hist::new();
                    for &v in hist {
                        h.record(v).unwrap();
                    }
                    Acc::Hist(Box::new(h))
                }
                _ => Acc::Gauge {
                    t: 0,
                    v: NUMBERS[*number],
                    lines: 1,
                },
            };
            MergedSeries {
                metric: *metric,
                limited: false,
                key: key.into(),
                acc,
            }
        })
        .collect();
    series.sort_by(|a, b| {
        a.metric
            .cmp(&b.metric)
            .then_with(|| cmp_keys(&a.key, &b.key))
    });
    series.dedup_by(|a, b| a.metric == b.metric && a.key == b.key);
    series
}

/// What rollup gave before 152e8f6: per rule output series (labels found by
/// name), every host series' contribution folded in host series order.
fn before(plan: &Plan, series: &[MergedSeries]) -> HashMap<(String, Vec<(String, String)>), Value> {
    let mut out = HashMap::new();
    for (r, rule) in plan.rules.iter().enumerate() {
        let (metric, grouping) = match &rule.expr {
            RuleExpr::Aggregate {
                metric, grouping, ..
            }
            | RuleExpr::HistogramQuantile {
                metric, grouping, ..
            } => (*metric, grouping),
        };
        let mp = &plan.metrics[metric];
        // Output series in the order first seen, each with its inputs in order.
        let mut groups: Vec<(Labels, Vec<&Acc>)> = Vec::new();
        for s in series.iter().filter(|s| s.metric as usize == metric) {
            let labels = rule_labels(grouping, &Labels::from_key(&mp.output_labels, &s.key));
            match groups.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, accs)) => accs.push(&s.acc),
                None => groups.push((labels, vec![&s.acc])),
            }
        }
        for (labels, accs) in groups {
            let value = match &rule.expr {
                RuleExpr::Aggregate { op, .. } => {
                    let nums: Vec<f64> = accs
                        .iter()
                        .map(|acc| match (selector_of(&rule.expr), acc) {
                            (SeriesSelector::Value, Acc::Gauge { v, .. }) => *v,
                            (SeriesSelector::HistogramCount, Acc::Hist(h)) => h.count() as f64,
                            (SeriesSelector::HistogramSum, Acc::Hist(h)) => h.sum.value(),
                            other => panic!("rule {r} reads {other:?}"),
                        })
                        .collect();
                    // The oracle of the fold's own tests: the same numbers.
                    naive(*op, &nums)
                }
                RuleExpr::HistogramQuantile { q, .. } => {
                    let mut merged = Hist::new();
                    for acc in accs {
                        if let Acc::Hist(h) = acc {
                            merged.merge(h);
                        }
                    }
                    merged.quantile(*q).map(Value::Float)
                }
            };
            if let Some(value) = value {
                out.insert((rule.record.to_string(), labels.to_vec()), value);
            }
        }
    }
    out
}

/// A value's bits, every NaN as one: Rust does not fix a NaN's sign or
/// payload from arithmetic (RFC 3514), so `inf + -inf + NaN` may give either
/// sign in two builds of one sum.
fn bits(v: &Value) -> (bool, u64) {
    match v {
        Value::Int(n) => (true, *n),
        Value::Float(x) if x.is_nan() => (false, f64::NAN.to_bits()),
        Value::Float(x) => (false, x.to_bits()),
    }
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        0u32..3,
        0usize..6,
        prop::collection::vec(0usize..VALUES.len(), 1..3),
        0usize..NUMBERS.len(),
        prop::collection::vec(
            prop_oneof![0.0..10.0f64, 0.0..1e6f64, Just(0.0), Just(2.5)],
            0..90,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rules_fold_on_worker_0_as_rollup_folded_every_host_series(
        raw in prop::collection::vec(raw(), 0..80),
    ) {
        let plan = plan_of(&job());
        let series = series_of(&plan, &raw);
        let want = before(&plan, &series);
        let quantiles = vec![Vec::new(); plan.metrics.len()];
        let kept = kept_places(&plan);
        let bound = host_records_bound(&series, &plan);
        let (hosts, inputs) = to_stage2(series, &plan, &quantiles, None, &kept, &shared_of(&plan));
        // Sized by the bound and never regrown (a regrown vector's capacity
        // is past it): the bound is not under the records made.
        prop_assert_eq!(hosts.capacity(), bound);
        // One input per rule output series: rollup folds inputs, and two of
        // one series would group the host series' numbers differently.
        let mut seen = std::collections::HashSet::new();
        for i in &inputs {
            prop_assert!(seen.insert((i.rule, i.out_labels.to_vec())), "two inputs of rule {} {:?}", i.rule, i.out_labels);
        }
        let got: HashMap<(String, Vec<(String, String)>), Value> = evaluate_rules(inputs, &plan)
            .into_iter()
            .map(|s| ((s.record.to_string(), s.labels.to_vec()), s.value))
            .collect();
        prop_assert_eq!(got.len(), want.len());
        for (key, w) in &want {
            let g = got.get(key);
            prop_assert!(g.is_some_and(|g| bits(g) == bits(w)), "{:?}: got {:?}, want {:?}", key, g, w);
        }
    }

    /// Where the bound is exact, the window's records fill it: a bound one
    /// record short would regrow the vector (its capacity then past it).
    #[test]
    fn a_windows_records_fill_the_bound_where_it_is_exact(
        raw in prop::collection::vec(raw(), 0..80),
    ) {
        let plan = plan_of(&tight_job());
        let series = series_of(&plan, &raw);
        let every_metric = (0..3u32).all(|m| series.iter().any(|s| s.metric == m));
        let empty_hists = series.iter().any(|s| matches!(&s.acc, Acc::Hist(h) if h.count() == 0));
        let quantiles: Vec<Vec<String>> = plan
            .metrics
            .iter()
            .map(|mp| mp.quantiles.iter().map(|&q| format_quantile(q)).collect())
            .collect();
        let kept = kept_places(&plan);
        let bound = host_records_bound(&series, &plan);
        let (hosts, _) = to_stage2(series, &plan, &quantiles, None, &kept, &shared_of(&plan));
        prop_assert_eq!(hosts.capacity(), bound);
        if every_metric && !empty_hists {
            prop_assert_eq!(hosts.len(), bound);
        }
    }
}
