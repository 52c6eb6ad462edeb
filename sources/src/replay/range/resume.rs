//! Putting a [`RangeReader`] down between turns and picking the range up again
//! later with a new one (event-time pacing of many segments: a segment waiting
//! for the others holds neither a descriptor nor a buffer).

use super::{Input, RangeReader};

impl RangeReader {
    /// Where the first line not delivered yet starts in the file, when a new
    /// reader of `[offset, end)` ([`Self::plain_file`]) would go on exactly
    /// where this one is: a plain range not read to its file's end, not
    /// finished, and not inside an over-long line it is skipping (the rest of
    /// that line would be read as a line). `None` otherwise.
    pub fn resume_offset(&self) -> Option<u64> {
        match self.input {
            Input::Plain {
                pos, to_eof: false, ..
            } if !self.skipping && !self.done => Some(pos - (self.end - self.start) as u64),
            _ => None,
        }
    }

    /// Its line buffer, for the reader that picks the range up again
    /// ([`Self::plain_file_reusing`]): one made for each short turn need not
    /// allocate and zero a buffer each time. Empty once finished.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Lines seen so far (over-long ones included) when they are numbered (a
    /// range from offset 0, or one continued with [`Self::numbered_after`]).
    pub fn lines_seen(&self) -> Option<u64> {
        self.line_no_known.then_some(self.line_no)
    }

    /// Numbers this reader's lines after `lines_before` lines (a reader picking
    /// up where another left off, [`Self::resume_offset`]); `None`: unknown (0).
    /// Only before the first read.
    pub fn numbered_after(mut self, lines_before: Option<u64>) -> Self {
        if self.bytes_read == 0 {
            self.line_no = lines_before.unwrap_or(0);
            self.line_no_known = lines_before.is_some();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;

    use super::RangeReader;

    /// Lines `0..n`, each `"line-<i>"`, with an over-long one at `long`.
    fn text(n: usize, long: usize) -> Vec<u8> {
        let mut t = Vec::new();
        for i in 0..n {
            if i == long {
                t.extend(std::iter::repeat_n(b'x', 300));
            } else {
                t.extend(format!("line-{i}").bytes());
            }
            t.push(b'\n');
        }
        t
    }

    /// Reads `path` in turns that stop after every `every` lines, the reader
    /// dropped and made again at its resume offset after each turn; `budget`
    /// bytes per read, a `buffer`-byte buffer.
    fn read_in_turns(
        path: &std::path::Path,
        len: u64,
        every: usize,
        budget: usize,
        buffer: usize,
    ) -> (Vec<(u64, String)>, u64, u32) {
        // Every other reader reuses the buffer of the one before it.
        let open = |at: u64, seen: Option<u64>, buf: Option<Vec<u8>>| {
            let f = std::fs::File::open(path).unwrap();
            match buf {
                Some(b) => RangeReader::plain_file_reusing(f, path, (at, len), 100, buffer, b),
                None => RangeReader::plain_file_buffered(f, path, at, len, 100, buffer),
            }
            .unwrap()
            .numbered_after(seen)
        };
        let mut r = open(0, Some(0), None);
        let (mut got, mut oversize, mut reopens) = (Vec::new(), 0, 0);
        loop {
            let mut n = 0;
            let done = r
                .read_some_until(budget, |no, l| {
                    got.push((no, String::from_utf8_lossy(l).into_owned()));
                    n += 1;
                    if n == every {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            if done {
                oversize += r.oversize_lines();
                return (got, oversize, reopens);
            }
            if n < every {
                // Out of budget, not stopped: read on.
                continue;
            }
            if let Some(at) = r.resume_offset() {
                oversize += r.oversize_lines();
                let seen = r.lines_seen();
                let buf = (reopens % 2 == 0).then(|| r.into_buffer());
                r = open(at, seen, buf);
                reopens += 1;
            }
        }
    }

    #[test]
    fn a_range_read_in_stopped_turns_delivers_every_line_once_in_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.log");
        let t = text(200, 77);
        std::fs::write(&p, &t).unwrap();
        let want: Vec<(u64, String)> = (0..200)
            .filter(|&i| i != 77)
            .map(|i| (i as u64 + 1, format!("line-{i}")))
            .collect();
        for (every, budget, buffer) in [(1, 7, 16), (3, 64, 64), (10, 1 << 20, 1 << 20), (1, 1, 1)]
        {
            let (got, oversize, reopens) = read_in_turns(&p, t.len() as u64, every, budget, buffer);
            assert_eq!(got, want, "every {every}, budget {budget}, buffer {buffer}");
            assert_eq!(oversize, 1);
            assert!(reopens > 0);
        }
    }

    #[test]
    fn a_stopped_reader_kept_delivers_the_buffered_lines_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.log");
        std::fs::write(&p, b"a\nb\nc\nd").unwrap();
        let mut r = RangeReader::plain(&p, 0, 7, 100).unwrap();
        let mut got = Vec::new();
        // Stops after "a" with "b\nc\nd" buffered.
        assert!(!r
            .read_some_until(1 << 20, |_, l| {
                got.push(l.to_vec());
                ControlFlow::Break(())
            })
            .unwrap());
        assert_eq!(r.resume_offset(), Some(2));
        while !r
            .read_some_until(1 << 20, |_, l| {
                got.push(l.to_vec());
                ControlFlow::Continue(())
            })
            .unwrap()
        {}
        assert_eq!(got, [&b"a"[..], b"b", b"c", b"d"]);
        assert_eq!(r.resume_offset(), None);
        assert_eq!(r.lines_seen(), Some(4));
    }

    #[test]
    fn no_resume_offset_inside_a_skipped_line_or_for_gzip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.log");
        let t = text(3, 1);
        std::fs::write(&p, &t).unwrap();
        let mut r = RangeReader::plain_file_buffered(
            std::fs::File::open(&p).unwrap(),
            &p,
            0,
            t.len() as u64,
            100,
            16,
        )
        .unwrap();
        // 20 bytes: all of line 0, the start of the long line 1.
        assert!(!r.read_some(20, |_, _| {}).unwrap());
        assert_eq!(r.resume_offset(), Some(7));
        assert!(!r.read_some(120, |_, _| {}).unwrap());
        assert_eq!(r.resume_offset(), None, "inside the long line");
        let g = d.path().join("f.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &t).unwrap();
        std::fs::write(&g, gz.finish().unwrap()).unwrap();
        let mut r = RangeReader::gzip(&g, 100).unwrap();
        assert!(!r.read_some(5, |_, _| {}).unwrap());
        assert_eq!(r.resume_offset(), None);
    }
}
