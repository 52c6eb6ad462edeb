//! logfmt and JSON lines with thousands of fields, for a job that names
//! thousands of fields: each key used to be looked up by a scan of every name
//! (and the names deduplicated pairwise), so a line cost fields × names. The test compares two
//! sizes eight times apart: linear work takes ~8× longer, quadratic ~64×. The
//! bound (32×) is generous for a loaded machine (and for larger hash tables
//! missing the cache more); each size keeps its fastest of several runs, each
//! long enough (the line parsed [`REPS`] times) that one stall does not decide it.
//! Runs are timed by the thread's CPU clock, not the wall clock: on a loaded
//! machine a run's wall time counts the time other processes held the core
//! (one suite run measured 44× that way, with the parser unchanged).

use std::time::Duration;

/// Parses of the line per run.
const REPS: usize = 10;

use tidemark_jobs::{Format, Parse, TimeFormat};
use tidemark_sources::parse::LineParser;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("field_{i}")).collect()
}

/// A line carrying every named field (in reverse order, so a scan from the
/// front finds each late), and as many fields the job does not name.
fn line(format: &Format, n: usize) -> String {
    let mut s = String::new();
    if *format == Format::Json {
        s.push_str("{\"ts\":1700000000");
        for i in (0..n).rev() {
            s.push_str(&format!(",\"field_{i}\":\"v{i}\",\"other_{i}\":\"x\\\"y\""));
        }
        s.push('}');
    } else {
        s.push_str("ts=1700000000");
        for i in (0..n).rev() {
            s.push_str(&format!(" field_{i}=v{i} other_{i}=\"x\\\"y\""));
        }
    }
    s
}

/// Fastest of `runs`: building the parser for `n` names and parsing one line [`REPS`] times.
fn cost(format: Format, n: usize, runs: usize) -> Duration {
    let text = line(&format, n);
    let cfg = Parse {
        format,
        timestamp_field: "ts".into(),
        timestamp_format: TimeFormat::EpochSeconds,
    };
    let fields = names(n);
    (0..runs)
        .map(|_| {
            let start = thread_cpu();
            let mut p = LineParser::new(&cfg, &fields).unwrap();
            for _ in 1..REPS {
                p.parse(text.as_bytes()).unwrap();
            }
            let parsed = p.parse(text.as_bytes()).unwrap();
            assert_eq!(parsed.event_ms(), 1_700_000_000_000);
            assert_eq!(parsed.field(0), Some("v0"));
            assert_eq!(parsed.field(n - 1), Some(format!("v{}", n - 1).as_str()));
            thread_cpu().saturating_sub(start)
        })
        .min()
        .unwrap()
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn assert_linear(format: Format) {
    let small = cost(format.clone(), 2_000, 7);
    let large = cost(format.clone(), 16_000, 3);
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-9);
    eprintln!("{format:?}: 2,000 fields: {small:?}; 16,000 fields: {large:?}; ratio {ratio:.1}");
    assert!(
        ratio < 32.0,
        "{format:?}: 8× the fields cost {ratio:.1}× the time (2,000: {small:?}, 16,000: {large:?})"
    );
}

#[test]
fn logfmt_lines_with_thousands_of_fields_parse_in_linear_time() {
    assert_linear(Format::Logfmt);
}

#[test]
fn json_lines_with_thousands_of_fields_parse_in_linear_time() {
    assert_linear(Format::Json);
}
