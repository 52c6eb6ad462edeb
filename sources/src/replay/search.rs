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
use std::path::Path;

use super::files::GZIP_MAGIC;
pub use super::files::{is_gzip, is_gzip_file, span_overlaps};
pub use super::lines::Accept;
use super::lines::{time_of, Hit};
use crate::parse::LineParser;

// Reading windows of the file and probing them for a line's time.
mod probe;

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
