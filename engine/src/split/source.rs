//! The split source operator: every worker takes segments of the split groups
//! from one queue and reads them, next to the worker's own file groups.
//!
//! Segment `done` of a group is read with the true clock and handed on as it
//! goes; a later one is read speculatively and handed on once confirmed. A
//! worker holds its capability at the lowest frontier of the groups not yet
//! done ([`super::chain::Chain::frontier`]) and drops it when it has nothing left
//! to read: whoever finishes a segment confirms and hands on the parked ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tidemark_sources::parse::LineParser;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use super::plan::SplitPlan;
use super::run::SplitRun;
use crate::backpressure::{Gate, ReadGate, PAUSE_RECHECK};
use crate::error::{record_failure, EngineError, FailureSlot, JobFailure};
use crate::input_end::InputEnd;
use crate::plan::Plan;
use crate::replay::Segment;
use crate::series::HostPartial;
use crate::stats::{flush, JobStats, SharedStats};
use crate::time::{wall_clock_ms, EventMs, WindowTime};
use crate::watermark::ClockState;

/// What every worker's split source shares.
pub(crate) struct SplitCtx {
    pub split: Arc<SplitPlan>,
    pub plan: Arc<Plan>,
    pub parse: tidemark_jobs::Parse,
    pub chunk_bytes: usize,
    pub max_line_bytes: usize,
    pub stop: Arc<AtomicBool>,
    pub failed: FailureSlot,
    pub input_end: Arc<InputEnd>,
    pub gate: Arc<ReadGate>,
    pub stats: SharedStats,
}

pub(crate) fn split_source<'scope>(
    scope: Scope<'scope, WindowTime>,
    ctx: SplitCtx,
) -> Stream<'scope, WindowTime, Vec<HostPartial>> {
    source(scope, "SplitSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut delta = JobStats::default();
        let mut current: Option<SplitRun> = None;
        let mut parser = LineParser::new(&ctx.parse, &ctx.plan.fields).ok();
        move |output| {
            let Some(held) = cap.as_mut() else {
                return;
            };
            // An empty plan (the usual case) costs one activation.
            let Some(parser) = parser.as_mut().filter(|_| !ctx.split.is_empty()) else {
                cap = None;
                return;
            };
            if ctx.stop.load(Ordering::SeqCst) {
                // Open windows are not emitted: they are not complete.
                delta.windows_open_at_stop += open_at_stop(current.take(), &ctx.split);
                ctx.gate.end(Instant::now(), &mut delta);
                flush(&ctx.stats, &mut delta);
                cap = None;
                return;
            }
            if ctx.gate.check(Instant::now(), &mut delta) == Gate::Paused {
                // Back-pressure, not drops: read on once the sinks catch up.
                flush(&ctx.stats, &mut delta);
                activator.activate_after(PAUSE_RECHECK);
                return;
            }
            let wall_ms = wall_clock_ms();
            let mut ready: BTreeMap<WindowTime, Vec<HostPartial>> = BTreeMap::new();
            let mut emit = |t: WindowTime, p: HostPartial| ready.entry(t).or_default().push(p);
            let budget = ctx.chunk_bytes * 4;
            let mut used = 0usize;
            let mut failure = None;
            let mut held_back = false;
            while used < budget {
                let run = match current.as_mut() {
                    Some(run) => run,
                    None => {
                        let Some((g, seg)) = ctx.split.pop() else {
                            // Every group left has as many reads waiting as it may.
                            held_back = !ctx.split.is_drained();
                            break;
                        };
                        let start = lock(&ctx.split, g).start_of(seg.seq);
                        delta.split_segments += 1;
                        if seg.start == 0 {
                            // Each file once, as a file group opens it.
                            delta.files_opened += 1;
                        }
                        match open(&ctx, g, seg, start) {
                            Ok(run) => current.insert(run),
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                };
                let g = run.group;
                if !run.is_true() {
                    // Its start may have become known since the last read.
                    let start = lock(&ctx.split, g).start_of(run.seq());
                    if let Some(start) = start {
                        if !run.confirm(start, &ctx.plan) {
                            delta.split_rereads += 1;
                            let seg = run.segment().clone();
                            match open(&ctx, g, seg, Some(start)) {
                                Ok(again) => *run = again,
                                Err(e) => {
                                    failure = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                }
                let before = run.segment().start;
                let step = ctx.chunk_bytes.min(budget - used);
                let read = run.read(step, parser, &ctx.plan, wall_ms);
                let window_ms = ctx.plan.window_ms;
                if run.is_true() {
                    let mut chain = lock(&ctx.split, g);
                    run.hand_on(window_ms, &mut delta, &mut chain.unreadable, &mut emit);
                    let w = run.watermark_window(window_ms);
                    ctx.input_end.raise(w as EventMs);
                    chain.advance(w);
                    chain.unreadable.publish(&live(run), &ctx.stats);
                }
                used += step.max(1);
                match read {
                    Ok(false) => {}
                    Ok(true) => {
                        let Some(mut run) = current.take() else {
                            break;
                        };
                        let mut chain = lock(&ctx.split, g);
                        let again = match chain.start_of(run.seq()) {
                            // Its predecessors are done: confirmed (or already
                            // true), it is handed on and so are the parked ones after it.
                            Some(start) if run.confirm(start, &ctx.plan) => {
                                run.hand_on(
                                    window_ms,
                                    &mut delta,
                                    &mut chain.unreadable,
                                    &mut emit,
                                );
                                let again = chain.finish(
                                    run.clock(),
                                    &ctx.plan,
                                    &ctx.input_end,
                                    &mut delta,
                                    &mut emit,
                                );
                                chain.unreadable.publish(&live(&run), &ctx.stats);
                                again
                            }
                            Some(_) => Some(run.segment().clone()),
                            None => {
                                chain.parked.insert(run.seq(), run);
                                None
                            }
                        };
                        if let Some(seg) = again {
                            delta.split_rereads += 1;
                            let start = chain.at;
                            drop(chain);
                            match open(&ctx, g, seg, Some(start)) {
                                Ok(run) => current = Some(run),
                                Err(e) => {
                                    failure = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        failure = Some(read_failure(run.segment(), Some(before), e));
                        break;
                    }
                }
            }
            if let Some(e) = failure {
                record_failure(&ctx.failed, JobFailure::Read(Box::new(e)));
                ctx.stop.store(true, Ordering::SeqCst);
                flush(&ctx.stats, &mut delta);
                cap = None;
                return;
            }
            flush(&ctx.stats, &mut delta);
            for (t, parts) in ready {
                output
                    .session(&held.delayed(&t))
                    .give_iterator(parts.into_iter());
            }
            let open = ctx
                .split
                .groups
                .iter()
                .filter_map(|sg| {
                    let chain = sg.chain.lock().ok()?;
                    (!chain.is_complete()).then_some(chain.frontier)
                })
                .min();
            let idle = current.is_none() && ctx.split.is_drained();
            match open {
                Some(open) if !idle => {
                    if open > *held.time() {
                        held.downgrade(&open);
                    }
                    if held_back {
                        // Not a busy loop: the worker reading the segment they
                        // wait for needs the CPU.
                        activator.activate_after(PAUSE_RECHECK);
                    } else {
                        activator.activate();
                    }
                }
                // Nothing left for this worker to read, so nothing left to hand on.
                _ => cap = None,
            }
        }
    })
}

/// Windows left unemitted at a stop: those of this worker's `current` read and
/// of the parked reads, which whoever gets here first takes out of their groups
/// (so each is counted once). Counted per segment, as a segment's windows are
/// separate partials (one window may be held by two segments).
pub(crate) fn open_at_stop(current: Option<SplitRun>, split: &SplitPlan) -> u64 {
    let mut open = current.map_or(0, |run| run.open_windows() as u64);
    for g in 0..split.groups.len() {
        let parked = std::mem::take(&mut lock(split, g).parked);
        open += parked
            .values()
            .map(|r| r.open_windows() as u64)
            .sum::<u64>();
    }
    open
}

/// The group's key, its live path, as a file group's stats name it.
fn live(run: &SplitRun) -> std::path::PathBuf {
    std::path::PathBuf::from(&*run.segment().group)
}

fn lock(split: &SplitPlan, g: usize) -> std::sync::MutexGuard<'_, super::chain::Chain> {
    // A worker that panicked holding it ends the execution anyway.
    split.groups[g]
        .chain
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open(
    ctx: &SplitCtx,
    g: usize,
    seg: Segment,
    start: Option<ClockState>,
) -> Result<SplitRun, EngineError> {
    let planned = seg.clone();
    let to_eof = ctx.split.groups[g].to_eof[seg.seq as usize];
    SplitRun::open(g, seg, to_eof, start, &ctx.plan, ctx.max_line_bytes)
        .map_err(|e| read_failure(&planned, None, e))
}

/// A split read's failure, worded for a split run (see
/// [`EngineError::SplitRead`]): opening `seg` (`from` is `None`) or reading it
/// from byte `from`.
pub(crate) fn read_failure(seg: &Segment, from: Option<u64>, e: std::io::Error) -> EngineError {
    let cause = match from {
        Some(at) => std::io::Error::new(e.kind(), format!("reading from byte {at}: {e}")),
        // `open_planned`'s own words are a replay's.
        None if e.kind() == std::io::ErrorKind::NotFound => std::io::Error::new(
            e.kind(),
            format!(
                "the file planned under this name (inode {}) is gone: it was rotated away, \
                 compressed or deleted during the run",
                seg.ino
            ),
        ),
        // `RangeReader::plain_file`: the planned range is past the file's end.
        None if e.kind() == std::io::ErrorKind::InvalidInput => {
            std::io::Error::new(e.kind(), format!("{e}: it shrank since the run planned it"))
        }
        None => e,
    };
    EngineError::SplitRead {
        path: seg.path.clone(),
        cause,
    }
}
