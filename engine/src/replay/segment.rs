//! Reading one replay segment into per-window partials.
//!
//! A segment keeps its own watermark (with the live run's rule for lines that jump
//! ahead, see `crate::watermark`), starting at its first line, and drops lines
//! below it as late — as the live run does — and lines below the segment's floor
//! (its first line's time minus the disorder bound), which the live run would have
//! dropped too and which would otherwise reach a window the dataflow has passed.
//! Lines outside the replay range are read (they move the watermark) but not
//! counted into any window.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::LineParser;
use tidemark_sources::replay::RangeReader;

use crate::agg::{explain, stamp, OpenWindows};
use crate::plan::{HostPlan, Plan};
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{first_open_window, window_start, EventMs, WindowTime};
use crate::watermark::GroupClock;

use super::plan::Segment;
use super::range::ReplayRange;

/// Bad lines logged per worker before the rest are only counted.
pub const MAX_WARNINGS: u32 = 10;

/// What a worker adds up over the segments it reads.
#[derive(Debug, Default)]
pub struct Tally {
    /// File bytes consumed (compressed for gzip), for progress.
    pub file_bytes: u64,
    /// Bad lines logged so far (after [`MAX_WARNINGS`], only counted).
    pub warnings: u32,
    /// The line buffer of the last segment put down, for the next one picked up.
    pub spare: Option<Vec<u8>>,
}

/// How a [`SegmentRun::read`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The segment is read to its end.
    Finished,
    /// Its watermark reached the turn's stop (event-time pacing): the reader is
    /// put down until its next turn when it can be picked up again exactly.
    Paced,
    /// The byte budget ran out.
    Budget,
}

/// A segment's line buffer for a turn: about what its last turn read, within
/// these bounds. A small host's turn of a few windows is a few KiB: a 256 KiB
/// buffer would be zeroed (and mostly re-read later) for each one.
const TURN_BUFFER: (usize, usize) = (16 << 10, 256 << 10);

pub struct SegmentRun {
    seg: Segment,
    /// `None` between turns (put down, see [`ReadEnd::Paced`]): the next turn
    /// opens the file again at `resume_at`.
    reader: Option<RangeReader>,
    resume_at: u64,
    lines_before: Option<u64>,
    max_line_bytes: usize,
    wm: GroupClock,
    windows: OpenWindows,
    range: ReplayRange,
    window_ms: i64,
    /// Of the current reader: what it had counted at the last read.
    progress_seen: u64,
    bytes_seen: u64,
    oversize_seen: u64,
    /// Plain: where the current reader started, and the bytes of the segment
    /// counted so far (up to its first line not delivered: the bytes a reader
    /// put down had read past it are read again, and counted once).
    reader_from: u64,
    consumed: u64,
    /// File bytes the last turn consumed (sizes the next turn's buffer).
    turn_bytes: u64,
    finished: bool,
}

impl SegmentRun {
    pub fn open(
        seg: Segment,
        range: ReplayRange,
        plan: &Plan,
        max_line_bytes: usize,
    ) -> io::Result<SegmentRun> {
        let mut run = SegmentRun {
            resume_at: seg.start,
            seg,
            reader: None,
            lines_before: None,
            max_line_bytes,
            wm: GroupClock::new(plan.disorder_ms, plan.max_jump_ms),
            windows: OpenWindows::default(),
            range,
            window_ms: plan.window_ms,
            progress_seen: 0,
            bytes_seen: 0,
            oversize_seen: 0,
            reader_from: 0,
            consumed: 0,
            turn_bytes: TURN_BUFFER.0 as u64 * 4,
            finished: false,
        };
        run.reader = Some(run.pick_up(&mut None)?);
        run.reader_from = run.resume_at;
        Ok(run)
    }

    /// A reader from where the segment was put down (its start at first), in
    /// `spare` if there is one.
    fn pick_up(&self, spare: &mut Option<Vec<u8>>) -> io::Result<RangeReader> {
        let seg = &self.seg;
        let file = open_planned(seg)?;
        if seg.gzip {
            return RangeReader::gzip_file(file, &seg.path, self.max_line_bytes);
        }
        let buffer = (self.turn_bytes as usize).clamp(TURN_BUFFER.0, TURN_BUFFER.1);
        let range = (self.resume_at, seg.end);
        let max = self.max_line_bytes;
        let r = match spare.take() {
            Some(buf) => RangeReader::plain_file_reusing(file, &seg.path, range, max, buffer, buf),
            None => {
                RangeReader::plain_file_buffered(file, &seg.path, range.0, range.1, max, buffer)
            }
        }?;
        if self.resume_at == seg.start {
            // Its first reader numbers lines itself (from the file's start).
            return Ok(r);
        }
        Ok(r.numbered_after(self.lines_before))
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Windows it holds open (for tests of the memory bound).
    #[cfg(test)]
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Whether it is read to its end.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Where it stands for pacing: its watermark, or before its first line the
    /// start of the first window it can add to.
    pub fn position(&self) -> EventMs {
        self.wm.get().unwrap_or(self.seg.lo as EventMs)
    }

    /// Reads about `budget` bytes, stopping after the line that takes its
    /// watermark to `stop_at` (event-time pacing; [`EventMs::MAX`]: no stop).
    /// Adds the file bytes consumed to `tally`. Put down, it leaves its buffer
    /// in `tally.spare` for the next segment picked up.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &mut self,
        budget: usize,
        stop_at: EventMs,
        parser: &mut LineParser,
        plan: &Plan,
        wall_ms: EventMs,
        stats: &mut JobStats,
        tally: &mut Tally,
    ) -> io::Result<ReadEnd> {
        if self.finished {
            return Ok(ReadEnd::Finished);
        }
        let reader = match &mut self.reader {
            Some(r) => r,
            None => {
                let r = self.pick_up(&mut tally.spare)?;
                (self.progress_seen, self.bytes_seen, self.oversize_seen) = (0, 0, 0);
                self.reader_from = self.resume_at;
                self.turn_bytes = 0;
                self.reader.insert(r)
            }
        };
        let warnings = &mut tally.warnings;
        let SegmentRun {
            seg,
            wm,
            windows,
            range,
            ..
        } = self;
        let future_limit = wall_ms.saturating_add(plan.max_clock_skew_ms);
        let mut lines = 0u64;
        let result = reader.read_some_until(budget, |line_no, line| {
            lines += 1;
            ingest(
                seg,
                *range,
                plan,
                parser,
                wm,
                windows,
                warnings,
                stats,
                future_limit,
                line_no,
                line,
            );
            if wm.get().is_some_and(|w| w >= stop_at) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        stats.lines_read += lines;
        let (p, b, o) = (
            reader.progress_bytes(),
            reader.bytes_read(),
            reader.oversize_lines(),
        );
        if self.seg.gzip {
            // Never put down: its reader counts every byte once.
            tally.file_bytes += p - self.progress_seen;
            stats.bytes_read += b - self.bytes_seen;
        } else {
            let at = reader.resume_offset().unwrap_or(self.reader_from + p);
            let done = at - self.seg.start;
            let new = done.saturating_sub(self.consumed);
            self.consumed = self.consumed.max(done);
            tally.file_bytes += new;
            self.turn_bytes += new;
            stats.bytes_read += new;
        }
        stats.oversize_lines += o - self.oversize_seen;
        (self.progress_seen, self.bytes_seen, self.oversize_seen) = (p, b, o);
        if result? {
            self.finished = true;
            self.reader = None;
            return Ok(ReadEnd::Finished);
        }
        if self.wm.get().is_none_or(|w| w < stop_at) {
            return Ok(ReadEnd::Budget);
        }
        stats.paced_turns += 1;
        if let Some(at) = reader.resume_offset() {
            // Waiting for the others, it holds no descriptor and no buffer.
            self.resume_at = at;
            self.lines_before = reader.lines_seen();
            if let Some(r) = self.reader.take() {
                let buf = r.into_buffer();
                // One grown for a long line is not kept.
                if buf.capacity() <= TURN_BUFFER.1 {
                    tally.spare = Some(buf);
                }
            }
        }
        Ok(ReadEnd::Paced)
    }

    /// Ends the segment where it is (a damaged compressed file: the lines before
    /// the damage count, as in a live run).
    pub fn end_early(&mut self) {
        self.finished = true;
        self.reader = None;
    }

    /// The earliest window this segment may still add to.
    pub fn open_from(&self) -> WindowTime {
        if self.finished {
            return WindowTime::MAX;
        }
        first_open_window(self.wm.get(), self.window_ms).max(self.seg.lo)
    }

    /// The earliest window it may still add to, finished or not: what it
    /// contributes to where the input ends ([`crate::input_end`]).
    pub fn watermark_window(&self) -> WindowTime {
        first_open_window(self.wm.get(), self.window_ms).max(self.seg.lo)
    }

    /// Hands out the windows this segment can no longer add to (all of them once
    /// finished), as partials of its stream.
    pub fn drain(&mut self, mut emit: impl FnMut(WindowTime, HostPartial)) {
        let below = (!self.finished).then(|| first_open_window(self.wm.get(), self.window_ms));
        let (group, seq) = (&self.seg.group, self.seg.seq);
        self.windows
            .drain(below, |t, s| emit(t, s.into_partial(group, seq)));
    }
}

/// Opens the file the segment was planned on. A log rotated since (renamed
/// within its folder) is found by inode; one that is gone — compressed or
/// deleted — is an error, never another file's bytes read as its own.
pub(crate) fn open_planned(seg: &Segment) -> io::Result<File> {
    let planned = |f: &File| {
        f.metadata()
            .is_ok_and(|m| m.dev() == seg.dev && m.ino() == seg.ino)
    };
    if let Ok(f) = File::open(&seg.path) {
        if planned(&f) {
            return Ok(f);
        }
    }
    let dir = seg.path.parent().unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(dir)?.flatten() {
        let same = entry
            .metadata()
            .is_ok_and(|m| m.dev() == seg.dev && m.ino() == seg.ino);
        if same {
            let f = File::open(entry.path())?;
            if planned(&f) {
                return Ok(f);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "the file planned as {} (inode {}) is gone: it was compressed or deleted during the replay; run the replay again",
            EscapedPath(&seg.path),
            seg.ino
        ),
    ))
}

#[allow(clippy::too_many_arguments)]
fn ingest(
    seg: &Segment,
    range: ReplayRange,
    plan: &Plan,
    parser: &mut LineParser,
    wm: &mut GroupClock,
    windows: &mut OpenWindows,
    warnings: &mut u32,
    stats: &mut JobStats,
    future_limit: EventMs,
    line_no: u64,
    line: &[u8],
) {
    let mut warn = |reason: &str, line: &[u8]| {
        *warnings += 1;
        if *warnings <= MAX_WARNINGS {
            let shown = &line[..line.len().min(160)];
            tracing::warn!(
                "{}:{}: skipped line ({reason}): {:?}{}",
                EscapedPath(&seg.path),
                if line_no > 0 {
                    line_no.to_string()
                } else {
                    format!("(a line after byte {})", seg.start)
                },
                String::from_utf8_lossy(shown),
                if *warnings == MAX_WARNINGS {
                    " — further bad lines are only counted"
                } else {
                    ""
                }
            );
        }
    };
    let (parsed, t) = match stamp(parser, line, future_limit, stats) {
        Ok(p) => p,
        Err(reason) => {
            warn(explain(reason), line);
            return;
        }
    };
    let seen = wm.see(t);
    if let Some(outlier) = seen.outlier {
        stats.outlier_lines += 1;
        *warnings += 1;
        if *warnings <= MAX_WARNINGS {
            tracing::warn!(
                "{} (a line after byte {}): an earlier line stamped {} is not confirmed by the \
                 next line: counted as an outlier (kept in its own window; it did not move \
                 the watermark)",
                EscapedPath(&seg.path),
                seg.start,
                crate::time::format_ms(outlier)
            );
        }
    }
    if seen.late || seg.floor_ms.is_some_and(|f| t < f) {
        stats.late_lines += 1;
        return;
    }
    if t < range.from_ms() || t >= range.to_ms() {
        return;
    }
    let start = window_start(t, plan.window_ms);
    let host = match (&plan.host, seg.host.as_deref()) {
        (HostPlan::Field(slot), _) => parsed.field(*slot).unwrap_or(""),
        (HostPlan::PerGroup, Some(h)) => h,
        (HostPlan::PerGroup, None) => "",
    };
    windows.add(plan, &parsed, t, start, host, stats);
}
