//! The replay source operator: workers take segments from one shared queue, in
//! the order of the first window each can add to, and read them in step by
//! event time (`super::lanes`).
//!
//! A worker holds its capability at the earliest window it may still send: its
//! lanes' earliest open window, but never past the queue's head, which it may
//! take next. The queue is sorted by that window, so the frontier moves as the
//! range is read from its start, and early windows close before the whole range
//! is read.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tidemark_sources::parse::LineParser;
use tidemark_sources::rate::RateLimiter;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::failure::ReplayFailure;
use super::lanes::Lanes;
use super::segment::Tally;
use super::shared::ReplaySourceCtx;
use crate::backpressure::{Gate, PAUSE_RECHECK};
use crate::series::HostPartial;
use crate::stats::{flush, JobStats};
use crate::time::{wall_clock_ms, WindowTime};

/// How soon a worker whose lanes all wait for a slower one of another worker
/// looks again (as `run`'s sources do).
const PACE_RECHECK: Duration = Duration::from_millis(2);

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
            let Some(open) = lanes.hold_from(ctx.queue.head_lo()) else {
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
