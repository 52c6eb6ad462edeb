//! `/metrics`: a job's [`JobStats`] in the Prometheus exposition formats.
//!
//! Rendered at scrape time from a snapshot of the stats the workers already
//! keep (the collector pattern): no second set of counters, nothing added to the
//! read path. Each scrape builds a fresh `prometheus_client` registry from the
//! snapshot and encodes it, as OpenMetrics when the scraper asks for it
//! (Prometheus does) and otherwise in the classic text format 0.0.4, which
//! `promtool check metrics` and `curl` read ([`Format::negotiate`]).
//!
//! Every series carries `tidemark_job` (not `job`: Prometheus sets `job` to the
//! scrape job's name). Per-group series add `group`, the group's live path
//! escaped as in logs ([`EscapedPath`](tidemark_sources::file::EscapedPath)). docs/metrics.md lists them all.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::JobStats;
use crate::time::EventMs;

mod groups;
mod job;
mod sinks;

/// The classic Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics 1.0 text.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which exposition format to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the request's `Accept` header accepts it (a media range
    /// `application/openmetrics-text`, any case, with a `q` above 0) at least as
    /// much as the text format (`text/plain`, `*/*`, `text/*`), as Prometheus
    /// asks; else the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut om, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                // A malformed `q` counts as refusing the range.
                .filter(|q| q.is_finite())
                .unwrap_or(0.0);
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE_TEXT,
            Format::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }
}

/// Renders `jobs` (name, stats snapshot) as of the wall clock `wall_ms`.
pub fn render(jobs: &[(&str, &JobStats)], wall_ms: EventMs, format: Format) -> String {
    let registry = registry(jobs, wall_ms);
    let mut out = String::new();
    // Writing to a String cannot fail, and our label sets encode infallibly.
    let _ = encode(&mut out, &registry);
    match format {
        Format::OpenMetrics => out,
        Format::Text => openmetrics_to_text(&out),
    }
}

type Labels = Vec<(&'static str, String)>;

fn job(name: &str) -> Labels {
    vec![("tidemark_job", name.to_string())]
}

fn with(mut labels: Labels, key: &'static str, value: impl Into<String>) -> Labels {
    labels.push((key, value.into()));
    labels
}

/// Adds families to a registry, one call per metric, rows from every job.
struct Families<'a> {
    registry: Registry,
    jobs: &'a [(&'a str, &'a JobStats)],
}

impl Families<'_> {
    /// A counter `tidemark_<name>[_<unit>]_total`.
    fn counter<F, I>(&mut self, name: &str, help: &str, unit: Option<Unit>, rows: F)
    where
        F: Fn(&str, &JobStats) -> I,
        I: IntoIterator<Item = (Labels, u64)>,
    {
        let family = Family::<Labels, Counter>::default();
        for (name, stats) in self.jobs {
            for (labels, v) in rows(name, stats) {
                family.get_or_create(&labels).inc_by(v);
            }
        }
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, family),
            None => self.registry.register(name, help, family),
        }
    }

    /// A gauge `tidemark_<name>[_<unit>]`.
    fn gauge<F, I>(&mut self, name: &str, help: &str, unit: Option<Unit>, rows: F)
    where
        F: Fn(&str, &JobStats) -> I,
        I: IntoIterator<Item = (Labels, f64)>,
    {
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (name, stats) in self.jobs {
            for (labels, v) in rows(name, stats) {
                family.get_or_create(&labels).set(v);
            }
        }
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, family),
            None => self.registry.register(name, help, family),
        }
    }
}

fn one(name: &str, v: u64) -> Option<(Labels, u64)> {
    Some((job(name), v))
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The registry of every metric, filled from the snapshots.
fn registry(jobs: &[(&str, &JobStats)], wall_ms: EventMs) -> Registry {
    let mut f = Families {
        registry: Registry::with_prefix("tidemark"),
        jobs,
    };
    job::reading(&mut f);
    job::lines(&mut f);
    groups::groups(&mut f, wall_ms);
    job::output(&mut f, wall_ms);
    sinks::sinks(&mut f);
    f.registry
}

/// OpenMetrics as `prometheus_client` writes it, in the classic text format:
/// a counter's family is named with its `_total` (as its samples are), and
/// there is no `# UNIT` or `# EOF` line. Our help texts hold no `"` or `\`, so
/// their escaping is the same in both formats.
fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
