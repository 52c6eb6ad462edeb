//! Reading one file group as a single ordered stream of lines.
//!
//! Rotated siblings are drained oldest first, then the live file is read and, in
//! follow mode, followed as it grows. Reads are bounded per call so a caller can
//! interleave many groups without unbounded buffering, and a line longer than
//! `max_line_bytes` is skipped (and counted) without ever being held whole.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::discover::FileGroup;

/// Lines beyond this are skipped and counted rather than buffered.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
const INITIAL_BUFFER: usize = 64 * 1024;

/// What a [`GroupReader::read_some`] call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Budget used up; more may be readable right away.
    More,
    /// At the end of the live file; in follow mode, try again later.
    Idle,
    /// Every file of the group is read (never in follow mode).
    Finished,
}

/// Counters a reader keeps; the engine folds them into its self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCounters {
    pub bytes: u64,
    pub lines: u64,
    pub oversize_lines: u64,
    pub files_opened: u64,
    pub truncations: u64,
    pub open_errors: u64,
}

/// Where a line came from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct LineOrigin<'a> {
    pub path: &'a Path,
    /// 1-based line number within that file.
    pub line_no: u64,
}

struct OpenFile {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    /// Plain files only: kept to notice truncation while following.
    plain: Option<File>,
    offset: u64,
    line_no: u64,
    is_live: bool,
}

pub struct GroupReader {
    pending: std::collections::VecDeque<(PathBuf, bool, bool)>,
    current: Option<OpenFile>,
    follow: bool,
    max_line_bytes: usize,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Inside an oversize line: drop bytes until the next newline.
    skipping: bool,
    pub counters: ReadCounters,
    /// The last open or read error, for the caller to report.
    pub last_error: Option<String>,
}

impl GroupReader {
    /// `follow`: keep reading the live file as it grows (live mode) instead of
    /// finishing at its end (`--until-eof`).
    pub fn new(group: &FileGroup, follow: bool, max_line_bytes: usize) -> GroupReader {
        let mut pending = std::collections::VecDeque::new();
        for r in &group.rotated {
            pending.push_back((r.path.clone(), r.gzip, false));
        }
        pending.push_back((group.live.clone(), false, true));
        GroupReader {
            pending,
            current: None,
            follow,
            max_line_bytes: max_line_bytes.max(16),
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            skipping: false,
            counters: ReadCounters::default(),
            last_error: None,
        }
    }

    /// Reads at most about `budget` bytes, calling `on_line` for every complete line
    /// (without its `\n` or `\r\n`).
    pub fn read_some<F>(&mut self, budget: usize, mut on_line: F) -> ReadStatus
    where
        F: FnMut(LineOrigin<'_>, &[u8]),
    {
        let mut used = 0usize;
        loop {
            if self.current.is_none() && !self.open_next() {
                return ReadStatus::Finished;
            }
            if used >= budget {
                return ReadStatus::More;
            }
            match self.fill() {
                Ok(0) => {
                    let Some(cur) = self.current.as_mut() else {
                        continue;
                    };
                    if cur.is_live && self.follow {
                        // A file shorter than our offset was truncated in place:
                        // start over at its beginning rather than wait forever.
                        if let Some(f) = &cur.plain {
                            if f.metadata().map(|m| m.len() < cur.offset).unwrap_or(false) {
                                self.counters.truncations += 1;
                                if let Some(cur) = self.current.as_mut() {
                                    if let Some(f) = cur.plain.as_mut() {
                                        let _ = f.seek(SeekFrom::Start(0));
                                    }
                                    cur.offset = 0;
                                }
                                self.start = 0;
                                self.end = 0;
                                self.skipping = false;
                                continue;
                            }
                        }
                        return ReadStatus::Idle;
                    }
                    // A finished file's unterminated last line is still a line.
                    self.flush_tail(&mut on_line);
                    self.current = None;
                }
                Ok(n) => {
                    used += n;
                    self.split_lines(&mut on_line);
                }
                Err(e) => {
                    let path = self.current.as_ref().map(|c| c.path.display().to_string());
                    self.last_error = Some(format!(
                        "{}: read failed: {e}; skipping the rest of this file",
                        path.unwrap_or_default()
                    ));
                    self.flush_tail(&mut on_line);
                    self.current = None;
                }
            }
        }
    }

    /// Path of the file being read, if any.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    fn open_next(&mut self) -> bool {
        while let Some((path, gzip, is_live)) = self.pending.pop_front() {
            match File::open(&path) {
                Ok(f) => {
                    self.counters.files_opened += 1;
                    let (reader, plain): (Box<dyn Read + Send>, Option<File>) = if gzip {
                        (Box::new(MultiGzDecoder::new(io::BufReader::new(f))), None)
                    } else {
                        match f.try_clone() {
                            Ok(c) => (Box::new(f), Some(c)),
                            Err(_) => (Box::new(f), None),
                        }
                    };
                    self.current = Some(OpenFile {
                        path,
                        reader,
                        plain,
                        offset: 0,
                        line_no: 0,
                        is_live,
                    });
                    self.start = 0;
                    self.end = 0;
                    self.skipping = false;
                    return true;
                }
                Err(e) => {
                    self.counters.open_errors += 1;
                    self.last_error = Some(format!(
                        "{}: cannot open: {e}; skipping it (check permissions)",
                        path.display()
                    ));
                }
            }
        }
        false
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() <= self.max_line_bytes {
                let grown = (self.buf.len() * 2).min(self.max_line_bytes + 1);
                self.buf.resize(grown, 0);
            } else {
                // The partial line is longer than allowed: drop it and skip to its end.
                self.counters.oversize_lines += 1;
                self.skipping = true;
                self.end = 0;
            }
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(0);
        };
        let n = loop {
            match cur.reader.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        cur.offset += n as u64;
        self.end += n;
        self.counters.bytes += n as u64;
        Ok(n)
    }

    fn split_lines<F>(&mut self, on_line: &mut F)
    where
        F: FnMut(LineOrigin<'_>, &[u8]),
    {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let mut pos = self.start;
        while let Some(i) = memchr::memchr(b'\n', &self.buf[pos..self.end]) {
            let nl = pos + i;
            cur.line_no += 1;
            if self.skipping {
                self.skipping = false;
            } else {
                self.counters.lines += 1;
                let line = strip_cr(&self.buf[pos..nl]);
                on_line(
                    LineOrigin {
                        path: &cur.path,
                        line_no: cur.line_no,
                    },
                    line,
                );
            }
            pos = nl + 1;
        }
        if self.skipping {
            pos = self.end;
        }
        self.start = pos;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * INITIAL_BUFFER {
                self.buf.truncate(INITIAL_BUFFER);
                self.buf.shrink_to_fit();
            }
        }
    }

    fn flush_tail<F>(&mut self, on_line: &mut F)
    where
        F: FnMut(LineOrigin<'_>, &[u8]),
    {
        if let Some(cur) = self.current.as_mut() {
            if self.end > self.start && !self.skipping {
                cur.line_no += 1;
                self.counters.lines += 1;
                let line = strip_cr(&self.buf[self.start..self.end]);
                on_line(
                    LineOrigin {
                        path: &cur.path,
                        line_no: cur.line_no,
                    },
                    line,
                );
            }
        }
        self.start = 0;
        self.end = 0;
        self.skipping = false;
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::discover::rotated_siblings;
    use std::io::Write;

    fn group(dir: &Path, live: &str) -> FileGroup {
        let live = dir.join(live);
        FileGroup {
            rotated: rotated_siblings(&live),
            live,
        }
    }

    fn read_all(r: &mut GroupReader, budget: usize) -> (Vec<String>, ReadStatus) {
        let mut out = Vec::new();
        loop {
            let st = r.read_some(budget, |_, l| out.push(String::from_utf8_lossy(l).into()));
            if st != ReadStatus::More {
                return (out, st);
            }
        }
    }

    #[test]
    fn reads_rotated_oldest_first_including_gzip_and_unterminated_tails() {
        let d = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(
            File::create(d.path().join("x.log.2.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(b"a\nb\n").unwrap();
        gz.finish().unwrap();
        std::fs::write(d.path().join("x.log.1"), b"c\r\nd").unwrap();
        std::fs::write(d.path().join("x.log"), b"e\nf").unwrap();
        let mut r = GroupReader::new(&group(d.path(), "x.log"), false, 1024);
        let (lines, st) = read_all(&mut r, 1);
        assert_eq!(lines, ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(st, ReadStatus::Finished);
        assert_eq!(r.counters.lines, 6);
    }

    #[test]
    fn follow_waits_for_the_newline_and_sees_appends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        std::fs::write(&p, b"one\ntw").unwrap();
        let mut r = GroupReader::new(&group(d.path(), "x.log"), true, 1024);
        let (lines, st) = read_all(&mut r, 1 << 20);
        assert_eq!((lines, st), (vec!["one".to_string()], ReadStatus::Idle));
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"o\nthree\n").unwrap();
        let (lines, _) = read_all(&mut r, 1 << 20);
        assert_eq!(lines, ["two", "three"]);
    }

    #[test]
    fn oversize_lines_are_skipped_not_buffered() {
        let d = tempfile::tempdir().unwrap();
        let mut data = b"short\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        data.extend(b"\nafter\n");
        std::fs::write(d.path().join("x.log"), &data).unwrap();
        let mut r = GroupReader::new(&group(d.path(), "x.log"), false, 256 * 1024);
        let (lines, _) = read_all(&mut r, 1 << 20);
        assert_eq!(lines, ["short", "after"]);
        assert_eq!(r.counters.oversize_lines, 1);
        assert!(r.buf.len() <= 256 * 1024 + 1 + INITIAL_BUFFER);
    }

    #[test]
    fn missing_file_is_reported_and_skipped() {
        let d = tempfile::tempdir().unwrap();
        let g = FileGroup {
            live: d.path().join("gone.log"),
            rotated: vec![],
        };
        let mut r = GroupReader::new(&g, false, 1024);
        let (lines, st) = read_all(&mut r, 10);
        assert!(lines.is_empty());
        assert_eq!(st, ReadStatus::Finished);
        assert!(r.last_error.as_deref().unwrap().contains("cannot open"));
    }

    #[test]
    fn empty_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.log"), b"").unwrap();
        let mut r = GroupReader::new(&group(d.path(), "x.log"), false, 1024);
        let (lines, st) = read_all(&mut r, 10);
        assert!(lines.is_empty());
        assert_eq!(st, ReadStatus::Finished);
    }
}
