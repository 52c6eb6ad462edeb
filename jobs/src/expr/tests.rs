use super::*;
use proptest::prelude::*;

fn name(text: &str, offset: usize) -> Name {
    Name {
        text: text.to_string(),
        offset,
    }
}

fn agg(input: &str) -> Aggregation {
    match parse(input) {
        Ok(Expr::Aggregate(a)) => a,
        other => panic!("{input}: {other:?}"),
    }
}

fn err(input: &str) -> ExprError {
    match parse(input) {
        Err(e) => e,
        Ok(e) => panic!("{input} parsed as {e:?}"),
    }
}

fn labels(g: &Option<GroupingClause>) -> (Option<GroupingKind>, Vec<&str>) {
    match g {
        Some(g) => (
            Some(g.kind),
            g.labels.iter().map(|l| l.text.as_str()).collect(),
        ),
        None => (None, vec![]),
    }
}

#[test]
fn plain_aggregations() {
    let a = agg("sum(http_requests_total)");
    assert_eq!(a.op, AggOp::Sum);
    assert_eq!(a.op_offset, 0);
    assert_eq!(a.grouping, None);
    assert_eq!(a.metric, name("http_requests_total", 4));
    for (text, op) in [
        ("min(x)", AggOp::Min),
        ("max(x)", AggOp::Max),
        ("avg(x)", AggOp::Avg),
        ("count(x)", AggOp::Count),
        ("SUM(x)", AggOp::Sum),
    ] {
        assert_eq!(agg(text).op, op, "{text}");
    }
}

#[test]
fn grouping_before_and_after() {
    let a = agg("sum by (status, method) (http_requests_total)");
    assert_eq!(
        labels(&a.grouping),
        (Some(GroupingKind::By), vec!["status", "method"])
    );
    assert_eq!(a.grouping.as_ref().map(|g| g.offset), Some(4));
    assert_eq!(a.grouping.as_ref().map(|g| g.labels[1].offset), Some(16));
    assert_eq!(a.metric, name("http_requests_total", 25));

    let a = agg("sum (http_requests_total) without (method)");
    assert_eq!(
        labels(&a.grouping),
        (Some(GroupingKind::Without), vec!["method"])
    );
    assert_eq!(a.metric.offset, 5);

    let a = agg("  count  BY ( )  ( x:y_total )  ");
    assert_eq!(labels(&a.grouping), (Some(GroupingKind::By), vec![]));
    assert_eq!(a.metric, name("x:y_total", 19));

    let a = agg("avg by (a,) (m)");
    assert_eq!(labels(&a.grouping), (Some(GroupingKind::By), vec!["a"]));
}

#[test]
fn histogram_quantile_forms() {
    match parse("histogram_quantile(0.99, http_request_duration_seconds)") {
        Ok(Expr::HistogramQuantile { q, q_offset, arg }) => {
            assert_eq!(q, 0.99);
            assert_eq!(q_offset, 19);
            assert_eq!(
                arg,
                QuantileArg::Metric(name("http_request_duration_seconds", 25))
            );
        }
        other => panic!("{other:?}"),
    }
    match parse("histogram_quantile(.5, sum by (status) (d))") {
        Ok(Expr::HistogramQuantile {
            q,
            arg: QuantileArg::Aggregate(a),
            ..
        }) => {
            assert_eq!(q, 0.5);
            assert_eq!(a.op, AggOp::Sum);
            assert_eq!(a.op_offset, 23);
            assert_eq!(
                labels(&a.grouping),
                (Some(GroupingKind::By), vec!["status"])
            );
        }
        other => panic!("{other:?}"),
    }
    match parse("histogram_quantile(1e0, max without (x) (d))") {
        Ok(Expr::HistogramQuantile {
            q,
            arg: QuantileArg::Aggregate(a),
            ..
        }) => {
            assert_eq!(q, 1.0);
            assert_eq!(a.op, AggOp::Max);
        }
        other => panic!("{other:?}"),
    }
    // A metric that happens to be called `sum`.
    match parse("histogram_quantile(-1, sum)") {
        Ok(Expr::HistogramQuantile { q, arg, .. }) => {
            assert_eq!(q, -1.0);
            assert_eq!(arg, QuantileArg::Metric(name("sum", 23)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_point_at_the_offending_character() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "the expression is empty"),
        ("   ", 4, "the expression is empty"),
        ("http_requests_total", 1, "alone is not a rule"),
        ("rate(x)", 1, "unknown function `rate`"),
        (
            "sum(x",
            6,
            "expected `)` after the metric name, found the end",
        ),
        (
            "sum(x, y)",
            6,
            "expected `)` after the metric name, found `,`",
        ),
        (
            "sum(rate(x))",
            9,
            "expected `)` after the metric name, found `(`",
        ),
        ("sum()", 5, "expected a metric name, found `)`"),
        ("sum(sum(x))", 5, "nested aggregations"),
        (
            "sum by status (x)",
            8,
            "expected `(` after `by`, found `status`",
        ),
        (
            "sum by (a b) (x)",
            11,
            "expected `,` or `)` in the label list, found `b`",
        ),
        ("sum by (a:b) (x)", 9, "not a valid label name"),
        ("sum by (a) (x) by (b)", 16, "the grouping is given twice"),
        ("sum(x) extra", 8, "unexpected `extra` after the end"),
        ("sum(x{a=\"b\"})", 6, "label matchers"),
        ("sum(x[5m])", 6, "range selectors"),
        ("sum(\"x\")", 5, "quoted strings"),
        ("sum(x) + 1", 8, "arithmetic (`+`)"),
        ("sum(http-requests)", 9, "`-` cannot appear in a name"),
        ("sum(x) # comment", 8, "unexpected character `#`"),
        ("sum(é)", 5, "unexpected character `é`"),
        ("é sum(x)", 1, "unexpected character `é`"),
        ("sum(x) é", 8, "unexpected character `é`"),
        ("histogram_quantile(x, y)", 20, "expected the quantile"),
        (
            "histogram_quantile(0.9 y)",
            24,
            "expected `,` after the quantile",
        ),
        ("histogram_quantile(0.9, y", 26, "expected `)` to close"),
        ("histogram_quantile(1.2.3, y)", 20, "not a valid number"),
        (
            "histogram_quantile",
            19,
            "expected `(` after `histogram_quantile`",
        ),
        ("42", 1, "expected an aggregation"),
    ];
    for (input, col, msg) in cases {
        let e = err(input);
        assert!(
            e.message.contains(msg),
            "{input:?}: message {:?} lacks {msg:?}",
            e.message
        );
        assert_eq!(e.column, *col, "{input:?}: {e:?}");
    }
}

#[test]
fn column_counts_characters_not_bytes() {
    let e = err("sum by (é) (x)");
    assert_eq!(e.offset, 8);
    assert_eq!(e.column, 9);
    let e = err("sum by (a) (x) é é");
    assert_eq!(e.column, 16);
}

proptest! {
    #[test]
    fn never_panics(s in "\\PC{0,60}") {
        let _ = parse(&s);
    }

    #[test]
    fn never_panics_on_expression_like_input(
        s in "(sum|histogram_quantile|by|without|\\(|\\)|,| |x_count|0\\.5|-|\\.|e|\"|é){0,20}"
    ) {
        if let Err(e) = parse(&s) {
            prop_assert!(e.offset <= s.len());
            prop_assert!(s.is_char_boundary(e.offset));
        }
    }
}
