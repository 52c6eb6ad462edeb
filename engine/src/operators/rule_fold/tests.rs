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
pub(crate) fn naive(op: AggOp, values: &[f64]) -> Option<Value> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let it = || values.iter().copied();
    Some(match op {
        AggOp::Count => Value::Int(n as u64),
        AggOp::Sum => Value::Float(it().sum()),
        // NaNs ignored, -0 below +0 (`total_cmp`), from the fold's identity.
        AggOp::Min => Value::Float(
            it().filter(|v| !v.is_nan())
                .chain([f64::INFINITY])
                .min_by(f64::total_cmp)
                .unwrap_or(f64::INFINITY),
        ),
        AggOp::Max => Value::Float(
            it().filter(|v| !v.is_nan())
                .chain([f64::NEG_INFINITY])
                .max_by(f64::total_cmp)
                .unwrap_or(f64::NEG_INFINITY),
        ),
        AggOp::Avg => Value::Float(it().sum::<f64>() / n as f64),
    })
}

/// The same value, bit for bit (NaN equal to NaN).
fn same(a: Option<Value>, b: Option<Value>) -> bool {
    match (a, b) {
        // Any NaN: Rust does not fix a NaN's sign or payload from arithmetic
        // (RFC 3514), so two builds of one sum may differ there.
        (Some(Value::Float(x)), Some(Value::Float(y))) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
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
        let folded = folds.into_inputs(&[]);
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
        prop_assert!(same(evaluate(&expr, &folds.into_inputs(&[])), want));
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
            .into_inputs(&[])
            .into_iter()
            .map(|i| match i.value {
                RuleValue::Num { n, .. } => ((i.rule, i.out_labels), n),
                RuleValue::Hist(_) => ((u32::MAX, Labels::default()), 0),
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    /// A quantile rule sharing an earlier one's folds (same metric and
    /// grouping) gets the very folds it would have made itself: the same
    /// inputs, bit for bit, in the same order.
    #[test]
    fn shared_folds_are_the_folds_each_rule_would_make(
        hosts in prop::collection::vec(
            (0usize..3, prop::collection::vec(0.0f64..1000.0, 0..40)),
            0..20,
        ),
    ) {
        let by_status = Grouping::By(vec!["status".to_string()]);
        let q = |q: f64, metric: usize, grouping: &Grouping| RuleExpr::HistogramQuantile {
            q,
            grouping: grouping.clone(),
            metric,
        };
        let rules = [
            q(0.5, 0, &Grouping::By(vec![])),
            q(0.5, 0, &by_status),
            aggregate(AggOp::Count),
            q(0.99, 0, &Grouping::By(vec![])),
            q(0.9, 1, &Grouping::By(vec![])),
            q(0.99, 0, &by_status),
        ];
        let shared = shared_folds(rules.iter());
        prop_assert_eq!(&shared, &vec![None, None, None, Some(0), None, Some(1)]);
        const STATUS: &[&str] = &["200", "404", "500"];
        let hists: Vec<(Labels, Hist)> = hosts
            .iter()
            .map(|(status, values)| {
                let mut h = Hist::new();
                for &v in values {
                    h.record(v).unwrap();
                }
                (Labels::from_pairs(&[("status", STATUS[*status])]), h)
            })
            .collect();
        let fold = |share: bool| {
            let mut folds = RuleFolds::default();
            for (ord, (labels, h)) in hists.iter().enumerate() {
                for (r, expr) in rules.iter().enumerate() {
                    let c = match expr {
                        RuleExpr::Aggregate { .. } => Contribution::Num(1.0),
                        _ if share && shared[r].is_some() => Contribution::Shared,
                        _ => Contribution::Hist(h),
                    };
                    let grouped = matches!(expr, RuleExpr::HistogramQuantile { grouping, .. } if *grouping == by_status);
                    if grouped {
                        folds.add(r as u32, expr, ord as u32, |buf| labels.write_selected_at(1, buf), c);
                    } else {
                        folds.add_unlabelled(r as u32, expr, ord as u32, c);
                    }
                }
            }
            let inputs = folds.into_inputs(if share { &shared } else { &[] });
            bincode::serialize(&inputs).unwrap()
        };
        prop_assert_eq!(fold(true), fold(false));
    }
}

/// `min` over a +0 and a -0 gave 0 in one build of the fold and -0 in
/// another (`f64::min` may return either zero): the fold orders -0 below +0,
/// whatever the order they come in, and still ignores a NaN.
#[test]
fn min_and_max_of_signed_zeros_do_not_depend_on_the_build() {
    let bits = |v: f64| v.to_bits();
    for (a, b) in [(0.0, -0.0), (-0.0, 0.0)] {
        assert_eq!(
            bits(fold_num(AggOp::Min, a, b)),
            bits(-0.0),
            "min({a}, {b})"
        );
        assert_eq!(bits(fold_num(AggOp::Max, a, b)), bits(0.0), "max({a}, {b})");
    }
    assert_eq!(fold_num(AggOp::Min, f64::NAN, 1.0), 1.0);
    assert_eq!(fold_num(AggOp::Min, 1.0, f64::NAN), 1.0);
    assert_eq!(fold_num(AggOp::Max, f64::NAN, -1.0), -1.0);
    assert_eq!(fold_num(AggOp::Max, -1.0, f64::NAN), -1.0);
    assert!(fold_num(AggOp::Min, f64::NAN, f64::NAN).is_nan());
    assert_eq!(fold_num(AggOp::Min, 2.0, 1.0), 1.0);
    assert_eq!(fold_num(AggOp::Max, 2.0, 1.0), 2.0);
}
