//! The shipped example jobs validate and mean what they say.

use std::path::Path;
use std::time::Duration;

use tidemark_jobs::{
    load, AggOp, Format, Grouping, HostFrom, MetricKind, RuleExpr, SeriesChoice, SeriesSelector,
    SinkKind, TimeFormat,
};

#[test]
fn nginx_example_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx.toml");
    let job = match load(&path) {
        Ok(job) => job,
        Err(d) => panic!("{d}"),
    };
    let dir = path.parent().unwrap();
    assert_eq!(job.name, "nginx");
    assert_eq!(job.base_dir, dir);
    assert_eq!(
        job.source.include,
        vec![dir
            .join("sample/*/access.log")
            .to_string_lossy()
            .into_owned()]
    );
    assert!(job.source.exclude.is_empty());
    assert!(job.source.archive.is_empty());
    match &job.source.host {
        HostFrom::PathRegex(re) => {
            let p = dir.join("sample/web-1/access.log");
            let caps = re.captures(p.to_str().unwrap()).unwrap();
            assert_eq!(&caps["host"], "web-1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(job.source.poll_interval, Duration::from_millis(250));
    assert_eq!(job.source.read_chunk_bytes, 1 << 20);
    assert_eq!(job.parse.format, Format::Nginx);
    assert_eq!(job.parse.timestamp_field, "time_local");
    assert_eq!(
        job.parse.timestamp_format,
        TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into())
    );
    assert_eq!(job.window.size, Duration::from_secs(60));
    assert_eq!(job.window.max_out_of_orderness, Duration::from_secs(5));
    assert_eq!(job.window.idle_timeout, Duration::from_secs(30));

    let kinds: Vec<_> = job
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("http_requests_total", MetricKind::Counter),
            ("http_response_bytes_total", MetricKind::Sum),
            ("http_request_duration_seconds", MetricKind::Histogram),
        ]
    );
    assert_eq!(job.metrics[0].labels, ["status", "method"]);
    assert_eq!(job.metrics[0].field, None);
    assert_eq!(job.metrics[1].field.as_deref(), Some("body_bytes_sent"));
    assert_eq!(job.metrics[2].quantiles, [0.5, 0.9, 0.99]);
    assert!(job.metrics[0].quantiles.is_empty());

    let rules: Vec<_> = job
        .rules
        .iter()
        .map(|r| (r.record.as_str(), r.expr.clone()))
        .collect();
    let sum = |grouping: Vec<&str>, metric| RuleExpr::Aggregate {
        op: AggOp::Sum,
        grouping: Grouping::By(grouping.into_iter().map(String::from).collect()),
        metric,
        selector: SeriesSelector::Value,
    };
    let quantile = |q| RuleExpr::HistogramQuantile {
        q,
        grouping: Grouping::By(vec![]),
        metric: 2,
    };
    assert_eq!(
        rules,
        [
            ("status:http_requests:sum1m", sum(vec!["status"], 0)),
            ("job:http_requests:sum1m", sum(vec![], 0)),
            ("job:http_response_bytes:sum1m", sum(vec![], 1)),
            ("job:http_request_duration_seconds:p99_1m", quantile(0.99)),
            ("job:http_request_duration_seconds:p50_1m", quantile(0.5)),
        ]
    );

    assert_eq!(job.sinks.len(), 2);
    match &job.sinks[0].kind {
        SinkKind::Jsonl(p) => assert_eq!(p, &dir.join("out/nginx.jsonl")),
        other => panic!("{other:?}"),
    }
    assert_eq!(job.sinks[0].series, SeriesChoice::All);
    assert!(matches!(job.sinks[1].kind, SinkKind::Stdout));
    assert_eq!(job.sinks[1].series, SeriesChoice::Rules);
}

#[test]
fn every_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            n += 1;
            if let Err(d) = load(&path) {
                panic!("{}:\n{d}", path.display());
            }
        }
    }
    assert!(n >= 1);
}

#[test]
fn unreadable_file_is_a_diagnostic() {
    let err = load(Path::new("/nonexistent/tidemark/job.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/tidemark/job.toml: error: cannot read the job file: it does not exist\n  \
         hint: check the path (relative paths are relative to the current directory)"
    );
}

#[test]
fn nginx_alerts_example_validates_and_writes_its_transcript() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx-alerts.toml");
    let job = match load(&path) {
        Ok(job) => job,
        Err(d) => panic!("{d}"),
    };
    let names: Vec<_> = job.alerts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["HighErrorRate", "SlowRequests"]);
    assert_eq!(job.alerts[0].for_windows, 2);
    assert_eq!(job.alerts[1].average_windows, 3);
    assert_eq!(job.sinks.len(), 1);
    assert!(job.sinks[0].alerts);
    assert!(
        matches!(&job.sinks[0].kind, SinkKind::Jsonl(p) if p.ends_with("out/nginx-alerts.jsonl"))
    );
}
