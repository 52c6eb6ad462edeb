//! The nginx scanner against the scanner it replaced (`nginx_reference.rs`): on
//! random lines built from nasty pieces, the same accept/reject decision and the
//! same span for every field. The seed is printed; `NGINX_DIFF_SEED=N` repeats a run,
//! `NGINX_DIFF_CASES=N` makes it longer (default 20,000 lines).

use super::nginx::{self, METHOD, PATH, PROTOCOL};
use super::{nginx_reference, LineError, Span};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

type Spans = [Span; 12];

fn reference(text: &str) -> Result<Spans, LineError> {
    let mut spans = [Span::Missing; 12];
    nginx_reference::parse(text, &mut spans).map(|()| spans)
}

fn new(text: &str, split_request: bool) -> Result<Spans, LineError> {
    let mut spans = [Span::Missing; 12];
    nginx::parse(text.as_bytes(), &mut spans, split_request).map(|()| spans)
}

/// Pieces a line is made of: the parts of real lines, separators in the wrong
/// places, escapes, raw quotes, tabs, non-ASCII and invalid bytes, long runs (past
/// the scanner's short loops, into memchr), tokens nginx never writes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"203.0.113.9",
        b"::1",
        b" ",
        b"  ",
        b"\t",
        b" \t",
        b"-",
        b" - ",
        b"[",
        b"]",
        b" [",
        b"] ",
        b"[20/Nov/2026:10:01:02 +0000]",
        b"20/Nov/2026:10:01:02 +0000",
        b"\"",
        b"\" ",
        b" \"",
        b"\" \"",
        b"\"\"",
        b"\\",
        b"\\\\",
        b"\\\"",
        b"\\\" ",
        b"\"-\"",
        b"GET",
        b"GET / HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"/api/v1/items?id=7",
        b"HTTP/1.1",
        b"200",
        b"5316",
        b"0.123",
        b"x",
        b"\\x22",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xff",
        b"\xe9",
        b"\xf0\x9f",
        b"\x00",
        b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        b"https://example.com/start?q=a%20b&r=1",
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    prop_oneof![
        4 => proptest::sample::select(fixed).prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..4),
        1 => (1usize..70, proptest::sample::select(vec![b'a', b' ', b'"', b'\\', b'x']))
            .prop_map(|(n, c)| vec![c; n]),
    ]
}

/// A value for one field of an otherwise well-formed line.
fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..5).prop_map(|v| v.concat())
}

/// Lines of three kinds: pieces in any order (mostly rejected), a combined line
/// whose fields are nasty values (the accept paths), and a well-formed line with a
/// few bytes replaced or inserted.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let soup = proptest::collection::vec(piece(), 0..24).prop_map(|v| v.concat());
    let shaped = (
        proptest::collection::vec(value(), 9),
        proptest::option::of(value()),
        proptest::sample::select(vec![&b""[..], b" ", b"\t", b" \t "]),
    )
        .prop_map(|(fields, rt, trail)| {
            // addr ident user [time] "request" status bytes "referer" "agent"
            let before = ["", " ", " ", " [", "] \"", "\" ", " ", " \"", "\" \""];
            let mut l = Vec::new();
            for (sep, f) in before.iter().zip(&fields) {
                l.extend_from_slice(sep.as_bytes());
                l.extend_from_slice(f);
            }
            l.push(b'"');
            if let Some(rt) = rt {
                l.push(b' ');
                l.extend_from_slice(&rt);
            }
            l.extend_from_slice(trail);
            l
        });
    let base = br#"203.0.113.9 - alice [20/Nov/2026:10:01:02 +0000] "GET /api/v1/items?id=7 HTTP/1.1" 200 5316 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0" 0.004"#.to_vec();
    let edits = proptest::collection::vec(
        (
            any::<prop::sample::Index>(),
            any::<bool>(),
            proptest::sample::select(vec![b' ', b'"', b'\\', b'[', b']', b'\t', b'x', 0xff]),
        ),
        1..4,
    );
    let mutated = edits.prop_map(move |edits| {
        let mut l = base.clone();
        for (at, insert, c) in edits {
            let i = at.index(l.len());
            if insert {
                l.insert(i, c);
            } else {
                l[i] = c;
            }
        }
        l
    });
    prop_oneof![1 => soup, 2 => shaped, 2 => mutated]
}

/// Identical decision and spans; without the request split, the same except that
/// method, path and protocol are absent.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    // The scanner sees what `LineParser::parse` gives it: the line, or its lossy
    // conversion when it is not UTF-8.
    let text = String::from_utf8_lossy(bytes);
    let want = reference(&text);
    prop_assert_eq!(new(&text, true), want, "line {:?}", text);
    let unsplit = want.map(|mut s| {
        for i in [METHOD, PATH, PROTOCOL] {
            s[i] = Span::Missing;
        }
        s
    });
    prop_assert_eq!(new(&text, false), unsplit, "line {:?}", text);
    Ok(())
}

fn seed() -> u64 {
    std::env::var("NGINX_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now())
        })
}

fn runner(seed: u64, cases: u32) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

#[test]
fn scanner_matches_the_reference_on_hostile_lines() {
    let seed = seed();
    eprintln!("nginx_diff: seed {seed} (NGINX_DIFF_SEED={seed} to repeat)");
    let (accepted, total) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    // NGINX_DIFF_CASES=1000000 for a longer hunt.
    let cases = std::env::var("NGINX_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let result = runner(seed, cases).run(&line(), |bytes| {
        total.set(total.get() + 1);
        let ok = reference(&String::from_utf8_lossy(&bytes)).is_ok();
        accepted.set(accepted.get() + u32::from(ok));
        check(&bytes)
    });
    if let Err(e) = result {
        panic!("seed {seed}: {e}");
    }
    let (accepted, total) = (accepted.get(), total.get());
    eprintln!("nginx_diff: {accepted} of {total} lines accepted");
    // Both sides of the decision must be exercised, or the test proves little.
    assert!(
        accepted > total / 10 && accepted < total * 9 / 10,
        "{accepted} of {total}"
    );
}

#[test]
fn scanner_matches_the_reference_on_known_lines() {
    for line in [
        &br#"203.0.113.9 - alice [20/Nov/2026:10:01:02 +0000] "GET /x HTTP/1.1" 200 5316 "-" "curl/8" 0.004"#[..],
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "a\" "b" "c" 1"#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "a" "b" "c""#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "a\\" 1"#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "a\\\" 1"#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "-"\"#,
        br#"1.2.3.4 - - [x] "GET  HTTP/1.1" 200 1 "-" "-""#,
        br#"1.2.3.4 - - [x] "GET                     /very/long/path                    HTTP/1.1" 200 1 "-" "-""#,
        br#"1.2.3.4 - - [x] " " 200 1 "-" "-""#,
        br#"1.2.3.4 - - [x] "\" 200 1 "-" "-""#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "#,
        br#"1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-""#,
        b"1.2.3.4 - - [x] \"GET / HTTP/1.1\" 200 1 \"-\" \"\xff\" \t",
        b"",
        b" ",
        b"a b [",
    ] {
        if let Err(e) = check(line) {
            panic!("{e}");
        }
    }
}
