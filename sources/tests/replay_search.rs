//! Finding a time range inside a plain log file by binary search (issue 4, item 2):
//! ranges before, inside and after a file, probe sizes, spans, split points and
//! cost, on real temporary files. Hostile input is in `replay_search_input.rs`,
//! properties on random nearly-sorted logs in `replay_search_props.rs`.

mod search_doc;

// In a module so that `cargo test replay` selects these tests.
mod replay_search {
    use super::search_doc::*;
    use std::io::Write;
    use std::path::Path;

    use tidemark_sources::parse::LineParser;
    use tidemark_sources::replay::{
        end_offset, is_gzip, seek_to_time, span_overlaps, split_points, time_span, TimeIndex,
    };

    #[test]
    fn empty_file() {
        let mut p = logfmt();
        let doc = Doc::new(Vec::new(), &mut p);
        assert_eq!(time_span(&doc.path, &mut p).unwrap(), None);
        assert_eq!(seek_to_time(&doc.path, &mut p, T0, 5 * SEC).unwrap(), 0);
        assert_eq!(end_offset(&doc.path, &mut p, T0, 5 * SEC).unwrap(), 0);
        assert_eq!(
            split_points(&doc.path, &mut p, 0, 0, 4).unwrap(),
            vec![(0, None)]
        );
        assert!(!is_gzip(&doc.path).unwrap());
    }

    #[test]
    fn single_line_file() {
        for text in ["ts=5000 a=1\n", "ts=5000 a=1", "ts=5000 a=1\r\n"] {
            let mut p = logfmt();
            let doc = Doc::new(text.as_bytes().to_vec(), &mut p);
            let len = doc.len();
            assert_eq!(time_span(&doc.path, &mut p).unwrap(), Some((5000, 5000)));
            for probe in PROBES {
                for d in [0, 3000] {
                    assert_eq!(seek(&doc, &mut p, 4000, d, probe), 0, "{text:?}");
                    assert_eq!(seek(&doc, &mut p, 5000, d, probe), 0, "{text:?}");
                    assert_eq!(
                        end(&doc, &mut p, 5000, d, probe),
                        if d == 0 { 0 } else { len }
                    );
                    assert_eq!(end(&doc, &mut p, 5001, d, probe), len, "{text:?}");
                }
                assert_eq!(seek(&doc, &mut p, 5001, 0, probe), len, "{text:?}");
                assert_eq!(seek(&doc, &mut p, 9000, 3000, probe), len, "{text:?}");
                assert_eq!(seek(&doc, &mut p, 7000, 3000, probe), 0, "{text:?}");
                assert_eq!(end(&doc, &mut p, 1000, 3000, probe), 0, "{text:?}");
            }
        }
    }

    /// 2000 nginx lines, one per second from T0.
    fn sorted_nginx(p: &mut LineParser) -> Doc {
        let lines: Vec<String> = (0..2000)
            .map(|i| nginx_line(T0 + i as i64 * SEC, i))
            .collect();
        from_lines(&lines, p)
    }

    #[test]
    fn range_before_the_first_line() {
        let mut p = nginx();
        let doc = sorted_nginx(&mut p);
        for probe in PROBES {
            for d in [0, 5 * SEC] {
                assert_eq!(seek(&doc, &mut p, T0 - 3600 * SEC, d, probe), 0);
                assert_eq!(seek(&doc, &mut p, T0, d, probe), 0);
                assert_eq!(end(&doc, &mut p, T0 - 3600 * SEC, d, probe), 0);
            }
            assert_eq!(end(&doc, &mut p, T0, 0, probe), 0);
        }
        let span = time_span(&doc.path, &mut p).unwrap().unwrap();
        assert_eq!(span, (T0, T0 + 1999 * SEC));
        assert!(!span_overlaps(
            span,
            T0 - 3600 * SEC,
            T0 - 60 * SEC,
            5 * SEC
        ));
        assert!(span_overlaps(span, T0 - 3600 * SEC, T0 + SEC, 0));
    }

    #[test]
    fn range_after_the_last_line() {
        let mut p = nginx();
        let doc = sorted_nginx(&mut p);
        let last = T0 + 1999 * SEC;
        let last_start = doc.lines.last().unwrap().start;
        for probe in NGINX_PROBES {
            for d in [0, 5 * SEC] {
                assert_eq!(seek(&doc, &mut p, last + 3600 * SEC, d, probe), doc.len());
                assert_eq!(end(&doc, &mut p, last + 3600 * SEC, d, probe), doc.len());
                assert_eq!(end(&doc, &mut p, last + SEC, d, probe), doc.len());
            }
            // Exactly the last second: reading starts at the last line.
            assert_eq!(seek(&doc, &mut p, last, 0, probe), last_start);
            assert_eq!(end(&doc, &mut p, last, 0, probe), last_start);
        }
        let span = time_span(&doc.path, &mut p).unwrap().unwrap();
        assert!(!span_overlaps(
            span,
            last + 60 * SEC,
            last + 3600 * SEC,
            5 * SEC
        ));
        assert!(span_overlaps(
            span,
            last + 4 * SEC,
            last + 3600 * SEC,
            5 * SEC
        ));
    }

    #[test]
    fn probes_shorter_than_a_line_stay_correct() {
        let mut p = nginx();
        let doc = sorted_nginx(&mut p);
        for probe in [16, 64, 100, 150] {
            for k in [-10, 0, 1, 999, 1998, 1999, 2000, 5000] {
                for d in [0, 5 * SEC] {
                    let t = T0 + k * SEC;
                    // `seek` and `end` check that no line is missed.
                    let s = seek(&doc, &mut p, t, d, probe);
                    let e = end(&doc, &mut p, t + 60 * SEC, d, probe);
                    assert!(s <= e);
                }
            }
        }
    }

    #[test]
    fn range_inside_a_gap() {
        // 10:00:00-10:16:39 then, after a 2-hour gap, 12:16:40-12:33:19.
        let mut p = nginx();
        let lines: Vec<String> = (0..2000)
            .map(|i| {
                let gap = if i >= 1000 { 7200 * SEC } else { 0 };
                nginx_line(T0 + i as i64 * SEC + gap, i)
            })
            .collect();
        let doc = from_lines(&lines, &mut p);
        let after_gap = doc.lines[1000].start;
        for probe in NGINX_PROBES {
            for d in [0, 5 * SEC, 60 * SEC] {
                let t = T0 + 3600 * SEC;
                let s = seek(&doc, &mut p, t, d, probe);
                let e = end(&doc, &mut p, T0 + 4000 * SEC, d, probe);
                // The gap is wider than 2d: both land exactly on it.
                assert_eq!((s, e), (after_gap, after_gap), "probe {probe} d {d}");
            }
        }
    }

    #[test]
    fn equal_timestamps_spanning_many_lines() {
        // 300 lines at 10:00:00..10:04:59, 5000 at 10:05:00, 300 after.
        let mut p = nginx();
        let mut lines = Vec::new();
        for i in 0..300 {
            lines.push(nginx_line(T0 + i as i64 * SEC, i));
        }
        for i in 0..5000 {
            lines.push(nginx_line(T0 + 300 * SEC, i));
        }
        for i in 0..300 {
            lines.push(nginx_line(T0 + (301 + i as i64) * SEC, i));
        }
        let doc = from_lines(&lines, &mut p);
        let run_start = doc.lines[300].start;
        let run_end = doc.lines[5300].start;
        let t = T0 + 300 * SEC;
        for probe in NGINX_PROBES {
            assert_eq!(seek(&doc, &mut p, t, 0, probe), run_start);
            assert_eq!(seek(&doc, &mut p, t + 1, 0, probe), run_end);
            assert_eq!(end(&doc, &mut p, t, 0, probe), run_start);
            assert_eq!(end(&doc, &mut p, t + 1, 0, probe), run_end);
            for d in [SEC, 5 * SEC] {
                let s = seek(&doc, &mut p, t, d, probe);
                let e = end(&doc, &mut p, t + 1, d, probe);
                // Widened by the disorder bound, never by more than 2d.
                assert!(s <= run_start && s >= doc.first_at_or_after(t - 2 * d));
                assert!(e >= run_end && e <= doc.first_at_or_after(t + 1 + 2 * d));
            }
        }
    }

    #[test]
    fn time_span_with_a_last_line_of_exactly_the_probe_size() {
        let mut p = logfmt();
        let mut last = format!("ts={} msg=", T0 + 9);
        last.push_str(&"x".repeat(63 - last.len()));
        last.push('\n');
        assert_eq!(last.len(), 64);
        for first in ["", "ts=1795168800000 a=1\n"] {
            let doc = Doc::new(format!("{first}{last}").into_bytes(), &mut p);
            let mut ix = TimeIndex::open(&doc.path, &mut p)
                .unwrap()
                .with_probe_bytes(64);
            let want = if first.is_empty() { T0 + 9 } else { T0 };
            assert_eq!(ix.time_span().unwrap(), Some((want, T0 + 9)));
            let mut ix = TimeIndex::open(&doc.path, &mut p)
                .unwrap()
                .with_probe_bytes(63);
            assert_eq!(ix.time_span().unwrap(), None);
        }
    }

    #[test]
    fn time_span_of_files_before_inside_and_after_a_range() {
        let (from, to, d) = (T0 + 3600 * SEC, T0 + 7200 * SEC, 5 * SEC);
        let mut p = nginx();
        let file = |a: i64, b: i64, p: &mut LineParser| {
            let lines: Vec<String> = (0..300)
                .map(|i| nginx_line(a + (b - a) * i / 299, i as usize))
                .collect();
            from_lines(&lines, p)
        };
        let before = file(T0, from - 10 * SEC, &mut p);
        let inside = file(from + 60 * SEC, to - 60 * SEC, &mut p);
        let around = file(T0, to + 3600 * SEC, &mut p);
        let after = file(to + 10 * SEC, to + 3600 * SEC, &mut p);
        let touching = file(T0, from - 2 * SEC, &mut p);
        let mut overlaps = Vec::new();
        for doc in [&before, &inside, &around, &after, &touching] {
            let mut ix = TimeIndex::open(&doc.path, &mut p).unwrap();
            let span = ix.time_span().unwrap().unwrap();
            let times = doc.times();
            assert_eq!(span, (times[0], *times.last().unwrap()));
            // Only the two ends were read.
            assert!(ix.stats().bytes_read <= 2 * 4096 + 3, "{:?}", ix.stats());
            overlaps.push(span_overlaps(span, from, to, d));
        }
        // The last file ends 2s before `from`, but lines up to d later may follow.
        assert_eq!(overlaps, [false, true, true, false, true]);
    }

    #[test]
    fn gzip_files_are_refused() {
        let mut p = logfmt();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log.2.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..100 {
            gz.write_all(logfmt_line(T0 + i * SEC).as_bytes()).unwrap();
        }
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        assert!(is_gzip(&path).unwrap());
        let err = TimeIndex::open(&path, &mut p).err().unwrap();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(seek_to_time(&path, &mut p, T0, 0).is_err());
        let one = dir.path().join("one");
        std::fs::write(&one, [0x1f]).unwrap();
        assert!(!is_gzip(&one).unwrap());
        assert!(is_gzip(Path::new("/nonexistent/x.gz")).is_err());
    }

    #[test]
    fn searches_read_only_a_few_probes() {
        let mut p = logfmt();
        let text: String = (0..40_000).map(|i| logfmt_line(T0 + i * 100)).collect();
        let doc = Doc::new(text.into_bytes(), &mut p);
        assert!(doc.len() > 1_000_000);
        for probe in [512, 4096, 65536] {
            for k in [0, 1, 17_777, 39_999, 40_000] {
                let t = T0 + k * 100;
                let mut ix = TimeIndex::open(&doc.path, &mut p)
                    .unwrap()
                    .with_probe_bytes(probe);
                let s = ix.seek_to_time(t, 500).unwrap();
                let e = ix.end_offset(t + 60_000, 500).unwrap();
                doc.check_seek(s, t).unwrap();
                doc.check_end(e, t + 60_000).unwrap();
                let st = ix.stats();
                // Two binary searches: ~log2(len / probe) probes each, every one
                // reading min(4 KiB, probe) bytes, plus the final scans.
                let levels = (64 - (doc.len() / probe as u64).leading_zeros()) as u64;
                assert!(st.reads <= 2 * (levels + 2) + 1, "probe {probe}: {st:?}");
                let per = 4096.min(probe as u64) + 1;
                assert!(
                    st.bytes_read <= 2 * (levels * per + 2 * probe as u64 + 1) + 2,
                    "probe {probe}: {st:?}"
                );
            }
        }
    }

    #[test]
    fn split_points_tile_the_range() {
        let mut p = nginx();
        let lines: Vec<String> = (0..3000)
            .map(|i| nginx_line(T0 + i as i64 * SEC, i))
            .collect();
        let doc = from_lines(&lines, &mut p);
        let s = seek(&doc, &mut p, T0 + 500 * SEC, 5 * SEC, 4096);
        let e = end(&doc, &mut p, T0 + 2500 * SEC, 5 * SEC, 4096);
        for n in [0, 1, 2, 3, 8, 100] {
            let pts = split_points(&doc.path, &mut p, s, e, n).unwrap();
            assert_eq!(pts.first().unwrap().0, s);
            assert_eq!(pts.last().unwrap().0, e);
            assert_eq!(pts.len(), n.max(1) + 1, "n {n}");
            for w in pts.windows(2) {
                assert!(w[0].0 < w[1].0);
            }
            for &(off, t) in &pts {
                assert!(doc.is_boundary(off));
                assert_eq!(t, doc.time_at(off));
            }
            // Roughly even byte ranges.
            let size = (e - s) / n.max(1) as u64;
            for w in pts.windows(2) {
                assert!((w[1].0 - w[0].0).abs_diff(size) < 300, "{pts:?}");
            }
        }
        // Small range: fewer segments, never empty ones.
        let pts = split_points(&doc.path, &mut p, 0, doc.lines[2].start, 16).unwrap();
        assert_eq!(
            pts.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![0, doc.lines[1].start, doc.lines[2].start]
        );
        // Out-of-range arguments are clamped.
        let pts = split_points(&doc.path, &mut p, doc.len() + 5, u64::MAX, 3).unwrap();
        assert_eq!(pts, vec![(doc.len(), None)]);
    }
}
