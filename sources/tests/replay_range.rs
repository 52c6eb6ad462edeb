//! Reading replay segments (issue 4): the lines of a byte range of a plain file,
//! every line of a gzip file, and the time a gzip file starts at.

// In a module so that `cargo test replay` selects these tests.
mod replay_range {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use tidemark_jobs::{Format, Parse, TimeFormat};
    use tidemark_sources::parse::LineParser;
    use tidemark_sources::replay::{gzip_first_time, split_points, Accept, RangeReader};

    fn logfmt() -> LineParser {
        let cfg = Parse {
            format: Format::Logfmt,
            timestamp_field: "ts".into(),
            timestamp_format: TimeFormat::EpochMillis,
        };
        LineParser::new(&cfg, &[]).unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gzip(members: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in members {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(m).unwrap();
            out.extend(gz.finish().unwrap());
        }
        out
    }

    /// What a whole read delivered.
    #[derive(Debug, Default)]
    struct Read {
        lines: Vec<(u64, Vec<u8>)>,
        /// Largest line buffer seen between calls.
        max_buffer: usize,
    }

    fn read_all(r: &mut RangeReader, budget: usize) -> Read {
        let mut out = Read::default();
        loop {
            let done = r
                .read_some(budget, |n, l| out.lines.push((n, l.to_vec())))
                .unwrap();
            out.max_buffer = out.max_buffer.max(r.buffer_capacity());
            if done {
                return out;
            }
        }
    }

    /// The oracle: every line of `bytes` (split at '\n', one '\r' before it
    /// dropped, an unterminated last line kept) with the offset it starts at.
    fn oracle(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut s = 0;
        while s < bytes.len() {
            let e = bytes[s..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| s + i);
            let line = &bytes[s..e];
            out.push((s as u64, line.strip_suffix(b"\r").unwrap_or(line).to_vec()));
            s = e + 1;
        }
        out
    }

    /// Reads the consecutive ranges between `cuts` and checks that together they
    /// deliver every line of the file exactly once, in order (lines over `max`
    /// skipped and counted), with line numbers only for the range at 0.
    fn check_tiling(
        path: &Path,
        bytes: &[u8],
        cuts: &[u64],
        max: usize,
        budget: usize,
    ) -> Result<(), TestCaseError> {
        let want = oracle(bytes);
        let mut got = Vec::new();
        let mut oversize = 0;
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let mut r = RangeReader::plain(path, a, b, max).unwrap();
            let read = read_all(&mut r, budget);
            prop_assert_eq!(r.progress_bytes(), b - a);
            prop_assert_eq!(r.bytes_read(), b - a);
            oversize += r.oversize_lines();
            for (n, line) in read.lines {
                if a == 0 {
                    prop_assert!(n >= 1);
                } else {
                    prop_assert_eq!(n, 0);
                }
                got.push((a, n, line));
            }
        }
        let kept: Vec<&(u64, Vec<u8>)> = want.iter().filter(|(_, l)| l.len() <= max).collect();
        prop_assert_eq!(got.len(), kept.len(), "got {:?}", got);
        for ((a, n, line), (start, wanted)) in got.iter().zip(&kept) {
            prop_assert_eq!(line, wanted);
            if *a == 0 {
                // The line's number is its index in the file, plus 1.
                let index = want.iter().position(|(s, _)| s == start).unwrap();
                prop_assert_eq!(*n, index as u64 + 1);
            }
        }
        prop_assert_eq!(oversize, (want.len() - kept.len()) as u64);
        Ok(())
    }

    fn line_starts(bytes: &[u8]) -> Vec<u64> {
        oracle(bytes).into_iter().map(|(s, _)| s).collect()
    }

    /// Random lines: logfmt lines with a time, garbage with stray '\r's, empty
    /// lines; '\n' or "\r\n" endings; maybe no final newline.
    fn doc() -> impl Strategy<Value = Vec<u8>> {
        let content = prop_oneof![
            (0i64..100_000).prop_map(|t| format!("ts={t} level=info")),
            "[ab\r =]{0,12}",
            Just(String::new()),
            Just("x".repeat(40)),
        ];
        (
            prop::collection::vec((content, any::<bool>()), 0..60),
            any::<bool>(),
        )
            .prop_map(|(lines, newline_at_end)| {
                let mut out = Vec::new();
                for (l, crlf) in lines {
                    out.extend_from_slice(l.as_bytes());
                    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
                if !newline_at_end && out.last() == Some(&b'\n') {
                    out.pop();
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Ranges cut at random line starts tile the file exactly.
        #[test]
        fn ranges_cut_at_line_starts_tile_the_file(
            bytes in doc(),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            max in prop::sample::select(vec![0usize, 3, 12, 1 << 20]),
            budget in prop::sample::select(vec![1usize, 2, 7, 64, 1 << 20]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = write(&dir, "access.log", &bytes);
            let starts = line_starts(&bytes);
            let mut cuts = vec![0, bytes.len() as u64];
            if !starts.is_empty() {
                cuts.extend(picks.iter().map(|i| starts[i.index(starts.len())]));
            }
            cuts.sort_unstable();
            cuts.dedup();
            check_tiling(&path, &bytes, &cuts, max, budget)?;
        }

        /// The segments that `split_points` cuts tile the file exactly.
        #[test]
        fn split_points_segments_tile_the_file(
            bytes in doc(),
            n in 1usize..8,
            probe in prop::sample::select(vec![16usize, 64, 4096]),
            budget in prop::sample::select(vec![1usize, 5, 1 << 20]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = write(&dir, "access.log", &bytes);
            let mut p = logfmt();
            let mut ix = tidemark_sources::replay::TimeIndex::open(&path, &mut p)
                .unwrap()
                .with_probe_bytes(probe);
            let pts = ix.split_points(0, bytes.len() as u64, n).unwrap();
            let mut cuts: Vec<u64> = pts.iter().map(|p| p.0).collect();
            if cuts.len() == 1 {
                cuts.push(bytes.len() as u64); // an empty file: one empty range
            }
            check_tiling(&path, &bytes, &cuts, 1 << 20, budget)?;
        }

        /// A gzip file (cut into members anywhere, even inside a line) gives the
        /// same lines as the plain text, numbered from 1.
        #[test]
        fn gzip_members_give_the_same_lines(
            bytes in doc(),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            budget in prop::sample::select(vec![1usize, 9, 1 << 20]),
        ) {
            let mut at: Vec<usize> = picks.iter().map(|i| i.index(bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            let members: Vec<&[u8]> = at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let gz = gzip(&members);
            let dir = tempfile::tempdir().unwrap();
            let path = write(&dir, "access.log.1.gz", &gz);
            let mut r = RangeReader::gzip(&path, 1 << 20).unwrap();
            let read = read_all(&mut r, budget);
            let want: Vec<(u64, Vec<u8>)> = oracle(&bytes)
                .into_iter()
                .enumerate()
                .map(|(i, (_, l))| (i as u64 + 1, l))
                .collect();
            prop_assert_eq!(read.lines, want);
            prop_assert_eq!(r.progress_bytes(), gz.len() as u64);
            prop_assert_eq!(r.bytes_read(), bytes.len() as u64);
        }
    }

    #[test]
    fn split_points_of_a_big_file_tile_it() {
        let mut bytes = Vec::new();
        for i in 0..50_000i64 {
            let line = format!("ts={} level=info msg=\"request {i}\"", 1_000_000 + i);
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
        }
        bytes.extend_from_slice(b"ts=2000000 no newline");
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "access.log", &bytes);
        let pts = split_points(&path, &mut logfmt(), 0, bytes.len() as u64, 8).unwrap();
        assert_eq!(pts.len(), 9, "{pts:?}");
        let cuts: Vec<u64> = pts.iter().map(|p| p.0).collect();
        check_tiling(&path, &bytes, &cuts, 1 << 10, 1 << 20).unwrap();
    }

    #[test]
    fn a_range_never_reads_what_the_file_grows_by() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "access.log", b"a\nb\nc");
        // [0, 4): ends at a line start; [0, 5): ends at the file's length then,
        // inside the line "c" that is still being written.
        for (end, want) in [(4u64, vec!["a", "b"]), (5, vec!["a", "b", "c"])] {
            let mut r = RangeReader::plain(&path, 0, end, 1024).unwrap();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"dd\ne\n").unwrap();
            let mut got = Vec::new();
            // Tiny budgets: the file grows between reads too.
            while !r
                .read_some(1, |_, l| got.push(String::from_utf8(l.to_vec()).unwrap()))
                .unwrap()
            {
                f.write_all(b"more\n").unwrap();
            }
            assert_eq!(got, want);
            assert_eq!(r.progress_bytes(), end);
            assert_eq!(r.bytes_read(), end);
            std::fs::write(&path, b"a\nb\nc").unwrap();
        }
    }

    #[test]
    fn a_range_that_starts_mid_file_has_no_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "access.log", b"a\nbb\nccc\n");
        let mut r = RangeReader::plain(&path, 2, 9, 1024).unwrap();
        let read = read_all(&mut r, 1 << 20);
        assert_eq!(read.lines, [(0, b"bb".to_vec()), (0, b"ccc".to_vec())]);
        assert_eq!(r.path(), path);
    }

    #[test]
    fn a_file_truncated_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for i in 0..100_000 {
            bytes.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let path = write(&dir, "access.log", &bytes);
        let mut r = RangeReader::plain(&path, 0, bytes.len() as u64, 1024).unwrap();
        assert!(!r.read_some(1000, |_, _| {}).unwrap());
        std::fs::write(&path, b"short\n").unwrap();
        let err = loop {
            match r.read_some(1 << 20, |_, _| {}) {
                Ok(false) => {}
                Ok(true) => panic!("finished a range longer than the file"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    }

    /// A 10 MB line with max_line_bytes = 1 KiB is skipped and counted without
    /// the reader ever holding it: its buffer stays at its usual size.
    #[test]
    fn oversize_lines_are_skipped_in_bounded_memory() {
        let huge = vec![b'x'; 10 << 20];
        let mut bytes = b"first\n".to_vec();
        bytes.extend_from_slice(&huge);
        bytes.extend_from_slice(b"\r\nsecond\r\n");
        bytes.extend_from_slice(&[b'y'; 1024]); // exactly max: kept
        bytes.extend_from_slice(b"\n");
        bytes.extend_from_slice(&huge); // unterminated, at the end
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"first".to_vec()),
            (3, b"second".to_vec()),
            (4, vec![b'y'; 1024]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let plain = write(&dir, "access.log", &bytes);
        let gz = write(&dir, "access.log.1.gz", &gzip(&[&bytes]));
        for budget in [1 << 20, 4096] {
            let mut r = RangeReader::plain(&plain, 0, bytes.len() as u64, 1024).unwrap();
            let read = read_all(&mut r, budget);
            assert_eq!(read.lines, want);
            assert_eq!(r.oversize_lines(), 2);
            assert!(read.max_buffer <= 256 * 1024, "{}", read.max_buffer);
            assert_eq!(r.bytes_read(), bytes.len() as u64);

            let mut r = RangeReader::gzip(&gz, 1024).unwrap();
            let read = read_all(&mut r, budget);
            assert_eq!(read.lines, want);
            assert_eq!(r.oversize_lines(), 2);
            assert!(read.max_buffer <= 256 * 1024, "{}", read.max_buffer);
        }
        // A long line within a large max_line_bytes is kept; the buffer grows for
        // it only as far as needed.
        let mut r = RangeReader::plain(&plain, 0, bytes.len() as u64, 11 << 20).unwrap();
        let read = read_all(&mut r, 1 << 20);
        assert_eq!(read.lines.len(), 5);
        assert_eq!(read.lines[1].1.len(), 10 << 20);
        assert_eq!(r.oversize_lines(), 0);
        assert!(read.max_buffer <= (11 << 20) + 2, "{}", read.max_buffer);
    }

    #[test]
    fn gzip_multi_member() {
        let dir = tempfile::tempdir().unwrap();
        // The second member continues the first one's last line.
        let gz = gzip(&[b"a\nb", b"c\r\n", b"", b"d\ne"]);
        let path = write(&dir, "access.log.2.gz", &gz);
        let mut r = RangeReader::gzip(&path, 1024).unwrap();
        let read = read_all(&mut r, 1);
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"a".to_vec()),
            (2, b"bc".to_vec()),
            (3, b"d".to_vec()),
            (4, b"e".to_vec()),
        ];
        assert_eq!(read.lines, want);
        assert!(r.read_some(1, |_, _| panic!("after the end")).unwrap());
    }

    #[test]
    fn gzip_progress_reaches_the_file_size() {
        let mut text = Vec::new();
        let mut x: u64 = 7;
        for i in 0..200_000u64 {
            // Not too compressible, so the compressed file spans many reads.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.extend_from_slice(format!("ts={i} id={x:x}\n").as_bytes());
        }
        let half = text.len() / 2;
        let gz = gzip(&[&text[..half], &text[half..]]);
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "access.log.3.gz", &gz);
        let mut r = RangeReader::gzip(&path, 1024).unwrap();
        let (mut last, mut steps, mut lines) = (0, 0, 0u64);
        while !r.read_some(64 * 1024, |_, _| lines += 1).unwrap() {
            let p = r.progress_bytes();
            assert!(p >= last && p <= gz.len() as u64, "{p}");
            if steps == 0 {
                assert!(p < gz.len() as u64 / 4, "{p} of {}", gz.len());
            }
            last = p;
            steps += 1;
        }
        assert!(steps > 10, "{steps}");
        assert_eq!(r.progress_bytes(), gz.len() as u64);
        assert_eq!(r.bytes_read(), text.len() as u64);
        assert_eq!(lines, 200_000);
        assert_eq!(r.oversize_lines(), 0);
    }

    #[test]
    fn gzip_first_time_skips_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"garbage\n\n\xff\xfe\nlevel=info\r\nts=1234 level=info\nts=1000\n";
        let path = write(&dir, "a.log.1.gz", &gzip(&[&text[..10], &text[10..]]));
        let mut p = logfmt();
        assert_eq!(
            gzip_first_time(&path, &mut p, 64 * 1024, &Accept::default()).unwrap(),
            Some(1234)
        );
        // The parseable line is not within the probe: a partial line is not parsed.
        let first = text.windows(3).position(|w| w == b"ts=").unwrap();
        assert_eq!(
            gzip_first_time(&path, &mut p, first + 5, &Accept::default()).unwrap(),
            None
        );
        assert_eq!(
            gzip_first_time(&path, &mut p, 0, &Accept::default()).unwrap(),
            None
        );
        let full_line = first + b"ts=1234 level=info\n".len();
        assert_eq!(
            gzip_first_time(&path, &mut p, full_line, &Accept::default()).unwrap(),
            Some(1234)
        );
        // The last line needs no newline.
        let path = write(&dir, "b.log.1.gz", &gzip(&[b"x\nts=77"]));
        assert_eq!(
            gzip_first_time(&path, &mut p, 1024, &Accept::default()).unwrap(),
            Some(77)
        );
        // Nothing parseable; empty content; an empty file.
        let path = write(&dir, "c.log.1.gz", &gzip(&[b"x\ny\n"]));
        assert_eq!(
            gzip_first_time(&path, &mut p, 1024, &Accept::default()).unwrap(),
            None
        );
        let path = write(&dir, "d.log.1.gz", &gzip(&[b""]));
        assert_eq!(
            gzip_first_time(&path, &mut p, 1024, &Accept::default()).unwrap(),
            None
        );
        let path = write(&dir, "e.log.1.gz", b"");
        assert_eq!(
            gzip_first_time(&path, &mut p, 1024, &Accept::default()).unwrap(),
            None
        );
    }

    #[test]
    fn invalid_gzip_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let not_gzip = write(&dir, "a.log.1.gz", b"ts=1 plain text\n");
        let mut full = gzip(&[b"ts=1 a\nts=2 b\nts=3 c\n".repeat(1000).as_slice()]);
        full.truncate(full.len() / 2);
        let truncated = write(&dir, "b.log.1.gz", &full);
        let mut garbage_after = gzip(&[b"ts=1\n"]);
        garbage_after.extend_from_slice(b"not gzip");
        let garbage_after = write(&dir, "c.log.1.gz", &garbage_after);
        for path in [&not_gzip, &truncated, &garbage_after] {
            let mut r = RangeReader::gzip(path, 1024).unwrap();
            let err = loop {
                match r.read_some(1 << 20, |_, _| {}) {
                    Ok(false) => {}
                    Ok(true) => panic!("{} read as valid gzip", path.display()),
                    Err(e) => break e,
                }
            };
            assert!(!err.to_string().is_empty());
        }
        assert!(gzip_first_time(&not_gzip, &mut logfmt(), 1024, &Accept::default()).is_err());
        assert!(RangeReader::gzip(&dir.path().join("missing.gz"), 1024).is_err());
        assert!(RangeReader::plain(&dir.path().join("missing"), 0, 0, 1024).is_err());
    }

    /// Throughput on a plain file, in release builds:
    /// `cargo test --release -p tidemark-sources --test replay_range -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn plain_throughput() {
        let mut bytes = Vec::new();
        let mut i = 0u64;
        while bytes.len() < 512 << 20 {
            bytes.extend_from_slice(format!("10.0.0.{} - - [20/Nov/2026:10:00:00 +0000] \"GET /api/items/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\" 0.012\n", i % 250, i % 5000).as_bytes());
            i += 1;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "access.log", &bytes);
        drop(bytes);
        let len = std::fs::metadata(&path).unwrap().len();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let mut r = RangeReader::plain(&path, 0, len, 256 << 10).unwrap();
            let (mut lines, mut sum) = (0u64, 0u64);
            while !r
                .read_some(1 << 20, |_, l| {
                    lines += 1;
                    sum += l.len() as u64;
                })
                .unwrap()
            {}
            let s = t.elapsed().as_secs_f64();
            println!(
                "{lines} lines, {sum} bytes of text: {:.0} MB/s",
                len as f64 / s / 1e6
            );
        }
    }
}
