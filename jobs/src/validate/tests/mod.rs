use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::job::*;

mod alerts;
mod env;
mod kafka;

const MINIMAL: &str = r#"
name = "app"
[source]
kind = "file"
include = ["logs/*.log"]
[parse]
format = "json"
[[metric]]
name = "lines_total"
kind = "counter"
"#;

fn ok(text: &str) -> Job {
    match from_str(text, "job.toml", Path::new("/base")) {
        Ok(job) => job,
        Err(d) => panic!("unexpected errors:\n{d}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match from_str(text, "job.toml", Path::new("/base")) {
        Ok(job) => panic!("accepted: {job:?}"),
        Err(d) => d.into_vec(),
    }
}

/// The minimal job plus `extra` TOML appended.
fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

const HOSTS_SINK: &str = "[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";

#[test]
fn defaults() {
    let job = ok(&with(HOSTS_SINK));
    assert_eq!(job.name, "app");
    assert_eq!(job.base_dir, PathBuf::from("/base"));
    assert_eq!(job.source.include, ["/base/logs/*.log"]);
    assert!(matches!(&job.source.host, HostFrom::Value(v) if v == "localhost"));
    assert_eq!(job.source.poll_interval, Duration::from_millis(250));
    assert_eq!(job.source.read_chunk_bytes, 1 << 20);
    assert_eq!(job.parse.format, Format::Json);
    assert_eq!(job.parse.timestamp_field, "time");
    assert_eq!(job.parse.timestamp_format, TimeFormat::Rfc3339);
    assert_eq!(job.window.size, Duration::from_secs(60));
    assert_eq!(job.window.max_out_of_orderness, Duration::from_secs(5));
    assert_eq!(job.window.idle_timeout, Duration::from_secs(30));
    assert_eq!(job.metrics.len(), 1);
    assert_eq!(job.metrics[0].field, None);
    assert!(job.metrics[0].quantiles.is_empty());
    assert_eq!(job.sinks.len(), 1);
    assert_eq!(job.sinks[0].series, SeriesChoice::Hosts);
}

#[test]
fn default_sink_is_stdout_rules() {
    let job = ok(&with(
        "[[rule]]\nrecord = \"job:lines:sum1m\"\nexpr = \"sum(lines_total)\"\n",
    ));
    assert_eq!(job.sinks.len(), 1);
    assert!(matches!(job.sinks[0].kind, SinkKind::Stdout));
    assert_eq!(job.sinks[0].series, SeriesChoice::Rules);
}

#[test]
fn paths_resolve_against_base_dir_without_touching_the_disk() {
    let text = MINIMAL.replace(
        "include = [\"logs/*.log\"]",
        "include = [\"./logs/*.log\", \"/abs/*.log\"]\nexclude = [\"logs/*.gz\"]",
    );
    let text = format!("{text}[[sink]]\nkind = \"jsonl\"\npath = \"out/x.jsonl\"\nseries = \"hosts\"\n[[sink]]\nkind = \"jsonl\"\npath = \"/tmp/y.jsonl\"\nseries = \"all\"\n");
    let job = ok(&text);
    assert_eq!(job.source.include, ["/base/logs/*.log", "/abs/*.log"]);
    assert_eq!(job.source.exclude, ["/base/logs/*.gz"]);
    assert!(
        matches!(&job.sinks[0].kind, SinkKind::Jsonl(p) if p == Path::new("/base/out/x.jsonl"))
    );
    assert!(matches!(&job.sinks[1].kind, SinkKind::Jsonl(p) if p == Path::new("/tmp/y.jsonl")));
}

#[test]
fn archive_globs_resolve_against_base_dir() {
    assert!(ok(&with(HOSTS_SINK)).source.archive.is_empty());
    let text = MINIMAL.replace(
        "include = [\"logs/*.log\"]",
        "include = [\"logs/*.log\"]\narchive = [\"./old/*/access.log-*.gz\", \"/archive/**/a.log-[0-9]*\", \"old2/x.log\"]",
    );
    let job = ok(&format!("{text}{HOSTS_SINK}"));
    assert_eq!(
        job.source.archive,
        [
            "/base/old/*/access.log-*.gz",
            "/archive/**/a.log-[0-9]*",
            "/base/old2/x.log"
        ]
    );
    // The live globs are not affected by the archive.
    assert_eq!(job.source.include, ["/base/logs/*.log"]);
}

#[test]
fn archive_glob_errors_point_inside_the_string() {
    let text = MINIMAL.replace(
        "include = [\"logs/*.log\"]",
        "include = [\"logs/*.log\"]\narchive = [\"/ok/*.gz\", \"/a/b[0-9.gz\", \"\", \"/a/x**.gz\"]",
    );
    let errs = errors(&format!("{text}{HOSTS_SINK}"));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    let line = text.lines().position(|l| l.starts_with("archive")).unwrap() + 1;
    assert!(errs.iter().all(|d| d.line == line), "{errs:#?}");
    // `[` is the 5th character of "/a/b[0-9.gz", which starts at column 25.
    assert_eq!(errs[0].column, 29, "{errs:#?}");
    assert_eq!(
        errs[0].message,
        "archive glob `/a/b[0-9.gz` is not a valid pattern: invalid range pattern"
    );
    assert!(errs[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("close the character class"));
    assert_eq!(errs[1].message, "empty path in archive");
    assert!(
        errs[2].message.starts_with("archive glob `/a/x**.gz`"),
        "{errs:#?}"
    );
    assert!(errs[2]
        .hint
        .as_deref()
        .unwrap()
        .contains("whole components"));

    // A relative glob that is fine alone but not once joined to a folder whose name
    // has glob characters.
    let text = MINIMAL.replace(
        "include = [\"logs/*.log\"]",
        "include = [\"/logs/*.log\"]\narchive = [\"old/*.gz\"]",
    );
    let errs = match from_str(
        &format!("{text}{HOSTS_SINK}"),
        "job.toml",
        Path::new("/jobs[1"),
    ) {
        Ok(job) => panic!("accepted: {job:?}"),
        Err(d) => d.into_vec(),
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].message.contains("`/jobs[1/old/*.gz`"), "{errs:#?}");
}

#[test]
fn explicit_settings() {
    let text = r#"
name = "app_2"
[source]
kind = "file"
include = ["/l/*.log"]
host = { field = "hostname" }
poll_interval = "1s"
read_chunk = "64KiB"
[parse]
format = "logfmt"
timestamp = { field = "ts", format = "epoch_millis" }
[window]
size = "30s"
max_out_of_orderness = "0s"
idle_timeout = "1m30s"
[[metric]]
name = "latency_seconds"
kind = "histogram"
field = "latency"
labels = ["route"]
quantiles = [0.99, 0.5, 0.99, 1, 0]
[[sink]]
kind = "stdout"
series = "hosts"
"#;
    let job = ok(text);
    assert!(matches!(&job.source.host, HostFrom::Field(f) if f == "hostname"));
    assert_eq!(job.source.poll_interval, Duration::from_secs(1));
    assert_eq!(job.source.read_chunk_bytes, 64 * 1024);
    assert_eq!(job.parse.format, Format::Logfmt);
    assert_eq!(job.parse.timestamp_field, "ts");
    assert_eq!(job.parse.timestamp_format, TimeFormat::EpochMillis);
    assert_eq!(job.window.size, Duration::from_secs(30));
    assert_eq!(job.window.max_out_of_orderness, Duration::ZERO);
    assert_eq!(job.window.idle_timeout, Duration::from_secs(90));
    assert_eq!(job.metrics[0].quantiles, [0.0, 0.5, 0.99, 1.0]);
}

#[test]
fn timestamp_formats() {
    let base = MINIMAL.replace("format = \"json\"", "format = \"json\"\ntimestamp = TS");
    let cases = [
        ("{ field = \"t\" }", TimeFormat::Rfc3339),
        (
            "{ field = \"t\", format = \"epoch_seconds\" }",
            TimeFormat::EpochSeconds,
        ),
        (
            "{ field = \"t\", format = \"%Y-%m-%d %H:%M:%S\" }",
            TimeFormat::Strftime("%Y-%m-%d %H:%M:%S".into()),
        ),
        (
            "{ field = \"t\", format = \"%s\" }",
            TimeFormat::Strftime("%s".into()),
        ),
    ];
    for (ts, want) in cases {
        let job = ok(&format!("{}{HOSTS_SINK}", base.replace("TS", ts)));
        assert_eq!(job.parse.timestamp_format, want, "{ts}");
    }
    // nginx: naming the preset's field keeps the preset's format.
    let nginx = MINIMAL.replace(
        "format = \"json\"",
        "format = \"nginx\"\ntimestamp = { field = \"time_local\" }",
    );
    let job = ok(&format!("{nginx}{HOSTS_SINK}"));
    assert_eq!(
        job.parse.timestamp_format,
        TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into())
    );
}

#[test]
fn regex_format_and_host_regex() {
    let text = r#"
name = "app"
[source]
kind = "file"
include = ["/logs/*/app.log"]
host = { path_regex = '^/logs/(?P<host>[^/]+)/' }
[parse]
format = "regex"
pattern = '^(?P<time>\S+) (?P<level>\w+)'
[[metric]]
name = "lines_total"
kind = "counter"
labels = ["level"]
[[sink]]
kind = "stdout"
series = "hosts"
"#;
    let job = ok(text);
    assert_eq!(
        job.parse.format,
        Format::Regex(r"^(?P<time>\S+) (?P<level>\w+)".into())
    );
    assert_eq!(job.parse.timestamp_field, "time");
    match &job.source.host {
        HostFrom::PathRegex(re) => assert_eq!(
            &re.captures("/logs/web-3/app.log").unwrap()["host"],
            "web-3"
        ),
        other => panic!("{other:?}"),
    }
}

const HISTO: &str = r#"
[[metric]]
name = "d"
kind = "histogram"
field = "dur"
labels = ["route", "code"]
"#;

fn rule_expr(extra_metrics: &str, expr: &str) -> RuleExpr {
    let text = with(&format!(
        "{extra_metrics}[[rule]]\nrecord = \"r\"\nexpr = '{expr}'\n"
    ));
    ok(&text).rules.remove(0).expr
}

#[test]
fn rule_resolution() {
    let by = |l: &[&str]| Grouping::By(l.iter().map(|s| s.to_string()).collect());
    assert_eq!(
        rule_expr(HISTO, "sum by (route, code, route) (d_count)"),
        RuleExpr::Aggregate {
            op: AggOp::Sum,
            grouping: by(&["code", "route"]),
            metric: 1,
            selector: SeriesSelector::HistogramCount
        }
    );
    assert_eq!(
        rule_expr(HISTO, "max(d_sum) without (route, host)"),
        RuleExpr::Aggregate {
            op: AggOp::Max,
            grouping: Grouping::Without(vec!["host".into(), "route".into()]),
            metric: 1,
            selector: SeriesSelector::HistogramSum,
        }
    );
    assert_eq!(
        rule_expr(HISTO, "histogram_quantile(0.9, sum by (code) (d))"),
        RuleExpr::HistogramQuantile {
            q: 0.9,
            grouping: by(&["code"]),
            metric: 1
        }
    );
    assert_eq!(
        rule_expr("", "count by (host) (lines_total)"),
        RuleExpr::Aggregate {
            op: AggOp::Count,
            grouping: by(&["host"]),
            metric: 0,
            selector: SeriesSelector::Value
        }
    );
    // A metric literally named `x_count` wins over the histogram's derived series.
    let literal = "[[metric]]\nname = \"d_count\"\nkind = \"counter\"\n";
    assert_eq!(
        rule_expr(&format!("{HISTO}{literal}"), "sum(d_count)"),
        RuleExpr::Aggregate {
            op: AggOp::Sum,
            grouping: by(&[]),
            metric: 2,
            selector: SeriesSelector::Value
        }
    );
}

#[test]
fn expression_errors_point_inside_the_string() {
    let text = with("[[rule]]\nrecord = \"r\"\nexpr = \"sum by (nope) (lines_total)\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let line = text.lines().position(|l| l.starts_with("expr")).unwrap() + 1;
    assert_eq!((errs[0].line, errs[0].column), (line, 17));
    assert_eq!(errs[0].message, "`nope` is not a label of `lines_total`");

    // With an escape in the string the offset cannot be mapped: point at the value.
    let text = with("[[rule]]\nrecord = \"r\"\nexpr = \"sum(\\u006Cines) by (nope)\"\n");
    let errs = errors(&text);
    assert_eq!(errs[0].column, 8, "{errs:?}");
}

#[test]
fn every_semantic_error_is_reported_in_file_order() {
    let text = r#"
name = "bad name"
[source]
kind = "tcp"
include = []
[parse]
format = "xml"
[window]
size = "7m"
[[metric]]
name = "1x"
kind = "count"
"#;
    let errs = errors(text);
    let lines: Vec<usize> = errs.iter().map(|d| d.line).collect();
    assert_eq!(lines, [1, 2, 4, 5, 7, 9, 11, 12], "{errs:#?}");
}

#[test]
fn diagnostics_display_format() {
    let errs = from_str("name = 1", "dir/job.toml", Path::new("/")).unwrap_err();
    assert_eq!(
        errs.to_string(),
        "dir/job.toml:1:8: error: wrong type for `name`: expected a string, found integer `1`\n  hint: put text values in double quotes"
    );
    let errs = from_str("", "job.toml", Path::new("/")).unwrap_err();
    assert!(
        errs.to_string()
            .starts_with("job.toml:1:1: error: missing required key `name` at the top level"),
        "{errs}"
    );
}

#[test]
fn any_error_is_a_std_error() {
    fn takes(_: &dyn std::error::Error) {}
    takes(&from_str("x", "j", Path::new("/")).unwrap_err());
}

proptest! {
    #[test]
    fn from_str_never_panics_on_arbitrary_text(s in "\\PC{0,200}") {
        let _ = from_str(&s, "job.toml", Path::new("/base"));
    }

    /// Mutations of a valid job: every line kept, dropped or replaced by junk.
    #[test]
    fn from_str_never_panics_on_mutated_jobs(
        edits in proptest::collection::vec((0usize..60, "\\PC{0,20}"), 0..6)
    ) {
        let example = include_str!("../../../examples/nginx.toml");
        let mut lines: Vec<String> = example.lines().map(str::to_string).collect();
        for (i, junk) in edits {
            if let Some(line) = lines.get_mut(i) {
                let keep = line.len() / 2;
                let cut = (0..=keep).rev().find(|c| line.is_char_boundary(*c)).unwrap_or(0);
                line.truncate(cut);
                line.push_str(&junk);
            }
        }
        let text = lines.join("\n");
        if let Err(d) = from_str(&text, "job.toml", Path::new("/base")) {
            prop_assert!(!d.is_empty());
            for diag in d.iter() {
                prop_assert!(diag.line >= 1 && diag.column >= 1);
            }
        }
    }
}

#[test]
fn max_series_defaults_and_must_leave_every_metric_a_share() {
    assert_eq!(ok(&with(HOSTS_SINK)).window.max_series, DEFAULT_MAX_SERIES);
    let two_metrics = |n: &str| {
        with(&format!(
            "[[metric]]\nname = \"b\"\nkind = \"counter\"\n[window]\nmax_series = {n}\n{HOSTS_SINK}"
        ))
    };
    assert_eq!(ok(&two_metrics("2")).window.max_series, 2);
    for bad in ["1", "0", "-5"] {
        let e = errors(&two_metrics(bad));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].line, e[0].column), (15, 14), "{e:?}");
        assert!(e[0].message.contains("max_series"), "{}", e[0].message);
        assert!(e[0].hint.as_deref().unwrap().contains("at least 2"));
    }
    let e = errors(&two_metrics("2000000000"));
    assert!(e[0].message.contains("too large"), "{e:?}");
    let e = errors(&two_metrics("\"many\""));
    assert!(e[0].message.contains("expected a whole number"), "{e:?}");
    assert!(e[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("max_series = 100000"));
}

#[test]
fn every_http_sink_key_on_a_jsonl_sink_is_refused_naming_the_kind_that_takes_it() {
    let d = errors(&with(
        r#"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
url = "http://p:9090/api/v1/write"
timestamp = "end"
external_labels = { a = "b" }
bearer_token_file = "/t"
basic_auth = { username = "u", password_file = "/p" }
timeout = "1s"
max_samples_per_send = 10
queue_capacity = 10
min_backoff = "1s"
max_backoff = "2s"
resend_interval = "1m"
generator_url = "http://g/"
"#,
    ));
    let refused: Vec<(String, Option<String>)> = d
        .iter()
        .filter(|x| x.message.contains("is a setting of"))
        .map(|x| (x.message.clone(), x.hint.clone()))
        .collect();
    assert_eq!(refused.len(), 12, "{refused:#?}");
    assert!(refused.iter().any(|(m, h)| m
        == "`generator_url` is a setting of an alertmanager sink, not of a jsonl sink"
        && h.as_deref() == Some("remove `generator_url`, or use kind = \"alertmanager\"")));
    assert!(refused.iter().any(|(m, _)| m
        == "`queue_capacity` is a setting of a prometheus_remote_write sink, not of a jsonl sink"));
}

#[test]
fn an_http_sink_refuses_the_other_http_sinks_own_keys_but_not_the_shared_ones() {
    let d = errors(&with(
        r#"
[[sink]]
kind = "prometheus_remote_write"
url = "http://p:9090/api/v1/write"
timeout = "5s"
resend_interval = "1m"
"#,
    ));
    let refused: Vec<_> = d
        .iter()
        .filter(|x| x.message.contains("is a setting of"))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(
        refused[0].message,
        "`resend_interval` is a setting of an alertmanager sink, not of a prometheus_remote_write sink"
    );
    assert_eq!(refused[0].hint.as_deref(), Some("remove `resend_interval`"));
}
