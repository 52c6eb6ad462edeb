//! What every worker's replay source shares: the queue of segments not taken
//! yet, and the replay's context.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::failure::ReplayFailure;
use super::plan::Segment;
use super::progress::ReplayProgress;
use super::range::ReplayRange;
use crate::backpressure::ReadGate;
use crate::input_end::InputEnd;
use crate::pacing::PaceBoard;
use crate::plan::Plan;
use crate::stats::SharedStats;
use crate::time::WindowTime;

/// The segments no worker has taken yet, earliest first.
#[derive(Debug, Default)]
pub struct SegmentQueue {
    segments: Mutex<VecDeque<Segment>>,
}

impl SegmentQueue {
    /// Queues `segments` by the first window each can add to (the order the
    /// capability logic relies on).
    pub fn new(mut segments: Vec<Segment>) -> SegmentQueue {
        segments.sort_by(|a, b| (a.lo, &a.group, a.seq).cmp(&(b.lo, &b.group, b.seq)));
        SegmentQueue {
            segments: Mutex::new(segments.into()),
        }
    }

    /// Takes the head if `want` accepts the first window it can add to.
    pub(crate) fn pop_if(&self, want: impl FnOnce(WindowTime) -> bool) -> Option<Segment> {
        let mut q = self.segments.lock().ok()?;
        if want(q.front()?.lo) {
            q.pop_front()
        } else {
            None
        }
    }

    pub(crate) fn head_lo(&self) -> Option<WindowTime> {
        self.segments.lock().ok()?.front().map(|s| s.lo)
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut q) = self.segments.lock() {
            q.clear();
        }
    }
}

/// What every worker's replay source shares.
#[derive(Clone)]
pub struct ReplaySourceCtx {
    pub queue: Arc<SegmentQueue>,
    pub plan: Arc<Plan>,
    pub range: ReplayRange,
    pub parse: tidemark_jobs::Parse,
    pub max_line_bytes: usize,
    /// Bytes read per activation.
    pub chunk_bytes: usize,
    /// This worker's share of the rate limit, bytes per second.
    pub rate_limit: Option<u64>,
    pub stop: Arc<AtomicBool>,
    pub stats: SharedStats,
    pub progress: Arc<ReplayProgress>,
    /// The first failure ends the replay.
    pub failed: Arc<Mutex<Option<ReplayFailure>>>,
    /// Where the input ends: each segment's final watermark raises it.
    pub input_end: Arc<InputEnd>,
    /// Closed while a sink is backlogged: reading pauses (see [`crate::backpressure`]).
    pub gate: Arc<ReadGate>,
    /// Aligns the workers' lanes by event time ([`crate::pacing`]).
    pub pace: Arc<PaceBoard>,
    /// This worker's slot on `pace`.
    pub slot: usize,
}
