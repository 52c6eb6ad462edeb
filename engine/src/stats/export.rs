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
//! escaped as in logs ([`EscapedPath`]). docs/metrics.md lists them all.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use tidemark_sources::file::EscapedPath;

use super::sink::Rejection;
use super::sink::SinkState;
use super::JobStats;
use crate::time::EventMs;

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
    /// OpenMetrics when the request's `Accept` header names it (Prometheus
    /// prefers it), else the classic text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
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
    reading(&mut f);
    lines(&mut f);
    groups(&mut f, wall_ms);
    output(&mut f, wall_ms);
    sinks(&mut f);
    f.registry
}

fn reading(f: &mut Families<'_>) {
    f.counter(
        "lines_read",
        "Lines read from the job's files, before parsing",
        None,
        |j, s| one(j, s.lines_read),
    );
    f.counter(
        "read",
        "Bytes read from the job's files",
        Some(Unit::Bytes),
        |j, s| one(j, s.bytes_read),
    );
    f.counter(
        "file_groups_found",
        "File groups found (a live file and its rotated siblings are one group)",
        None,
        |j, s| one(j, s.file_groups),
    );
    f.counter(
        "files_opened",
        "Files opened for reading (a reopen counts again)",
        None,
        |j, s| one(j, s.files_opened),
    );
    f.counter(
        "file_open_errors",
        "Tries to open or read a file that failed, or whose real path is outside the allowed roots",
        None,
        |j, s| one(j, s.file_open_errors),
    );
    f.gauge(
        "files_open",
        "Files held open now, over the job's workers",
        None,
        |j, s| {
            let open: u64 = s.open_files.values().map(|(o, _)| o).sum();
            Some((job(j), open as f64))
        },
    );
    f.gauge(
        "files_parked",
        "Live files closed while idle to keep within max_open_files",
        None,
        |j, s| {
            let parked: u64 = s.open_files.values().map(|(_, p)| p).sum();
            Some((job(j), parked as f64))
        },
    );
    f.gauge(
        "files_failing",
        "Files that cannot be opened or read now (a live run waits for them)",
        None,
        |j, s| Some((job(j), s.unreadable().len() as f64)),
    );
    f.counter(
        "rotations",
        "Live files renamed away and replaced (rename and create rotation)",
        None,
        |j, s| one(j, s.rotations),
    );
    f.counter(
        "copytruncates",
        "Truncations whose old content was read from its copy (copytruncate rotation)",
        None,
        |j, s| one(j, s.copytruncates),
    );
    f.counter(
        "truncations",
        "Live files truncated with no copy of the old content, read again from the start",
        None,
        |j, s| one(j, s.truncations),
    );
}

fn lines(f: &mut Families<'_>) {
    f.counter(
        "lines_counted",
        "Lines added to a window (before max_series)",
        None,
        |j, s| one(j, s.lines_counted),
    );
    f.counter(
        "lines_late",
        "Lines below their group's watermark, not counted in any window",
        None,
        |j, s| one(j, s.late_lines),
    );
    f.counter(
        "lines_malformed",
        "Lines that could not be parsed, by reason (skipped)",
        None,
        |j, s| {
            s.parse_errors
                .iter()
                .map(|(reason, n)| (with(job(j), "reason", *reason), *n))
                .collect::<Vec<_>>()
        },
    );
    f.counter(
        "lines_too_long",
        "Lines longer than max_line_bytes (skipped)",
        None,
        |j, s| one(j, s.oversize_lines),
    );
    f.counter(
        "lines_invalid_utf8",
        "Lines that are not valid UTF-8 (read with replacement characters if they parsed)",
        None,
        |j, s| one(j, s.invalid_utf8_lines),
    );
    f.counter("lines_future", "Lines stamped more than max_jump ahead of their group and not confirmed by the next line (clock skew): kept in their windows, ignored by the watermark", None, |j, s| one(j, s.outlier_lines));
    f.counter("lines_late_after_written", "Lines read after a restart whose window an earlier run had already written (not in the output)", None, |j, s| one(j, s.late_after_written));
    f.counter("series_limit_dropped_lines", "Lines of series left out because a window had more series of the metric than max_series allows, by metric", None, |j, s| {
        s.series_limit_dropped
            .iter()
            .map(|(metric, n)| (with(job(j), "metric", metric.clone()), *n))
            .collect::<Vec<_>>()
    });
    f.counter("value_errors", "Values a metric could not use, by metric and reason (the line still counts for the job's other metrics)", None, |j, s| {
        s.value_errors
            .iter()
            .flat_map(|(metric, reasons)| {
                reasons.iter().map(move |(reason, n)| {
                    (with(with(job(j), "metric", metric.clone()), "reason", *reason), *n)
                })
            })
            .collect::<Vec<_>>()
    });
}

fn group_labels(j: &str, live: &std::path::Path) -> Labels {
    with(job(j), "group", EscapedPath(live).to_string())
}

fn groups(f: &mut Families<'_>, wall_ms: EventMs) {
    f.counter(
        "group_lines_read",
        "Lines read from the group's files in this run, as last published (about every second)",
        None,
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.lines_read))
                .collect::<Vec<_>>()
        },
    );
    f.counter(
        "group_read",
        "Bytes read from the group's files in this run, as last published (about every second)",
        Some(Unit::Bytes),
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.bytes_read))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_read_lag",
        "Bytes behind the end of the group's files",
        Some(Unit::Bytes),
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.lag_bytes as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_timestamp",
        "The group's watermark (event time, Unix seconds)",
        Some(Unit::Seconds),
        |j, s| {
            s.groups
                .iter()
                .filter_map(|(live, g)| Some((group_labels(j, live), secs(g.watermark_ms?))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_lag",
        "How far the group's watermark trails the wall clock",
        Some(Unit::Seconds),
        |j, s| {
            s.groups
                .iter()
                .filter_map(|(live, g)| {
                    Some((
                        group_labels(j, live),
                        secs(wall_ms.saturating_sub(g.watermark_ms?)),
                    ))
                })
                .collect::<Vec<_>>()
        },
    );
    f.gauge("group_idle", "1 while the group is idle at the end of its files for longer than idle_timeout (it no longer holds windows open)", None, |j, s| {
        s.groups
            .iter()
            .map(|(live, g)| (group_labels(j, live), f64::from(u8::from(g.idle))))
            .collect::<Vec<_>>()
    });
    f.gauge(
        "group_files_open",
        "Files of the group held open now",
        None,
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), f64::from(u8::from(g.file_open))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_files_failing",
        "Files of the group that cannot be opened or read now",
        None,
        |j, s| {
            s.unreadable_files
                .iter()
                .map(|(live, files)| (group_labels(j, live), files.len() as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge("group_clock_behind", "How far the lines the group keeps writing trail the wall clock, beyond max_clock_lag (0 once caught up)", Some(Unit::Seconds), |j, s| {
        s.clock_behind_ms
            .iter()
            .chain(s.clock_lag_ms.iter().filter(|(_, lag)| **lag > 0))
            .map(|(live, lag)| (group_labels(j, live), secs(*lag)))
            .collect::<Vec<_>>()
    });
}

fn output(f: &mut Families<'_>, wall_ms: EventMs) {
    // Before the first window, or at the very start (MIN), there is no
    // watermark to show: no series rather than a nonsense value.
    let frontier = |s: &JobStats| s.frontier_ms.filter(|ms| *ms > EventMs::MIN);
    f.counter(
        "windows_emitted",
        "Windows handed to the sinks",
        None,
        |j, s| one(j, s.windows_emitted),
    );
    f.gauge(
        "watermark_timestamp",
        "The job's output frontier: every window that ends by then is written (Unix seconds)",
        Some(Unit::Seconds),
        |j, s| frontier(s).map(|ms| (job(j), secs(ms))),
    );
    f.gauge(
        "watermark_lag",
        "How far the job's output frontier trails the wall clock",
        Some(Unit::Seconds),
        |j, s| frontier(s).map(|ms| (job(j), secs(wall_ms.saturating_sub(ms)))),
    );
    f.counter("checkpoints", "Checkpoints saved", None, |j, s| {
        one(j, s.checkpoints_written)
    });
    f.gauge(
        "checkpoint_age",
        "Time since the last checkpoint was saved",
        Some(Unit::Seconds),
        |j, s| {
            s.last_checkpoint
                .map(|(at, _)| (job(j), secs(wall_ms.saturating_sub(at).max(0))))
        },
    );
    f.gauge(
        "checkpoint_duration",
        "How long the last checkpoint took, the sinks' sync included",
        Some(Unit::Seconds),
        |j, s| {
            s.last_checkpoint
                .map(|(_, us)| (job(j), us as f64 / 1_000_000.0))
        },
    );
}

fn sink_labels(j: &str, name: &str) -> Labels {
    with(job(j), "sink", name)
}

fn sinks(f: &mut Families<'_>) {
    type Get = fn(&super::sink::SinkSnapshot) -> u64;
    let counters: [(&str, &str, Get); 6] = [
        ("sink_windows", "Windows handed to the sink", |s| s.windows),
        (
            "sink_records",
            "Records (series of a window) handed to the sink, before its own filter",
            |s| s.records,
        ),
        (
            "sink_records_written",
            "Records the sink wrote, or sent and had acknowledged",
            |s| s.records_written,
        ),
        (
            "sink_batches",
            "Batches (requests, syncs) the sink completed",
            |s| s.batches,
        ),
        (
            "sink_retries",
            "Attempts that failed and were tried again",
            |s| s.retries,
        ),
        (
            "sink_failures",
            "Attempts that failed, retried or not",
            |s| s.failures,
        ),
    ];
    for (name, help, get) in counters {
        f.counter(name, help, None, |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), get(&m)))
                .collect::<Vec<_>>()
        });
    }
    f.counter(
        "sink_rejected_samples",
        "Samples the receiver refused for good (never retried), by reason",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .flat_map(|m| {
                    let labels = sink_labels(j, &m.name);
                    m.rejected
                        .map(|(r, n)| (with(labels.clone(), "reason", Rejection::as_str(r)), n))
                })
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_queue_records",
        "Records waiting to be sent",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), m.queue_records as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_queue",
        "Encoded bytes waiting to be sent",
        Some(Unit::Bytes),
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), m.queue_bytes as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_state",
        "1 for the sink's state now (ok, retrying, failed), 0 for the others",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .flat_map(|m| {
                    let labels = sink_labels(j, &m.name);
                    [SinkState::Ok, SinkState::Retrying, SinkState::Failed].map(|st| {
                        (
                            with(labels.clone(), "state", st.as_str()),
                            f64::from(u8::from(m.state == st)),
                        )
                    })
                })
                .collect::<Vec<_>>()
        },
    );
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
#[path = "export_tests.rs"]
mod tests;
