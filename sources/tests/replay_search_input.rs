//! Replay search over hostile input (issue 4 item 2, issue 10 §2): malformed and
//! invalid UTF-8 lines at seek points, lines longer than a probe, a last line
//! without newline, CRLF, and an outlier stamped hours ahead.

mod search_doc;

// In a module so that `cargo test replay` selects these tests.
mod replay_search {
    use std::path::Path;

    use super::search_doc::*;
    use tidemark_jobs::{Format, Parse, TimeFormat};
    use tidemark_sources::parse::LineParser;
    use tidemark_sources::replay::{time_span, Accept, TimeIndex};

    /// Sorted logfmt lines, with `bad` consecutive malformed lines after every
    /// `every` good ones: garbage, invalid UTF-8, blank and CR-only lines.
    fn with_garbage(n: usize, every: usize, bad: usize, p: &mut LineParser) -> Doc {
        let junk: [&[u8]; 6] = [
            b"\xff\xfe\x00garbage \xc3\x28 ts=",
            b"",
            b"   \r",
            b"ts=not-a-time level=info",
            b"level=info msg=\"no timestamp at all\"",
            b"ts=\"unterminated",
        ];
        let mut bytes = Vec::new();
        for i in 0..n {
            bytes.extend_from_slice(logfmt_line(T0 + i as i64 * 10).as_bytes());
            if i % every == every - 1 {
                for j in 0..bad {
                    bytes.extend_from_slice(junk[(i + j) % junk.len()]);
                    bytes.push(b'\n');
                }
            }
        }
        Doc::new(bytes, p)
    }

    #[test]
    fn malformed_lines_at_seek_points() {
        let mut p = logfmt();
        // Runs shorter than a probe: the answers stay exact.
        let doc = with_garbage(3000, 7, 20, &mut p);
        for probe in [4096, 65536] {
            assert!(doc.max_stretch() <= probe as u64);
            for k in [0, 1, 500, 1234, 2999, 3000] {
                let t = T0 + k * 10;
                let s = seek(&doc, &mut p, t, 0, probe);
                let e = end(&doc, &mut p, t, 0, probe);
                assert_eq!(e, doc.first_at_or_after(t), "k {k}");
                // Between the last line < t and the first >= t there is only garbage.
                assert!(s <= e);
                assert!(doc
                    .lines
                    .iter()
                    .all(|l| l.start < s || l.start >= e || l.t.is_none()));
            }
        }
        // Runs far longer than a probe (every probe landing in one gives up):
        // still never wrong.
        let doc = with_garbage(400, 50, 2000, &mut p);
        for probe in [64, 256, 4096] {
            for k in [0, 1, 60, 199, 200, 399, 400] {
                let t = T0 + k * 10;
                for d in [0, 25] {
                    let s = seek(&doc, &mut p, t, d, probe);
                    let e = end(&doc, &mut p, t, d, probe);
                    assert!(s <= e);
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_and_a_line_longer_than_the_probe() {
        let mut p = logfmt();
        let mut bytes = Vec::new();
        for i in 0..200 {
            bytes.extend_from_slice(logfmt_line(T0 + i * SEC).as_bytes());
        }
        // A 100 KiB line of invalid UTF-8 in the middle, then a long valid one.
        bytes.extend(std::iter::repeat_n(0xffu8, 100 * 1024));
        bytes.push(b'\n');
        bytes.extend_from_slice(
            format!("ts={} msg=\"{}\"\n", T0 + 200 * SEC, "x".repeat(90_000)).as_bytes(),
        );
        for i in 201..400 {
            bytes.extend_from_slice(logfmt_line(T0 + i * SEC).as_bytes());
        }
        let doc = Doc::new(bytes, &mut p);
        for probe in [16, 100, 4096, 65536, 1 << 20] {
            for k in [0, 100, 199, 200, 201, 300, 399, 400] {
                let t = T0 + k * SEC;
                let s = seek(&doc, &mut p, t, 0, probe);
                let e = end(&doc, &mut p, t, 0, probe);
                assert!(s <= e, "probe {probe} k {k}");
                if probe == 1 << 20 {
                    assert_eq!(e, doc.first_at_or_after(t));
                }
            }
        }
    }

    #[test]
    fn last_line_without_newline() {
        let mut p = logfmt();
        let mut text: String = (0..1000).map(|i| logfmt_line(T0 + i * SEC)).collect();
        text.push_str(&format!("ts={} level=warn", T0 + 1000 * SEC));
        let doc = Doc::new(text.into_bytes(), &mut p);
        let last_start = doc.lines.last().unwrap().start;
        assert_eq!(
            time_span(&doc.path, &mut p).unwrap(),
            Some((T0, T0 + 1000 * SEC))
        );
        for probe in PROBES {
            assert_eq!(seek(&doc, &mut p, T0 + 1000 * SEC, 0, probe), last_start);
            assert_eq!(seek(&doc, &mut p, T0 + 1000 * SEC + 1, 0, probe), doc.len());
            assert_eq!(end(&doc, &mut p, T0 + 1000 * SEC, 0, probe), last_start);
            assert_eq!(end(&doc, &mut p, T0 + 1000 * SEC + 1, 0, probe), doc.len());
        }
    }

    #[test]
    fn crlf_lines() {
        let mut p = nginx();
        let text: String = (0..1500)
            .map(|i| nginx_line(T0 + i as i64 * SEC, i).replace('\n', "\r\n"))
            .collect();
        let doc = Doc::new(text.into_bytes(), &mut p);
        assert_eq!(doc.times().len(), 1500);
        assert_eq!(
            time_span(&doc.path, &mut p).unwrap(),
            Some((T0, T0 + 1499 * SEC))
        );
        for probe in NGINX_PROBES {
            for k in [0, 1, 700, 1499, 1500] {
                let t = T0 + k * SEC;
                assert_eq!(seek(&doc, &mut p, t, 0, probe), doc.first_at_or_after(t));
                assert_eq!(end(&doc, &mut p, t, 0, probe), doc.first_at_or_after(t));
            }
        }
    }

    #[test]
    fn timestamp_last_on_crlf_lines() {
        // The '\r' must not reach the parser: here it would break the `$` anchor.
        let cfg = Parse {
            format: Format::Regex(r"^(?P<level>[a-z]+) (?P<ts>[0-9]+)$".into()),
            timestamp_field: "ts".into(),
            timestamp_format: TimeFormat::EpochMillis,
        };
        let mut p = LineParser::new(&cfg, &[]).unwrap();
        assert!(p.parse(b"info 5\r").is_err());
        let text: String = (0..500)
            .map(|i| format!("info {}\r\n", T0 + i * SEC))
            .collect();
        let doc = Doc::new(text.into_bytes(), &mut p);
        assert_eq!(doc.times().len(), 500);
        assert_eq!(
            time_span(&doc.path, &mut p).unwrap(),
            Some((T0, T0 + 499 * SEC))
        );
        for probe in PROBES {
            for k in [0, 1, 250, 499, 500] {
                let t = T0 + k * SEC;
                assert_eq!(seek(&doc, &mut p, t, 0, probe), doc.first_at_or_after(t));
                assert_eq!(end(&doc, &mut p, t, 0, probe), doc.first_at_or_after(t));
            }
        }
    }

    /// Issue 10 §2: a line stamped hours ahead that the next line does not confirm
    /// moves no watermark in a run, so it must not steer a search: not the first
    /// time of a file, not the end of a range, not a segment's start time.
    #[test]
    fn an_outlier_does_not_steer_a_search() {
        const H: i64 = 3_600 * SEC;
        let t = |i: usize| T0 + i as i64 * SEC;
        let lines: Vec<String> = (0..3000)
            .map(|i| match i {
                0 | 1500 | 2999 => logfmt_line(t(i) + 3 * H),
                _ => logfmt_line(t(i)),
            })
            .collect();
        let mut p = logfmt();
        let doc = from_lines(&lines, &mut p);
        let start_of = |i: usize| doc.lines[i].start;
        let accept = Accept {
            max_jump_ms: 60 * SEC,
            ..Accept::default()
        };
        // A probe must hold two lines to judge one (a shorter one takes lines as
        // they are).
        for probe in [256, 4096, 65536] {
            fn open<'p>(
                path: &Path,
                p: &'p mut LineParser,
                probe: usize,
                a: Accept,
            ) -> TimeIndex<'p> {
                TimeIndex::open(path, p)
                    .unwrap()
                    .with_probe_bytes(probe)
                    .with_accept(a)
            }
            let span = open(&doc.path, &mut p, probe, accept)
                .time_span()
                .unwrap()
                .unwrap();
            assert_eq!(span.0, t(1), "probe {probe}: first time of the file");
            // Every line before 10:33:20 that is not an outlier lies before the end.
            let to = t(2000);
            let end = open(&doc.path, &mut p, probe, accept)
                .end_offset(to, 5 * SEC)
                .unwrap();
            assert!(
                end >= start_of(2000),
                "probe {probe}: the range ends early at {end}"
            );
            assert!(end <= start_of(2010), "probe {probe}: not tight: {end}");
            let end = open(&doc.path, &mut p, probe, accept)
                .end_offset(t(1499), 0)
                .unwrap();
            assert!(end >= start_of(1499), "probe {probe}: ends early at {end}");
            // A segment cut just before the outlier starts at the next line's time.
            let pts = open(&doc.path, &mut p, probe, accept)
                .split_points(start_of(1500), doc.len(), 1)
                .unwrap();
            assert_eq!(pts[0], (start_of(1500), Some(t(1501))), "probe {probe}");
            // Starting points stay safe: the outlier is not skipped.
            let seek = open(&doc.path, &mut p, probe, accept)
                .seek_to_time(t(1000), 5 * SEC)
                .unwrap();
            assert!(seek <= start_of(995), "probe {probe}: {seek}");
        }
    }
}
