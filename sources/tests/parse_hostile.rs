//! Hostile input for the line parsers: whatever the bytes, no panic, a sane answer,
//! and no blow-up in time.

// In a module so that `cargo test parse` selects these tests.
mod parse_hostile {
    use proptest::prelude::*;
    use std::time::{Duration, Instant};
    use tidemark_jobs::{Format, Parse, TimeFormat};
    use tidemark_sources::parse::{LineError, LineParser};

    const NGINX_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

    fn parsers() -> Vec<(&'static str, LineParser)> {
        let mk = |format: Format, ts: &str, tf: TimeFormat, fields: &[&str]| {
            let cfg = Parse {
                format,
                timestamp_field: ts.into(),
                timestamp_format: tf,
            };
            let fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
            LineParser::new(&cfg, &fields).unwrap()
        };
        vec![
            (
                "nginx",
                mk(
                    Format::Nginx,
                    "time_local",
                    TimeFormat::Strftime(NGINX_TIME.into()),
                    &[
                        "status",
                        "method",
                        "path",
                        "http_user_agent",
                        "request_time",
                    ],
                ),
            ),
            (
                "json",
                mk(
                    Format::Json,
                    "time",
                    TimeFormat::Rfc3339,
                    &["level", "a.b", "msg"],
                ),
            ),
            (
                "logfmt",
                mk(
                    Format::Logfmt,
                    "ts",
                    TimeFormat::EpochSeconds,
                    &["level", "msg"],
                ),
            ),
            (
                "regex",
                mk(
                    Format::Regex(r"^(?P<ts>\d+) (?P<level>\w+)(?: (?P<msg>.*))?$".into()),
                    "ts",
                    TimeFormat::EpochMillis,
                    &["level", "msg"],
                ),
            ),
        ]
    }

    /// Reads everything a caller could read, so lazily wrong spans would panic here.
    fn touch(p: &mut LineParser, line: &[u8]) -> Result<(i64, Vec<Option<String>>), LineError> {
        let parsed = p.parse(line)?;
        let fields = (0..6)
            .map(|i| parsed.field(i).map(str::to_string))
            .collect();
        let _ = parsed.lossy_utf8();
        Ok((parsed.event_ms(), fields))
    }

    #[test]
    fn realistic_lines() {
        let mut ps = parsers();
        let lines: [&[u8]; 4] = [
            br#"10.0.4.17 - - [20/Nov/2026:10:01:02 +0000] "GET /api/v2/orders/1842?expand=items HTTP/1.1" 200 1834 "https://shop.example.com/cart" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36" 0.087"#,
            br#"{"time":"2026-11-20T10:01:02.345+00:00","level":"error","msg":"payment declined","a":{"b":"card"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}"#,
            br#"ts=1795168862.345 level=info msg="GET /healthz 200" dur=0.0004"#,
            b"1795168862345 WARN queue depth 1204 above threshold",
        ];
        let expect_ms = [
            1_795_168_862_000,
            1_795_168_862_345,
            1_795_168_862_345,
            1_795_168_862_345,
        ];
        for (i, (name, p)) in ps.iter_mut().enumerate() {
            let (ms, fields) = touch(p, lines[i]).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ms, expect_ms[i], "{name}");
            assert!(fields[0].is_some(), "{name}: {fields:?}");
        }
    }

    #[test]
    fn empty_and_blank_lines() {
        for (name, mut p) in parsers() {
            for line in [&b""[..], b" ", b"\t\t", b"  \x0c "] {
                assert_eq!(
                    p.parse(line).err(),
                    Some(LineError::EmptyLine),
                    "{name} {line:?}"
                );
            }
        }
    }

    #[test]
    fn ten_megabyte_lines() {
        let big = 10 << 20;
        let nginx_tail = format!(
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET /{} HTTP/1.1\" 200 1 \"-\" \"-\"",
            "a".repeat(big)
        );
        let json_big = format!(
            "{{\"time\":\"2026-11-20T10:01:02Z\",\"msg\":\"{}\",\"level\":\"info\"}}",
            "x\\\"".repeat(big / 3)
        );
        let mut cases: Vec<Vec<u8>> = vec![
            vec![b'a'; big],
            vec![b' '; big],
            vec![b'"'; big],
            vec![b'['; big],
            vec![b'{'; big],
            vec![b'\\'; big],
            vec![0xff; big],
            [b"{\"a\":".repeat(big / 5), b"1".to_vec()].concat(),
            b"a=\"".repeat(big / 3),
            b"1 - - [".repeat(big / 7),
            nginx_tail.clone().into_bytes(),
            json_big.clone().into_bytes(),
            format!("ts=1 level=x msg=\"{}\"", "\\n".repeat(big / 2)).into_bytes(),
            format!("1 INFO {}", "é".repeat(big / 2)).into_bytes(),
        ];
        // Lossy path on a big line too.
        let mut lossy = nginx_tail.clone().into_bytes();
        lossy[60] = 0xc3;
        cases.push(lossy);

        for (name, mut p) in parsers() {
            for (i, line) in cases.iter().enumerate() {
                let t = Instant::now();
                let r = touch(&mut p, line);
                let took = t.elapsed();
                assert!(took < Duration::from_secs(5), "{name} case {i}: {took:?}");
                match (name, i) {
                    ("nginx", 10) | ("nginx", 14) => {
                        let (ms, f) = r.unwrap();
                        assert_eq!(ms, 1_795_168_862_000);
                        assert_eq!(f[1].as_deref(), Some("GET"));
                        // One 'a' became a 3-byte U+FFFD in the lossy case.
                        let path_len = if i == 14 { big + 3 } else { big + 1 };
                        assert_eq!(f[2].as_ref().map(String::len), Some(path_len));
                    }
                    ("json", 11) => {
                        let (_, f) = r.unwrap();
                        assert_eq!(f[0].as_deref(), Some("info"));
                        assert_eq!(f[2].as_ref().map(String::len), Some(big / 3 * 2));
                    }
                    ("logfmt", 12) => {
                        assert_eq!(r.unwrap().1[1].as_ref().map(String::len), Some(big / 2))
                    }
                    ("regex", 13) => assert_eq!(r.unwrap().1[0].as_deref(), Some("INFO")),
                    _ => assert!(r.is_err(), "{name} case {i}"),
                }
            }
        }
    }

    #[test]
    fn same_parser_survives_error_then_success() {
        for (name, mut p) in parsers() {
            let _ = p.parse(b"\xff\xfe garbage \"[{");
            let _ = p.parse(&[b'{'; 1000]);
            assert_eq!(p.parse(b"").err(), Some(LineError::EmptyLine), "{name}");
        }
    }

    fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Raw bytes, plus near-misses built from each format's delimiters, which find
        // far more corner cases than uniform noise.
        let token = prop::sample::select(vec![
            &b" "[..],
            b"\"",
            b"\\",
            b"[",
            b"]",
            b"{",
            b"}",
            b":",
            b",",
            b"=",
            b"-",
            b"1",
            b"a",
            b".",
            b"\xff",
            b"\xc3",
            b"\\u",
            b"d83d",
            b"true",
            b"null",
            b"20/Nov/2026:10:01:02 +0000",
            b"2026-11-20T10:01:02Z",
            b"1700000000",
            b"\"time\":",
            b"ts=",
            b"level",
            b"GET / HTTP/1.1",
            b"1.2.3.4 - - [",
            b"\xe2\x82",
        ]);
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(token, 0..40).prop_map(|v| v.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(line in line_bytes()) {
            for (_, mut p) in parsers() {
                if let Ok(parsed) = p.parse(&line) {
                    for i in 0..6 {
                        let _ = parsed.field(i);
                    }
                    prop_assert_eq!(parsed.lossy_utf8(), std::str::from_utf8(&line).is_err());
                }
            }
        }

        #[test]
        fn nginx_lines_with_random_values_parse(
            addr in "[0-9a-f.:]{1,20}", user in "[^\\[\"]{1,10}", path in "/[!-~&&[^\"\\\\]]{0,30}",
            status in 100u32..600, bytes in 0u64..10_000_000, referer in "[ -~&&[^\"\\\\]]{0,20}",
            ua in "[ -~&&[^\"\\\\]]{0,40}", rt in proptest::option::of("[0-9]{1,3}\\.[0-9]{3}"),
        ) {
            let user = user.trim().replace(' ', "_");
            prop_assume!(!user.is_empty());
            let line = format!(
                "{addr} - {user} [20/Nov/2026:10:01:02 -0700] \"GET {path} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{ua}\"{}",
                rt.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
            );
            let (_, mut p) = parsers().into_iter().next().unwrap();
            let parsed = p.parse(line.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e} on {line}")))?;
            prop_assert_eq!(parsed.event_ms(), 1_795_194_062_000);
            let status_s = status.to_string();
            prop_assert_eq!(parsed.field(0), Some(status_s.as_str()));
            prop_assert_eq!(parsed.field(2), Some(path.as_str()));
            prop_assert_eq!(parsed.field(3), Some(ua.as_str()));
            prop_assert_eq!(parsed.field(4), rt.as_deref());
        }
    }
}
