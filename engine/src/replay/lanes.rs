//! A worker's replay segments, read in step by event time (see [`crate::pacing`]).
//!
//! Each worker reads several segments at once — its lanes — as `run` reads
//! several file groups: the lane furthest behind reads, one more than the bound
//! ahead of the slowest lane of any worker (or of the queue's head) waits, and a
//! turn stops once its watermark reaches that bound. A paced plain segment is
//! put down between turns (no descriptor, no buffer), so a worker may hold
//! thousands. Without this, a worker took one segment at a time and read it
//! whole: 2,000 hosts' archived hour, one segment each, kept every host's
//! partial of every minute alive until the last host was read.
//!
//! - The queue's head counts as a lane at its first window: it is taken when it
//!   is within the horizon, one per turn read, so that every worker gets its
//!   share of the segments that start together.
//! - A finished lane holds no one back; one before its first line stands at its
//!   first window (not "furthest behind": a segment of the range's end would
//!   otherwise hold everything at the range's start).
//! - A worker with no lane left and the queue's head past the horizon (another
//!   worker's lane is the slowest) takes the head anyway and reads it whole, as
//!   before pacing, rather than idle: reading one host's later segments in
//!   parallel is the point of segments, and this costs only what that segment
//!   holds. With many hosts a worker always has lanes of its own, so this
//!   happens only near the end, or when the segments are few.
//! - A compressed segment is read whole in its turns: its decoder cannot be put
//!   down and picked up mid-stream, and thousands held open would cost more
//!   than its windows.

use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::LineParser;

use super::failure::ReplayFailure;
use super::segment::{ReadEnd, SegmentRun, Tally};
use super::shared::ReplaySourceCtx;
use crate::pacing::{default_bound_ms, Horizon, Lane, Pacer};
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{EventMs, WindowTime};

/// One segment a worker reads.
struct LaneRun {
    run: SegmentRun,
    /// Taken past the horizon by a worker with nothing else to read: read whole.
    ahead: bool,
}

impl LaneRun {
    /// Read without stopping at the horizon (see the module's notes).
    fn unpaced(&self) -> bool {
        self.ahead || self.run.segment().gzip
    }
}

/// A worker's lanes.
pub(crate) struct Lanes {
    lanes: Vec<LaneRun>,
    /// Where the next round starts, so that a round cut short by its budget
    /// starves no lane.
    next: usize,
    pacer: Pacer,
}

/// What one round did.
pub(crate) struct Round {
    /// Bytes read.
    pub used: usize,
    /// Something is left to read now (the budget ran out, or a lane was taken
    /// past the horizon): come back at once.
    pub busy: bool,
    /// Lanes wait for a slower one of another worker: look again soon.
    pub waiting: bool,
}

impl Lanes {
    /// No lanes yet; `pacer` aligns this worker with the job's others.
    pub fn new(pacer: Pacer) -> Lanes {
        Lanes {
            lanes: Vec::new(),
            next: 0,
            pacer,
        }
    }

    /// A pacer for the replay's windows of `window_ms`, `slot` on `board`.
    pub fn pacer(
        window_ms: i64,
        board: std::sync::Arc<crate::pacing::PaceBoard>,
        slot: usize,
    ) -> Pacer {
        Pacer::new(default_bound_ms(window_ms), board, slot)
    }

    /// The earliest window an unfinished lane may still add to.
    pub fn open_from(&self) -> Option<WindowTime> {
        self.lanes.iter().map(|l| l.run.open_from()).min()
    }

    /// The earliest window this worker's source may still send, the queue's
    /// head being `head`: its lanes' earliest open window, or the head, which it
    /// may take next. `None`: its source ends, and no round will publish again,
    /// so its pacing slot is released here, on the very `head` that ends it. A
    /// round cannot decide this for the source: the head it saw at its end may
    /// be taken by another worker before the source looks (the slot then kept
    /// the position published at that round's start, and the other workers'
    /// lanes waited on it for good).
    pub fn hold_from(&self, head: Option<WindowTime>) -> Option<WindowTime> {
        let open = self.open_from().into_iter().chain(head).min();
        if open.is_none() {
            self.pacer.release();
        }
        open
    }

    /// Windows open in the lanes (each a partial of one host), for tests.
    #[cfg(test)]
    pub fn open_windows(&self) -> usize {
        self.lanes.iter().map(|l| l.run.open_windows()).sum()
    }

    /// Drops every lane (a stopped replay: open windows are not emitted).
    pub fn clear(&mut self) {
        self.lanes.clear();
        self.pacer.release();
    }

    /// This round's horizon: the slowest unfinished lane of any worker, or the
    /// queue's head, plus the bound.
    fn horizon(&self, head: Option<WindowTime>) -> Horizon {
        let lanes = self
            .lanes
            .iter()
            .filter(|l| !l.run.is_finished())
            .map(|l| Lane::Reading(Some(l.run.position())));
        let head = head.map(|lo| Lane::Reading(Some(lo as EventMs)));
        self.pacer.horizon(lanes.chain(head))
    }

    /// Reads turns of the lanes within the horizon, up to `budget` bytes,
    /// taking segments from the queue as they come within it; hands out the
    /// windows no lane can add to any more through `emit`.
    #[allow(clippy::too_many_arguments)]
    pub fn round(
        &mut self,
        ctx: &ReplaySourceCtx,
        parser: &mut LineParser,
        budget: usize,
        wall_ms: EventMs,
        delta: &mut JobStats,
        tally: &mut Tally,
        emit: &mut impl FnMut(WindowTime, HostPartial),
    ) -> Result<Round, ReplayFailure> {
        let horizon = self.horizon(ctx.queue.head_lo());
        let n = self.lanes.len();
        let mut round = Round {
            used: 0,
            busy: false,
            waiting: false,
        };
        let (mut visited, mut may_take, mut turns) = (0, true, 0u32);
        let mut failure = None;
        loop {
            if round.used >= budget {
                round.busy = true;
                break;
            }
            let taken = if may_take {
                ctx.queue.pop_if(|lo| horizon.allows(Some(lo as EventMs)))
            } else {
                None
            };
            let i = match taken {
                Some(seg) => {
                    // One per turn read: the workers share the segments that
                    // start together by how fast each reads.
                    may_take = false;
                    match self.take(ctx, seg, false) {
                        Ok(()) => self.lanes.len() - 1,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                None if visited < n => {
                    visited += 1;
                    (self.next + visited - 1) % n
                }
                None => break,
            };
            let lane = &self.lanes[i];
            if lane.run.is_finished() {
                continue;
            }
            if !lane.unpaced() && !horizon.allows(Some(lane.run.position())) {
                // Far enough ahead of the slowest: it waits, so that windows
                // close before every segment is read.
                delta.paced_turns += 1;
                round.waiting = true;
                continue;
            }
            let stop_at = if lane.unpaced() {
                Horizon::OPEN.stop_at()
            } else {
                horizon.stop_at()
            };
            match self.turn(
                i, ctx, parser, budget, stop_at, wall_ms, delta, tally, &mut round, emit,
            ) {
                Ok(()) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            turns += 1;
            may_take = true;
        }
        if n > 0 {
            self.next = (self.next + visited) % n;
        }
        self.lanes.retain(|l| !l.run.is_finished());
        if let Some(e) = failure {
            return Err(e);
        }
        if turns == 0 && !round.busy && self.lanes.is_empty() {
            // Nothing to read within the horizon, and no lane of its own that
            // will be: rather than idle, read the queue's head whole (see the
            // module's notes).
            if let Some(seg) = ctx.queue.pop_if(|_| true) {
                self.take(ctx, seg, true)?;
                round.busy = true;
            }
        }
        if turns > 0 && round.waiting {
            // The slowest may have moved during this round: look again at once.
            round.busy = true;
        }
        Ok(round)
    }

    fn take(
        &mut self,
        ctx: &ReplaySourceCtx,
        seg: super::plan::Segment,
        ahead: bool,
    ) -> Result<(), ReplayFailure> {
        match SegmentRun::open(seg.clone(), ctx.range, &ctx.plan, ctx.max_line_bytes) {
            Ok(run) => {
                self.lanes.push(LaneRun { run, ahead });
                Ok(())
            }
            Err(e) => {
                let hint = if seg.gzip {
                    ""
                } else {
                    super::failure::changed_hint(&e)
                };
                Err(ReplayFailure::Open {
                    path: seg.path.clone(),
                    source: e,
                    hint,
                })
            }
        }
    }

    /// One turn of lane `i`: until its watermark reaches `stop_at`, it ends, or
    /// the round's budget runs out.
    #[allow(clippy::too_many_arguments)]
    fn turn(
        &mut self,
        i: usize,
        ctx: &ReplaySourceCtx,
        parser: &mut LineParser,
        budget: usize,
        stop_at: EventMs,
        wall_ms: EventMs,
        delta: &mut JobStats,
        tally: &mut Tally,
        round: &mut Round,
        emit: &mut impl FnMut(WindowTime, HostPartial),
    ) -> Result<(), ReplayFailure> {
        let run = &mut self.lanes[i].run;
        loop {
            let before = delta.bytes_read;
            let bytes_before = tally.file_bytes;
            let step = ctx
                .chunk_bytes
                .min(budget.saturating_sub(round.used).max(1));
            let read = run.read(step, stop_at, parser, &ctx.plan, wall_ms, delta, tally);
            ctx.input_end.raise(run.watermark_window() as EventMs);
            round.used += ((delta.bytes_read - before) as usize).max(1);
            ctx.progress
                .add(&ctx.progress.bytes_done, tally.file_bytes - bytes_before);
            match read {
                Ok(ReadEnd::Finished) => {
                    run.drain(&mut *emit);
                    ctx.progress.add(&ctx.progress.segments_done, 1);
                    return Ok(());
                }
                Ok(ReadEnd::Paced) => {
                    run.drain(&mut *emit);
                    return Ok(());
                }
                Ok(ReadEnd::Budget) if round.used >= budget => {
                    run.drain(&mut *emit);
                    return Ok(());
                }
                Ok(ReadEnd::Budget) => {}
                Err(e) if run.segment().gzip => {
                    // As in a live run: the lines before the damage count.
                    tracing::warn!(
                        "{}: decompression failed ({e}); the rest of this file is skipped",
                        EscapedPath(&run.segment().path)
                    );
                    run.end_early();
                    run.drain(&mut *emit);
                    ctx.progress.add(&ctx.progress.segments_done, 1);
                    return Ok(());
                }
                Err(e) => {
                    let hint = super::failure::changed_hint(&e);
                    return Err(ReplayFailure::Read {
                        path: run.segment().path.clone(),
                        source: e,
                        hint,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "lanes_tests.rs"]
mod tests;
