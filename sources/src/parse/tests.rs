use super::*;
use tidemark_jobs::TimeFormat;

fn cfg(format: Format, field: &str, tf: TimeFormat) -> Parse {
    Parse {
        format,
        timestamp_field: field.into(),
        timestamp_format: tf,
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ms(rfc: &str) -> i64 {
    rfc.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn nginx() -> LineParser {
    let c = cfg(
        Format::Nginx,
        "time_local",
        TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into()),
    );
    LineParser::new(
        &c,
        &names(&["status", "method", "request_time", "time_local", "status"]),
    )
    .unwrap()
}

#[test]
fn nginx_end_to_end() {
    let mut p = nginx();
    let line = br#"198.51.100.7 - - [20/Nov/2026:10:01:02 +0100] "GET /index.html HTTP/1.1" 304 0 "-" "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5)" 0.004"#;
    let got = p.parse(line).unwrap();
    assert_eq!(got.event_ms(), ms("2026-11-20T09:01:02Z"));
    assert_eq!(got.field(0), Some("304"));
    assert_eq!(got.field(1), Some("GET"));
    assert_eq!(got.field(2), Some("0.004"));
    assert_eq!(got.field(3), Some("20/Nov/2026:10:01:02 +0100"));
    assert_eq!(got.field(4), Some("304"));
    assert_eq!(got.field(5), None);
    assert!(!got.lossy_utf8());

    assert_eq!(p.parse(b"not nginx").err(), Some(LineError::FormatMismatch));
    let bad_time = br#"1.2.3.4 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-""#;
    assert_eq!(p.parse(bad_time).err(), Some(LineError::BadTimestamp));
    assert_eq!(p.parse(b"").err(), Some(LineError::EmptyLine));
    assert_eq!(p.parse(b" \t ").err(), Some(LineError::EmptyLine));
}

#[test]
fn invalid_utf8_is_read_lossily() {
    let mut p = nginx();
    let line = b"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET /caf\xe9 HTTP/1.1\" 200 1 \"-\" \"\xff\xfe\"";
    let got = p.parse(line).unwrap();
    assert!(got.lossy_utf8());
    assert_eq!(got.field(1), Some("GET"));
    assert_eq!(got.event_ms(), ms("2026-11-20T10:01:02Z"));
    // The next (valid) line is not marked.
    let ok = br#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#;
    assert!(!p.parse(ok).unwrap().lossy_utf8());

    let c = cfg(Format::Json, "t", TimeFormat::EpochSeconds);
    let mut p = LineParser::new(&c, &names(&["m"])).unwrap();
    let got = p.parse(b"{\"t\":1,\"m\":\"a\xffb\"}").unwrap();
    assert!(got.lossy_utf8());
    assert_eq!(got.field(0), Some("a\u{fffd}b"));
}

fn any_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        proptest::collection::vec(0x20u8..0x7f, 0..70),
        proptest::collection::vec(any::<u8>(), 0..6),
        any::<String>().prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

proptest::proptest! {
    /// The line's UTF-8 check (simdutf8) gives std's answer on any mix of ASCII,
    /// multi-byte characters and broken sequences: the line is lossy exactly when
    /// std finds it invalid, and its text is std's lossy conversion.
    #[test]
    fn utf8_check_agrees_with_std(rest in any_bytes()) {
        let c = cfg(
            Format::Regex(r"(?s)^(?P<t>\d+) (?P<m>.*)$".into()),
            "t",
            TimeFormat::EpochSeconds,
        );
        let mut p = LineParser::new(&c, &names(&["m"])).unwrap();
        let mut line = b"1 ".to_vec();
        line.extend_from_slice(&rest);
        let got = p.parse(&line).unwrap();
        proptest::prop_assert_eq!(got.lossy_utf8(), std::str::from_utf8(&line).is_err());
        proptest::prop_assert_eq!(got.field(0), Some(&*String::from_utf8_lossy(&rest)));
    }
}

#[test]
fn json_end_to_end() {
    let c = cfg(Format::Json, "ts", TimeFormat::Rfc3339);
    let mut p = LineParser::new(&c, &names(&["level", "req.status", "ts", "req.dur"])).unwrap();
    let line = br#"{"ts":"2026-11-20T10:01:02.345Z","level":"error","req":{"status":500,"dur":0.25},"msg":"upstream \"db\" timed out"}"#;
    let got = p.parse(line).unwrap();
    assert_eq!(got.event_ms(), ms("2026-11-20T10:01:02.345Z"));
    assert_eq!(
        (got.field(0), got.field(1), got.field(2), got.field(3)),
        (
            Some("error"),
            Some("500"),
            Some("2026-11-20T10:01:02.345Z"),
            Some("0.25")
        )
    );
    assert_eq!(
        p.parse(br#"{"level":"x"}"#).err(),
        Some(LineError::MissingTimestamp)
    );
    assert_eq!(
        p.parse(br#"{"ts":null}"#).err(),
        Some(LineError::MissingTimestamp)
    );
    assert_eq!(
        p.parse(br#"{"ts":"soon"}"#).err(),
        Some(LineError::BadTimestamp)
    );
    assert_eq!(p.parse(br#"{"ts":"#).err(), Some(LineError::BadJson));
    assert_eq!(p.parse(br#"[1]"#).err(), Some(LineError::NotAnObject));
    assert_eq!(
        p.parse(b"Traceback (most recent call last):").err(),
        Some(LineError::BadJson)
    );

    // Escaped timestamp text is unescaped before parsing; numbers work for epochs.
    let c = cfg(Format::Json, "t", TimeFormat::EpochMillis);
    let mut p = LineParser::new(&c, &[]).unwrap();
    assert_eq!(
        p.parse(br#"{"t":1700000000123}"#).unwrap().event_ms(),
        1_700_000_000_123
    );
    assert_eq!(
        p.parse(br#"{"t":"\u0031700000000124"}"#)
            .unwrap()
            .event_ms(),
        1_700_000_000_124
    );
}

#[test]
fn logfmt_end_to_end() {
    let c = cfg(
        Format::Logfmt,
        "time",
        TimeFormat::Strftime("%Y-%m-%d %H:%M:%S%.f".into()),
    );
    let mut p = LineParser::new(&c, &names(&["lvl", "msg", "retry"])).unwrap();
    let line = br#"time="2026-11-20 10:01:02.5" lvl=warn msg="disk \"/var\" 91% full" retry"#;
    let got = p.parse(line).unwrap();
    assert_eq!(got.event_ms(), ms("2026-11-20T10:01:02.5Z"));
    assert_eq!(got.field(0), Some("warn"));
    assert_eq!(got.field(1), Some(r#"disk "/var" 91% full"#));
    assert_eq!(got.field(2), Some("true"));
    assert_eq!(
        p.parse(b"lvl=info").err(),
        Some(LineError::MissingTimestamp)
    );
    assert_eq!(
        p.parse(b"time=\"2026-11-20").err(),
        Some(LineError::FormatMismatch)
    );
    assert_eq!(
        p.parse(b"time=2026-11-20").err(),
        Some(LineError::BadTimestamp)
    );
}

#[test]
fn regex_end_to_end() {
    let pattern = r"^(?P<ts>\d{4}-\d\d-\d\dT\S+) (?P<level>[A-Z]+) (?P<msg>.*)$";
    let c = cfg(Format::Regex(pattern.into()), "ts", TimeFormat::Rfc3339);
    let mut p = LineParser::new(&c, &names(&["level", "msg"])).unwrap();
    let got = p
        .parse(b"2026-11-20T10:01:02+02:00 INFO cache warmed in 12ms")
        .unwrap();
    assert_eq!(got.event_ms(), ms("2026-11-20T08:01:02Z"));
    assert_eq!(
        (got.field(0), got.field(1)),
        (Some("INFO"), Some("cache warmed in 12ms"))
    );
    assert_eq!(
        p.parse(b"continuation line").err(),
        Some(LineError::FormatMismatch)
    );
}

#[test]
fn build_errors() {
    let tf = || TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into());
    let e = LineParser::new(
        &cfg(Format::Nginx, "time_local", tf()),
        &names(&["upstream"]),
    )
    .err();
    assert!(matches!(e, Some(BuildError::UnknownField { ref field, .. }) if field == "upstream"));
    let e = LineParser::new(&cfg(Format::Nginx, "time", tf()), &[]).err();
    assert!(matches!(e, Some(BuildError::UnknownField { ref field, .. }) if field == "time"));
    let e = LineParser::new(
        &cfg(Format::Regex("(?P<a>".into()), "a", TimeFormat::Rfc3339),
        &[],
    )
    .err();
    assert!(matches!(e, Some(BuildError::Regex(_))));
    let e = LineParser::new(
        &cfg(Format::Regex("(?P<a>.)".into()), "t", TimeFormat::Rfc3339),
        &[],
    )
    .err();
    assert!(matches!(e, Some(BuildError::UnknownField { .. })));
    let e = LineParser::new(
        &cfg(Format::Json, "t", TimeFormat::Strftime("%H:%M".into())),
        &[],
    )
    .err();
    assert!(matches!(e, Some(BuildError::TimeFormat { .. })));
    // Any name is fine for json and logfmt: it may appear in some lines.
    assert!(LineParser::new(
        &cfg(Format::Json, "", TimeFormat::Rfc3339),
        &names(&["a..b", ""])
    )
    .is_ok());
}

#[test]
fn reasons_are_distinct_snake_case() {
    let mut seen = std::collections::BTreeSet::new();
    for e in LineError::ALL {
        let r = e.reason();
        assert!(
            r.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
            "{r}"
        );
        assert!(seen.insert(r), "{r}");
        assert_eq!(e.to_string(), r);
    }
    assert_eq!(seen.len(), 6);
}

#[test]
fn parser_is_send() {
    fn send<T: Send>() {}
    send::<LineParser>();
}

#[test]
fn big_line_buffers_are_released() {
    let c = cfg(Format::Json, "t", TimeFormat::EpochSeconds);
    let mut p = LineParser::new(&c, &names(&["m"])).unwrap();
    let mut big = format!("{{\"t\":1,\"m\":\"{}X\"}}", "\\n".repeat(1 << 20)).into_bytes();
    let x = big.len() - 3;
    big[x] = 0xff;
    let got = p.parse(&big).unwrap();
    assert!(got.lossy_utf8());
    assert_eq!(got.field(0).map(str::len), Some((1 << 20) + 3));
    assert!(p.scratch.capacity() > KEEP_CAPACITY && p.lossy.capacity() > KEEP_CAPACITY);
    assert_eq!(
        p.parse(b"{\"t\":2,\"m\":\"x\"}").unwrap().field(0),
        Some("x")
    );
    assert!(p.scratch.capacity() <= KEEP_CAPACITY && p.lossy.capacity() <= KEEP_CAPACITY);
}
