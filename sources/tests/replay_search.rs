//! Finding a time range inside a plain log file by binary search (issue 4, item 2):
//! edge cases on real temporary files, and properties on random nearly-sorted logs.

// In a module so that `cargo test replay` selects these tests.
mod replay_search {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;
    use tidemark_jobs::{Format, Parse, TimeFormat};
    use tidemark_sources::parse::LineParser;
    use tidemark_sources::replay::{
        end_offset, is_gzip, seek_to_time, span_overlaps, split_points, time_span, Accept,
        TimeIndex,
    };

    const T0: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z
    const SEC: i64 = 1000;

    fn logfmt() -> LineParser {
        let cfg = Parse {
            format: Format::Logfmt,
            timestamp_field: "ts".into(),
            timestamp_format: TimeFormat::EpochMillis,
        };
        LineParser::new(&cfg, &[]).unwrap()
    }

    fn nginx() -> LineParser {
        let cfg = Parse {
            format: Format::Nginx,
            timestamp_field: "time_local".into(),
            timestamp_format: TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into()),
        };
        LineParser::new(&cfg, &[]).unwrap()
    }

    fn nginx_line(ms: i64, i: usize) -> String {
        let ts = jiff::Timestamp::from_millisecond(ms).unwrap();
        format!(
            "10.0.{}.{} - - [{}] \"GET /api/items/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\" 0.{:03}\n",
            i % 200,
            i % 250,
            ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            100 + i % 5000,
            i % 1000
        )
    }

    fn logfmt_line(ms: i64) -> String {
        format!("ts={ms} level=info msg=\"ok\"\n")
    }

    /// One line of a file, as the oracle sees it.
    #[derive(Debug, Clone, Copy)]
    struct Line {
        start: u64,
        t: Option<i64>,
    }

    /// A file on disk and its lines, split and parsed independently of the search.
    struct Doc {
        _dir: tempfile::TempDir,
        path: PathBuf,
        bytes: Vec<u8>,
        lines: Vec<Line>,
    }

    impl Doc {
        fn new(bytes: Vec<u8>, parser: &mut LineParser) -> Doc {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("access.log");
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&bytes)
                .unwrap();
            let mut lines = Vec::new();
            let mut s = 0;
            while s < bytes.len() {
                let end = bytes[s..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |i| s + i);
                let line = &bytes[s..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let t = parser.parse(line).ok().map(|p| p.event_ms());
                lines.push(Line { start: s as u64, t });
                s = end + 1;
            }
            Doc {
                _dir: dir,
                path,
                bytes,
                lines,
            }
        }

        fn len(&self) -> u64 {
            self.bytes.len() as u64
        }

        fn is_boundary(&self, off: u64) -> bool {
            off == 0
                || off == self.len()
                || (off < self.len() && self.bytes[off as usize - 1] == b'\n')
        }

        fn times(&self) -> Vec<i64> {
            self.lines.iter().filter_map(|l| l.t).collect()
        }

        /// Start of the first line with time >= t (or the length), for sorted files.
        fn first_at_or_after(&self, t: i64) -> u64 {
            self.lines
                .iter()
                .find(|l| l.t.is_some_and(|x| x >= t))
                .map_or(self.len(), |l| l.start)
        }

        /// The first parseable time at or after `off` (a line start).
        fn time_at(&self, off: u64) -> Option<i64> {
            self.lines
                .iter()
                .filter(|l| l.start >= off)
                .find_map(|l| l.t)
        }

        /// Every line with time >= t starts at or after `off`.
        fn check_seek(&self, off: u64, t: i64) -> Result<(), String> {
            if !self.is_boundary(off) {
                return Err(format!("seek {off} is not a line start"));
            }
            match self
                .lines
                .iter()
                .find(|l| l.start < off && l.t.is_some_and(|x| x >= t))
            {
                Some(l) => Err(format!(
                    "seek({t}) = {off} skips line at {} ({:?})",
                    l.start, l.t
                )),
                None => Ok(()),
            }
        }

        /// Every line with time < t starts before `off`.
        fn check_end(&self, off: u64, t: i64) -> Result<(), String> {
            if !self.is_boundary(off) {
                return Err(format!("end {off} is not a line start"));
            }
            match self
                .lines
                .iter()
                .find(|l| l.start >= off && l.t.is_some_and(|x| x < t))
            {
                Some(l) => Err(format!(
                    "end({t}) = {off} cuts line at {} ({:?})",
                    l.start, l.t
                )),
                None => Ok(()),
            }
        }

        /// The largest number of bytes a probe may need to read to reach a
        /// conclusion (see the probe in search.rs): from the start of line k-1 to
        /// the end of the first parseable line at or after line k (or to EOF).
        fn max_stretch(&self) -> u64 {
            let mut worst = 0;
            // k == lines.len(): a probe past the last line start must reach EOF.
            for k in 0..=self.lines.len() {
                let from = if k == 0 { 0 } else { self.lines[k - 1].start };
                let reach = self.lines[k..]
                    .iter()
                    .enumerate()
                    .find(|(_, l)| l.t.is_some())
                    .map_or(self.len(), |(j, _)| {
                        self.lines.get(k + j + 1).map_or(self.len(), |n| n.start)
                    });
                worst = worst.max(reach - from);
            }
            worst
        }
    }

    fn from_lines(lines: &[String], parser: &mut LineParser) -> Doc {
        Doc::new(lines.concat().into_bytes(), parser)
    }

    fn seek(doc: &Doc, p: &mut LineParser, t: i64, d: i64, probe: usize) -> u64 {
        let mut ix = TimeIndex::open(&doc.path, p)
            .unwrap()
            .with_probe_bytes(probe);
        let off = ix.seek_to_time(t, d).unwrap();
        doc.check_seek(off, t).unwrap();
        off
    }

    fn end(doc: &Doc, p: &mut LineParser, t: i64, d: i64, probe: usize) -> u64 {
        let mut ix = TimeIndex::open(&doc.path, p)
            .unwrap()
            .with_probe_bytes(probe);
        let off = ix.end_offset(t, d).unwrap();
        doc.check_end(off, t).unwrap();
        off
    }

    const PROBES: [usize; 4] = [64, 256, 4096, 65536];
    /// Nginx lines are about 100 bytes: a probe must hold two of them for the
    /// searches to be exact (shorter probes stay correct, see
    /// `probes_shorter_than_a_line_stay_correct`).
    const NGINX_PROBES: [usize; 3] = [256, 4096, 65536];

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
