//! One file group's share of stage 1: read lines in rotation order, parse, stamp
//! event time, drop late lines, and aggregate per (window, metric, host, labels).
//!
//! This is plain code with no dataflow in it, so it can be tested directly; the
//! source operator drives a set of these and turns closed windows into records.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tidemark_sources::file::AllowedRoots;
use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::LineParser;
use tidemark_sources::tail::{ReadStatus, TailCounters, TailOptions, Tailer};

use crate::agg::{stamp, OpenWindows};
use crate::plan::{HostPlan, Plan};
use crate::resume::{KeptLine, Resume, ResumeBoard, WindowMarks};
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{first_open_window, window_start, EventMs, WindowTime};
use crate::watermark::{ClockState, GroupClock, Lag, LagWatch};

mod line;

use line::{ingest_line, LineCtx, Warnings};

/// How a group starts.
pub struct GroupInit {
    pub live: PathBuf,
    /// Host from the path or a fixed value; `None` when it is a per-line field.
    pub fixed_host: Option<String>,
    /// Where a previous run left off (from its checkpoint).
    pub resume: Option<Resume>,
    /// With no resume point, start at the end of the live file.
    pub start_at_end: bool,
    /// Windows below this are already in the sinks: their lines are skipped.
    pub skip_below: EventMs,
    /// Lines below this are late (a group found after its worker moved on).
    pub floor: Option<EventMs>,
    /// Keep resume marks (only when checkpoints are written).
    pub track_resume: bool,
    /// The folders the job may read from (canonical; any path when empty): a file
    /// whose real path is outside them is skipped, never read.
    pub roots: AllowedRoots,
}

pub struct GroupState {
    live: PathBuf,
    /// The live path as text: the fold order of this group's partials (shared by
    /// all of them).
    group_key: Arc<str>,
    reader: Tailer,
    parser: LineParser,
    plan: Arc<Plan>,
    board: Arc<ResumeBoard>,
    marks: WindowMarks,
    track_resume: bool,
    skip_below: EventMs,
    /// Resumed where reading had got to: a line below `skip_below` is new, and
    /// its window is already written (see [`Resume::at_tail`]).
    resumed_at_tail: bool,
    late_after_written_warnings: u32,
    /// Lines a checkpoint kept (see [`KeptLine`]), added back to their windows
    /// at the first read.
    to_restore: Vec<KeptLine>,
    counters: TailCounters,
    /// Host from the path or a fixed value; `None` when it is a per-line field.
    fixed_host: Option<String>,
    wm: GroupClock,
    /// Live mode: whether this group's clock trails the wall clock.
    lag: LagWatch,
    windows: OpenWindows,
    idle_since: Option<Instant>,
    finished: bool,
    warnings: u32,
    /// [`Tailer::unreadable_changes`] when last copied into the stats.
    unreadable_seen: u64,
    outlier_warnings: u32,
}

impl GroupState {
    pub fn new(
        init: GroupInit,
        plan: Arc<Plan>,
        parser: LineParser,
        tail: TailOptions,
        board: Arc<ResumeBoard>,
    ) -> GroupState {
        if let Some(Resume {
            position: Some(p),
            max_seen_ms,
            ..
        }) = &init.resume
        {
            tracing::info!(
                "{}: resuming in {} at byte {} (inode {}), max event time {:?}",
                EscapedPath(&init.live),
                EscapedPath(&p.path),
                p.offset,
                p.file.ino,
                max_seen_ms
            );
        }
        let (position, saved, resumed_at_tail, to_restore) = match init.resume {
            Some(r) => (r.position.clone(), r.clock(), r.at_tail, r.kept),
            None => (None, ClockState::default(), false, Vec::new()),
        };
        let mut wm = GroupClock::restored(plan.disorder_ms, plan.max_jump_ms, saved);
        if let Some(f) = init.floor {
            wm.raise_to(f);
        }
        let reader = if position.is_none() && init.start_at_end {
            Tailer::at_end(init.live.clone(), tail)
        } else {
            Tailer::new(init.live.clone(), tail, position)
        }
        .with_allowed_roots(init.roots);
        GroupState {
            group_key: init.live.to_string_lossy().into(),
            live: init.live,
            reader,
            parser,
            wm,
            plan,
            board,
            marks: WindowMarks::default(),
            track_resume: init.track_resume,
            skip_below: init.skip_below,
            resumed_at_tail,
            late_after_written_warnings: 0,
            to_restore,
            counters: TailCounters::default(),
            fixed_host: init.fixed_host,
            lag: LagWatch::default(),
            windows: OpenWindows::default(),
            idle_since: None,
            finished: false,
            warnings: 0,
            unreadable_seen: 0,
            outlier_warnings: 0,
        }
    }

    /// The live path that names this group.
    pub fn live(&self) -> &Path {
        &self.live
    }

    /// The file being read (its path when last seen, its identity, and its
    /// birth time as its open saw it).
    pub fn reading(
        &self,
    ) -> Option<(
        &Path,
        &tidemark_sources::tail::FileId,
        Option<std::time::SystemTime>,
    )> {
        Some((
            self.reader.current_path()?,
            self.reader.current_file()?,
            self.reader.current_born(),
        ))
    }

    /// The files it left since the last call (see [`Tailer::take_left`]).
    pub fn take_left(&mut self) -> Vec<tidemark_sources::tail::Left> {
        self.reader.take_left()
    }

    /// The files it holds open (see [`Tailer::held_inodes`]).
    pub fn held_inodes(&self) -> tidemark_sources::tail::HeldInodes {
        self.reader.held_inodes()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// When this group wants to be read again, if soon (see [`Tailer::wake_at`]).
    pub fn wake_at(&self) -> Option<Instant> {
        self.reader.wake_at()
    }

    /// Whether this group holds a file open (see [`Tailer::holds_file`]).
    pub fn holds_file(&self) -> bool {
        self.reader.holds_file()
    }

    pub fn is_parked(&self) -> bool {
        self.reader.is_parked()
    }

    /// Closes its file wherever reading is in it (see [`Tailer::park_paused`]).
    pub fn park_paused(&mut self) -> bool {
        self.reader.park_paused()
    }

    /// Lines read but not delivered yet (a turn stopped by pacing).
    pub fn has_buffered_lines(&self) -> bool {
        self.reader.has_buffered_lines()
    }

    /// Closes its live file if idle at its end (see [`Tailer::park`]).
    pub fn park(&mut self) -> bool {
        self.reader.park()
    }

    /// See [`Tailer::parkable_since`].
    pub fn parkable_since(&self) -> Option<(i64, i64)> {
        self.reader.parkable_since()
    }

    /// Reads up to `budget` bytes and aggregates their lines, stopping after the
    /// line that takes its watermark to `stop_at` (event-time pacing, see
    /// [`crate::pacing`]; [`EventMs::MAX`]: no stop). With `buffered_only`, only
    /// lines already read are delivered: no file is opened (a group closed
    /// mid-read reads on without a descriptor). `wall_ms` is the wall clock, for
    /// rejecting lines stamped too far in the future.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &mut self,
        budget: usize,
        stop_at: EventMs,
        buffered_only: bool,
        now: Instant,
        wall_ms: EventMs,
        stats: &mut JobStats,
    ) -> ReadStatus {
        if !self.to_restore.is_empty() {
            self.restore_kept(stats);
        }
        let GroupState {
            reader,
            parser,
            plan,
            fixed_host,
            wm,
            windows,
            warnings,
            outlier_warnings,
            marks,
            skip_below,
            track_resume,
            resumed_at_tail,
            late_after_written_warnings,
            ..
        } = self;
        let future_limit = wall_ms.saturating_add(plan.max_clock_skew_ms);
        let ctx = LineCtx {
            future_limit,
            skip_below: *skip_below,
            resumed_at_tail: *resumed_at_tail,
            track_resume: *track_resume,
            plan,
            fixed_host: fixed_host.as_deref(),
        };
        let stop = Cell::new(false);
        let on_line = |meta: tidemark_sources::tail::LineMeta<'_>, line: &[u8]| {
            let warnings = Warnings {
                bad_lines: &mut *warnings,
                outliers: &mut *outlier_warnings,
                after_written: &mut *late_after_written_warnings,
            };
            ingest_line(
                &ctx, meta, line, parser, wm, windows, marks, warnings, stats,
            );
            if wm.get().is_some_and(|w| w >= stop_at) {
                stop.set(true);
            }
        };
        let status = if buffered_only {
            reader.read_buffered_until(&stop, on_line)
        } else {
            reader.read_some_until(budget, now, &stop, on_line)
        };
        if stop.get() {
            stats.paced_turns += 1;
        }
        let after = self.reader.counters();
        let delivered = after.lines > self.counters.lines;
        add_counters(stats, &self.counters, &after);
        self.counters = after;
        while let Some(e) = self.reader.take_error() {
            tracing::warn!("{e}");
        }
        if self.reader.unreadable_changes() != self.unreadable_seen {
            self.unreadable_seen = self.reader.unreadable_changes();
            let files = self.reader.unreadable().iter();
            stats.unreadable_files.insert(
                self.live.clone(),
                files.map(|u| (u.path.clone(), u.error.clone())).collect(),
            );
        }
        if self.track_resume {
            self.marks.set_tail(self.reader.position(), self.wm.state());
        }
        self.lag
            .after_read(now, delivered, status == ReadStatus::Idle);
        match status {
            // Idle means "nothing new for a while": a group that delivered lines
            // and then reached the end of its file is busy, not idle — or a host
            // that is always drained promptly would count as idle for good and its
            // lagging lines would be dropped as late.
            ReadStatus::Idle if !delivered => {
                self.idle_since.get_or_insert(now);
            }
            // Waiting for a file that cannot be read yet is not idle: its lines
            // are still to come, and must not be late once they can be read.
            ReadStatus::Idle | ReadStatus::More | ReadStatus::Blocked => self.idle_since = None,
            // End of input closes every window through `finished` — not through
            // the watermark, which a checkpoint saves for the next run.
            ReadStatus::Finished => self.finished = true,
        }
        status
    }

    /// Adds the lines a checkpoint kept back to their windows. The watermark state
    /// restored with them already took them into account: they only count.
    fn restore_kept(&mut self, stats: &mut JobStats) {
        for k in std::mem::take(&mut self.to_restore) {
            if k.window_ms < self.skip_below {
                continue;
            }
            if let Ok((parsed, t)) = stamp(&mut self.parser, k.text.as_bytes(), EventMs::MAX, stats)
            {
                let start = window_start(t, self.plan.window_ms);
                let host = match (&self.plan.host, self.fixed_host.as_deref()) {
                    (HostPlan::Field(slot), _) => parsed.field(*slot).unwrap_or(""),
                    (HostPlan::PerGroup, Some(h)) => h,
                    (HostPlan::PerGroup, None) => "",
                };
                self.windows.add(&self.plan, &parsed, t, start, host, stats);
                if self.track_resume {
                    self.marks.keep(start, k.text.as_bytes());
                }
            }
        }
    }

    /// Reading goes on after a pause for back-pressure. The group was not idle
    /// meanwhile (its lines waited, unread), so its idle and stuck-clock timers
    /// start again: a pause longer than `idle_timeout` must not let its
    /// watermark follow the wall clock past the lines written during it.
    pub fn after_pause(&mut self) {
        self.idle_since = None;
        self.lag.after_pause();
    }

    /// In live mode, a group idle at EOF for `idle_timeout` stops holding windows
    /// open: its watermark follows the wall clock, minus the timeout.
    pub fn apply_idle(&mut self, now: Instant, wall_ms: EventMs) {
        if let Some(since) = self.idle_since {
            if now.duration_since(since).as_millis() as i64 >= self.plan.idle_timeout_ms {
                self.wm.raise_to(wall_ms - self.plan.idle_timeout_ms);
            }
        }
    }

    /// In live mode, a group that keeps writing lines whose time has stopped more
    /// than `max_clock_lag` behind the wall clock (a frozen clock) stops holding
    /// windows open, like an idle group: warned about and listed in the stats.
    pub fn apply_clock_lag(&mut self, now: Instant, wall_ms: EventMs, stats: &mut JobStats) {
        let plan = &self.plan;
        let lag = self.lag.check(
            now,
            wall_ms,
            self.wm.max_seen(),
            plan.idle_timeout_ms,
            plan.max_clock_lag_ms,
        );
        match lag {
            Lag::Fine => {}
            Lag::Stuck {
                behind_ms,
                floor_ms,
                warn,
            } => {
                if warn {
                    tracing::warn!(
                        "{}: it keeps writing lines, but their time has not moved for \
                         max_clock_lag and is {} behind this machine's clock (a frozen \
                         clock?): it no longer holds windows open, and its lines older \
                         than the windows still open are dropped as late; check the \
                         host's clock, or raise [window] max_clock_lag",
                        EscapedPath(&self.live),
                        crate::watermark::format_span(behind_ms)
                    );
                }
                set_lag(&mut stats.clock_lag_ms, &self.live, behind_ms);
                // `stats` is this activation's delta: the other figure is set
                // (not just changed if present), or the job's would stay stale.
                set_lag(&mut stats.clock_behind_ms, &self.live, 0);
                self.wm.raise_to(floor_ms);
            }
            Lag::Trailing { behind_ms, warn } => {
                if warn {
                    tracing::warn!(
                        "{}: it keeps writing lines whose time is {} behind this \
                         machine's clock: its windows, and so every window of the job, \
                         close that late (old logs appended to a live file, a host \
                         whose lines arrive late, or a clock set wrong?)",
                        EscapedPath(&self.live),
                        crate::watermark::format_span(behind_ms)
                    );
                }
                set_lag(&mut stats.clock_behind_ms, &self.live, behind_ms);
                // Moving again after being stuck: no longer released.
                set_lag(&mut stats.clock_lag_ms, &self.live, 0);
            }
            Lag::Recovered => {
                tracing::info!(
                    "{}: the time of its lines caught up with this machine's clock",
                    EscapedPath(&self.live)
                );
                for lags in [&mut stats.clock_lag_ms, &mut stats.clock_behind_ms] {
                    set_lag(lags, &self.live, 0);
                }
            }
        }
    }

    /// The earliest window this group may still add to.
    pub fn first_open(&self) -> WindowTime {
        if self.finished {
            return WindowTime::MAX;
        }
        first_open_window(self.wm.get(), self.plan.window_ms)
    }

    /// Its watermark, `None` before its first line (what pacing compares).
    pub fn watermark(&self) -> Option<EventMs> {
        self.wm.get()
    }

    /// The first window its watermark leaves open, finished or not: what it
    /// contributes to where the input ends ([`crate::input_end`]).
    pub fn watermark_window(&self) -> WindowTime {
        first_open_window(self.wm.get(), self.plan.window_ms)
    }

    /// Removes every window the watermark has passed, handing its series to `emit`.
    pub fn close_windows(&mut self, mut emit: impl FnMut(WindowTime, HostPartial)) -> u64 {
        let below = (!self.finished).then(|| first_open_window(self.wm.get(), self.plan.window_ms));
        let group = &self.group_key;
        self.windows
            .drain(below, |t, s| emit(t, s.into_partial(group, 0)))
    }

    /// Windows with data not yet emitted.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Shares this group's resume marks with whoever writes checkpoints.
    pub fn publish(&mut self) {
        if self.track_resume {
            self.marks.prune_below(self.board.committed());
            self.board.publish(&self.live, &self.marks);
        }
    }

    /// Records how far behind the end of its files this group is (self-metrics).
    pub fn publish_lag(&self, stats: &mut JobStats) {
        if self.is_gone() {
            return;
        }
        stats
            .lag_bytes
            .insert(self.live.clone(), self.reader.lag_bytes());
    }

    /// Records this group's figures for `/metrics` ([`JobStats::groups`]). Not
    /// per read: the worker calls it about once a second.
    /// A group whose files are gone is reported as such instead
    /// ([`JobStats::gone_groups`]): its series leave `/metrics`.
    pub fn publish_gauges(&self, now: Instant, stats: &mut JobStats) {
        if self.is_gone() {
            stats.gone_groups.push(self.live.clone());
            return;
        }
        let idle = self.idle_since.is_some_and(|since| {
            now.duration_since(since).as_millis() as i64 >= self.plan.idle_timeout_ms
        });
        stats.groups.insert(
            self.live.clone(),
            crate::stats::GroupGauges {
                lines_read: self.counters.lines,
                bytes_read: self.counters.bytes,
                lag_bytes: self.reader.lag_bytes(),
                watermark_ms: self.wm.get(),
                idle,
                file_open: self.holds_file(),
            },
        );
    }
}

impl GroupState {
    /// Whether its live file no longer exists and every byte of its files was
    /// read: nothing open, parked or pending. Looks at the disk only when no file
    /// is open (about once a second, from [`GroupState::publish_gauges`]).
    fn is_gone(&self) -> bool {
        self.reader.current_path().is_none()
            && !self.reader.is_parked()
            && self.reader.lag_bytes() == 0
            && std::fs::symlink_metadata(&self.live)
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }
}

fn add_counters(stats: &mut JobStats, before: &TailCounters, after: &TailCounters) {
    stats.bytes_read += after.bytes - before.bytes;
    stats.lines_read += after.lines - before.lines;
    stats.oversize_lines += after.oversize_lines - before.oversize_lines;
    stats.files_opened += after.files_opened - before.files_opened;
    // Files refused as outside the allowed roots count as files that could not be
    // opened (the warning says why).
    stats.file_open_errors +=
        (after.open_errors - before.open_errors) + (after.outside_roots - before.outside_roots);
    stats.truncations += after.truncations - before.truncations;
    stats.rotations += after.rotations - before.rotations;
    stats.copytruncates += after.copytruncates - before.copytruncates;
    stats.deletions += after.deletions - before.deletions;
    stats.resume_misses += after.resume_misses - before.resume_misses;
    stats.damaged_gzip_files += after.damaged_gzip - before.damaged_gzip;
    stats.reopens += after.reopens - before.reopens;
    stats.reopen_fd_waits += after.reopen_waits - before.reopen_waits;
    stats.lost_while_parked += after.lost_while_parked - before.lost_while_parked;
    stats.lost_while_paused += after.lost_while_paused - before.lost_while_paused;
    stats.fd_backoffs += after.fd_backoffs - before.fd_backoffs;
}

/// Sets `live`'s lag in one of the stats' maps; the path is copied only the first
/// time (the lag is set at every activation while a clock stays behind).
fn set_lag(
    lags: &mut std::collections::BTreeMap<std::path::PathBuf, i64>,
    live: &std::path::Path,
    ms: i64,
) {
    match lags.get_mut(live) {
        Some(lag) => *lag = ms,
        None => {
            lags.insert(live.to_path_buf(), ms);
        }
    }
}
