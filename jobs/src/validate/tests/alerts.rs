//! `[[alert]]` tables that pass, and what they become.

use super::*;
use crate::alert::{CmpOp, MatchOp, SeriesOrigin, TemplatePart};

const JOB: &str = r#"
name = "app"
[source]
kind = "file"
include = ["logs/*.log"]
[parse]
format = "json"
[window]
size = "30s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "lat"
kind = "histogram"
field = "ms"
[[rule]]
record = "status:reqs:sum"
expr = "sum by (status) (reqs)"
"#;

fn job(extra: &str) -> String {
    format!("{JOB}{extra}\n[[sink]]\nkind = \"jsonl\"\npath = \"out/a.jsonl\"\nseries = \"none\"\nalerts = true\n")
}

#[test]
fn an_alert_becomes_windows_thresholds_and_templates() {
    let j = ok(&job(r#"
[[alert]]
name = "Errors"
expr = 'status:reqs:sum{status=~"5.."} > 100'
for = "1m30s"
keep_firing_for = "1m"
resolve_below = 80
average_over = "2m"
labels = { severity = "page" }
annotations = { summary = "{{ $labels.status }}: {{ $value }}", b = "{{ $labels.severity }}" }
[[alert]]
name = "SlowP99"
expr = "lat{quantile='0.99', host!=\"x\"} <= 0.5"
"#));
    assert_eq!(j.alerts.len(), 2);
    let a = &j.alerts[0];
    assert_eq!(
        (a.record.as_str(), a.origin),
        ("status:reqs:sum", SeriesOrigin::Rule)
    );
    assert_eq!(
        (a.op, a.threshold, a.resolve_threshold),
        (CmpOp::Gt, 100.0, 80.0)
    );
    assert_eq!(
        (a.for_windows, a.keep_firing_windows, a.average_windows),
        (3, 2, 4)
    );
    assert_eq!(a.labels, vec![("severity".to_string(), "page".to_string())]);
    assert_eq!(a.annotations[0].0, "b");
    assert_eq!(
        a.annotations[1].1 .0[0],
        TemplatePart::Label("status".into())
    );
    assert!(a.matchers[0].matches("503") && !a.matchers[0].matches("5030"));
    let b = &j.alerts[1];
    assert_eq!(
        (b.origin, b.op, b.for_windows, b.average_windows),
        (SeriesOrigin::Host, CmpOp::Le, 1, 1)
    );
    assert_eq!(b.resolve_threshold, 0.5);
    assert_eq!(b.matchers[1].op, MatchOp::NotEqual);
    assert!(b.selects(
        "lat",
        SeriesOrigin::Host,
        [("host", "a"), ("quantile", "0.99")].into_iter()
    ));
    assert!(!b.selects(
        "lat",
        SeriesOrigin::Host,
        [("host", "x"), ("quantile", "0.99")].into_iter()
    ));
    assert!(!b.selects(
        "lat",
        SeriesOrigin::Rule,
        [("quantile", "0.99")].into_iter()
    ));
    assert_eq!(j.sinks[0].series, SeriesChoice::None);
    assert!(j.sinks[0].alerts);
}

#[test]
fn a_transcript_sink_needs_alerts() {
    let text = format!("{JOB}[[sink]]\nkind = \"jsonl\"\npath = \"a.jsonl\"\nalerts = true\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("has no [[alert]]"), "{e:?}");
}
