//! Phase 2 checks of [[alert]] tables: names, the expression and what it refers
//! to, durations in whole windows, the resolve threshold's side, labels and
//! annotation templates.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use toml::Spanned;

use super::diag::Report;
use super::metrics::MetricTable;
use super::names::{is_label_name, is_reserved_label, short_list_of, RESERVED_LABEL_HINT};
use crate::alert::parse::AlertExpr;
use crate::alert::{self, Alert, CmpOp, MatchOp, Matcher, SeriesOrigin, Template};
use crate::duration::{format_duration, parse_duration};
use crate::job::{Grouping, Metric, MetricKind, Rule, RuleExpr};
use crate::model::{AlertFile, RuleFile};

/// A series name an alert may compare, and the labels its series carry (`None`
/// when unknown: the rule defining it has errors).
struct Target {
    origin: SeriesOrigin,
    labels: Option<BTreeSet<String>>,
    /// A histogram's quantile series: its `quantile` label takes these values.
    quantiles: Option<Vec<String>>,
}

/// Every name an alert may compare: rule records, metric names and a
/// histogram's `_count` / `_sum`.
fn targets(
    rule_files: &[Spanned<RuleFile>],
    rules: &[Option<Rule>],
    metrics: &MetricTable,
    metric_defs: &[Option<Metric>],
) -> Vec<(String, Target)> {
    let mut out = Vec::new();
    let host_labels = |i: usize| -> BTreeSet<String> {
        let mut s: BTreeSet<String> = metrics.metrics[i].labels.iter().cloned().collect();
        s.insert("host".to_string());
        s
    };
    for (rf, rule) in rule_files.iter().zip(rules) {
        let labels = rule.as_ref().map(|rule| {
            let (grouping, metric) = match &rule.expr {
                RuleExpr::Aggregate {
                    grouping, metric, ..
                } => (grouping, *metric),
                RuleExpr::HistogramQuantile {
                    grouping, metric, ..
                } => (grouping, *metric),
            };
            match grouping {
                Grouping::By(keep) => keep.iter().cloned().collect(),
                Grouping::Without(drop) => {
                    let mut all = host_labels(metric);
                    for d in drop {
                        all.remove(d);
                    }
                    all
                }
            }
        });
        out.push((
            rf.get_ref().record.get_ref().clone(),
            Target {
                origin: SeriesOrigin::Rule,
                labels,
                quantiles: None,
            },
        ));
    }
    for (i, m) in metrics.metrics.iter().enumerate() {
        let host = |extra: Option<&str>| {
            let mut l = host_labels(i);
            l.extend(extra.map(str::to_string));
            Target {
                origin: SeriesOrigin::Host,
                labels: Some(l),
                quantiles: None,
            }
        };
        if m.kind == Some(MetricKind::Histogram) {
            let mut q = host(Some("quantile"));
            // As the engine prints them (0.99 → "0.99", 1.0 → "1").
            q.quantiles = metric_defs.get(i).and_then(Option::as_ref).map(|d| {
                d.quantiles
                    .iter()
                    .map(|q| {
                        let s = format!("{q}");
                        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
                    })
                    .collect()
            });
            out.push((m.name.clone(), q));
            out.push((format!("{}_count", m.name), host(None)));
            out.push((format!("{}_sum", m.name), host(None)));
        } else {
            out.push((m.name.clone(), host(None)));
        }
    }
    out
}

/// What the alerts are checked against: the job's rules and metrics, and its
/// window settings (`None` when they are themselves invalid).
pub struct AlertContext<'a> {
    pub rule_files: &'a [Spanned<RuleFile>],
    pub rules: &'a [Option<Rule>],
    pub metrics: &'a MetricTable,
    pub metric_defs: &'a [Option<Metric>],
    /// `[window] size`.
    pub window: Option<Duration>,
    /// `[window] max_series`.
    pub max_series: Option<usize>,
}

/// Checks every alert; one `Option<Alert>` per table (None if it had errors).
pub fn check_alerts(
    r: &mut Report<'_>,
    alerts: &[Spanned<AlertFile>],
    cx: &AlertContext<'_>,
) -> Vec<Option<Alert>> {
    if alerts.is_empty() {
        return Vec::new();
    }
    let window = cx.window;
    let targets = targets(cx.rule_files, cx.rules, cx.metrics, cx.metric_defs);
    // The values the moving averages of the alerts so far may keep.
    let mut averaged: u64 = 0;
    let by_name: HashMap<&str, &Target> = targets.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for a in alerts {
        let before = r.diags.len();
        let af = a.get_ref();
        let name = af.name.get_ref();
        if !is_label_name(name) {
            r.on(
                &af.name,
                format!("`{name}` is not a valid alert name"),
                "alert names use letters, digits and `_`, and do not start with a digit, e.g. \"HighErrorRate\"".to_string(),
            );
        }
        if let Some(line) = first_line.get(name) {
            r.on(
                &af.name,
                format!("alert `{name}` is defined twice (first on line {line})"),
                "give each [[alert]] its own name".to_string(),
            );
        } else {
            first_line.insert(name.clone(), r.position(af.name.span().start).0);
        }
        let checked = match alert::parse::parse(af.expr.get_ref()) {
            Ok(e) => resolve(r, &af.expr, &e, &by_name, &targets),
            Err(e) => {
                r.inside(
                    &af.expr,
                    e.offset,
                    format!("invalid alert expression: {}", e.message),
                    e.hint,
                );
                None
            }
        };
        let for_windows = windows(r, af.for_.as_ref(), "for", window);
        let keep = windows(r, af.keep_firing_for.as_ref(), "keep_firing_for", window);
        let average = windows(r, af.average_over.as_ref(), "average_over", window);
        if let (Some(0), Some(v)) = (average, &af.average_over) {
            r.on(
                v,
                "average_over must be at least one window",
                "leave it out to compare each window's own value".to_string(),
            );
        }
        let resolve = checked
            .as_ref()
            .and_then(|(e, _)| resolve_threshold(r, af, e.op, e.threshold));
        let labels = check_labels(r, af);
        if let Some((
            e,
            Checked {
                labels: Some(own), ..
            },
        )) = &checked
        {
            for k in af.labels.keys() {
                let k_at = k;
                let k = k.get_ref();
                if own.contains(k) {
                    r.on(
                        k_at,
                        format!("`{}` already carries the label `{k}`", e.name.text),
                        format!("series that differ only in `{k}` would become one alert instance: give the alert's label another name, e.g. alert_{k}"),
                    );
                }
            }
        }
        let known = checked
            .as_ref()
            .and_then(|(_, t)| t.labels.clone())
            .map(|mut l| {
                l.extend(af.labels.keys().map(|k| k.get_ref().clone()));
                l
            });
        let annotations = check_annotations(r, af, known.as_ref());
        if let (Some((e, target)), Some(span), Some(v), Some(max_series)) =
            (&checked, average, &af.average_over, cx.max_series)
        {
            let share = (max_series / cx.metrics.metrics.len().max(1)).max(1) as u64;
            // Without a `quantile="…"` matcher a quantile record has a series
            // per configured quantile for each series key.
            let per_key = match &target.quantiles {
                Some(q)
                    if !e
                        .matchers
                        .iter()
                        .any(|m| m.label.text == "quantile" && m.op == MatchOp::Equal) =>
                {
                    q.len().max(1) as u64
                }
                _ => 1,
            };
            let values = u64::from(span) * share * per_key;
            averaged = averaged.saturating_add(values);
            if span > 1 && averaged > MAX_AVERAGED_VALUES {
                r.on(
                    v,
                    format!(
                        "average_over `{}` could keep {values} values ({span} windows × {} series: the metric's share of [window] max_series{}), {averaged} with the job's other alerts; at most {MAX_AVERAGED_VALUES} are allowed",
                        v.get_ref(),
                        share * per_key,
                        if per_key > 1 { ", for each quantile" } else { "" },
                    ),
                    "each instance keeps its value in every window of the span (in memory and in each checkpoint): shorten average_over, or lower [window] max_series (or match fewer series)".to_string(),
                );
            }
        }
        if r.diags.len() > before {
            out.push(None);
            continue;
        }
        let (Some((e, target)), Some(for_windows), Some(keep), Some(average), Some(resolve)) =
            (checked, for_windows, keep, average, resolve)
        else {
            out.push(None);
            continue;
        };
        out.push(Some(Alert {
            name: name.clone(),
            expr: af.expr.get_ref().clone(),
            record: e.name.text.clone(),
            origin: target.origin,
            matchers: e
                .matchers
                .iter()
                .map(|m| Matcher {
                    label: m.label.text.clone(),
                    op: m.op,
                    value: m.value.clone(),
                    regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex)
                        .then(|| regex::Regex::new(&format!("^(?:{})$", m.value)).ok())
                        .flatten(),
                })
                .collect(),
            op: e.op,
            threshold: e.threshold,
            for_windows: for_windows.max(1),
            keep_firing_windows: keep,
            resolve_threshold: resolve,
            average_windows: if af.average_over.is_some() {
                average
            } else {
                1
            },
            labels,
            annotations,
        }));
    }
    out
}

/// A duration key in windows of `window` (0 when unset); an error unless it is a
/// whole number of them. `None` also when the window size itself is invalid
/// (reported there).
fn windows(
    r: &mut Report<'_>,
    v: Option<&Spanned<String>>,
    key: &str,
    window: Option<Duration>,
) -> Option<u32> {
    let Some(v) = v else {
        return Some(0);
    };
    let d = match parse_duration(v.get_ref()) {
        Ok(d) => d,
        Err(e) => {
            let example = window
                .filter(|w| !w.is_zero())
                .map_or_else(|| "3m".to_string(), |w| format_duration(w * 3));
            r.on(
                v,
                format!("invalid {key} `{}`: {e}", v.get_ref()),
                format!(
                    "{key} is a whole number of windows of event time, e.g. {key} = \"{example}\""
                ),
            );
            return None;
        }
    };
    let at = v.span().start;
    let size = window?;
    if size.is_zero() {
        return Some(0);
    }
    if d.as_millis() % size.as_millis() != 0 {
        r.at(
            at,
            format!(
                "{key} `{}` is not a whole number of windows ([window] size is {})",
                format_duration(d),
                format_duration(size)
            ),
            format!(
                "alerts are evaluated once per window: use a multiple of {}, e.g. \"{}\"",
                format_duration(size),
                format_duration(size * 3)
            ),
        );
        return None;
    }
    match u32::try_from(d.as_millis() / size.as_millis()) {
        Ok(n) if n <= MAX_WINDOWS => Some(n),
        _ => {
            r.at(
                at,
                format!("{key} `{}` is too long", format_duration(d)),
                format!("use at most {MAX_WINDOWS} windows"),
            );
            None
        }
    }
}

/// Most windows `for`, `keep_firing_for` and `average_over` may span: a moving
/// average keeps one value per window per instance.
const MAX_WINDOWS: u32 = 10_000;

/// The most values the moving averages of one job's alerts may keep (each
/// instance one per window of its span): about 160 MB in memory at worst.
const MAX_AVERAGED_VALUES: u64 = 10_000_000;

/// What a resolved expression compares.
struct Checked {
    origin: SeriesOrigin,
    labels: Option<BTreeSet<String>>,
    quantiles: Option<Vec<String>>,
}

/// The parsed expression's name and matchers checked against the job.
fn resolve(
    r: &mut Report<'_>,
    expr: &Spanned<String>,
    e: &AlertExpr,
    by_name: &HashMap<&str, &Target>,
    targets: &[(String, Target)],
) -> Option<(AlertExpr, Checked)> {
    let Some(target) = by_name.get(e.name.text.as_str()) else {
        let suggestion = r.did_you_mean(&e.name.text, targets.iter().map(|(n, _)| n.as_str()));
        let listed = short_list_of(targets.iter().map(|(n, _)| n.as_str()), targets.len());
        r.inside(
            expr,
            e.name.offset,
            format!("`{}` is neither a rule's record nor a metric", e.name.text),
            format!("{suggestion}series an alert can compare: {listed}"),
        );
        return None;
    };
    let mut ok = true;
    for m in &e.matchers {
        if let Some(labels) = &target.labels {
            if !labels.contains(&m.label.text) {
                ok = false;
                let suggestion = r.did_you_mean(&m.label.text, labels.iter().map(String::as_str));
                let listed = if labels.is_empty() {
                    "none (the rule keeps no label)".to_string()
                } else {
                    short_list_of(labels.iter().map(String::as_str), labels.len())
                };
                r.inside(
                    expr,
                    m.label.offset,
                    format!("`{}` is not a label of `{}`", m.label.text, e.name.text),
                    format!("{suggestion}labels of `{}`: {listed}", e.name.text),
                );
            }
        }
        if let (Some(q), "quantile") = (&target.quantiles, m.label.text.as_str()) {
            let matches_one = match m.op {
                MatchOp::Equal => q.contains(&m.value),
                MatchOp::Regex => regex::Regex::new(&format!("^(?:{})$", m.value))
                    .map_or(true, |re| q.iter().any(|v| re.is_match(v))),
                MatchOp::NotEqual | MatchOp::NotRegex => true,
            };
            if !matches_one {
                ok = false;
                r.inside(
                    expr,
                    m.value_offset,
                    format!(
                        "`{}` matches none of `{}`'s quantiles",
                        m.value, e.name.text
                    ),
                    format!(
                        "its series carry quantile={} (as configured in the metric's `quantiles`, written as the output prints them)",
                        q.join(", ")
                    ),
                );
            }
        }
        if matches!(m.op, MatchOp::Regex | MatchOp::NotRegex) {
            if let Err(err) = regex::Regex::new(&format!("^(?:{})$", m.value)) {
                ok = false;
                let detail = err.to_string();
                let last = detail.lines().last().unwrap_or("").trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                r.inside(
                    expr,
                    m.value_offset,
                    format!("invalid regex `{}`: {last}", m.value),
                    "matchers use Rust regex syntax (like PromQL's RE2), fully anchored"
                        .to_string(),
                );
            }
        }
    }
    ok.then(|| {
        (
            e.clone(),
            Checked {
                origin: target.origin,
                labels: target.labels.clone(),
                quantiles: target.quantiles.clone(),
            },
        )
    })
}

/// `resolve_below` / `resolve_above`: on the side of the threshold where the
/// condition does not hold, and only for the comparisons it makes sense for.
fn resolve_threshold(r: &mut Report<'_>, af: &AlertFile, op: CmpOp, threshold: f64) -> Option<f64> {
    let upward = matches!(op, CmpOp::Gt | CmpOp::Ge);
    let downward = matches!(op, CmpOp::Lt | CmpOp::Le);
    let mut result = Some(threshold);
    for (key, value, fits) in [
        ("resolve_below", &af.resolve_below, upward),
        ("resolve_above", &af.resolve_above, downward),
    ] {
        let Some(v) = value else { continue };
        let x = *v.get_ref();
        let other = if key == "resolve_below" {
            "resolve_above"
        } else {
            "resolve_below"
        };
        if !x.is_finite() {
            r.on(
                v,
                format!("{key} must be a finite number"),
                format!(
                    "write the value at which a firing alert resolves, e.g. {key} = {}",
                    if threshold.is_finite() {
                        format!("{threshold}")
                    } else {
                        "0".to_string()
                    }
                ),
            );
            result = None;
        } else if !fits {
            let hint = if upward || downward {
                format!("for `{}` use {other}", op.as_str())
            } else {
                format!(
                    "a `{}` comparison has no resolve threshold: remove {key}",
                    op.as_str()
                )
            };
            r.on(
                v,
                format!("{key} does not apply to a `{}` comparison", op.as_str()),
                hint,
            );
            result = None;
        } else if (upward && x > threshold) || (downward && x < threshold) {
            r.on(
                v,
                format!(
                    "{key} {x} is on the firing side of the threshold {threshold}",
                ),
                format!(
                    "the alert fires when the value is {} {threshold}; once firing it resolves when the value crosses {key}: use a value {} {threshold}",
                    op.as_str(),
                    if upward { "at most" } else { "at least" },
                ),
            );
            result = None;
        } else {
            result = Some(x);
        }
    }
    result
}

fn check_labels(r: &mut Report<'_>, af: &AlertFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k_at, v) in &af.labels {
        let k = k_at.get_ref();
        if !is_label_name(k) {
            r.on(
                k_at,
                format!("`{k}` is not a valid label name"),
                "label names use letters, digits and `_`, and do not start with a digit"
                    .to_string(),
            );
        } else if is_reserved_label(k) {
            r.on(
                k_at,
                format!("`{k}` cannot be an alert label"),
                RESERVED_LABEL_HINT.to_string(),
            );
        } else if k == "alertname" {
            r.on(
                k_at,
                "`alertname` is the alert's `name` and cannot be set in labels",
                "remove it; rename the alert instead".to_string(),
            );
        }
        out.push((k.clone(), v.get_ref().clone()));
    }
    out
}

fn check_annotations(
    r: &mut Report<'_>,
    af: &AlertFile,
    known: Option<&BTreeSet<String>>,
) -> Vec<(String, Template)> {
    let mut out = Vec::new();
    for (k_at, v) in &af.annotations {
        let k = k_at.get_ref();
        if !is_label_name(k) {
            r.on(
                k_at,
                format!("`{k}` is not a valid annotation name"),
                "annotation names use letters, digits and `_`, e.g. summary or description"
                    .to_string(),
            );
        }
        match alert::template::parse(v.get_ref()) {
            Ok(t) => {
                if let Some(known) = known {
                    for l in &t.labels {
                        if !known.contains(&l.text) {
                            let suggestion =
                                r.did_you_mean(&l.text, known.iter().map(String::as_str));
                            r.inside(
                                v,
                                l.offset,
                                format!("`{}` is not a label of this alert's instances", l.text),
                                format!(
                                    "{suggestion}their labels: {}",
                                    short_list_of(known.iter().map(String::as_str), known.len())
                                ),
                            );
                        }
                    }
                }
                out.push((k.clone(), t.template));
            }
            Err(e) => r.inside(
                v,
                e.offset,
                format!("invalid annotation template: {}", e.message),
                e.hint,
            ),
        }
    }
    out
}
