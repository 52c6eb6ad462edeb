//! A split group's progress, shared by the workers reading its segments: how
//! many segments are done with the true clock, the clock where the next one
//! begins, the speculative reads that finished early and wait for it, and the
//! earliest window the group may still add to.

use std::collections::BTreeMap;

use super::run::{SplitRun, Unreadable};
use crate::input_end::InputEnd;
use crate::plan::Plan;
use crate::replay::Segment;
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{first_open_window, EventMs, WindowTime};
use crate::watermark::{ClockState, GroupClock};

pub(crate) struct Chain {
    /// Segments `0..done` are read with the true clock and handed on.
    pub done: u32,
    /// The true clock state where segment `done` begins.
    pub at: ClockState,
    /// Speculative reads that finished before their start was known, by segment.
    pub parked: BTreeMap<u32, SplitRun>,
    /// No segment not yet handed on adds to a window below this: the true
    /// clock only moves forward, and every line counted is at or above it.
    /// Every worker holds its capability at or below it until the group is done.
    pub frontier: WindowTime,
    pub segments: u32,
    /// Its files that could not be read to the end, from the segments handed on.
    pub unreadable: Unreadable,
}

impl Chain {
    /// The true clock state `seq` starts from, if known.
    pub fn start_of(&self, seq: u32) -> Option<ClockState> {
        (self.done == seq).then_some(self.at)
    }

    pub fn is_complete(&self) -> bool {
        self.done >= self.segments
    }

    /// The true read of segment `done` moved its clock to window `w`.
    pub fn advance(&mut self, w: WindowTime) {
        self.frontier = self.frontier.max(w);
    }

    /// Segment `done` ended with the true clock `end`. The parked reads after it
    /// are confirmed in turn and handed on; the first one that is not exact is
    /// returned, to be read again from [`Chain::at`].
    pub fn finish(
        &mut self,
        end: ClockState,
        plan: &Plan,
        input_end: &InputEnd,
        delta: &mut JobStats,
        mut emit: impl FnMut(WindowTime, HostPartial),
    ) -> Option<Segment> {
        self.done += 1;
        self.at = end;
        loop {
            let wm = GroupClock::restored(plan.disorder_ms, plan.max_jump_ms, self.at).get();
            let reached = first_open_window(wm, plan.window_ms);
            input_end.raise(reached as EventMs);
            self.advance(reached);
            if self.is_complete() {
                self.frontier = WindowTime::MAX;
                return None;
            }
            let mut next = self.parked.remove(&self.done)?;
            if !next.confirm(self.at, plan) {
                tracing::info!(
                    "{}: the segment from byte {} is read again: a line near its start is \
                     judged differently against the lines before it",
                    tidemark_sources::file::EscapedPath(&next.segment().path),
                    next.segment().start
                );
                return Some(next.segment().clone());
            }
            next.hand_on(plan.window_ms, delta, &mut self.unreadable, &mut emit);
            self.done += 1;
            self.at = next.clock();
        }
    }
}
