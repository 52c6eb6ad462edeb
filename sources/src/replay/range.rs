//! Reading one replay segment: the lines that start in a byte range of a plain
//! file, or every line of a gzip file.
//!
//! This is the hot path of a replay. A [`RangeReader`] reads into one buffer
//! (256 KiB; it grows only to hold a line longer than that, up to
//! `max_line_bytes`), finds newlines with `memchr`, and hands each line to a
//! callback as a slice of that buffer: no allocation per line, no copy except
//! moving an unterminated tail to the front before the next read.
//!
//! A line is the bytes up to a `'\n'`, without it and without one `'\r'` before
//! it. The last line of a range is delivered even without a `'\n'`. A line
//! longer than `max_line_bytes` is skipped and counted; it is never held whole:
//! once more than `max_line_bytes + 1` bytes of it are buffered, the rest is
//! dropped up to its newline.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use memchr::memchr;

use super::lines::{parse_time, Accept};
use crate::parse::LineParser;

/// Size of the line buffer (and so of one read). It grows past this only for a
/// line longer than this, up to `max_line_bytes`, and shrinks back after it.
const BUFFER: usize = 256 * 1024;

/// Compressed bytes read from a gzip file at a time.
const GZIP_INPUT_BUFFER: usize = 64 * 1024;

/// A `File` that counts the bytes read from it (compressed progress of a gzip file).
struct Counting {
    file: File,
    count: u64,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

enum Input {
    /// Reads `[pos, end)` with positioned reads: nothing past `end` is ever read,
    /// unless `to_eof` (then on to the end of the file, wherever it is by then).
    Plain {
        file: File,
        pos: u64,
        end: u64,
        to_eof: bool,
    },
    Gzip(Box<MultiGzDecoder<BufReader<Counting>>>),
}

/// The lines of one replay segment, read a budget at a time.
///
/// `Send`: a segment can be read on any worker thread.
pub struct RangeReader {
    path: PathBuf,
    input: Input,
    /// Plain: the offset the range starts at (progress counts from it).
    first: u64,
    buf: Vec<u8>,
    /// `buf[start..end]`: bytes read but not yet delivered — the beginning of a
    /// line whose `'\n'` has not been read yet.
    start: usize,
    end: usize,
    /// Inside an oversize line: dropping bytes up to its `'\n'`.
    skipping: bool,
    max_line: usize,
    /// The buffer never grows past this: room for `max_line + 1` bytes of an
    /// unterminated line (the line and a `'\r'`) plus at least one byte to read.
    limit: usize,
    /// Lines seen so far, oversize ones included.
    line_no: u64,
    line_no_known: bool,
    bytes_read: u64,
    oversize: u64,
    done: bool,
    /// `on_line` stopped the last read after a line: complete lines may be
    /// left in `buf[start..end]`.
    stopped: bool,
}

impl RangeReader {
    /// Lines that start in `[start, end)` of a plain file. `start` is a line start
    /// (or 0); `end` is a line start or the file length (bytes after `end` are
    /// never read, even if the file grows).
    ///
    /// Fails with `InvalidInput` if `start > end` or `end` is past the file's
    /// current length. A `start` or `end` inside a line is not detected: the
    /// partial line there is delivered as a line.
    pub fn plain(path: &Path, start: u64, end: u64, max_line_bytes: usize) -> io::Result<Self> {
        Self::plain_file(File::open(path)?, path, start, end, max_line_bytes)
    }

    /// [`Self::plain`] over a file already open (e.g. checked to be the file a
    /// plan was made for); `path` is for messages.
    pub fn plain_file(
        file: File,
        path: &Path,
        start: u64,
        end: u64,
        max_line_bytes: usize,
    ) -> io::Result<Self> {
        Self::plain_file_buffered(file, path, start, end, max_line_bytes, BUFFER)
    }

    /// [`Self::plain_file`] whose line buffer starts at `buffer_bytes` (at most
    /// 256 KiB) rather than 256 KiB: one read is at most that long. It still
    /// grows to hold a longer line. For readers made for a short turn each
    /// (event-time pacing): a big buffer would be zeroed for a few lines.
    pub fn plain_file_buffered(
        file: File,
        path: &Path,
        start: u64,
        end: u64,
        max_line_bytes: usize,
        buffer_bytes: usize,
    ) -> io::Result<Self> {
        Self::plain_file_in(
            file,
            path,
            (start, end),
            max_line_bytes,
            buffer_bytes,
            Vec::new(),
        )
    }

    /// [`Self::plain_file_buffered`] in `buf`, the buffer of an earlier reader
    /// ([`Self::into_buffer`]): only what it lacks of `buffer_bytes` is zeroed.
    pub fn plain_file_reusing(
        file: File,
        path: &Path,
        (start, end): (u64, u64),
        max_line_bytes: usize,
        buffer_bytes: usize,
        buf: Vec<u8>,
    ) -> io::Result<Self> {
        Self::plain_file_in(file, path, (start, end), max_line_bytes, buffer_bytes, buf)
    }

    fn plain_file_in(
        file: File,
        path: &Path,
        (start, end): (u64, u64),
        max_line_bytes: usize,
        buffer_bytes: usize,
        mut buf: Vec<u8>,
    ) -> io::Result<Self> {
        let len = file.metadata()?.len();
        if start > end || end > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot read bytes {start}..{end} of a file of {len} bytes"),
            ));
        }
        // A small range needs no big buffer; its lines cannot be longer than it.
        let size = usize::try_from(end - start)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(buffer_bytes.clamp(1, BUFFER));
        // Bytes past what a reader has filled are never read: stale ones may stay.
        if buf.len() < size {
            buf.resize(size, 0);
        } else {
            buf.truncate(size);
        }
        Ok(Self::new(
            path,
            Input::Plain {
                file,
                pos: start,
                end,
                to_eof: false,
            },
            start,
            buf,
            max_line_bytes,
        ))
    }

    /// A plain range that does not stop at its `end` but reads on to the end of
    /// the file as it is when the reader gets there, as a tailer reads a file
    /// to its end: lines appended meanwhile are read. Reaching the end of the
    /// file before `end` is still an error (it was truncated). No effect on a
    /// gzip file (read whole anyway).
    pub fn to_eof(mut self) -> Self {
        if let Input::Plain { to_eof, .. } = &mut self.input {
            *to_eof = true;
            // Its size is no longer bounded by the range's.
            if self.buf.len() < BUFFER {
                self.buf.resize(BUFFER, 0);
            }
        }
        self
    }

    /// Every line of a gzip file (multi-member streams, like
    /// `flate2::read::MultiGzDecoder`). Nothing is read yet: a file that is not
    /// valid gzip makes [`Self::read_some`] fail with an I/O error. An empty
    /// (0-byte) file has no lines.
    pub fn gzip(path: &Path, max_line_bytes: usize) -> io::Result<Self> {
        Self::gzip_file(File::open(path)?, path, max_line_bytes)
    }

    /// [`Self::gzip`] over a file already open and not read from yet.
    pub fn gzip_file(file: File, path: &Path, max_line_bytes: usize) -> io::Result<Self> {
        if file.metadata()?.len() == 0 {
            // Not a valid gzip stream, but nothing to read either (a compressor
            // that has just created its output): an empty range.
            let input = Input::Plain {
                file,
                pos: 0,
                end: 0,
                to_eof: false,
            };
            return Ok(Self::new(path, input, 0, vec![0; 1], max_line_bytes));
        }
        let counting = Counting { file, count: 0 };
        let decoder = MultiGzDecoder::new(BufReader::with_capacity(GZIP_INPUT_BUFFER, counting));
        Ok(Self::new(
            path,
            Input::Gzip(Box::new(decoder)),
            0,
            vec![0; BUFFER],
            max_line_bytes,
        ))
    }

    fn new(path: &Path, input: Input, first: u64, buf: Vec<u8>, max_line: usize) -> Self {
        RangeReader {
            path: path.to_path_buf(),
            input,
            first,
            buf,
            start: 0,
            end: 0,
            skipping: false,
            max_line,
            limit: BUFFER.max(max_line.saturating_add(2)),
            line_no: 0,
            line_no_known: first == 0,
            bytes_read: 0,
            oversize: 0,
            done: false,
            stopped: false,
        }
    }

    /// Reads about `budget` bytes (at least one read), calling
    /// `on_line(line_no, line)` for each complete line without its `"\n"` or
    /// `"\r\n"`; `line_no` is 1-based when the range starts at offset 0, else 0
    /// (unknown). The range's last line is delivered even without a trailing
    /// newline. Lines longer than `max_line_bytes` are skipped and counted
    /// ([`Self::oversize_lines`]) without ever being held whole in memory.
    /// Returns `Ok(true)` once the range is finished (then further calls return
    /// `Ok(true)` and deliver nothing).
    ///
    /// Errors: a gzip file that is not valid gzip (or is cut short), a plain
    /// file that became shorter than the range (`UnexpectedEof`), or a read
    /// error. Lines before the problem have been delivered; drop the reader.
    pub fn read_some(
        &mut self,
        budget: usize,
        mut on_line: impl FnMut(u64, &[u8]),
    ) -> io::Result<bool> {
        self.read_some_until(budget, |n, line| {
            on_line(n, line);
            ControlFlow::Continue(())
        })
    }

    /// [`Self::read_some`] that also stops right after a line for which
    /// `on_line` returns [`ControlFlow::Break`] (event-time pacing): the lines
    /// after it stay buffered, and the next call delivers them first.
    pub fn read_some_until(
        &mut self,
        budget: usize,
        mut on_line: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> io::Result<bool> {
        if self.done {
            return Ok(true);
        }
        if self.stopped {
            // Complete lines may wait in the buffer: `split` below only looks
            // at the bytes it has just read.
            self.stopped = false;
            if self.split(self.start, &mut on_line) {
                return Ok(false);
            }
            if self.range_read() {
                self.finish(&mut on_line);
                return Ok(true);
            }
        }
        let mut got = 0usize;
        loop {
            let n = self.fill(budget.saturating_sub(got))?;
            if n == 0 {
                self.finish(&mut on_line);
                return Ok(true);
            }
            got += n;
            if self.split(self.end - n, &mut on_line) {
                return Ok(false);
            }
            if self.range_read() {
                self.finish(&mut on_line);
                return Ok(true);
            }
            if got >= budget {
                return Ok(false);
            }
        }
    }

    /// A plain range (not read to its file's end) whose every byte is read.
    fn range_read(&self) -> bool {
        matches!(self.input, Input::Plain { pos, end, to_eof: false, .. } if pos == end)
    }

    /// File bytes consumed so far (compressed bytes for gzip), for progress
    /// bars: reaches `end - start` for plain, the file size for gzip, when
    /// finished.
    pub fn progress_bytes(&self) -> u64 {
        match &self.input {
            Input::Plain { pos, .. } => pos - self.first,
            Input::Gzip(d) => d.get_ref().get_ref().count,
        }
    }

    /// Bytes of log text read (decompressed), skipped lines included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Bytes of log text read up to the end of the last complete line (the
    /// start of the line not yet delivered): where a file cut short ends.
    pub fn complete_line_bytes(&self) -> u64 {
        self.bytes_read - (self.end - self.start) as u64
    }

    /// Lines skipped for being longer than `max_line_bytes`.
    pub fn oversize_lines(&self) -> u64 {
        self.oversize
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line buffer's current allocation, in bytes (for tests of the memory
    /// bound; 0 once finished).
    #[doc(hidden)]
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Reads at most `cap` (at least 1) bytes after the buffered ones; 0 at the
    /// end of the range.
    fn fill(&mut self, cap: usize) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // A line longer than the buffer, and not yet over `max_line + 1`
            // bytes (`split` drops it then), so `self.buf.len() < self.limit`.
            let grown = self.buf.len().saturating_mul(2).min(self.limit);
            self.buf.reserve_exact(grown - self.buf.len());
            self.buf.resize(grown, 0);
        }
        let want = (self.buf.len() - self.end).min(cap.max(1));
        let dst = &mut self.buf[self.end..self.end + want];
        let n = match &mut self.input {
            Input::Plain {
                file,
                pos,
                end,
                to_eof,
            } => {
                let want = if *to_eof {
                    want
                } else {
                    want.min(usize::try_from(*end - *pos).unwrap_or(usize::MAX))
                };
                if want == 0 {
                    return Ok(0);
                }
                let n = read_at(file, &mut dst[..want], *pos)?;
                if n == 0 && *to_eof && *pos >= *end {
                    return Ok(0);
                }
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the file ends at byte {pos} but the range being read ends at byte {end}: it was truncated while being read"
                        ),
                    ));
                }
                *pos += n as u64;
                n
            }
            Input::Gzip(d) => loop {
                match d.read(dst) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r?,
                }
            },
        };
        self.end += n;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Delivers every complete line in the buffer; `from` is where the bytes
    /// just read begin (no `'\n'` lies in `buf[start..from]`). Returns true if
    /// `on_line` stopped it (then `stopped` is set and the rest stays buffered).
    fn split(
        &mut self,
        from: usize,
        on_line: &mut impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> bool {
        let buf = &self.buf[..self.end];
        let mut start = self.start;
        let mut search = from;
        if self.skipping {
            match memchr(b'\n', &buf[search..]) {
                Some(i) => {
                    self.skipping = false;
                    self.line_no += 1;
                    start = search + i + 1;
                    search = start;
                }
                None => start = buf.len(),
            }
        }
        if !self.skipping {
            let (known, max) = (self.line_no_known, self.max_line);
            let (mut line_no, mut oversize) = (self.line_no, 0);
            while let Some(i) = memchr(b'\n', &buf[search..]) {
                let nl = search + i;
                line_no += 1;
                let line = strip_cr(&buf[start..nl]);
                start = nl + 1;
                search = start;
                if line.len() > max {
                    oversize += 1;
                } else if on_line(if known { line_no } else { 0 }, line).is_break() {
                    self.stopped = true;
                    break;
                }
            }
            self.line_no = line_no;
            self.oversize += oversize;
            if !self.stopped && buf.len() - start > max.saturating_add(1) {
                // Longer than allowed even without its '\r': drop what we have,
                // skip the rest up to its newline.
                self.oversize += 1;
                self.skipping = true;
                start = buf.len();
            }
        }
        if start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 4 * BUFFER {
                self.buf.truncate(BUFFER);
                self.buf.shrink_to_fit();
            }
        } else {
            self.start = start;
        }
        self.stopped
    }

    /// The end of the range: delivers its unterminated last line, frees the buffer.
    fn finish(&mut self, on_line: &mut impl FnMut(u64, &[u8]) -> ControlFlow<()>) {
        if !self.skipping && self.end > self.start {
            self.line_no += 1;
            let line = strip_cr(&self.buf[self.start..self.end]);
            if line.len() > self.max_line {
                self.oversize += 1;
            } else {
                // The last line: nothing is left to stop before.
                let _ = on_line(if self.line_no_known { self.line_no } else { 0 }, line);
            }
        }
        self.start = 0;
        self.end = 0;
        self.skipping = false;
        self.buf = Vec::new();
        self.done = true;
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn read_at(file: &File, buf: &mut [u8], off: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, off) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

/// The time of the first parseable line of a gzip file, decompressing at most
/// `probe_bytes` (`None` if no parseable line is within that, or the file is
/// empty). Malformed lines, and lines `accept` refuses, are skipped. Fails if the
/// file is not valid gzip.
pub fn gzip_first_time(
    path: &Path,
    parser: &mut LineParser,
    probe_bytes: usize,
    accept: &Accept,
) -> io::Result<Option<i64>> {
    gzip_first_time_file(File::open(path)?, path, parser, probe_bytes, accept)
}

/// [`gzip_first_time`] of a file already open and not read from yet; `path` is
/// for messages.
pub fn gzip_first_time_file(
    file: File,
    path: &Path,
    parser: &mut LineParser,
    probe_bytes: usize,
    accept: &Accept,
) -> io::Result<Option<i64>> {
    let mut reader = RangeReader::gzip_file(file, path, probe_bytes)?;
    let (mut found, mut candidate) = (None, None);
    while found.is_none() {
        let left =
            probe_bytes.saturating_sub(usize::try_from(reader.bytes_read()).unwrap_or(usize::MAX));
        if left == 0 {
            break;
        }
        let done = reader.read_some(left, |_, line| {
            if found.is_some() {
                return;
            }
            let Some(t) = parse_time(parser, line, accept) else {
                return;
            };
            // The outlier rule (see `Accept::max_jump_ms`): a line the next one
            // does not confirm is not where the file starts.
            match candidate {
                Some(c) if c - t > accept.max_jump_ms => candidate = Some(t),
                Some(c) => found = Some(c),
                None if accept.max_jump_ms == i64::MAX => found = Some(t),
                None => candidate = Some(t),
            }
        })?;
        if done {
            break;
        }
    }
    // With no next line to judge it by, the last candidate is taken as it is.
    Ok(found.or(candidate))
}

mod resume;
#[cfg(test)]
mod tests;
