//! Replay search properties on random nearly-sorted logs (issue 4, item 2): no
//! search misses a line of its range, answers are tight when no probe gave up,
//! and arbitrary bytes never make a search panic.

mod search_doc;

// In a module so that `cargo test replay` selects these tests.
mod replay_search {
    use super::search_doc::*;
    use proptest::prelude::*;
    use tidemark_sources::replay::{is_gzip, TimeIndex};

    /// A nearly sorted log: each good line's time is >= max(earlier) - d.
    /// `spec` items: (kind, step index, jitter, crlf).
    fn nearly_sorted(spec: &[(u8, usize, i64, bool)], d: i64, newline_at_end: bool) -> Vec<u8> {
        const STEPS: [i64; 5] = [0, 0, 1, 7, 1000];
        let junk: [&[u8]; 5] = [
            b"\xff\xfe\xfd",
            b"",
            b"level=info msg=\"no time\"",
            b"ts=garbage",
            &[b'y'; 150],
        ];
        let mut max = T0;
        let mut out = Vec::new();
        for &(kind, step, jitter, crlf) in spec {
            if kind == 0 {
                out.extend_from_slice(junk[step % junk.len()]);
            } else {
                max += STEPS[step % STEPS.len()];
                let t = max - jitter % (d + 1);
                out.extend_from_slice(format!("ts={t} level=info").as_bytes());
            }
            if crlf {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
        if !newline_at_end && out.last() == Some(&b'\n') {
            out.pop();
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn nearly_sorted_searches_never_miss_a_line(
            spec in prop::collection::vec((0u8..6, 0usize..5, 0i64..10_000, prop::bool::weighted(0.1)), 0..250),
            d in prop::sample::select(vec![0i64, 1, 5, 50, 2000]),
            probe in prop::sample::select(vec![16usize, 40, 128, 512, 65536]),
            newline_at_end in any::<bool>(),
            queries in prop::collection::vec((0u32..=1000, 0u32..=1000), 1..8),
            n in 1usize..6,
        ) {
            let mut p = logfmt();
            let doc = Doc::new(nearly_sorted(&spec, d, newline_at_end), &mut p);
            let times = doc.times();
            let lo = times.iter().min().copied().unwrap_or(T0) - 2 * d - 3;
            let hi = times.iter().max().copied().unwrap_or(T0) + 2 * d + 3;
            let at = |u: u32| lo + (hi - lo) * i64::from(u) / 1000;
            let tight = doc.max_stretch() <= probe as u64;
            let mut ix = TimeIndex::open(&doc.path, &mut p).unwrap().with_probe_bytes(probe);

            let span = ix.time_span().unwrap();
            if tight || probe as u64 >= doc.len() {
                prop_assert_eq!(span, times.first().map(|&f| (f, *times.last().unwrap())));
            }
            if let Some((f, l)) = span {
                prop_assert_eq!((f, l), (times[0], *times.last().unwrap()));
                prop_assert!(times.iter().all(|&t| f - d <= t && t <= l + d));
            }

            for &(a, b) in &queries {
                let (from, to) = (at(a.min(b)), at(a.max(b)));
                let s = ix.seek_to_time(from, d).unwrap();
                let e = ix.end_offset(to, d).unwrap();
                prop_assert!(doc.check_seek(s, from).is_ok(), "{}", doc.check_seek(s, from).unwrap_err());
                prop_assert!(doc.check_end(e, to).is_ok(), "{}", doc.check_end(e, to).unwrap_err());
                prop_assert!(s <= e, "seek({}) = {} > end({}) = {}", from, s, to, e);
                if tight {
                    // No probe gave up: the answers are within 2d of the range.
                    for l in &doc.lines {
                        if let Some(t) = l.t {
                            prop_assert!(l.start < s || t >= from - 2 * d, "seek({}) = {} not tight: {:?}", from, s, l);
                            prop_assert!(l.start >= e || t < to + 2 * d, "end({}) = {} not tight: {:?}", to, e, l);
                        }
                    }
                }
                let pts = ix.split_points(s, e, n).unwrap();
                prop_assert_eq!(pts[0].0, s);
                prop_assert_eq!(pts.last().unwrap().0, e);
                prop_assert!(pts.len() <= n + 1);
                prop_assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
                for &(off, t) in &pts {
                    prop_assert!(doc.is_boundary(off));
                    if t.is_some() || tight {
                        prop_assert_eq!(t, doc.time_at(off));
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(
                prop_oneof![
                    4 => any::<u8>(),
                    2 => Just(b'\n'),
                    1 => Just(b'\r'),
                    1 => prop::sample::select(b"ts=0123456789 \"".to_vec()),
                ],
                0..600,
            ),
            t in any::<i64>(),
            d in prop_oneof![Just(0i64), Just(-5), Just(i64::MAX), 0i64..100_000],
            probe in 0usize..300,
            cut in (any::<u64>(), any::<u64>(), 0usize..10),
        ) {
            let mut p = logfmt();
            let doc = Doc::new(bytes, &mut p);
            let mut ix = match TimeIndex::open(&doc.path, &mut p) {
                Ok(ix) => ix.with_probe_bytes(probe),
                Err(_) => {
                    prop_assert!(is_gzip(&doc.path).unwrap());
                    return Ok(());
                }
            };
            let _ = ix.time_span().unwrap();
            let s = ix.seek_to_time(t, d).unwrap();
            let e = ix.end_offset(t, d).unwrap();
            prop_assert!(doc.is_boundary(s) && doc.is_boundary(e));
            let pts = ix.split_points(cut.0, cut.1, cut.2).unwrap();
            prop_assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(pts.iter().all(|x| x.0 <= doc.len()));
        }
    }
}
