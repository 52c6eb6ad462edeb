//! Bad input never costs good data: malformed lines, invalid UTF-8, a 10 MB line,
//! unusable values and an empty file are counted, and every good line still counts.
//! The host comes from a field here, so one host's lines arrive from two file groups.

mod common;

use common::{flatten, job_from, run_until_eof};

const JOB: &str = r#"
name = "hostile"
[source]
kind = "file"
include = ["*.log"]
host = { field = "src.host" }
[parse]
format = "json"
timestamp = { field = "ts", format = "rfc3339" }
[[metric]]
name = "events"
kind = "counter"
labels = ["kind"]
[[metric]]
name = "size"
kind = "sum"
field = "bytes"
[[rule]]
record = "kind:events"
expr = "sum by (kind) (events)"
[[sink]]
kind = "stdout"
series = "all"
"#;

#[test]
fn bad_lines_are_counted_and_good_lines_all_count() {
    let d = tempfile::tempdir().unwrap();
    let good = |host: &str, sec: u32, kind: &str, bytes: &str| {
        format!(
            r#"{{"ts":"2026-11-20T10:00:{sec:02}Z","src":{{"host":"{host}"}},"kind":"{kind}","bytes":{bytes}}}"#
        )
        .into_bytes()
    };
    let mut a: Vec<Vec<u8>> = vec![
        good("h1", 1, "x", "10"),
        b"not json at all".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"src":{"host":"h1"},"kind":"x"}"#.to_vec(), // no timestamp
        br#"{"ts":"yesterday","kind":"x"}"#.to_vec(),
        Vec::new(),
        good("h1", 2, "x", "\"many\""), // counts as an event; its size is unusable
    ];
    // Invalid UTF-8 inside a value: read lossily, still counted.
    let mut lossy = good("h2", 3, "y", "5");
    let at = lossy.iter().position(|&b| b == b'y').unwrap();
    lossy.splice(at..at, [0xff, 0xfe]);
    a.push(lossy);
    // A 10 MB line: skipped without being buffered whole, counted as oversize.
    let mut huge = br#"{"ts":"2026-11-20T10:00:04Z","kind":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'z', 10 * 1024 * 1024));
    huge.extend(br#""}"#);
    a.push(huge);
    a.push(good("h2", 5, "y", "7"));
    let mut file_a = a.join(&b'\n');
    file_a.push(b'\n');
    std::fs::write(d.path().join("a.log"), file_a).unwrap();
    // A second group holding more of h1's lines, and an empty file.
    let file_b = [good("h1", 6, "x", "1"), good("h1", 7, "x", "2")].join(&b'\n');
    std::fs::write(d.path().join("b.log"), file_b).unwrap();
    std::fs::write(d.path().join("c.log"), b"").unwrap();

    let job = job_from(JOB, d.path());
    for workers in [1, 3] {
        let (windows, stats) = run_until_eof(&job, workers);
        assert_eq!(stats.file_groups, 3);
        assert_eq!(stats.oversize_lines, 1);
        assert_eq!(stats.invalid_utf8_lines, 1);
        assert_eq!(stats.parse_errors.get("bad_json"), Some(&1), "{stats:?}");
        assert_eq!(stats.parse_errors.get("not_an_object"), Some(&1));
        assert_eq!(stats.parse_errors.get("missing_timestamp"), Some(&1));
        assert_eq!(stats.parse_errors.get("bad_timestamp"), Some(&1));
        assert_eq!(stats.parse_errors.get("empty_line"), Some(&1));
        assert_eq!(
            stats.value_errors["size"].get("not_a_number"),
            Some(&1),
            "{stats:?}"
        );
        let got = flatten(&windows);
        let t = 1_795_168_800_000i64;
        let key = |rec: &str, l: &[(&str, &str)]| {
            (
                t,
                rec.to_string(),
                l.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(got[&key("events", &[("host", "h1"), ("kind", "x")])], 4.0);
        assert_eq!(got[&key("size", &[("host", "h1")])], 13.0);
        assert_eq!(
            got[&key("events", &[("host", "h2"), ("kind", "\u{fffd}\u{fffd}y")])],
            1.0
        );
        assert_eq!(got[&key("events", &[("host", "h2"), ("kind", "y")])], 1.0);
        assert_eq!(got[&key("size", &[("host", "h2")])], 12.0);
        assert_eq!(got[&key("kind:events", &[("kind", "x")])], 4.0);
        assert_eq!(got.len(), 8, "{got:#?}");
    }
}

#[test]
fn binary_lines_count_as_invalid_utf8_as_well_as_malformed() {
    // A binary line cannot parse, and it was counted only as malformed: the
    // invalid-UTF-8 counter stayed 0 for a file of binary garbage.
    let d = tempfile::tempdir().unwrap();
    let good = br#"{"ts":"2026-11-20T10:00:01Z","src":{"host":"h1"},"kind":"x","bytes":1}"#;
    let mut file = good.to_vec();
    for garbage in [
        &[0x89, b'P', b'N', b'G', 0xff, 0xfe, 0x00, 0x80][..],
        &[0xc3, 0x28, 0xa0, 0xa1],
        // NUL bytes are valid UTF-8: malformed, but not invalid UTF-8.
        &[0u8; 16],
    ] {
        file.push(b'\n');
        file.extend_from_slice(garbage);
    }
    file.push(b'\n');
    std::fs::write(d.path().join("a.log"), file).unwrap();
    let job = job_from(JOB, d.path());
    let (windows, stats) = run_until_eof(&job, 1);
    assert_eq!(stats.invalid_utf8_lines, 2, "{stats:?}");
    assert_eq!(stats.parse_errors_total(), 3, "{stats:?}");
    assert_eq!(flatten(&windows).len(), 3, "the good line still counts");
}
