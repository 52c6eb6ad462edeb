use super::*;
use proptest::prelude::*;

fn jiff_strftime(pattern: &str, text: &str) -> Result<i64, LineError> {
    strftime(pattern, text)
}

/// What jiff reads, less offsets beyond ±14:00 (which jiff takes up to ±25:59).
fn jiff_rfc3339(text: &str) -> Result<i64, LineError> {
    let offset = jiff::fmt::temporal::Pieces::parse(text)
        .ok()
        .and_then(|p| p.to_numeric_offset());
    if offset.is_some_and(|o| o.seconds().abs() > 14 * 3600) {
        return Err(LineError::BadTimestamp);
    }
    text.parse::<Timestamp>()
        .map(floor_ms)
        .map_err(|_| LineError::BadTimestamp)
}

fn ms(rfc: &str) -> i64 {
    rfc.parse::<Timestamp>().unwrap().as_millisecond()
}

fn parser(f: TimeFormat) -> TimeParser {
    TimeParser::new(&f).unwrap()
}

#[test]
fn nginx_local() {
    let mut p = parser(TimeFormat::Strftime(NGINX_TIME_FORMAT.into()));
    assert_eq!(
        p.parse("20/Nov/2026:10:01:02 +0000"),
        Ok(ms("2026-11-20T10:01:02Z"))
    );
    assert_eq!(
        p.parse("20/Nov/2026:10:01:02 -0700"),
        Ok(ms("2026-11-20T17:01:02Z"))
    );
    assert_eq!(
        p.parse("20/Nov/2026:10:01:02 +0530"),
        Ok(ms("2026-11-20T04:31:02Z"))
    );
    assert_eq!(
        p.parse("29/Feb/2024:23:59:59 +0000"),
        Ok(ms("2024-02-29T23:59:59Z"))
    );
    // Slow path (jiff) cases still work.
    assert_eq!(
        p.parse("20/nov/2026:10:01:02 +0000"),
        Ok(ms("2026-11-20T10:01:02Z"))
    );
    assert_eq!(
        p.parse("20/Nov/2026:23:59:60 +0000"),
        Ok(ms("2026-11-20T23:59:59Z"))
    );
    for bad in [
        "",
        "-",
        "29/Feb/2023:00:00:00 +0000",
        "20/Nov/2026:24:00:00 +0000",
        "20/Nov/2026:10:01:02",
        "20/Nov/2026:10:01:02 +0000 ",
        "20/Foo/2026:10:01:02 +0000",
        "2026-11-20T10:01:02Z",
    ] {
        assert_eq!(p.parse(bad), Err(LineError::BadTimestamp), "{bad:?}");
    }
}

#[test]
fn minute_cache_reads_the_seconds() {
    let mut p = parser(TimeFormat::Strftime(NGINX_TIME_FORMAT.into()));
    assert_eq!(
        p.parse("20/Nov/2026:10:01:02 +0100"),
        Ok(ms("2026-11-20T09:01:02Z"))
    );
    let m = p.minute.as_ref().expect("the minute is cached");
    assert_eq!(
        m.get(b"20/Nov/2026:10:01:59 +0100"),
        Some(ms("2026-11-20T09:01:59Z"))
    );
    assert_eq!(
        m.get(b"20/Nov/2026:10:01:00 +0100"),
        Some(ms("2026-11-20T09:01:00Z"))
    );
    for other in [
        "20/Nov/2026:10:01:60 +0100",
        "20/Nov/2026:10:01:5x +0100",
        "20/Nov/2026:10:02:02 +0100",
        "20/Nov/2026:10:01:02 +0000",
        "20/Nov/2026:10:01:02 +0100 ",
    ] {
        assert_eq!(m.get(other.as_bytes()), None, "{other}");
    }
}

#[test]
fn cache_returns_same_results() {
    let mut p = parser(TimeFormat::Strftime(NGINX_TIME_FORMAT.into()));
    let a = "20/Nov/2026:10:01:02 +0000";
    let b = "20/Nov/2026:10:01:03 +0000";
    for _ in 0..3 {
        assert_eq!(p.parse(a), Ok(ms("2026-11-20T10:01:02Z")));
        assert_eq!(p.parse(a), Ok(ms("2026-11-20T10:01:02Z")));
        assert_eq!(p.parse(b), Ok(ms("2026-11-20T10:01:03Z")));
        assert_eq!(p.parse("nope"), Err(LineError::BadTimestamp));
        assert_eq!(p.parse("nope"), Err(LineError::BadTimestamp));
    }
}

#[test]
fn rfc3339_forms() {
    let mut p = parser(TimeFormat::Rfc3339);
    assert_eq!(
        p.parse("2026-11-20T10:01:02.345Z"),
        Ok(ms("2026-11-20T10:01:02.345Z"))
    );
    assert_eq!(
        p.parse("2026-11-20T10:01:02+02:00"),
        Ok(ms("2026-11-20T08:01:02Z"))
    );
    assert_eq!(
        p.parse("2026-11-20T10:01:02.123456789-05:30"),
        Ok(ms("2026-11-20T15:31:02.123Z"))
    );
    assert_eq!(
        p.parse("2026-11-20 10:01:02Z"),
        Ok(ms("2026-11-20T10:01:02Z"))
    );
    assert_eq!(
        p.parse("2026-11-20t10:01:02.5z"),
        Ok(ms("2026-11-20T10:01:02.5Z"))
    );
    // Rounded down, also before 1970.
    assert_eq!(p.parse("1969-12-31T23:59:59.9995Z"), Ok(-1));
    for bad in [
        "2026-11-20T10:01:02",
        "2026-11-20",
        "2026-02-30T00:00:00Z",
        "1700000000",
        "",
        "x",
    ] {
        assert_eq!(p.parse(bad), Err(LineError::BadTimestamp), "{bad:?}");
    }
}

#[test]
fn epochs() {
    let mut s = parser(TimeFormat::EpochSeconds);
    assert_eq!(s.parse("1700000000"), Ok(1_700_000_000_000));
    assert_eq!(s.parse("1700000000.5"), Ok(1_700_000_000_500));
    assert_eq!(s.parse("1700000000.123999"), Ok(1_700_000_000_123));
    assert_eq!(s.parse("1.7e9"), Ok(1_700_000_000_000));
    assert_eq!(s.parse("-1.5"), Ok(-1500));
    assert_eq!(s.parse("-0.0005"), Ok(-1));
    assert_eq!(s.parse("0"), Ok(0));
    for bad in [
        "",
        "-",
        "1.",
        ".5",
        "1,5",
        "abc",
        " 1",
        "1e999",
        "NaN",
        "inf",
        "99999999999999999999",
        "9999999999999",
    ] {
        assert_eq!(s.parse(bad), Err(LineError::BadTimestamp), "{bad:?}");
    }
    let mut m = parser(TimeFormat::EpochMillis);
    assert_eq!(m.parse("1700000000123"), Ok(1_700_000_000_123));
    assert_eq!(m.parse("1700000000123.9"), Ok(1_700_000_000_123));
    assert_eq!(m.parse("-1.5"), Ok(-2));
    for bad in [
        "",
        "x",
        "12a",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        assert_eq!(m.parse(bad), Err(LineError::BadTimestamp), "{bad:?}");
    }
}

#[test]
fn strftime_patterns() {
    let mut p = parser(TimeFormat::Strftime("%Y-%m-%d %H:%M:%S".into()));
    assert_eq!(
        p.parse("2026-11-20 10:01:02"),
        Ok(ms("2026-11-20T10:01:02Z"))
    );
    assert_eq!(p.parse("2026-11-20 10:01"), Err(LineError::BadTimestamp));
    let mut p = parser(TimeFormat::Strftime("%Y-%m-%d %H:%M:%S%.f %z".into()));
    assert_eq!(
        p.parse("2026-11-20 10:01:02.250 +0100"),
        Ok(ms("2026-11-20T09:01:02.25Z"))
    );
    let mut p = parser(TimeFormat::Strftime("%s".into()));
    assert_eq!(p.parse("1700000000"), Ok(1_700_000_000_000));
    let mut p = parser(TimeFormat::Strftime("%Y-%m-%dT%H:%M:%S %Q".into()));
    assert_eq!(
        p.parse("2026-07-01T12:00:00 UTC"),
        Ok(ms("2026-07-01T12:00:00Z"))
    );
}

#[test]
fn unusable_patterns_fail_at_build() {
    for p in [
        "%H:%M:%S",
        "%b %d %H:%M:%S",
        "%Y-%m-%d %Z",
        "no directives",
        "%Y-%m-%d %c",
    ] {
        let r = TimeParser::new(&TimeFormat::Strftime(p.into()));
        assert!(matches!(r, Err(BuildError::TimeFormat { .. })), "{p}");
    }
}

#[test]
fn utc_offset_beyond_14_hours_is_a_bad_timestamp() {
    // `+2500` was accepted (jiff allows offsets up to 25:59:59), though no time
    // zone is further than 14 hours from UTC: such a line is damaged, not local
    // time somewhere.
    let nginx = TimeFormat::Strftime(NGINX_TIME_FORMAT.into());
    let other = TimeFormat::Strftime("%Y-%m-%d %H:%M:%S %z".into());
    for (format, text) in [
        (&nginx, "20/Nov/2026:10:01:02 +2500"),
        (&nginx, "20/Nov/2026:10:01:02 -1401"),
        (&nginx, "20/Nov/2026:10:01:02 +1500"),
        (&other, "2026-11-20 10:01:02 +2500"),
        (&TimeFormat::Rfc3339, "2026-11-20T10:01:02+25:00"),
        (&TimeFormat::Rfc3339, "2026-11-20T10:01:02-14:30"),
        // The slow (jiff) path of rfc3339 too.
        (&TimeFormat::Rfc3339, "2026-11-20t10:01:02+25:00"),
    ] {
        let mut p = parser(format.clone());
        assert_eq!(p.parse(text), Err(LineError::BadTimestamp), "{text}");
    }
    let mut nginx = parser(nginx);
    let mut rfc = parser(TimeFormat::Rfc3339);
    assert_eq!(
        nginx.parse("20/Nov/2026:10:01:02 +1400"),
        Ok(ms("2026-11-19T20:01:02Z"))
    );
    assert_eq!(
        nginx.parse("20/Nov/2026:10:01:02 -1400"),
        Ok(ms("2026-11-21T00:01:02Z"))
    );
    assert_eq!(
        rfc.parse("2026-11-20t10:01:02-14:00"),
        Ok(ms("2026-11-21T00:01:02Z"))
    );
}

#[test]
fn nginx_fast_agrees_on_every_day_and_offset_sample() {
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let offsets = [
        "+0000", "-0700", "+0530", "-0000", "+1400", "-1200", "+2359", "-0945",
    ];
    let mut fast_hits = 0;
    for year in [1, 1899, 1969, 1970, 2000, 2024, 2026, 2100, 9998] {
        for (mi, mon) in months.iter().enumerate() {
            for day in [0, 1, 15, 28, 29, 30, 31, 32] {
                for off in offsets {
                    let text = format!(
                        "{day:02}/{mon}/{year:04}:{:02}:{:02}:{:02} {off}",
                        (day + mi) % 24,
                        day * 2 % 60,
                        (day * 7 + mi) % 60
                    );
                    let fast = nginx_fast(text.as_bytes());
                    let slow = jiff_strftime(NGINX_TIME_FORMAT, &text);
                    if let Some(v) = fast {
                        fast_hits += 1;
                        assert_eq!(Ok(v), slow, "{text}");
                    }
                }
            }
        }
    }
    assert!(fast_hits > 4000, "{fast_hits}");
}

proptest! {
    /// Times a few seconds apart, across minute, hour, day and offset changes, in
    /// any order, some broken: one parser (both caches) gives every text what jiff
    /// gives it alone.
    #[test]
    fn cached_nginx_times_equal_jiff(
        texts in prop::collection::vec(
            (prop::sample::select(vec![29, 29, 29, 30, 31]),
             prop::sample::select(vec!["Nov", "Nov", "Nov", "Dec"]),
             prop::sample::select(vec![23, 23, 22]),
             prop::sample::select(vec![59, 59, 58]),
             0u32..63,
             prop::sample::select(vec!["+0000", "+0000", "+0000", "-0700", "+1500", "0000"]),
             prop::sample::select(vec!["", "", "", "", "", " ", "x"])),
            1..40,
        )
    ) {
        let mut p = TimeParser::new(&TimeFormat::Strftime(NGINX_TIME_FORMAT.into())).unwrap();
        for (day, mon, h, m, s, off, junk) in texts {
            let text = format!("{day:02}/{mon}/2026:{h:02}:{m:02}:{s:02} {off}{junk}");
            prop_assert_eq!(p.parse(&text), jiff_strftime(NGINX_TIME_FORMAT, &text), "{}", text);
        }
    }

    #[test]
    fn nginx_fast_equals_jiff(
        day in 0u32..40, mon in 0usize..14, year in 0u32..10000,
        h in 0u32..27, m in 0u32..62, s in 0u32..62,
        sign in prop::sample::select(vec!['+', '-', ' ', 'Z']), oh in 0u32..30, om in 0u32..70,
    ) {
        let names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "nov", "Xyz"];
        let text = format!("{day:02}/{}/{year:04}:{h:02}:{m:02}:{s:02} {sign}{oh:02}{om:02}", names[mon]);
        let mut p = TimeParser::new(&TimeFormat::Strftime(NGINX_TIME_FORMAT.into())).unwrap();
        prop_assert_eq!(p.parse(&text), jiff_strftime(NGINX_TIME_FORMAT, &text), "{}", text);
        if let Some(v) = nginx_fast(text.as_bytes()) {
            prop_assert_eq!(Ok(v), jiff_strftime(NGINX_TIME_FORMAT, &text));
        }
    }

    #[test]
    fn nginx_fast_never_disagrees_on_noise(text in "[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}") {
        if let Some(v) = nginx_fast(text.as_bytes()) {
            prop_assert_eq!(Ok(v), jiff_strftime(NGINX_TIME_FORMAT, &text));
        }
    }

    #[test]
    fn rfc3339_fast_equals_jiff(
        year in 0u32..10000, mon in 0u32..14, day in 0u32..33, h in 0u32..25, m in 0u32..61, s in 0u32..61,
        frac in "(\\.[0-9]{1,10})?", off in "Z|[-+][0-2][0-9]:[0-6][0-9]|z|[-+][0-9]{4}",
    ) {
        let text = format!("{year:04}-{mon:02}-{day:02}T{h:02}:{m:02}:{s:02}{frac}{off}");
        prop_assert_eq!(rfc3339(&text), jiff_rfc3339(&text), "{}", text);
        if let Some(v) = rfc3339_fast(text.as_bytes()) {
            prop_assert_eq!(Ok(v), jiff_rfc3339(&text), "{}", text);
        }
    }

    #[test]
    fn epoch_seconds_matches_decimal_math(int in 0i64..20_000_000_000, frac in "[0-9]{0,6}", neg: bool) {
        let text = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
        let padded = format!("{frac:0<6}");
        let micros = int * 1_000_000 + padded.parse::<i64>().unwrap();
        let micros = if neg { -micros } else { micros };
        prop_assert_eq!(epoch(&text, 3), in_range(micros.div_euclid(1000)));
    }

    #[test]
    fn any_text_never_panics(text in "\\PC{0,40}") {
        for f in [TimeFormat::Rfc3339, TimeFormat::EpochSeconds, TimeFormat::EpochMillis,
                  TimeFormat::Strftime(NGINX_TIME_FORMAT.into()), TimeFormat::Strftime("%Y-%m-%d %H:%M:%S".into())] {
            let _ = TimeParser::new(&f).unwrap().parse(&text);
        }
    }
}

proptest! {
    /// Off the fast path (a space or `t` separator, an annotation, no offset, a
    /// compact offset), the one-parse reading equals jiff's.
    #[test]
    fn rfc3339_slow_path_equals_jiff(
        year in 1900u32..2200, mon in 1u32..13, day in 1u32..29, h in 0u32..24, m in 0u32..60, s in 0u32..61,
        sep in "[Tt ]", frac in "(\\.[0-9]{1,9})?", off in "(Z|z|[-+][0-2][0-9]:?[0-5][0-9])?",
        ann in prop::sample::select(vec!["", "[UTC]", "[America/New_York]", "[!Europe/Paris]", "[u-ca=iso8601]"]),
    ) {
        let text = format!("{year:04}-{mon:02}-{day:02}{sep}{h:02}:{m:02}:{s:02}{frac}{off}{ann}");
        prop_assert_eq!(rfc3339(&text), jiff_rfc3339(&text), "{}", text);
    }
}

/// `cargo test --release -p tidemark-sources --lib rfc3339_slow_path_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn rfc3339_slow_path_cost() {
    let texts: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "2026-11-20 10:{:02}:{:02}.{i:03}+02:00",
                i % 60,
                (i * 7) % 60
            )
        })
        .collect();
    for (name, f) in [
        ("one parse", rfc3339 as fn(&str) -> Result<i64, LineError>),
        ("two parses", jiff_rfc3339),
    ] {
        let start = std::time::Instant::now();
        let mut sum = 0i64;
        for _ in 0..200 {
            for t in &texts {
                sum = sum.wrapping_add(f(t).unwrap());
            }
        }
        let per = start.elapsed().as_nanos() as f64 / 200_000.0;
        eprintln!("{name}: {per:.0} ns per timestamp ({sum})");
    }
}

/// Review R13a: a parser that has seen other lines (both caches warm) gives every
/// nginx time exactly what a fresh parser gives it, across offsets that change
/// between lines, leap days, year boundaries, seconds 59/60 and hours of disorder.
#[test]
fn review_r13a_warm_parser_equals_fresh_parser_on_edge_times() {
    let texts = [
        "31/Dec/2026:23:59:59 +0000",
        "01/Jan/2027:00:00:00 +0000",
        "31/Dec/2026:23:59:58 +0000",
        "31/Dec/2026:23:59:60 +0000",
        "31/Dec/2026:23:59:59 -0000",
        "31/Dec/2026:23:59:01 +0530",
        "31/Dec/2026:23:59:02 +0530",
        "31/Dec/2026:23:59:02 -0530",
        "31/Dec/2026:23:59:02 +1400",
        "31/Dec/2026:23:59:02 +1401",
        "29/Feb/2028:12:00:30 +0000",
        "29/Feb/2028:12:00:31 +0000",
        "29/Feb/2027:12:00:31 +0000",
        "28/Feb/2027:12:00:31 +0000",
        "31/Dec/2026:20:59:02 +0000",
        "31/Dec/2026:23:59:02 +0000",
        "31/Dec/2026:23:59:0a +0000",
        "31/Dec/2026:23:59:-1 +0000",
        "31/Dec/2026:23:59:99 +0000",
        "31/Dec/2026:23:59:6 +0000",
        "31/Dec/2026:23:59:02 +0000",
        "01/Jan/0001:00:00:00 +0000",
        "01/Jan/0001:00:00:01 +0000",
        "31/Dec/9998:23:59:58 +0000",
        "31/Dec/9998:23:59:59 +0000",
        "31/Dec/9999:23:59:59 +0000",
        "31/Dec/2026:23:59:02 +0000",
    ];
    let mut warm = parser(TimeFormat::Strftime(NGINX_TIME_FORMAT.into()));
    for round in 0..3 {
        for t in texts.iter().chain(texts.iter().rev()) {
            let mut fresh = parser(TimeFormat::Strftime(NGINX_TIME_FORMAT.into()));
            assert_eq!(warm.parse(t), fresh.parse(t), "round {round}: {t}");
            assert_eq!(warm.parse(t), jiff_strftime(NGINX_TIME_FORMAT, t), "{t}");
        }
    }
}
