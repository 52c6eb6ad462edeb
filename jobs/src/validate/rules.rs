//! Phase 2 checks of [[rule]] tables: names, expression syntax and references.

use std::collections::HashMap;

use toml::Spanned;

use super::diag::Report;
use super::metrics::{kind_name, Declared, MetricTable};
use super::names::{is_metric_name, short_list, short_list_of};
use crate::expr::{self, Aggregation, Expr, GroupingClause, GroupingKind, Name, QuantileArg};
use crate::job::{AggOp, Grouping, MetricKind, Rule, RuleExpr, SeriesSelector};
use crate::model::RuleFile;

/// Checks every rule; returns one `Option<Rule>` per table (None if it had errors).
pub fn check_rules(
    r: &mut Report<'_>,
    rules: &[Spanned<RuleFile>],
    metrics: &MetricTable,
) -> Vec<Option<Rule>> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for rule in rules {
        let rf = rule.get_ref();
        let record = rf.record.get_ref();
        let before = r.diags.len();
        if !is_metric_name(record) {
            r.on(
                &rf.record,
                format!("`{record}` is not a valid record name"),
                "record names follow metric name rules: letters, digits, `_` and `:`, not starting with a digit, e.g. \"job:http_requests:sum1m\"".to_string(),
            );
        } else if metrics.contains(record) {
            r.on(
                &rf.record,
                format!("record `{record}` has the same name as a metric"),
                "give the rule its own name; the convention is level:metric:operation, e.g. \"job:http_requests:sum1m\"".to_string(),
            );
        }
        if let Some(line) = first_line.get(record) {
            r.on(
                &rf.record,
                format!("record `{record}` is defined twice (first on line {line})"),
                "rename or remove one of the rules".to_string(),
            );
        } else {
            first_line.insert(record.clone(), r.position(rf.record.span().start).0);
        }
        let resolved = match expr::parse(rf.expr.get_ref()) {
            Ok(e) => Resolver {
                r: &mut *r,
                expr: &rf.expr,
                metrics,
            }
            .resolve(&e),
            Err(e) => {
                r.inside(
                    &rf.expr,
                    e.offset,
                    format!("invalid rule expression: {}", e.message),
                    e.hint,
                );
                None
            }
        };
        let ok = r.diags.len() == before;
        out.push(resolved.filter(|_| ok).map(|expr| Rule {
            record: record.clone(),
            expr,
        }));
    }
    out
}

struct Resolver<'r, 'a, 'm> {
    r: &'r mut Report<'a>,
    expr: &'m Spanned<String>,
    metrics: &'m MetricTable,
}

impl<'m> Resolver<'_, '_, 'm> {
    fn error(&mut self, offset: usize, message: String, hint: String) {
        self.r.inside(self.expr, offset, message, hint);
    }

    fn resolve(&mut self, e: &Expr) -> Option<RuleExpr> {
        match e {
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::HistogramQuantile { q, q_offset, arg } => {
                let q_ok = (0.0..=1.0).contains(q);
                if !q_ok {
                    self.error(
                        *q_offset,
                        format!("quantile {q} is outside the range 0 to 1"),
                        "write the quantile as a fraction, e.g. 0.99 for the 99th percentile"
                            .to_string(),
                    );
                }
                let (metric, grouping) = match arg {
                    QuantileArg::Metric(name) => (self.histogram(name)?, Grouping::By(Vec::new())),
                    QuantileArg::Aggregate(a) => {
                        let op_ok = a.op == AggOp::Sum;
                        if !op_ok {
                            self.error(
                                a.op_offset,
                                format!("only `sum` can be used inside histogram_quantile, not `{}`", expr::op_name(a.op)),
                                "histograms of a group are merged (summed); write histogram_quantile(q, sum by (label) (metric))".to_string(),
                            );
                        }
                        let (metric, declared) = self.histogram(&a.metric)?;
                        let grouping = self.grouping(a.grouping.as_ref(), &a.metric.text, declared);
                        ((metric, declared), grouping.filter(|_| op_ok)?)
                    }
                };
                q_ok.then_some(RuleExpr::HistogramQuantile {
                    q: *q,
                    grouping,
                    metric: metric.0,
                })
            }
        }
    }

    fn aggregate(&mut self, a: &Aggregation) -> Option<RuleExpr> {
        let (metric, declared, selector) = self.lookup(&a.metric)?;
        let op = expr::op_name(a.op);
        let name = &a.metric.text;
        let kind_ok = match (selector, declared.kind) {
            (SeriesSelector::Value, Some(MetricKind::Histogram)) => {
                self.error(
                    a.metric.offset,
                    format!("`{op}` cannot aggregate the histogram `{name}` directly"),
                    format!("use histogram_quantile(0.99, {name}) for a quantile, or {name}_count / {name}_sum for the number / total of observations"),
                );
                false
            }
            (SeriesSelector::HistogramCount | SeriesSelector::HistogramSum, Some(k))
                if k != MetricKind::Histogram =>
            {
                self.error(
                    a.metric.offset,
                    format!(
                        "`{name}` reads the {} of a histogram, but `{}` is a {}",
                        if selector == SeriesSelector::HistogramCount {
                            "observation count"
                        } else {
                            "observation sum"
                        },
                        declared.name,
                        kind_name(k)
                    ),
                    format!("use `{}` itself", declared.name),
                );
                false
            }
            _ => true,
        };
        let grouping = self.grouping(a.grouping.as_ref(), name, declared)?;
        kind_ok.then_some(RuleExpr::Aggregate {
            op: a.op,
            grouping,
            metric,
            selector,
        })
    }

    /// The metric a name refers to, possibly through a histogram's `_count` / `_sum`.
    fn lookup(&mut self, name: &Name) -> Option<(usize, &'m Declared, SeriesSelector)> {
        if let Some((i, d)) = self.metrics.get(&name.text) {
            return Some((i, d, SeriesSelector::Value));
        }
        for (suffix, selector) in [
            ("_count", SeriesSelector::HistogramCount),
            ("_sum", SeriesSelector::HistogramSum),
        ] {
            if let Some((i, d)) = name
                .text
                .strip_suffix(suffix)
                .and_then(|base| self.metrics.get(base))
            {
                return Some((i, d, selector));
            }
        }
        let hint = if self.metrics.metrics.is_empty() {
            "no metrics are defined yet: define it in a [[metric]] table".to_string()
        } else {
            let suggestion = if self.r.can_suggest() {
                let mut candidates: Vec<String> = Vec::new();
                for m in &self.metrics.metrics {
                    candidates.push(m.name.clone());
                    if m.kind == Some(MetricKind::Histogram) {
                        candidates.push(format!("{}_count", m.name));
                        candidates.push(format!("{}_sum", m.name));
                    }
                }
                self.r
                    .did_you_mean(&name.text, candidates.iter().map(String::as_str))
            } else {
                String::new()
            };
            format!(
                "{suggestion}defined metrics: {}",
                short_list(self.metrics.names())
            )
        };
        self.error(
            name.offset,
            format!("metric `{}` is not defined", name.text),
            hint,
        );
        None
    }

    /// A metric used as a histogram (`histogram_quantile`'s argument).
    fn histogram(&mut self, name: &Name) -> Option<(usize, &'m Declared)> {
        let (i, d, selector) = self.lookup(name)?;
        if selector != SeriesSelector::Value {
            self.error(
                name.offset,
                format!(
                    "histogram_quantile takes the histogram itself, not `{}`",
                    name.text
                ),
                format!("write histogram_quantile(0.99, {})", d.name),
            );
            return None;
        }
        match d.kind {
            Some(k) if k != MetricKind::Histogram => {
                self.error(
                    name.offset,
                    format!("histogram_quantile needs a histogram, but `{}` is a {}", d.name, kind_name(k)),
                    format!("define `{}` with kind = \"histogram\" and a field, or aggregate it with sum, min, max, avg or count", d.name),
                );
                None
            }
            _ => Some((i, d)),
        }
    }

    fn grouping(
        &mut self,
        clause: Option<&GroupingClause>,
        metric: &str,
        d: &Declared,
    ) -> Option<Grouping> {
        let Some(clause) = clause else {
            return Some(Grouping::By(Vec::new()));
        };
        let mut ok = true;
        for label in &clause.labels {
            if !d.has_label(&label.text) {
                ok = false;
                // Only on an error: building the list costs the metric's labels.
                let available =
                    || std::iter::once("host").chain(d.labels.iter().map(String::as_str));
                let suggestion = self.r.did_you_mean(&label.text, available());
                let listed = short_list_of(available(), 1 + d.labels.len());
                self.error(
                    label.offset,
                    format!("`{}` is not a label of `{metric}`", label.text),
                    format!("{suggestion}labels of `{metric}`: {listed}"),
                );
            }
        }
        let mut labels: Vec<String> = clause.labels.iter().map(|l| l.text.clone()).collect();
        labels.sort();
        labels.dedup();
        ok.then_some(match clause.kind {
            GroupingKind::By => Grouping::By(labels),
            GroupingKind::Without => Grouping::Without(labels),
        })
    }
}
