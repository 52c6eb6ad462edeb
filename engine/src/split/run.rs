//! Reading one segment of a split group: with the group's true clock (the
//! segments before it are done), or speculatively from a fresh clock, holding
//! everything it counted until [`super::spec::confirm`] says it is exact.
//!
//! Per line it does what a file group does in a run without checkpoints
//! (`crate::group`): stamp, judge against the clock, count late lines and
//! outliers, add the rest to their windows.

use std::io;
use std::path::{Path, PathBuf};

use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::LineParser;
use tidemark_sources::replay::RangeReader;

use super::spec::{confirm, Head};
use crate::agg::{explain, stamp, OpenWindows};
use crate::plan::{HostPlan, Plan};
use crate::replay::segment::open_planned;
use crate::replay::Segment;
use crate::series::HostPartial;
use crate::stats::{JobStats, SharedStats};
use crate::time::{first_open_window, window_start, EventMs, WindowTime};
use crate::watermark::{ClockState, GroupClock};

/// Bad lines and outliers logged per segment before the rest are only counted.
const MAX_WARNINGS: u32 = 10;

/// Whose clock a read runs on.
enum Mode {
    /// The group's true clock: what it counts is final, handed on as it goes.
    True,
    /// A fresh clock, the true start not yet known: the lines' times are kept,
    /// and nothing is handed on until confirmed.
    Speculative(Head),
}

/// The files of a split group that could not be read to the end, as a file
/// group lists them (`JobStats::unreadable_files`). Kept whole per group: a
/// publication replaces the group's list, and its segments are handed on by
/// several workers.
#[derive(Default)]
pub(crate) struct Unreadable {
    files: Vec<(PathBuf, String)>,
    unpublished: bool,
}

impl Unreadable {
    /// Publishes the group's whole list if it grew. Called with the group's
    /// chain locked, so that publications of one group are in order and none
    /// replaces a longer list with a shorter one.
    pub fn publish(&mut self, live: &Path, stats: &SharedStats) {
        if !std::mem::take(&mut self.unpublished) {
            return;
        }
        if let Ok(mut s) = stats.lock() {
            s.unreadable_files
                .insert(live.to_path_buf(), self.files.clone());
        }
    }
}

/// One segment being read (or read, and waiting to be confirmed).
pub(crate) struct SplitRun {
    /// Index of its group in the [`super::SplitPlan`].
    pub group: usize,
    seg: Segment,
    reader: RangeReader,
    wm: GroupClock,
    mode: Mode,
    windows: OpenWindows,
    /// What it counted; handed on at each read when true, on confirmation otherwise.
    stats: JobStats,
    warnings: u32,
    bytes_seen: u64,
    oversize_seen: u64,
    finished: bool,
    /// A damaged gzip file and why, as the group lists it among its unreadable
    /// files: handed on with the stats (not before the read is confirmed).
    damaged: Option<(PathBuf, String)>,
}

impl SplitRun {
    /// Opens `seg` of group `group`: from the true clock state `start`, or
    /// speculatively when it is not known yet (`None`). A plain file's last
    /// segment (`to_eof`) reads on past its planned end to the file's end.
    pub fn open(
        group: usize,
        seg: Segment,
        to_eof: bool,
        start: Option<ClockState>,
        plan: &Plan,
        max_line_bytes: usize,
    ) -> io::Result<SplitRun> {
        let file = open_planned(&seg)?;
        let reader = if seg.gzip {
            RangeReader::gzip_file(file, &seg.path, max_line_bytes)?
        } else {
            let r = RangeReader::plain_file(file, &seg.path, seg.start, seg.end, max_line_bytes)?;
            if to_eof {
                r.to_eof()
            } else {
                r
            }
        };
        let (wm, mode) = match start {
            Some(s) => (
                GroupClock::restored(plan.disorder_ms, plan.max_jump_ms, s),
                Mode::True,
            ),
            None => (
                GroupClock::new(plan.disorder_ms, plan.max_jump_ms),
                Mode::Speculative(Head::default()),
            ),
        };
        Ok(SplitRun {
            group,
            seg,
            reader,
            wm,
            mode,
            windows: OpenWindows::default(),
            stats: JobStats::default(),
            warnings: 0,
            bytes_seen: 0,
            oversize_seen: 0,
            finished: false,
            damaged: None,
        })
    }

    /// Windows it holds (not yet handed on).
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    pub fn seq(&self) -> u32 {
        self.seg.seq
    }

    pub fn is_true(&self) -> bool {
        matches!(self.mode, Mode::True)
    }

    /// The true clock's state now (meaningful once true).
    pub fn clock(&self) -> ClockState {
        self.wm.state()
    }

    /// The window its clock leaves open (meaningful once true).
    pub fn watermark_window(&self, window_ms: i64) -> WindowTime {
        first_open_window(self.wm.get(), window_ms)
    }

    /// Checks a speculative read against the true clock state at its start: on
    /// success it is true from now on (see [`confirm`]); `false` means it must
    /// be read again from `start`.
    pub fn confirm(&mut self, start: ClockState, plan: &Plan) -> bool {
        let Mode::Speculative(head) = &self.mode else {
            return true;
        };
        match confirm(head, start, &self.wm, plan.disorder_ms, plan.max_jump_ms) {
            Some(truth) => {
                self.wm = truth;
                self.mode = Mode::True;
                true
            }
            None => false,
        }
    }

    /// Reads about `budget` bytes; returns whether the segment is finished.
    pub fn read(
        &mut self,
        budget: usize,
        parser: &mut LineParser,
        plan: &Plan,
        wall_ms: EventMs,
    ) -> io::Result<bool> {
        let SplitRun {
            seg,
            reader,
            wm,
            mode,
            windows,
            stats,
            warnings,
            ..
        } = self;
        let future_limit = wall_ms.saturating_add(plan.max_clock_skew_ms);
        let mut lines = 0u64;
        let mut head = match mode {
            Mode::Speculative(h) => Some(h),
            Mode::True => None,
        };
        let result = reader.read_some(budget, |_, line| {
            lines += 1;
            let (parsed, t) = match stamp(parser, line, future_limit, stats) {
                Ok(p) => p,
                Err(reason) => {
                    warn(warnings, seg, &format!("skipped line ({})", explain(reason)), line);
                    return;
                }
            };
            if let Some(h) = head.as_mut() {
                h.push(t);
            }
            let seen = wm.see(t);
            if let Some(outlier) = seen.outlier {
                stats.outlier_lines += 1;
                let text = format!(
                    "an earlier line stamped {} is not confirmed by this line: counted as an outlier",
                    crate::time::format_ms(outlier)
                );
                warn(warnings, seg, &text, line);
            }
            if seen.late {
                stats.late_lines += 1;
                return;
            }
            let start = window_start(t, plan.window_ms);
            let host = match (&plan.host, seg.host.as_deref()) {
                (HostPlan::Field(slot), _) => parsed.field(*slot).unwrap_or(""),
                (HostPlan::PerGroup, Some(h)) => h,
                (HostPlan::PerGroup, None) => "",
            };
            stats.lines_counted += 1;
            windows.add(plan, &parsed, t, start, host, stats);
        });
        self.stats.lines_read += lines;
        let (b, o) = (self.reader.bytes_read(), self.reader.oversize_lines());
        self.stats.bytes_read += b - self.bytes_seen;
        self.stats.oversize_lines += o - self.oversize_seen;
        (self.bytes_seen, self.oversize_seen) = (b, o);
        let done = match result {
            Ok(done) => done,
            Err(e) if self.seg.gzip => {
                // As in a file group: the lines before the damage count.
                // Counted, listed and worded as the tailer does without follow
                // (`tidemark_sources::tail`, `damaged_gzip`), so that the run
                // fails as a sequential read of the group does.
                let line_off = self.reader.complete_line_bytes();
                let lost = format!(
                    "compressed data ends early after {line_off} bytes ({e}); the rest is lost"
                );
                tracing::warn!(
                    "{}: cannot be read ({lost}); its lines are missing from this run, which \
                     ends with an error listing it",
                    EscapedPath(&self.seg.path)
                );
                self.stats.damaged_gzip_files += 1;
                self.stats.file_open_errors += 1;
                self.damaged = Some((self.seg.path.clone(), lost));
                true
            }
            Err(e) => return Err(e),
        };
        self.finished = done;
        Ok(done)
    }

    /// A true read hands on what it counted: its stats into `delta`, and the
    /// windows its clock has passed (all of them once finished) as partials.
    /// A damaged gzip file goes to `unreadable`, the group's list.
    /// A speculative read keeps all of it.
    pub fn hand_on(
        &mut self,
        window_ms: i64,
        delta: &mut JobStats,
        unreadable: &mut Unreadable,
        mut emit: impl FnMut(WindowTime, HostPartial),
    ) {
        if !self.is_true() {
            return;
        }
        delta.add(&std::mem::take(&mut self.stats));
        if let Some(file) = self.damaged.take() {
            unreadable.files.push(file);
            unreadable.unpublished = true;
        }
        let below = (!self.finished).then(|| first_open_window(self.wm.get(), window_ms));
        let (group, seq) = (&self.seg.group, self.seg.seq);
        self.windows
            .drain(below, |t, s| emit(t, s.into_partial(group, seq)));
    }
}

fn warn(warnings: &mut u32, seg: &Segment, reason: &str, line: &[u8]) {
    *warnings += 1;
    if *warnings <= MAX_WARNINGS {
        let shown = &line[..line.len().min(160)];
        tracing::warn!(
            "{} (a line after byte {}): {reason}: {:?}{}",
            EscapedPath(&seg.path),
            seg.start,
            String::from_utf8_lossy(shown),
            if *warnings == MAX_WARNINGS {
                " — further such lines in this segment are only counted"
            } else {
                ""
            }
        );
    }
}
