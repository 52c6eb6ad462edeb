//! The job compiled for the dataflow: which parsed field feeds which metric, label
//! and rule, resolved to slot numbers once instead of by name per line, and the
//! names output records share.

use std::sync::Arc;

use tidemark_jobs::{Grouping, HostFrom, Job, MetricKind, RuleExpr, SeriesChoice, SeriesSelector};
use tidemark_sources::tail::TailOptions;

use crate::labels::Labels;

/// How a metric reads a line.
#[derive(Debug, Clone)]
pub(crate) struct MetricPlan {
    pub(crate) name: String,
    pub(crate) kind: MetricKind,
    pub(crate) value_slot: Option<usize>,
    pub(crate) label_slots: Vec<usize>,
    pub(crate) quantiles: Vec<f64>,
    /// Rules that read this metric.
    pub(crate) rules: Vec<usize>,
    /// The records of its host series: the metric's name, and for a histogram
    /// `NAME_count` and `NAME_sum` (shared by every record, not copied).
    pub(crate) record: Arc<str>,
    pub(crate) count_record: Arc<str>,
    pub(crate) sum_record: Arc<str>,
    /// A host series' label names sorted, each with the part of the series key that
    /// holds its value (0: the host, i + 1: label i).
    pub(crate) output_labels: Vec<(String, usize)>,
    /// Whether its host series are built: a sink prints host series, or an
    /// alert reads this metric's (otherwise only its rules' inputs are).
    pub(crate) host_series: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum HostPlan {
    /// From the path regex (resolved per group) or a fixed value.
    PerGroup,
    /// From this parsed field of each line.
    Field(usize),
}

/// A rule, with its input resolved.
#[derive(Debug, Clone)]
pub(crate) struct RulePlan {
    pub(crate) record: Arc<str>,
    pub(crate) expr: RuleExpr,
}

/// A job compiled once for its dataflow and shared (in an `Arc`) by every operator of every
/// worker: what to parse, how each metric and rule reads a line, and the window settings in
/// milliseconds. Built by [`Plan::new`]; its fields are the engine's own.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Field names the parser extracts; index = slot.
    pub(crate) fields: Vec<String>,
    pub(crate) host: HostPlan,
    pub(crate) metrics: Vec<MetricPlan>,
    pub(crate) rules: Vec<RulePlan>,
    pub(crate) window_ms: i64,
    pub(crate) disorder_ms: i64,
    pub(crate) idle_timeout_ms: i64,
    pub(crate) max_clock_skew_ms: i64,
    /// `[window] max_series`: the most series a window holds over the whole job.
    pub(crate) max_series: usize,
    /// Each metric's share of `max_series`: the most series of one metric a window
    /// keeps (see [`crate::limit`]). At least 1.
    pub(crate) series_share: usize,
    /// The label fields any metric reads, each once, in the order metrics name them:
    /// with the host, the key under which a window remembers where each metric's
    /// series of a line are ([`crate::agg`]), so that a line is looked up once, not
    /// once per metric. `None` for a job of one metric, which gains nothing from it.
    pub(crate) line_slots: Option<Vec<usize>>,
    /// See `crate::watermark`.
    pub(crate) max_jump_ms: i64,
    pub(crate) max_clock_lag_ms: i64,
    /// How files are tailed (`follow` is set per run).
    pub(crate) tail: TailOptions,
}

impl Plan {
    /// Compiles a validated job: each field the metrics, labels and host read gets a slot
    /// (its index in the parser's output), durations become milliseconds, and each metric's
    /// share of `max_series` is fixed here so every worker cuts alike.
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
            // A kafka record's host is per group too: its agent's, or its header's.
            HostFrom::PathRegex(_) | HostFrom::Value(_) | HostFrom::Record { .. } => {
                HostPlan::PerGroup
            }
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
                quantiles: m.quantiles.clone(),
                rules: Vec::new(),
                host_series: false,
            })
            .collect();
        // Per metric: an alert on one metric's host series does not make every
        // other metric build its own.
        let sinks_print_hosts = job
            .sinks
            .iter()
            .any(|s| matches!(s.series, SeriesChoice::Hosts | SeriesChoice::All));
        for mp in &mut metrics {
            let records = [&mp.record, &mp.count_record, &mp.sum_record];
            mp.host_series = sinks_print_hosts
                || job.alerts.iter().any(|a| {
                    a.origin == tidemark_jobs::alert::SeriesOrigin::Host
                        && records.iter().any(|r| ***r == *a.record)
                });
        }
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
        let line_slots = (metrics.len() > 1).then(|| {
            let mut slots: Vec<usize> = Vec::new();
            for s in metrics.iter().flat_map(|m| &m.label_slots) {
                if !slots.contains(s) {
                    slots.push(*s);
                }
            }
            slots
        });
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
            window_ms: ms(job.window.size).max(1),
            disorder_ms: ms(job.window.max_out_of_orderness),
            idle_timeout_ms: ms(job.window.idle_timeout),
            max_clock_skew_ms: ms(job.window.max_clock_skew),
            max_series: job.window.max_series,
            series_share: (job.window.max_series / job.metrics.len().max(1)).max(1),
            line_slots,
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
pub(crate) fn rule_labels(grouping: &Grouping, series_labels: &Labels) -> Labels {
    match grouping {
        Grouping::By(keep) => series_labels.select(|k| keep.iter().any(|l| l == k)),
        Grouping::Without(drop) => series_labels.select(|k| !drop.iter().any(|l| l == k)),
    }
}

/// Which of a host series' values a rule reads.
pub(crate) fn selector_of(expr: &RuleExpr) -> SeriesSelector {
    match expr {
        RuleExpr::Aggregate { selector, .. } => *selector,
        RuleExpr::HistogramQuantile { .. } => SeriesSelector::Value,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn job(alert_on: &str, series: &str) -> Job {
        let text = format!(
            r#"
name = "j"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "json"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[metric]]
name = "lat"
kind = "histogram"
field = "ms"
[[metric]]
name = "bytes"
kind = "sum"
field = "b"
[[rule]]
record = "all:reqs"
expr = "sum(reqs)"
[[alert]]
name = "A"
expr = '{alert_on} > 1'
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "{series}"
alerts = true
"#
        );
        tidemark_jobs::from_str(&text, "j.toml", Path::new("/tmp")).unwrap()
    }

    fn built(plan: &Plan) -> Vec<(&str, bool)> {
        plan.metrics
            .iter()
            .map(|m| (m.name.as_str(), m.host_series))
            .collect()
    }

    /// Review finding (issue 12 fix 3): one alert on a per-host series made
    /// every metric of the job build its per-host series.
    #[test]
    fn an_alert_on_one_metrics_host_series_builds_only_that_metrics() {
        let plan = Plan::new(&job("lat_count", "rules"));
        assert_eq!(
            built(&plan),
            [("reqs", false), ("lat", true), ("bytes", false)]
        );
        let plan = Plan::new(&job("bytes", "rules"));
        assert_eq!(
            built(&plan),
            [("reqs", false), ("lat", false), ("bytes", true)]
        );
        // An alert on a rule's series builds none; a sink printing hosts all.
        let plan = Plan::new(&job("all:reqs", "rules"));
        assert_eq!(
            built(&plan),
            [("reqs", false), ("lat", false), ("bytes", false)]
        );
        let plan = Plan::new(&job("all:reqs", "all"));
        assert_eq!(
            built(&plan),
            [("reqs", true), ("lat", true), ("bytes", true)]
        );
    }
}
