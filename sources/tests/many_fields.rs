//! logfmt lines with thousands of fields, for a job that names thousands of
//! fields: each key used to be looked up by a scan of every name (and the names
//! deduplicated pairwise), so a line cost fields × names. The test compares two
//! sizes eight times apart: linear work takes ~8× longer, quadratic ~64×. The
//! bound (24×) is generous for a loaded machine; each size keeps its fastest of
//! several runs so one stall does not decide it.

use std::time::{Duration, Instant};

use tidemark_jobs::{Format, Parse, TimeFormat};
use tidemark_sources::parse::LineParser;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("field_{i}")).collect()
}

/// A line carrying every named field (in reverse order, so a scan from the
/// front finds each late), and as many fields the job does not name.
fn line(n: usize) -> String {
    let mut s = String::from("ts=1700000000");
    for i in (0..n).rev() {
        s.push_str(&format!(" field_{i}=v{i} other_{i}=\"x\\\"y\""));
    }
    s
}

/// Fastest of `runs`: building the parser for `n` names and parsing one line.
fn cost(n: usize, runs: usize) -> Duration {
    let cfg = Parse {
        format: Format::Logfmt,
        timestamp_field: "ts".into(),
        timestamp_format: TimeFormat::EpochSeconds,
    };
    let fields = names(n);
    let text = line(n);
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut p = LineParser::new(&cfg, &fields).unwrap();
            let parsed = p.parse(text.as_bytes()).unwrap();
            assert_eq!(parsed.event_ms(), 1_700_000_000_000);
            assert_eq!(parsed.field(0), Some("v0"));
            assert_eq!(parsed.field(n - 1), Some(format!("v{}", n - 1).as_str()));
            start.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn logfmt_lines_with_thousands_of_fields_parse_in_linear_time() {
    let small = cost(2_000, 5);
    let large = cost(16_000, 3);
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
    eprintln!("2,000 fields: {small:?}; 16,000 fields: {large:?}; ratio {ratio:.1}");
    assert!(
        ratio < 24.0,
        "8× the fields cost {ratio:.1}× the time (2,000: {small:?}, 16,000: {large:?})"
    );
}
