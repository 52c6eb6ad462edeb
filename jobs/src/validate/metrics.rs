//! Phase 2 checks of [[metric]] tables.

use std::collections::{HashMap, HashSet};

use toml::Spanned;

use super::diag::Report;
use super::names::{
    did_you_mean, is_label_name, is_metric_name, is_reserved_label, quoted_choices,
    RESERVED_LABEL_HINT,
};
use super::source::Fields;
use crate::job::{Metric, MetricKind};
use crate::model::MetricFile;

const KINDS: &[&str] = &["counter", "sum", "gauge", "histogram"];
const DEFAULT_QUANTILES: &[f64] = &[0.5, 0.9, 0.99];

pub fn kind_name(kind: MetricKind) -> &'static str {
    match kind {
        MetricKind::Counter => "counter",
        MetricKind::Sum => "sum",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
    }
}

/// What rules need to know about a declared metric, even one with errors.
pub struct Declared {
    pub name: String,
    /// `None` when the kind is invalid (rules then skip kind checks).
    pub kind: Option<MetricKind>,
    pub labels: Vec<String>,
    /// `labels` by name: each rule's grouping is checked against it, and many
    /// rules may group on one metric with many labels.
    label_set: HashSet<String>,
}

impl Declared {
    /// Whether a rule may group `self` by `label` (`host` always).
    pub fn has_label(&self, label: &str) -> bool {
        label == "host" || self.label_set.contains(label)
    }
}

/// The declared metrics in file order (indexes match `Job::metrics`), first of each name.
pub struct MetricTable {
    pub metrics: Vec<Declared>,
    by_name: HashMap<String, usize>,
}

impl MetricTable {
    pub fn get(&self, name: &str) -> Option<(usize, &Declared)> {
        let i = *self.by_name.get(name)?;
        self.metrics.get(i).map(|m| (i, m))
    }

    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.metrics.iter().map(|m| m.name.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

/// Checks every metric. Returns one `Option<Metric>` per table (None if it had errors).
pub fn check_metrics(
    r: &mut Report<'_>,
    metrics: &[Spanned<MetricFile>],
    fields: &Fields,
) -> (Vec<Option<Metric>>, MetricTable) {
    let mut table = MetricTable {
        metrics: Vec::new(),
        by_name: HashMap::new(),
    };
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for m in metrics {
        let checked = check_metric(r, m, fields);
        let mf = m.get_ref();
        let name = mf.name.get_ref();
        if let Some(line) = first_line.get(name) {
            r.on(
                &mf.name,
                format!("metric `{name}` is defined twice (first on line {line})"),
                "rename or remove one of them".to_string(),
            );
        } else {
            first_line.insert(name.clone(), r.position(mf.name.span().start).0);
            table.by_name.insert(name.clone(), table.metrics.len());
        }
        table.metrics.push(Declared {
            name: name.clone(),
            kind: parse_kind(mf.kind.get_ref()),
            labels: mf.labels.iter().map(|l| l.get_ref().clone()).collect(),
            label_set: mf.labels.iter().map(|l| l.get_ref().clone()).collect(),
        });
        out.push(checked);
    }
    (out, table)
}

fn parse_kind(s: &str) -> Option<MetricKind> {
    match s {
        "counter" => Some(MetricKind::Counter),
        "sum" => Some(MetricKind::Sum),
        "gauge" => Some(MetricKind::Gauge),
        "histogram" => Some(MetricKind::Histogram),
        _ => None,
    }
}

fn check_metric(r: &mut Report<'_>, m: &Spanned<MetricFile>, fields: &Fields) -> Option<Metric> {
    let mf = m.get_ref();
    let name = mf.name.get_ref();
    let before = r.diags.len();
    if !is_metric_name(name) {
        r.on(
            &mf.name,
            format!("`{name}` is not a valid metric name"),
            "metric names use letters, digits, `_` and `:`, and do not start with a digit, e.g. \"http_requests_total\"".to_string(),
        );
    }
    let kind = parse_kind(mf.kind.get_ref());
    if kind.is_none() {
        let k = mf.kind.get_ref();
        r.on(
            &mf.kind,
            format!("unknown metric kind `{k}`"),
            format!(
                "{}use {}",
                did_you_mean(k, KINDS.iter().copied()),
                quoted_choices(KINDS)
            ),
        );
    }
    match (kind, &mf.field) {
        (Some(MetricKind::Counter), Some(field)) => r.on(
            field,
            "a counter counts matching lines and takes no `field`",
            "remove `field`, or use kind = \"sum\" to add up the field's values".to_string(),
        ),
        (Some(k), None) if k != MetricKind::Counter => {
            let what = match k {
                MetricKind::Sum => "adds up",
                MetricKind::Gauge => "reports",
                _ => "records the distribution of",
            };
            r.on(
                m,
                format!(
                    "metric `{name}` is a {}, so it needs a `field`",
                    kind_name(k)
                ),
                format!("add field = \"...\": the parsed field whose numeric value it {what}"),
            );
        }
        (_, Some(field)) => fields.check(r, field, "metric field"),
        _ => {}
    }
    let mut seen: HashSet<&str> = HashSet::new();
    for label in &mf.labels {
        let l = label.get_ref().as_str();
        if l == "host" {
            r.on(
                label,
                "`host` is added to every series automatically and cannot be listed in labels",
                "remove it; [source] host says where the host name comes from".to_string(),
            );
        } else if !is_label_name(l) {
            r.on(
                label,
                format!("`{l}` is not a valid label name"),
                "label names use letters, digits and `_`, and do not start with a digit"
                    .to_string(),
            );
        } else if is_reserved_label(l) {
            r.on(
                label,
                format!("`{l}` cannot be a label name"),
                RESERVED_LABEL_HINT.to_string(),
            );
        } else if seen.contains(l) {
            r.on(
                label,
                format!("label `{l}` is listed twice"),
                "remove the repeated label".to_string(),
            );
        } else {
            fields.check(r, label, "label");
        }
        seen.insert(l);
    }
    let quantiles = quantiles(r, m, kind);
    if r.diags.len() > before {
        return None;
    }
    Some(Metric {
        name: name.clone(),
        kind: kind?,
        field: mf.field.as_ref().map(|f| f.get_ref().clone()),
        labels: mf.labels.iter().map(|l| l.get_ref().clone()).collect(),
        quantiles: quantiles?,
    })
}

fn quantiles(
    r: &mut Report<'_>,
    m: &Spanned<MetricFile>,
    kind: Option<MetricKind>,
) -> Option<Vec<f64>> {
    let mf = m.get_ref();
    let Some(list) = &mf.quantiles else {
        return Some(if kind == Some(MetricKind::Histogram) {
            DEFAULT_QUANTILES.to_vec()
        } else {
            Vec::new()
        });
    };
    if let Some(k) = kind.filter(|k| *k != MetricKind::Histogram) {
        r.on(
            list,
            format!(
                "`quantiles` only applies to histograms, and `{}` is a {}",
                mf.name.get_ref(),
                kind_name(k)
            ),
            "remove `quantiles`, or use kind = \"histogram\"".to_string(),
        );
        return None;
    }
    let mut ok = true;
    for q in list.get_ref() {
        let v = *q.get_ref();
        if !(0.0..=1.0).contains(&v) {
            ok = false;
            r.on(
                q,
                format!("quantile {v} is outside the range 0 to 1"),
                "write quantiles as fractions, e.g. 0.99 for the 99th percentile".to_string(),
            );
        }
    }
    if !ok {
        return None;
    }
    let mut qs: Vec<f64> = list.get_ref().iter().map(|q| *q.get_ref()).collect();
    qs.sort_by(f64::total_cmp);
    qs.dedup();
    Some(qs)
}
