//! A job's semantics fingerprint: what a checkpoint's windows mean.
//!
//! A checkpoint says "windows below F are written; each group resumes at the first
//! line of a window at or above F". Both halves assume the job that resumes cuts
//! and fills windows as the one that wrote it did. With another window size the
//! resume point is no longer a window's first line (the window straddling it loses
//! its earlier lines); with other metrics, labels, rules, parsing or lateness bound
//! the output would silently change meaning at F. So every checkpoint stores the
//! settings that decide what a window holds, as a canonical text per section, and
//! [`super::CheckpointStore::load`] refuses to resume under different ones, naming
//! each setting that changed.
//!
//! What is in it (one `key = value` line per setting; every key is named in
//! messages as `section.key`):
//! - `parse`: format (and regex pattern), timestamp field and format;
//! - `source`: how the host label is found (`host`), `max_line_bytes` (which
//!   lines are skipped as oversize);
//! - `window`: `size`, `max_out_of_orderness` (which lines are late), `max_series`
//!   (which series a window keeps) and `max_jump` (which lines are outliers), these
//!   two written only when not the default;
//! - `metrics`: per metric (by name) its kind, value field, labels (as a set) and
//!   quantiles;
//! - `rules`: per rule (by record) its expression.
//!
//! What is not, because it does not change what a closed window holds:
//! `poll_interval`, `read_chunk`, `rate_limit`, `rotated_tail_wait`, `split_from` (pace only);
//! `fingerprint_bytes` (each resume position keeps its own fingerprint length);
//! `idle_timeout`, `max_clock_lag` and `max_clock_skew` (they follow the wall clock, so their effect
//! is never replayed exactly anyway, and the checkpoint keeps the watermark floor
//! they had raised); `include`, `exclude`, `archive` (a group new to the checkpoint
//! is read from its start, skipping windows already written, and a group no longer
//! matched is simply not read: adding or removing hosts is an ordinary change); and
//! the sinks (a new sink path is a new file; a changed `series` choice only changes
//! which series are printed from then on).
//!
//! The text is made from the validated job, not the job file, so comments, key
//! order, `"60s"` vs `"1m"` and the order of metrics, rules and labels do not
//! matter. Strings are written as JSON strings and numbers in their shortest
//! round-trip form, and the hash is FNV-1a (64-bit): the same on every platform
//! and in every release that keeps [`CANONICAL_VERSION`].
//!
//! Two fingerprints are compared setting by setting ([`Semantics::changes`]), never
//! by hash or version: a key missing on one side stands for its default
//! ([`DEFAULTS`]), and a key with no default missing on one side is a change (a
//! metric or rule added or removed).
//!
//! **Adding a setting later** (say `window.max_series`): every checkpoint written
//! before it lacks the key, and must still resume a job that leaves it at its
//! default. So:
//! 1. give it a default in [`DEFAULTS`]: the value that reproduces what jobs did
//!    before the setting existed;
//! 2. write it with `setting`, which leaves it out at that default (so a job that
//!    does not use it keeps its fingerprint, hash included);
//! 3. keep the spelling of existing values; if a value's canonical form must
//!    change, bump [`CANONICAL_VERSION`] and translate the old form in
//!    [`Semantics::changes`], or every existing checkpoint reports a change.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};
use tidemark_jobs::validate::default_max_jump;
use tidemark_jobs::{
    AggOp, Format, Grouping, HostFrom, Job, MetricKind, RuleExpr, SeriesSelector, TimeFormat,
};

/// Bumped when the canonical text changes for the same job. Recorded, but not
/// compared: fingerprints are compared setting by setting.
pub const CANONICAL_VERSION: u32 = 1;

/// Settings with a default, as `section.key` (a `*.` prefix matches any metric or
/// rule name, e.g. `metrics.*.quantiles`): a fingerprint without the key has this
/// value. Every setting added after version 1 must be here (see the module doc).
pub const DEFAULTS: &[(&str, &str)] = &[
    // Version 1 settings with a default, written always (their text is pinned).
    ("source.max_line_bytes", "262144"),
    ("window.max_out_of_orderness", "5s"),
    // Version 1 settings written only when set.
    ("metrics.*.field", "none"),
    ("metrics.*.quantiles", "[]"),
    // Added after version 1.
    ("window.max_series", "100000"),
];

/// The default of `section.key`, if it has one.
fn default_of(section: &str, key: &str) -> Option<&'static str> {
    DEFAULTS.iter().find_map(|&(pattern, value)| {
        let (s, k) = pattern.split_once('.')?;
        let matches = s == section
            && match k.strip_prefix("*.") {
                Some(suffix) => key.rsplit_once('.').is_some_and(|(_, last)| last == suffix),
                None => k == key,
            };
        matches.then_some(value)
    })
}

/// Writes `section.key = value` into `out` (the section's text), unless `value`
/// is the key's default ([`DEFAULTS`]). For settings added after version 1, and
/// for those version 1 already wrote only when set.
fn setting(out: &mut String, section: &str, key: &str, value: &str) {
    if default_of(section, key) != Some(value) {
        let _ = writeln!(out, "{key} = {value}");
    }
}

/// The fingerprint stored in a checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Semantics {
    /// [`CANONICAL_VERSION`] of the texts.
    pub version: u32,
    /// FNV-1a 64 of every section's text (in section order), as 16 hex digits.
    pub hash: String,
    /// Section name → canonical text (`key = value` lines).
    pub sections: BTreeMap<String, String>,
}

/// One setting that differs between a checkpoint and the job resuming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `section.key`, e.g. `window.size` or `metrics.http_requests_total.labels`.
    pub setting: String,
    /// `None`: not set in the checkpoint's job (added).
    pub was: Option<String>,
    /// `None`: not set any more (removed).
    pub now: Option<String>,
    /// Whether `was` and `now` were written in the fingerprints, rather than
    /// taken from the setting's default (then it is printed as "the default").
    pub was_set: bool,
    /// Whether `now` was written in the resuming job, rather than its default.
    pub now_set: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = |v: &str, explicit: bool| {
            if explicit {
                v.to_string()
            } else {
                format!("{v} (the default)")
            }
        };
        match (&self.was, &self.now) {
            (Some(was), Some(now)) => write!(
                f,
                "{} was {}, is now {}",
                self.setting,
                default(was, self.was_set),
                default(now, self.now_set)
            ),
            (None, Some(now)) => write!(f, "{} = {now} is new", self.setting),
            (Some(was), None) => write!(f, "{} = {was} is gone", self.setting),
            (None, None) => write!(f, "{} changed", self.setting),
        }
    }
}

impl Semantics {
    /// The fingerprint of a validated job.
    pub fn of(job: &Job) -> Semantics {
        let sections: BTreeMap<String, String> = [
            ("parse", parse_text(job)),
            ("source", source_text(job)),
            ("window", window_text(job)),
            ("metrics", metrics_text(job)),
            ("rules", rules_text(job)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut h = fnv::FnvHasher::default();
        for (name, text) in &sections {
            h.write(name.as_bytes());
            h.write(b"\n");
            h.write(text.as_bytes());
            h.write(b"\0");
        }
        Semantics {
            version: CANONICAL_VERSION,
            hash: format!("{:016x}", h.finish()),
            sections,
        }
    }

    /// Every setting of `self` (the checkpoint's) that differs in `now`, in
    /// section and key order; empty when they mean the same. A key one side lacks
    /// has its default there ([`DEFAULTS`]); version and hash are not compared.
    pub fn changes(&self, now: &Semantics) -> Vec<Change> {
        let mut out = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.sections.keys().chain(now.sections.keys()).collect();
        for name in names {
            let was = settings(self.sections.get(name));
            let is = settings(now.sections.get(name));
            let keys: std::collections::BTreeSet<&str> =
                was.keys().chain(is.keys()).copied().collect();
            for key in keys {
                let default = default_of(name, key);
                let (a, b) = (was.get(key).copied(), is.get(key).copied());
                if a.or(default) != b.or(default) {
                    out.push(Change {
                        setting: format!("{name}.{key}"),
                        was: a.or(default).map(str::to_string),
                        now: b.or(default).map(str::to_string),
                        was_set: a.is_some(),
                        now_set: b.is_some(),
                    });
                }
            }
        }
        out
    }
}

/// A section's `key = value` lines as a map.
fn settings(text: Option<&String>) -> BTreeMap<&str, &str> {
    text.map(|t| {
        t.lines()
            .filter_map(|l| l.split_once(" = "))
            .collect::<BTreeMap<_, _>>()
    })
    .unwrap_or_default()
}

/// A string as a JSON string: quoted, escaped, the same everywhere.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

fn duration(d: std::time::Duration) -> String {
    tidemark_jobs::duration::format_duration(d)
}

fn parse_text(job: &Job) -> String {
    let p = &job.parse;
    let format = match &p.format {
        Format::Nginx => "nginx".to_string(),
        Format::Json => "json".to_string(),
        Format::Logfmt => "logfmt".to_string(),
        Format::Regex(pattern) => format!("regex {}", quoted(pattern)),
    };
    let time = match &p.timestamp_format {
        TimeFormat::Rfc3339 => "rfc3339".to_string(),
        TimeFormat::EpochSeconds => "epoch_seconds".to_string(),
        TimeFormat::EpochMillis => "epoch_millis".to_string(),
        TimeFormat::Strftime(f) => quoted(f),
    };
    format!(
        "format = {format}\ntimestamp.field = {}\ntimestamp.format = {time}\n",
        quoted(&p.timestamp_field)
    )
}

fn source_text(job: &Job) -> String {
    let host = match &job.source.host {
        HostFrom::PathRegex(re) => format!("{{ path_regex = {} }}", quoted(re.as_str())),
        HostFrom::Field(f) => format!("{{ field = {} }}", quoted(f)),
        HostFrom::Value(v) => format!("{{ value = {} }}", quoted(v)),
        HostFrom::Record { header } => format!("{{ header = {} }}", quoted(header)),
    };
    // Additive: a file job's text is unchanged, so its checkpoints stay valid. The
    // topic is what the offsets in a checkpoint mean; brokers and options are
    // operational (the same topic through another address is the same data).
    let kafka = match &job.source.kafka {
        Some(k) => format!("kafka.topic = {}\n", quoted(&k.topic)),
        None => String::new(),
    };
    format!(
        "host = {host}\nmax_line_bytes = {}\n{kafka}",
        job.source.max_line_bytes
    )
}

fn window_text(job: &Job) -> String {
    let mut out = format!(
        "size = {}\nmax_out_of_orderness = {}\n",
        duration(job.window.size),
        duration(job.window.max_out_of_orderness)
    );
    // Which series a window keeps (added after version 1).
    setting(
        &mut out,
        "window",
        "max_series",
        &job.window.max_series.to_string(),
    );
    // Which lines are outliers rather than a jump of the group's time (added after
    // version 1). Its default follows `max_out_of_orderness`, so it is written only
    // when set to something else: a checkpoint without it had the default.
    if job.window.max_jump != default_max_jump(job.window.max_out_of_orderness) {
        let _ = writeln!(out, "max_jump = {}", duration(job.window.max_jump));
    }
    out
}

fn metrics_text(job: &Job) -> String {
    let mut metrics: Vec<_> = job.metrics.iter().collect();
    metrics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for m in metrics {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Sum => "sum",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        };
        let mut labels: Vec<&String> = m.labels.iter().collect();
        labels.sort();
        let _ = writeln!(out, "{}.kind = {kind}", m.name);
        let field = m.field.as_deref().map_or("none".to_string(), quoted);
        setting(&mut out, "metrics", &format!("{}.field", m.name), &field);
        let _ = writeln!(out, "{}.labels = {}", m.name, quoted_list(labels));
        let qs: Vec<String> = m
            .quantiles
            .iter()
            .map(|q| serde_json::to_string(q).unwrap_or_else(|_| q.to_string()))
            .collect();
        let quantiles = format!("[{}]", qs.join(", "));
        setting(
            &mut out,
            "metrics",
            &format!("{}.quantiles", m.name),
            &quantiles,
        );
    }
    out
}

fn rules_text(job: &Job) -> String {
    let metric = |i: usize| job.metrics.get(i).map_or("?", |m| m.name.as_str());
    let grouping = |g: &Grouping| {
        let (word, labels) = match g {
            Grouping::By(l) => ("by", l),
            Grouping::Without(l) => ("without", l),
        };
        let mut labels: Vec<&String> = labels.iter().collect();
        labels.sort();
        let names: Vec<&str> = labels.iter().map(|s| s.as_str()).collect();
        format!("{word} ({})", names.join(", "))
    };
    let mut rules: Vec<_> = job.rules.iter().collect();
    rules.sort_by(|a, b| a.record.cmp(&b.record));
    let mut out = String::new();
    for r in rules {
        let expr = match &r.expr {
            RuleExpr::Aggregate {
                op,
                grouping: g,
                metric: m,
                selector,
            } => {
                let op = match op {
                    AggOp::Sum => "sum",
                    AggOp::Min => "min",
                    AggOp::Max => "max",
                    AggOp::Avg => "avg",
                    AggOp::Count => "count",
                };
                let suffix = match selector {
                    SeriesSelector::Value => "",
                    SeriesSelector::HistogramCount => "_count",
                    SeriesSelector::HistogramSum => "_sum",
                };
                format!("{op} {} ({}{suffix})", grouping(g), metric(*m))
            }
            RuleExpr::HistogramQuantile {
                q,
                grouping: g,
                metric: m,
            } => format!(
                "histogram_quantile({}, sum {} ({}))",
                serde_json::to_string(q).unwrap_or_else(|_| q.to_string()),
                grouping(g),
                metric(*m)
            ),
        };
        let _ = writeln!(out, "{} = {expr}", quoted(&r.record));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const JOB: &str = r#"
name = "j"
[source]
kind = "file"
include = ["/logs/*/access.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "lat"
kind = "histogram"
field = "request_time"
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[rule]]
record = "p99"
expr = "histogram_quantile(0.99, lat)"
"#;

    fn job(text: &str) -> Job {
        tidemark_jobs::from_str(text, "j.toml", Path::new("/")).unwrap()
    }

    fn with(from: &str, to: &str) -> Semantics {
        assert!(JOB.contains(from), "{from}");
        Semantics::of(&job(&JOB.replacen(from, to, 1)))
    }

    #[test]
    fn the_fingerprint_is_stable_across_runs_and_platforms() {
        let s = Semantics::of(&job(JOB));
        // Pinned: a change here means every existing checkpoint stops resuming.
        // Bump CANONICAL_VERSION if that is intended.
        assert_eq!(s.hash, "ecab313cd4e913c1", "{s:#?}");
        assert_eq!(
            s.sections["window"],
            "size = 1m\nmax_out_of_orderness = 5s\n"
        );
        assert_eq!(
            s.sections["metrics"],
            "lat.kind = histogram\nlat.field = \"request_time\"\nlat.labels = []\n\
             lat.quantiles = [0.5, 0.9, 0.99]\nreqs.kind = counter\n\
             reqs.labels = [\"method\", \"status\"]\n"
        );
    }

    #[test]
    fn pacing_and_the_spelling_of_the_job_file_do_not_matter() {
        let base = Semantics::of(&job(JOB));
        for (from, to) in [
            (
                "[parse]",
                "poll_interval = \"2s\"\nread_chunk = \"64KiB\"\nrate_limit = \"1MiB/s\"\n\
                 rotated_tail_wait = \"1s\"\nfingerprint_bytes = \"2KiB\"\n\
                 exclude = [\"/logs/x/*\"]\n[parse]",
            ),
            ("size = \"1m\"", "size = \"60s\""),
            (
                "max_out_of_orderness = \"5s\"",
                "max_out_of_orderness = \"5s\"\nidle_timeout = \"1m\"\nmax_clock_skew = \"1h\"",
            ),
            ("[\"status\", \"method\"]", "[\"method\", \"status\"]"),
            (
                "/logs/*/access.log\"]",
                "/logs/*/access.log\", \"/more/*.log\"]",
            ),
        ] {
            let s = with(from, to);
            assert_eq!(base.changes(&s), Vec::new(), "{to}");
            assert_eq!(s.hash, base.hash, "{to}");
        }
        // Metrics and rules in another order are the same job.
        let reordered = JOB.replace(
            "[[metric]]\nname = \"reqs\"\nkind = \"counter\"\nlabels = [\"status\", \"method\"]\n",
            "",
        ) + "[[metric]]\nname = \"reqs\"\nkind = \"counter\"\nlabels = [\"status\", \"method\"]\n";
        assert_eq!(Semantics::of(&job(&reordered)), base);
    }

    #[test]
    fn each_setting_that_changes_a_window_is_named() {
        let base = Semantics::of(&job(JOB));
        for (from, to, setting) in [
            ("size = \"1m\"", "size = \"5m\"", "window.size"),
            ("max_out_of_orderness = \"5s\"", "max_out_of_orderness = \"1m\"", "window.max_out_of_orderness"),
            ("format = \"nginx\"", "format = \"json\"", "parse.format"),
            ("format = \"nginx\"", "format = \"nginx\"\ntimestamp = { field = \"time_local\", format = \"%d/%b/%Y:%H:%M:%S\" }", "parse.timestamp.format"),
            ("(?P<host>[^/]+)/'", "(?P<host>[^/]+)'", "source.host"),
            ("kind = \"file\"", "kind = \"file\"\nmax_line_bytes = \"1KiB\"", "source.max_line_bytes"),
            ("[\"status\", \"method\"]", "[\"status\"]", "metrics.reqs.labels"),
            ("kind = \"counter\"", "kind = \"sum\"\nfield = \"body_bytes_sent\"", "metrics.reqs.kind"),
            ("sum by (status) (reqs)", "max by (status) (reqs)", "rules.\"status:reqs\""),
            ("histogram_quantile(0.99, lat)", "histogram_quantile(0.9, lat)", "rules.\"p99\""),
        ] {
            let changes = base.changes(&with(from, to));
            assert!(
                changes.iter().any(|c| c.setting == setting),
                "{setting} not named for {to:?}: {changes:?}"
            );
        }
        let c = base.changes(&with("size = \"1m\"", "size = \"5m\""));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "window.size was 1m, is now 5m");
        let gone = with(
            "[[rule]]\nrecord = \"p99\"\nexpr = \"histogram_quantile(0.99, lat)\"\n",
            "",
        );
        assert_eq!(
            base.changes(&gone)[0].to_string(),
            "rules.\"p99\" = histogram_quantile(0.99, sum by () (lat)) is gone"
        );
    }

    #[test]
    fn a_setting_added_later_does_not_refuse_older_checkpoints() {
        // A checkpoint written before `max_line_bytes` was part of the fingerprint
        // (as every checkpoint will be when the next setting is added): the job
        // still has its default, so nothing changed.
        let now = Semantics::of(&job(JOB));
        let mut old = now.clone();
        let source = old.sections.get_mut("source").unwrap();
        assert!(source.contains("max_line_bytes = 262144\n"), "{source}");
        *source = source.replace("max_line_bytes = 262144\n", "");
        assert_eq!(old.changes(&now), Vec::new());
        // Set to something else, it is a change, and the message says from what.
        let bigger = with(
            "kind = \"file\"",
            "kind = \"file\"\nmax_line_bytes = \"1MiB\"",
        );
        let c = old.changes(&bigger);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            c[0].to_string(),
            "source.max_line_bytes was 262144 (the default), is now 1048576"
        );
        // A newer canonical version with the same settings is the same job.
        let mut older_version = now.clone();
        older_version.version = 0;
        older_version.hash = "0000000000000000".into();
        assert_eq!(older_version.changes(&now), Vec::new());
    }

    /// `max_series` came after version 1: a checkpoint without it resumes a job at
    /// the default, and a changed limit (which changes what a window keeps) is named.
    #[test]
    fn max_series_at_its_default_keeps_old_fingerprints_and_a_change_is_named() {
        let now = Semantics::of(&job(JOB));
        assert!(!now.sections["window"].contains("max_series"), "{now:?}");
        let limited = with("[window]", "[window]\nmax_series = 5000");
        let c = now.changes(&limited);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            c[0].to_string(),
            "window.max_series was 100000 (the default), is now 5000"
        );
    }

    /// `max_jump` came after version 1 and its default follows the disorder bound:
    /// left at its default it is not written, and set otherwise it is a change.
    #[test]
    fn max_jump_at_its_default_keeps_old_fingerprints_and_a_change_is_named() {
        let now = Semantics::of(&job(JOB));
        assert!(!now.sections["window"].contains("max_jump"), "{now:?}");
        let wider = with("[window]", "[window]\nmax_jump = \"2h\"");
        let c = now.changes(&wider);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].to_string().starts_with("window.max_jump"), "{}", c[0]);
        // A larger disorder bound raises the default jump with it: only the bound
        // itself is a change.
        let later = with(
            "max_out_of_orderness = \"5s\"",
            "max_out_of_orderness = \"5m\"",
        );
        let c = now.changes(&later);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(
            c[0].to_string().starts_with("window.max_out_of_orderness"),
            "{}",
            c[0]
        );
    }
}
