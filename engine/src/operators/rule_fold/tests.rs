use proptest::prelude::*;
use tidemark_jobs::{Grouping, SeriesSelector};

use super::*;

fn aggregate(op: AggOp) -> RuleExpr {
    RuleExpr::Aggregate {
        op,
        grouping: Grouping::By(vec![]),
        metric: 0,
        selector: SeriesSelector::Value,
    }
}

fn quantile(q: f64) -> RuleExpr {
    RuleExpr::HistogramQuantile {
        q,
        grouping: Grouping::By(vec![]),
        metric: 0,
    }
}

/// What rollup gave before inputs were folded on worker 0: every host
/// series' number, folded there in host series order.
fn naive(op: AggOp, values: &[f64]) -> Option<Value> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let it = || values.iter().copied();
    Some(match op {
        AggOp::Count => Value::Int(n as u64),
        AggOp::Sum => Value::Float(it().sum()),
        AggOp::Min => Value::Float(it().fold(f64::INFINITY, f64::min)),
        AggOp::Max => Value::Float(it().fold(f64::NEG_INFINITY, f64::max)),
        AggOp::Avg => Value::Float(it().sum::<f64>() / n as f64),
    })
}

/// The same value, bit for bit (NaN equal to NaN).
fn same(a: Option<Value>, b: Option<Value>) -> bool {
    match (a, b) {
        (Some(Value::Float(x)), Some(Value::Float(y))) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

fn one_input(value: RuleValue) -> RuleInput {
    RuleInput {
        rule: 0,
        ord: 0,
        out_labels: Labels::default(),
        value,
    }
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e300),
        Just(-1e300),
        -1e6f64..1e6,
        any::<f64>(),
    ]
}

fn op() -> impl Strategy<Value = AggOp> {
    prop_oneof![
        Just(AggOp::Sum),
        Just(AggOp::Min),
        Just(AggOp::Max),
        Just(AggOp::Avg),
        Just(AggOp::Count),
    ]
}

proptest! {
    /// The oracle: folding on worker 0, then at rollup, gives what folding
    /// every host series at rollup gave, bit for bit; and rollup still folds
    /// unfolded inputs (one per host series) to the same.
    #[test]
    fn folded_inputs_evaluate_as_every_host_series_folded_at_rollup(
        op in op(),
        values in prop::collection::vec(number(), 0..40),
    ) {
        let expr = aggregate(op);
        let mut folds = RuleFolds::default();
        for (ord, &v) in values.iter().enumerate() {
            folds.add(0, &expr, ord as u32, |_| {}, Contribution::Num(v));
        }
        let folded = folds.into_inputs();
        prop_assert_eq!(folded.len(), usize::from(!values.is_empty()));
        let want = naive(op, &values);
        let got = evaluate(&expr, &folded);
        prop_assert!(same(got, want), "folded: {:?} want {:?}", got, want);
        let unfolded: Vec<RuleInput> = values
            .iter()
            .map(|&v| one_input(RuleValue::Num { n: 1, folded: fold_num(op, identity(op), v) }))
            .collect();
        let got = evaluate(&expr, &unfolded);
        prop_assert!(same(got, want), "unfolded: {:?} want {:?}", got, want);
    }

    /// Histograms merged on worker 0 give the quantiles of all of them merged.
    #[test]
    fn folded_histograms_give_the_quantiles_of_all_merged(
        hosts in prop::collection::vec(prop::collection::vec(0.0f64..1000.0, 0..200), 1..12),
        q in prop::sample::select(vec![0.0, 0.5, 0.9, 0.99, 1.0]),
    ) {
        let hists: Vec<Hist> = hosts
            .iter()
            .map(|values| {
                let mut h = Hist::new();
                for &v in values {
                    h.record(v).unwrap();
                }
                h
            })
            .collect();
        let expr = quantile(q);
        let mut folds = RuleFolds::default();
        for (ord, h) in hists.iter().enumerate() {
            folds.add(0, &expr, ord as u32, |_| {}, Contribution::Hist(h));
        }
        let mut merged = Hist::new();
        for h in &hists {
            merged.merge(h);
        }
        let want = merged.quantile(q).map(Value::Float);
        prop_assert!(same(evaluate(&expr, &folds.into_inputs()), want));
        let unfolded: Vec<RuleInput> =
            hists.iter().map(|h| one_input(RuleValue::Hist(Box::new(h.clone())))).collect();
        prop_assert!(same(evaluate(&expr, &unfolded), want));
    }

    /// One fold per distinct (rule, output labels), in the order first seen,
    /// labelled as `select_at` labels them, holding every input it was given.
    #[test]
    fn one_fold_per_rule_and_output_labels(
        inputs in prop::collection::vec((0u32..3, 0usize..4, 0usize..3, 0u64..4, any::<bool>()), 0..60),
    ) {
        const STATUS: &[&str] = &["200", "404", "500", "2000"];
        const METHOD: &[&str] = &["GET", "POST", "\u{e9}"];
        let expr = aggregate(AggOp::Count);
        let mut folds = RuleFolds::default();
        let mut want: Vec<((u32, Labels), u64)> = Vec::new();
        for (ord, &(rule, status, method, keep, shortcut)) in inputs.iter().enumerate() {
            let labels = Labels::from_pairs(&[("method", METHOD[method]), ("status", STATUS[status])]);
            let out = labels.select_at(keep);
            match want.iter_mut().find(|(k, _)| *k == (rule, out.clone())) {
                Some((_, n)) => *n += 1,
                None => want.push(((rule, out), 1)),
            }
            // A rule that keeps no label may skip the lookup, or not: the
            // same output series either way.
            if keep == 0 && shortcut {
                folds.add_unlabelled(rule, &expr, ord as u32, Contribution::Num(1.0));
            } else {
                folds.add(rule, &expr, ord as u32, |buf| labels.write_selected_at(keep, buf), Contribution::Num(1.0));
            }
        }
        let got: Vec<((u32, Labels), u64)> = folds
            .into_inputs()
            .into_iter()
            .map(|i| match i.value {
                RuleValue::Num { n, .. } => ((i.rule, i.out_labels), n),
                RuleValue::Hist(_) => ((u32::MAX, Labels::default()), 0),
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}
