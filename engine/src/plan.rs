//! The job compiled for the dataflow: which parsed field feeds which metric, label
//! and rule, resolved to slot numbers once instead of by name per line, and the
//! names output records share.

use std::sync::Arc;

use tidemark_jobs::{Grouping, HostFrom, Job, MetricKind, RuleExpr, SeriesChoice, SeriesSelector};
use tidemark_sources::tail::TailOptions;

use crate::labels::Labels;

/// How a metric reads a line.
#[derive(Debug, Clone)]
pub struct MetricPlan {
    pub name: String,
    pub kind: MetricKind,
    pub value_slot: Option<usize>,
    pub label_slots: Vec<usize>,
    /// Label names in definition order (the order label values are stored in).
    pub label_names: Vec<String>,
    pub quantiles: Vec<f64>,
    /// Rules that read this metric.
    pub rules: Vec<usize>,
    /// The records of its host series: the metric's name, and for a histogram
    /// `NAME_count` and `NAME_sum` (shared by every record, not copied).
    pub record: Arc<str>,
    pub count_record: Arc<str>,
    pub sum_record: Arc<str>,
    /// A host series' label names sorted, each with the part of the series key that
    /// holds its value (0: the host, i + 1: label i).
    pub output_labels: Vec<(String, usize)>,
}

#[derive(Debug, Clone)]
pub enum HostPlan {
    /// From the path regex (resolved per group) or a fixed value.
    PerGroup,
    Field(usize),
}

/// A rule, with its input resolved.
#[derive(Debug, Clone)]
pub struct RulePlan {
    pub record: Arc<str>,
    pub expr: RuleExpr,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// Field names the parser extracts; index = slot.
    pub fields: Vec<String>,
    pub host: HostPlan,
    pub metrics: Vec<MetricPlan>,
    pub rules: Vec<RulePlan>,
    /// Whether any sink prints per-host series (otherwise they are not built).
    pub want_host_series: bool,
    pub window_ms: i64,
    pub disorder_ms: i64,
    pub idle_timeout_ms: i64,
    pub max_clock_skew_ms: i64,
    /// `[window] max_series`: the most series a window holds over the whole job.
    pub max_series: usize,
    /// Each metric's share of `max_series`: the most series of one metric a window
    /// keeps (see [`crate::limit`]). At least 1.
    pub series_share: usize,
    /// See `crate::watermark`.
    pub max_jump_ms: i64,
    pub max_clock_lag_ms: i64,
    /// How files are tailed (`follow` is set per run).
    pub tail: TailOptions,
}

impl Plan {
    pub fn new(job: &Job) -> Plan {
        let mut fields: Vec<String> = Vec::new();
        let mut slot = |name: &str| -> usize {
            match fields.iter().position(|f| f == name) {
                Some(i) => i,
                None => {
                    fields.push(name.to_string());
                    fields.len() - 1
                }
            }
        };
        let host = match &job.source.host {
            HostFrom::Field(f) => HostPlan::Field(slot(f)),
            HostFrom::PathRegex(_) | HostFrom::Value(_) => HostPlan::PerGroup,
        };
        let mut metrics: Vec<MetricPlan> = job
            .metrics
            .iter()
            .map(|m| MetricPlan {
                record: m.name.as_str().into(),
                count_record: format!("{}_count", m.name).into(),
                sum_record: format!("{}_sum", m.name).into(),
                output_labels: {
                    let mut names: Vec<(String, usize)> = std::iter::once("host".to_string())
                        .chain(m.labels.iter().cloned())
                        .zip(0..)
                        .collect();
                    names.sort();
                    names
                },
                name: m.name.clone(),
                kind: m.kind,
                value_slot: m.field.as_deref().map(&mut slot),
                label_slots: m.labels.iter().map(|l| slot(l)).collect(),
                label_names: m.labels.clone(),
                quantiles: m.quantiles.clone(),
                rules: Vec::new(),
            })
            .collect();
        for (i, r) in job.rules.iter().enumerate() {
            let m = match &r.expr {
                RuleExpr::Aggregate { metric, .. } | RuleExpr::HistogramQuantile { metric, .. } => {
                    *metric
                }
            };
            if let Some(mp) = metrics.get_mut(m) {
                mp.rules.push(i);
            }
        }
        let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
        Plan {
            fields,
            host,
            metrics,
            rules: job
                .rules
                .iter()
                .map(|r| RulePlan {
                    record: r.record.as_str().into(),
                    expr: r.expr.clone(),
                })
                .collect(),
            want_host_series: job
                .sinks
                .iter()
                .any(|s| matches!(s.series, SeriesChoice::Hosts | SeriesChoice::All)),
            window_ms: ms(job.window.size).max(1),
            disorder_ms: ms(job.window.max_out_of_orderness),
            idle_timeout_ms: ms(job.window.idle_timeout),
            max_clock_skew_ms: ms(job.window.max_clock_skew),
            max_series: job.window.max_series,
            series_share: (job.window.max_series / job.metrics.len().max(1)).max(1),
            max_jump_ms: ms(job.window.max_jump),
            max_clock_lag_ms: ms(job.window.max_clock_lag),
            tail: TailOptions {
                follow: false,
                max_line_bytes: job.source.max_line_bytes,
                fingerprint_bytes: job.source.fingerprint_bytes,
                unterminated_wait: job.source.rotated_tail_wait,
                fd_retry: job.source.poll_interval,
            },
        }
    }
}

/// The labels a rule's output series carries, from a host series' labels
/// (`host` plus the metric's labels, sorted by name).
pub fn rule_labels(grouping: &Grouping, series_labels: &Labels) -> Labels {
    match grouping {
        Grouping::By(keep) => Labels::from_sorted(
            series_labels
                .iter()
                .filter(|(k, _)| keep.iter().any(|l| l == k)),
        ),
        Grouping::Without(drop) => Labels::from_sorted(
            series_labels
                .iter()
                .filter(|(k, _)| !drop.iter().any(|l| l == k)),
        ),
    }
}

/// Which of a host series' values a rule reads.
pub fn selector_of(expr: &RuleExpr) -> SeriesSelector {
    match expr {
        RuleExpr::Aggregate { selector, .. } => *selector,
        RuleExpr::HistogramQuantile { .. } => SeriesSelector::Value,
    }
}
