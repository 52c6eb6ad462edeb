//! Binary search by timestamp over the byte offsets of a plain log file.
//!
//! # The model
//!
//! A file is a sequence of lines `L_0, L_1, ...` (separated by `'\n'`; a trailing
//! `'\r'` is dropped; the last line may lack its `'\n'`). A line is *parseable*
//! if the job's [`LineParser`] gives it a time `τ(L)`; other lines (malformed,
//! empty, invalid UTF-8) have no time and are ignored by every search. The file
//! is *nearly sorted* with bound `d ≥ 0`: for parseable lines `i < j`,
//! `τ(L_j) ≥ τ(L_i) − d`. Every guarantee below holds for any such file; for a
//! file that breaks the bound the answers are still line starts within the
//! file, they are just not guaranteed.
//!
//! Two consequences carry every argument:
//!
//! - **(A)** if `τ(P) < t − d`, every line before `P` has time `≤ τ(P) + d < t`;
//! - **(B)** if `τ(Q) ≥ t + d`, every line after `Q` has time `≥ τ(Q) − d ≥ t`.
//!
//! So a verified `P` is a safe place to *start* reading for times `≥ t`, and a
//! verified `Q` a safe place to *stop* reading for times `< t`. A search only
//! ever returns such a verified line (or 0 / the file length), so a probe that
//! sees disorder, garbage or a line too long to read can make an answer less
//! tight, never wrong.
//!
//! # A probe
//!
//! Probing offset `x` reads forward from `x − 1`, skips to just after the next
//! `'\n'` (so a line start probes itself), and parses lines forward until one
//! has a time. It reads at most [`TimeIndex::probe_bytes`] bytes (first 4 KiB,
//! doubling), and gives up (an *inconclusive* probe) past that. A binary search
//! runs until its interval is at most `probe_bytes` wide, then scans the lines
//! that start in the interval with one bounded read. A search costs
//! O(log(len / probe_bytes)) probes; nothing else of the file is read.
//!
//! # Files this cannot search
//!
//! Gzip-compressed files ([`is_gzip`]) must be scanned sequentially from their
//! start; [`TimeIndex::open`] refuses them with `InvalidInput`. The length of
//! the file is taken when it is opened: bytes appended later are not searched.
//! An unterminated last line counts as a line (as at the end of a finite run),
//! even if a writer is still in the middle of it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use memchr::{memchr, memrchr};

use crate::parse::LineParser;

/// Default bound on the bytes read by one probe (and from each end by
/// [`TimeIndex::time_span`]). Lines longer than this are invisible to the
/// search (treated like malformed lines); use [`TimeIndex::with_probe_bytes`]
/// with more than the job's `max_line_bytes` to see them.
pub const DEFAULT_PROBE_BYTES: usize = 64 * 1024;

/// First read of a probe; it doubles up to the probe budget when needed.
const FIRST_READ: usize = 4 * 1024;

/// Smallest accepted probe budget.
const MIN_PROBE_BYTES: usize = 16;

/// What a [`TimeIndex`] read from its file so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Read calls (each of at most `2 * probe_bytes + 1` bytes).
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// An open plain log file, searched by time with a job's line parser.
///
/// Build the parser with no fields: only the timestamp is needed,
/// `LineParser::new(&job.parse, &[])`.
pub struct TimeIndex<'p> {
    file: File,
    len: u64,
    parser: &'p mut LineParser,
    probe_bytes: usize,
    accept: Accept,
    buf: Vec<u8>,
    stats: SearchStats,
}

/// Where a probe landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    /// The first line start at or after the probed offset (the file length if
    /// no line starts there); `None` if no `'\n'` was found within the budget.
    at: Option<u64>,
    hit: Hit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// The first parseable line at or after `at`: its start, the start of the
    /// next line (or the file length), its time.
    Line { start: u64, next: u64, t: i64 },
    /// No parseable line from `at` to the end of the file.
    Eof,
    /// The budget ran out first.
    GaveUp,
}

/// How a walk over the lines of a window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// The callback asked to stop.
    Stopped,
    /// Every line up to the end of the file was visited.
    End,
    /// The window ended inside a line (or before the first line start).
    Short,
}

impl<'p> TimeIndex<'p> {
    /// Opens `path` for searching. Fails with `InvalidInput` if it is
    /// gzip-compressed (scan those sequentially).
    pub fn open(path: &Path, parser: &'p mut LineParser) -> io::Result<TimeIndex<'p>> {
        TimeIndex::open_file(File::open(path)?, path, parser)
    }

    /// [`Self::open`] over a file already open (e.g. through
    /// [`crate::file::AllowedRoots::open`]); `path` is for messages.
    pub fn open_file(
        file: File,
        path: &Path,
        parser: &'p mut LineParser,
    ) -> io::Result<TimeIndex<'p>> {
        let len = file.metadata()?.len();
        let mut ix = TimeIndex {
            file,
            len,
            parser,
            probe_bytes: DEFAULT_PROBE_BYTES,
            accept: Accept::default(),
            buf: Vec::new(),
            stats: SearchStats::default(),
        };
        ix.read_window(0, 2)?;
        if ix.buf.starts_with(&GZIP_MAGIC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is gzip-compressed: it cannot be searched by time, read it sequentially",
                    path.display()
                ),
            ));
        }
        Ok(ix)
    }

    /// Uses only the lines `accept` allows (default: every parseable line at or
    /// after 1970).
    pub fn with_accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    /// Sets the per-probe read budget (at least 16 bytes).
    pub fn with_probe_bytes(mut self, probe_bytes: usize) -> Self {
        self.probe_bytes = probe_bytes.max(MIN_PROBE_BYTES);
        self
    }

    /// The per-probe read budget.
    pub fn probe_bytes(&self) -> usize {
        self.probe_bytes
    }

    /// The file length when it was opened; searches never look past it.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The file was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was read so far.
    pub fn stats(&self) -> SearchStats {
        self.stats
    }

    /// The times of the first and of the last parseable lines, reading at most
    /// `probe_bytes` from each end of the file (malformed lines are skipped).
    /// `None` if either end has no parseable line within that budget (an empty
    /// file, a file of garbage, an over-long line at an end).
    ///
    /// These are not the minimum and maximum (with disorder, `first > last` is
    /// possible): every line of the file has a time in
    /// `[first − d, last + d]`, by (A) and (B). Use [`span_overlaps`] to decide
    /// whether a file may hold lines of a range.
    pub fn time_span(&mut self) -> io::Result<Option<(i64, i64)>> {
        let first = match self.probe(0)?.hit {
            Hit::Line { t, .. } => t,
            Hit::Eof | Hit::GaveUp => return Ok(None),
        };
        Ok(self.last_time()?.map(|last| (first, last)))
    }

    /// A line start from which reading sees every line with time `≥ t_ms`:
    /// every line before the returned offset has time `< t_ms`.
    ///
    /// Precisely, the result is 0 or the start of the line right after a
    /// parseable line `P` with `τ(P) < t_ms − d_ms` (the file length if `P` is
    /// the last line). Correctness: `P` itself is `< t_ms`, and by (A) so is
    /// every line before it. `d_ms < 0` counts as 0.
    ///
    /// Search: a probe that finds a line `< t_ms − d_ms` records it and moves
    /// right; any other probe moves left; the lines of the last small interval
    /// are scanned and the last one `< t_ms − d_ms` is taken. Tightness: unless
    /// a probe gave up, every parseable line at or after the result has time
    /// `≥ t_ms − 2·d_ms` (the lines past the left-moving probes follow a line
    /// `≥ t_ms − d_ms`); with `d_ms = 0` and a sorted file the result is the
    /// start of the line after the last line `< t_ms`.
    pub fn seek_to_time(&mut self, t_ms: i64, d_ms: i64) -> io::Result<u64> {
        // Raw times here: an outlier ahead only moves this search left (less
        // tight, never wrong), and skipping it would leave it unread though its
        // own window may be in the range.
        let accept = self.accept;
        self.accept.max_jump_ms = i64::MAX;
        let found = self.seek_raw(t_ms, d_ms);
        self.accept = accept;
        found
    }

    fn seek_raw(&mut self, t_ms: i64, d_ms: i64) -> io::Result<u64> {
        let bound = t_ms.saturating_sub(d_ms.max(0));
        let mut best = 0u64;
        let (mut lo, mut hi) = (0u64, self.len);
        while hi.saturating_sub(lo) > self.probe_bytes as u64 {
            let mid = lo + (hi - lo) / 2;
            match self.probe(mid)?.hit {
                Hit::Line { next, t, .. } if t < bound => {
                    best = best.max(next);
                    lo = next;
                }
                _ => hi = mid,
            }
        }
        self.scan_range(lo, hi, |_, next, t| {
            if t.is_some_and(|t| t < bound) {
                best = best.max(next);
            }
            true
        })?;
        Ok(best)
    }

    /// A line start (or the file length) at and after which no line has time
    /// `< t_ms`: reading up to it sees every line with time `< t_ms` that lies
    /// after any start offset.
    ///
    /// Precisely, the result is the file length or the start of a parseable
    /// line `Q` with `τ(Q) ≥ t_ms + d_ms` — that is, a line whose prefix
    /// maximum is `≥ t_ms + d_ms`. Correctness: `Q` is `≥ t_ms`, and by (B) so
    /// is every line after it. `d_ms < 0` counts as 0. For `from ≤ to`,
    /// `seek_to_time(from, d) ≤ end_offset(to, d)`: such a `Q` cannot come
    /// before such a `P`.
    ///
    /// Search: mirror of [`Self::seek_to_time`]; a probe that finds a line
    /// `≥ t_ms + d_ms` records it and moves left, any other probe moves right
    /// (past a parseable line) or left (inconclusive); the last small interval
    /// is scanned for its first line `≥ t_ms + d_ms`. Tightness: unless a probe
    /// gave up, every parseable line before the result has time
    /// `< t_ms + 2·d_ms`; with `d_ms = 0` and a sorted file the result is the
    /// start of the first line `≥ t_ms`.
    pub fn end_offset(&mut self, t_ms: i64, d_ms: i64) -> io::Result<u64> {
        let bound = t_ms.saturating_add(d_ms.max(0));
        let mut ans = self.len;
        let (mut lo, mut hi) = (0u64, self.len);
        while hi.saturating_sub(lo) > self.probe_bytes as u64 {
            let mid = lo + (hi - lo) / 2;
            match self.probe(mid)?.hit {
                Hit::Line { start, t, .. } if t >= bound => {
                    ans = ans.min(start);
                    hi = mid;
                }
                Hit::Line { next, .. } => lo = next,
                Hit::Eof | Hit::GaveUp => hi = mid,
            }
        }
        // A line at or past the bound counts only once the next parseable line
        // confirms it (the outlier rule, as in [`Self::probe`]).
        let max_jump = self.accept.max_jump_ms;
        let mut pending: Option<(u64, u64, i64)> = None;
        self.scan_range(lo, hi, |start, next, t| {
            let Some(t) = t else { return true };
            if let Some((p_start, _, p_t)) = pending.take() {
                if p_t - t <= max_jump {
                    ans = ans.min(p_start);
                    return false;
                }
            }
            if t >= bound {
                if max_jump == i64::MAX {
                    ans = ans.min(start);
                    return false;
                }
                pending = Some((start, next, t));
            }
            true
        })?;
        if let Some((p_start, p_next, p_t)) = pending {
            // The last candidate's next line lies past the scanned interval.
            let confirmed = match self.probe_raw_time(p_next)? {
                Some(t) => p_t - t <= max_jump,
                None => true,
            };
            if confirmed {
                ans = ans.min(p_start);
            }
        }
        Ok(ans)
    }

    /// Cut points that split `[start, end)` into about `n` byte ranges at line
    /// starts, for reading them as parallel segments.
    ///
    /// `start` and `end` should be line starts (as [`Self::seek_to_time`] and
    /// [`Self::end_offset`] return) or the file length; `end` is clamped to the
    /// file length and `start` to `end`. The result is strictly increasing,
    /// begins with `start`, ends with `end` (a single point if they are equal),
    /// and its interior points are line starts near `start + k·(end − start)/n`;
    /// the segments are its consecutive pairs and tile `[start, end)` exactly.
    /// Fewer than `n` segments come back when lines are long or the range small.
    ///
    /// Each point comes with the time of the first parseable line at or after
    /// it (found within one probe budget; `None` if there is none), which may
    /// lie past the next point when a segment has no parseable line.
    pub fn split_points(
        &mut self,
        start: u64,
        end: u64,
        n: usize,
    ) -> io::Result<Vec<(u64, Option<i64>)>> {
        let end = end.min(self.len);
        let start = start.min(end);
        let n = n.max(1) as u128;
        let mut out = vec![(start, time_of(self.probe(start)?.hit))];
        let span = u128::from(end - start);
        for k in 1..n {
            let target = start + (span * k / n) as u64;
            let last = out.last().map_or(start, |p| p.0);
            if target <= last {
                continue;
            }
            let p = self.probe(target)?;
            match p.at {
                Some(at) if at > last && at < end => out.push((at, time_of(p.hit))),
                _ => {}
            }
        }
        if end > start {
            out.push((end, time_of(self.probe(end)?.hit)));
        }
        Ok(out)
    }

    /// Reads `[off, off + n)` (clipped to the file) into `self.buf`. Returns
    /// whether the window reaches the end of the file.
    fn read_window(&mut self, off: u64, n: usize) -> io::Result<bool> {
        let off = off.min(self.len);
        let n = (n as u64).min(self.len - off) as usize;
        self.buf.clear();
        self.buf.resize(n, 0);
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut self.buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        self.stats.reads += 1;
        self.stats.bytes_read += got as u64;
        // A short read means the file shrank: its end is where the bytes stop.
        Ok(got < n || off + n as u64 >= self.len)
    }

    /// The first parseable line at or after the first line start `≥ x`.
    fn probe(&mut self, x: u64) -> io::Result<Probe> {
        let x = x.min(self.len);
        let (from, skip) = if x == 0 { (0, false) } else { (x - 1, true) };
        let mut w = FIRST_READ.min(self.probe_bytes);
        loop {
            let eof = self.read_window(from, w)?;
            let at = if skip {
                match memchr(b'\n', &self.buf) {
                    Some(i) => Some(from + i as u64 + 1),
                    None if eof => Some(from + self.buf.len() as u64),
                    None => None,
                }
            } else {
                Some(from)
            };
            let (mut found, mut candidate) = (None, None);
            let (parser, accept) = (&mut *self.parser, self.accept);
            let walk = for_each_line(&self.buf, skip, eof, |s, n, line| {
                let Some(t) = parse_time(parser, line, &accept) else {
                    return true;
                };
                let hit = Hit::Line {
                    start: from + s as u64,
                    next: from + n as u64,
                    t,
                };
                match candidate {
                    // The outlier rule: a line more than `max_jump` ahead of the
                    // next one does not move a run's watermark, so it must not
                    // steer a search either; the next line takes its place.
                    Some(Hit::Line { t: c, .. }) if c - t > accept.max_jump_ms => {
                        candidate = Some(hit);
                        true
                    }
                    Some(confirmed) => {
                        found = Some(confirmed);
                        false
                    }
                    None if accept.max_jump_ms == i64::MAX => {
                        found = Some(hit);
                        false
                    }
                    None => {
                        candidate = Some(hit);
                        true
                    }
                }
            });
            let hit = match (found, walk) {
                (Some(hit), _) => hit,
                // The file's last parseable line has nothing to be judged against.
                (None, Walk::End) => candidate.unwrap_or(Hit::Eof),
                (None, _) if w < self.probe_bytes => {
                    w = w.saturating_mul(2).min(self.probe_bytes);
                    continue;
                }
                // No next line within the budget: take the line as it is.
                (None, _) => candidate.unwrap_or(Hit::GaveUp),
            };
            return Ok(Probe { at, hit });
        }
    }

    /// The time of the first parseable line at or after the line start `x`,
    /// unjudged (`None` at the end of the file or past the probe budget).
    fn probe_raw_time(&mut self, x: u64) -> io::Result<Option<i64>> {
        let accept = self.accept;
        self.accept.max_jump_ms = i64::MAX;
        let probe = self.probe(x);
        self.accept = accept;
        Ok(time_of(probe?.hit))
    }

    /// Calls `f(start, next, time)` for the lines that start in `[lo, hi)`, in
    /// order, while it returns true; `lo` should be a line start (or 0), and
    /// `hi − lo` at most about `probe_bytes`. Stops early at a line that does
    /// not end within `probe_bytes` past `hi`.
    fn scan_range(
        &mut self,
        lo: u64,
        hi: u64,
        mut f: impl FnMut(u64, u64, Option<i64>) -> bool,
    ) -> io::Result<()> {
        if lo >= hi {
            return Ok(());
        }
        let (from, skip) = if lo == 0 { (0, false) } else { (lo - 1, true) };
        let w = usize::try_from(hi - from)
            .unwrap_or(usize::MAX)
            .saturating_add(self.probe_bytes);
        let eof = self.read_window(from, w)?;
        let (parser, accept) = (&mut *self.parser, self.accept);
        for_each_line(&self.buf, skip, eof, |s, n, line| {
            let start = from + s as u64;
            start < hi && f(start, from + n as u64, parse_time(parser, line, &accept))
        });
        Ok(())
    }

    /// The time of the last parseable line within `probe_bytes` of the end.
    fn last_time(&mut self) -> io::Result<Option<i64>> {
        let mut w = FIRST_READ.min(self.probe_bytes);
        loop {
            // One byte more than `w`, so that a line starting `w` bytes from the
            // end is seen to start there (as a probe reads from `x - 1`).
            let from = self.len.saturating_sub(w as u64 + 1);
            self.read_window(from, w + 1)?;
            let skip = from > 0;
            if let Some(t) = last_parsed(self.parser, &self.buf, skip, &self.accept) {
                return Ok(Some(t));
            }
            if from == 0 || w >= self.probe_bytes {
                return Ok(None);
            }
            w = w.saturating_mul(2).min(self.probe_bytes);
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn time_of(hit: Hit) -> Option<i64> {
    match hit {
        Hit::Line { t, .. } => Some(t),
        Hit::Eof | Hit::GaveUp => None,
    }
}

/// Which lines a search may use: exactly those a run would count. A line the run
/// refuses (stamped before 1970 or more than `max_clock_skew` ahead of the clock,
/// or longer than `max_line_bytes`) must not steer a search either — a line dated
/// 2099 would otherwise make a whole file look later than the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// Latest acceptable time: the wall clock plus the job's `max_clock_skew`.
    pub max_ms: i64,
    /// Longest acceptable line (without `\n` and one `\r`).
    pub max_line_bytes: usize,
    /// The job's `max_jump`: a line more than this ahead of the next parseable
    /// line is an outlier a run does not let move its watermark, so it steers no
    /// search (`i64::MAX`: every line is taken as it is).
    pub max_jump_ms: i64,
}

impl Default for Accept {
    /// Every parseable line stamped at or after 1970.
    fn default() -> Self {
        Accept {
            max_ms: i64::MAX,
            max_line_bytes: usize::MAX,
            max_jump_ms: i64::MAX,
        }
    }
}

/// The event time of one line (without its `'\n'`; a trailing `'\r'` is
/// dropped), if the line is one a run would count.
pub(crate) fn parse_time(parser: &mut LineParser, line: &[u8], accept: &Accept) -> Option<i64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > accept.max_line_bytes {
        return None;
    }
    let t = parser.parse(line).ok().map(|p| p.event_ms())?;
    (0..=accept.max_ms).contains(&t).then_some(t)
}

/// Calls `f(start, next, line)` for each line of `buf`, in order, while it
/// returns true. `start`/`next` are positions in `buf` (`next` is after the
/// `'\n'`), `line` excludes the `'\n'`. With `skip`, the window began inside a
/// line: bytes up to the first `'\n'` are not a line. Without `eof`, an
/// unterminated tail is not a line (it may continue past the window).
fn for_each_line(
    buf: &[u8],
    skip: bool,
    eof: bool,
    mut f: impl FnMut(usize, usize, &[u8]) -> bool,
) -> Walk {
    let mut s = 0;
    if skip {
        match memchr(b'\n', buf) {
            Some(i) => s = i + 1,
            None if eof => return Walk::End,
            None => return Walk::Short,
        }
    }
    while s < buf.len() {
        let (end, next) = match memchr(b'\n', &buf[s..]) {
            Some(i) => (s + i, s + i + 1),
            None if eof => (buf.len(), buf.len()),
            None => return Walk::Short,
        };
        if !f(s, next, &buf[s..end]) {
            return Walk::Stopped;
        }
        s = next;
    }
    if eof {
        Walk::End
    } else {
        Walk::Short
    }
}

/// The time of the last parseable line of `buf`, a window that ends at the end
/// of the file (with `skip`, it began inside a line).
fn last_parsed(parser: &mut LineParser, buf: &[u8], skip: bool, accept: &Accept) -> Option<i64> {
    // A final '\n' ends the last line; it does not begin an empty one.
    let mut end = match buf.last() {
        Some(b'\n') => buf.len() - 1,
        _ => buf.len(),
    };
    loop {
        match memrchr(b'\n', &buf[..end]) {
            Some(i) => {
                if let Some(t) = parse_time(parser, &buf[i + 1..end], accept) {
                    return Some(t);
                }
                end = i;
            }
            None if skip => return None,
            None => return parse_time(parser, &buf[..end], accept),
        }
    }
}

/// Whether a file whose [`time_span`] is `span` may hold a line with time in
/// `[from_ms, to_ms)`, given the disorder bound `d_ms`: every line of it lies in
/// `[first − d, last + d]` (see (A) and (B) in the module docs). A file for
/// which this is false can be skipped.
pub fn span_overlaps(span: (i64, i64), from_ms: i64, to_ms: i64, d_ms: i64) -> bool {
    let d = d_ms.max(0);
    let (first, last) = span;
    from_ms < to_ms && first.saturating_sub(d) < to_ms && last.saturating_add(d) >= from_ms
}

/// Whether the file at `path` starts with the gzip magic bytes (an empty or
/// one-byte file does not).
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    is_gzip_file(&File::open(path)?)
}

/// [`is_gzip`] of a file already open (positioned reads: its offset is untouched).
pub fn is_gzip_file(file: &File) -> io::Result<bool> {
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got == 2 && head == GZIP_MAGIC)
}

/// [`TimeIndex::time_span`] of the file at `path`.
pub fn time_span(path: &Path, parser: &mut LineParser) -> io::Result<Option<(i64, i64)>> {
    TimeIndex::open(path, parser)?.time_span()
}

/// [`TimeIndex::seek_to_time`] in the file at `path`.
pub fn seek_to_time(path: &Path, parser: &mut LineParser, t_ms: i64, d_ms: i64) -> io::Result<u64> {
    TimeIndex::open(path, parser)?.seek_to_time(t_ms, d_ms)
}

/// [`TimeIndex::end_offset`] in the file at `path`.
pub fn end_offset(path: &Path, parser: &mut LineParser, t_ms: i64, d_ms: i64) -> io::Result<u64> {
    TimeIndex::open(path, parser)?.end_offset(t_ms, d_ms)
}

/// [`TimeIndex::split_points`] of the file at `path`.
pub fn split_points(
    path: &Path,
    parser: &mut LineParser,
    start: u64,
    end: u64,
    n: usize,
) -> io::Result<Vec<(u64, Option<i64>)>> {
    TimeIndex::open(path, parser)?.split_points(start, end, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_jobs::{Format, Parse, TimeFormat};

    fn parser() -> LineParser {
        let cfg = Parse {
            format: Format::Logfmt,
            timestamp_field: "ts".into(),
            timestamp_format: TimeFormat::EpochMillis,
        };
        LineParser::new(&cfg, &[]).unwrap()
    }

    fn lines(buf: &[u8], skip: bool, eof: bool) -> (Vec<(usize, usize, Vec<u8>)>, Walk) {
        let mut out = Vec::new();
        let walk = for_each_line(buf, skip, eof, |s, n, l| {
            out.push((s, n, l.to_vec()));
            true
        });
        (out, walk)
    }

    #[test]
    fn walk_lines_of_windows() {
        let (ls, w) = lines(b"ab\ncd\nef", false, true);
        assert_eq!(w, Walk::End);
        assert_eq!(ls.len(), 3);
        assert_eq!(ls[2], (6, 8, b"ef".to_vec()));
        let (ls, w) = lines(b"ab\ncd\nef", false, false);
        assert_eq!((ls.len(), w), (2, Walk::Short));
        let (ls, w) = lines(b"ab\ncd\n", true, true);
        assert_eq!(ls, vec![(3, 6, b"cd".to_vec())]);
        assert_eq!(w, Walk::End);
        assert_eq!(lines(b"abc", true, false).1, Walk::Short);
        assert_eq!(lines(b"abc", true, true), (vec![], Walk::End));
        assert_eq!(lines(b"", false, true), (vec![], Walk::End));
        let (ls, _) = lines(b"\n\n", false, true);
        assert_eq!(ls.len(), 2);
    }

    #[test]
    fn last_parsed_from_the_end() {
        let mut p = parser();
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nts=2\n", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nts=2", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\r\nts=2\r\n", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nxx\n\n\xff\n", false, &Accept::default()),
            Some(1)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nxx\n", true, &Accept::default()),
            None
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1", false, &Accept::default()),
            Some(1)
        );
        assert_eq!(last_parsed(&mut p, b"ts=1", true, &Accept::default()), None);
        assert_eq!(last_parsed(&mut p, b"", false, &Accept::default()), None);
        assert_eq!(last_parsed(&mut p, b"\n", false, &Accept::default()), None);
    }

    #[test]
    fn span_overlap_rules() {
        // Lines lie in [first - d, last + d].
        assert!(span_overlaps((100, 200), 150, 160, 0));
        assert!(!span_overlaps((100, 200), 201, 300, 0));
        assert!(span_overlaps((100, 200), 201, 300, 1));
        assert!(!span_overlaps((100, 200), 0, 100, 0));
        assert!(span_overlaps((100, 200), 0, 101, 0));
        assert!(span_overlaps((100, 200), 0, 100, 1));
        assert!(!span_overlaps((100, 200), 150, 150, 10));
        assert!(span_overlaps((i64::MIN, i64::MAX), 0, 1, i64::MAX));
    }
}
