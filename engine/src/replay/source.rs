//! The replay source operator: workers take segments from one shared queue, in
//! the order of the first window each can add to, and read them in step by
//! event time (`super::lanes`).
//!
//! A worker holds its capability at the earliest window it may still send: its
//! lanes' earliest open window, but never past the queue's head, which it may
//! take next. The queue is sorted by that window, so the frontier moves as the
//! range is read from its start, and early windows close before the whole range
//! is read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_sources::parse::LineParser;
use tidemark_sources::rate::RateLimiter;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::failure::ReplayFailure;
use super::lanes::Lanes;
use super::plan::Segment;
use super::progress::ReplayProgress;
use super::range::ReplayRange;
use super::segment::Tally;
use crate::backpressure::{Gate, ReadGate, PAUSE_RECHECK};
use crate::input_end::InputEnd;
use crate::pacing::PaceBoard;
use crate::plan::Plan;
use crate::series::HostPartial;
use crate::stats::{flush, JobStats, SharedStats};
use crate::time::{wall_clock_ms, WindowTime};

/// How soon a worker whose lanes all wait for a slower one of another worker
/// looks again (as `run`'s sources do).
const PACE_RECHECK: Duration = Duration::from_millis(2);

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

    fn clear(&self) {
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

pub fn replay_source<'scope>(
    scope: Scope<'scope, WindowTime>,
    ctx: ReplaySourceCtx,
) -> Stream<'scope, WindowTime, Vec<HostPartial>> {
    source(scope, "ReplaySource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut delta = JobStats::default();
        let mut lanes = Lanes::new(Lanes::pacer(ctx.plan.window_ms, ctx.pace.clone(), ctx.slot));
        let mut tally = Tally::default();
        let (mut parser, mut parser_error) = match LineParser::new(&ctx.parse, &ctx.plan.fields) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(ReplayFailure::Parser(e))),
        };
        let mut limiter = ctx.rate_limit.map(|r| {
            RateLimiter::new(r.max(1), r.max(1).max(ctx.chunk_bytes as u64)).starting_empty()
        });
        move |output| {
            let Some(held) = cap.as_mut() else {
                return;
            };
            let fail = |e: ReplayFailure| {
                if let Ok(mut slot) = ctx.failed.lock() {
                    slot.get_or_insert(e);
                }
                ctx.stop.store(true, Ordering::SeqCst);
            };
            if let Some(e) = parser_error.take() {
                fail(e);
                cap = None;
                return;
            }
            let Some(parser) = parser.as_mut() else {
                cap = None;
                return;
            };
            if ctx.stop.load(Ordering::SeqCst) {
                ctx.gate.end(Instant::now(), &mut delta);
                // Open windows are not emitted: they are not complete.
                ctx.queue.clear();
                lanes.clear();
                flush(&ctx.stats, &mut delta);
                cap = None;
                return;
            }
            let now = Instant::now();
            if ctx.gate.check(now, &mut delta) == Gate::Paused {
                // Back-pressure, not drops: read on once the sinks catch up.
                flush(&ctx.stats, &mut delta);
                activator.activate_after(PAUSE_RECHECK);
                return;
            }
            let wall_ms = wall_clock_ms();
            let mut budget = ctx.chunk_bytes * 4;
            let mut wait = None;
            if let Some(l) = limiter.as_mut() {
                budget = budget.min(l.allowance(now));
                if budget == 0 {
                    wait = Some(l.wait_hint(now).max(Duration::from_millis(1)));
                }
            }
            let mut ready: BTreeMap<WindowTime, Vec<HostPartial>> = BTreeMap::new();
            let mut emit = |t: WindowTime, p: HostPartial| ready.entry(t).or_default().push(p);
            let round = lanes.round(
                &ctx, parser, budget, wall_ms, &mut delta, &mut tally, &mut emit,
            );
            let (used, busy, waiting) = match round {
                Ok(r) => (r.used, r.busy, r.waiting),
                Err(e) => {
                    fail(e);
                    (0, false, false)
                }
            };
            if let Some(l) = limiter.as_mut() {
                l.consume(used);
                if l.allowance(now) == 0 {
                    // Back-pressure, not drops: come back when the bucket refills.
                    wait = Some(l.wait_hint(now).max(Duration::from_millis(1)));
                }
            }
            ctx.progress.add(&ctx.progress.lines, delta.lines_read);
            flush(&ctx.stats, &mut delta);
            for (t, parts) in ready {
                let c = held.delayed(&t);
                output.session(&c).give_iterator(parts.into_iter());
            }
            let head = ctx.queue.head_lo();
            let open = lanes.open_from().into_iter().chain(head).min();
            let Some(open) = open else {
                cap = None;
                return;
            };
            if ctx.stop.load(Ordering::SeqCst) {
                activator.activate();
                return;
            }
            if open > *held.time() {
                held.downgrade(&open);
            }
            match wait {
                Some(w) => activator.activate_after(w),
                // Its lanes wait for a slower one of another worker.
                None if waiting && !busy => activator.activate_after(PACE_RECHECK),
                None => activator.activate(),
            }
        }
    })
}

/// A planned range that is no longer there means the file was truncated in place
/// (copytruncate) after planning.
pub(crate) fn changed_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::UnexpectedEof => {
            " (the file became shorter after the replay was planned, e.g. by copytruncate; run the replay again)"
        }
        _ => "",
    }
}
