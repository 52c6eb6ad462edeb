//! Stage 1: the file source. Reads this worker's file groups, aggregates per host,
//! and emits each group's per-host partials when that group's watermark closes a
//! window. No exchange happens before this point.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_sources::rate::RateLimiter;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use crate::backpressure::{Gate, ReadGate, PAUSE_RECHECK};
use crate::error::{record_failure, FailureSlot, JobFailure};
use crate::groupset::GroupSet;
use crate::input_end::InputEnd;
use crate::series::HostPartial;
use crate::stats::{flush, JobStats, SharedStats};
use crate::time::{wall_clock_ms, EventMs, WindowTime};

/// How soon a worker whose groups all wait for another worker's slowest group
/// looks again (see [`crate::pacing`]).
const PACE_RECHECK: Duration = Duration::from_millis(2);

/// Partials handed on at a time when a window closes.
const EMIT_BATCH: usize = 4096;

/// How the source paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Bytes read from one group per activation.
    pub chunk_bytes: usize,
    /// Bytes read per activation over all groups, so one activation stays short.
    pub activation_bytes: usize,
    /// How soon to look again when every group is idle at EOF.
    pub poll_interval: Duration,
    /// This worker's share of the job's `rate_limit`, bytes per second.
    pub rate_limit: Option<u64>,
    /// Publish the groups' figures for `/metrics` (only when it is served).
    pub publish_groups: bool,
}

pub use super::poke::{Poke, PokeBoard};

/// How often each group's figures reach the job's stats (`/metrics`): often
/// enough for a scrape, rarely enough that a worker with thousands of groups
/// does not copy their paths at every activation.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// What a file source shares with the rest of the job, besides its stats.
pub struct SourceSignals {
    /// Set to stop the job: the source stops reading.
    pub stop: Arc<AtomicBool>,
    /// Where the source records why the job failed.
    pub failed: FailureSlot,
    /// Raised with each group's watermark window ([`crate::input_end`]).
    pub input_end: Arc<InputEnd>,
}

/// Builds the source operator over this worker's share of the job's groups.
/// It reads only while `gate` is open (see [`crate::backpressure`]).
pub fn file_source<'scope>(
    scope: Scope<'scope, WindowTime>,
    mut groups: GroupSet,
    pacing: Pacing,
    poke: Poke,
    gate: Arc<ReadGate>,
    stats: SharedStats,
    signals: SourceSignals,
) -> Stream<'scope, WindowTime, Vec<HostPartial>> {
    let SourceSignals {
        stop,
        failed,
        input_end,
    } = signals;
    source(scope, "FileSource", move |cap, info| {
        let mut woken = poke.register(scope.worker().sync_activator_for(info.address.to_vec()));
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut delta = JobStats::default();
        // When the groups' figures were last published (see `publish_gauges`).
        let mut gauges_at: Option<Instant> = None;
        let mut limiter = pacing.rate_limit.map(|r| {
            RateLimiter::new(r.max(1), r.max(1).max(pacing.chunk_bytes as u64)).starting_empty()
        });
        // Whether this worker's last activation found the gate closed.
        let mut paused = false;
        move |output| {
            let Some(held) = cap.as_mut() else {
                return;
            };
            if stop.load(Ordering::SeqCst) {
                gate.end(Instant::now(), &mut delta);
                // Not final: open windows are left unemitted (a restart recomputes them).
                delta.windows_open_at_stop += groups
                    .groups
                    .iter()
                    .map(|g| g.open_windows() as u64)
                    .sum::<u64>();
                let now = Instant::now();
                for g in &mut groups.groups {
                    g.publish_lag(&mut delta);
                    if pacing.publish_groups {
                        g.publish_gauges(now, &mut delta);
                    }
                }
                groups.groups.clear();
                flush(&stats, &mut delta);
                cap = None;
                return;
            }
            let now = Instant::now();
            let wall_ms = wall_clock_ms();
            let news = woken.take(now);
            let poked = news.discover;
            let floor = *held.time() as EventMs;
            groups.set_watching(poke.watching());
            let known = groups.groups.len();
            if let Err(e) = groups.discover_if_due(now, poked, floor, wall_ms, &mut delta) {
                record_failure(&failed, JobFailure::Discover(Box::new(e)));
            }
            // Only the directory watcher routes writes to readers, and only a
            // job that follows its files has one: a finite run skips resolving
            // every new group's paths (two `realpath`s each) for it.
            if groups.follows() {
                let mut real = tidemark_sources::file::RealPaths::default();
                for g in &groups.groups[known..] {
                    poke.reads_in(&woken, g.live(), &mut real);
                }
            }
            match (gate.check(now, &mut delta), paused) {
                (Gate::Paused, _) => {
                    // Back-pressure, not drops: nothing is read (nor judged idle)
                    // until the sinks catch up; the capability stays where it is.
                    paused = true;
                    flush(&stats, &mut delta);
                    activator.activate_after(PAUSE_RECHECK);
                    return;
                }
                (Gate::Open, true) => {
                    paused = false;
                    groups.after_pause();
                }
                (Gate::Open, false) => {}
            }
            let mut budget = pacing.activation_bytes;
            let mut wait = pacing.poll_interval;
            if let Some(l) = limiter.as_mut() {
                budget = budget.min(l.allowance(now));
                if budget == 0 {
                    wait = wait.min(l.wait_hint(now).max(Duration::from_millis(1)));
                }
            }
            let before = delta.bytes_read;
            let mut busy = budget > 0
                && groups.read_round(pacing.chunk_bytes, budget, now, wall_ms, &mut delta);
            if let Some(l) = limiter.as_mut() {
                let used = (delta.bytes_read - before) as usize;
                l.consume(used);
                if busy && l.allowance(now) == 0 {
                    // Back-pressure, not drops: come back when the bucket refills.
                    busy = false;
                    wait = l.wait_hint(now).max(Duration::from_millis(1));
                }
            }
            // Sent on in batches as windows close: a window of many series is
            // not gathered whole here first.
            let mut ready: BTreeMap<WindowTime, Vec<HostPartial>> = BTreeMap::new();
            let mut reached = WindowTime::MIN;
            for g in groups.groups.iter_mut() {
                g.close_windows(|t, p| {
                    let batch = ready.entry(t).or_default();
                    batch.push(p);
                    if batch.len() >= EMIT_BATCH {
                        // Handed on as the `Vec` it is: pushed one by one, each
                        // partial would be moved again into the builder's batches.
                        // The next batch of a window this large is as large.
                        let mut full = std::mem::replace(batch, Vec::with_capacity(EMIT_BATCH));
                        output.session(&held.delayed(&t)).give_container(&mut full);
                    }
                });
                g.publish();
                reached = reached.max(g.watermark_window());
            }
            // Before the capability can drop: the collector reads it once the
            // frontier is empty. One shared write per activation, not per group.
            if reached != WindowTime::MIN {
                input_end.raise(reached as EventMs);
            }
            for (t, parts) in ready {
                if !parts.is_empty() {
                    // What is left of a window's batch (most of 2,000 groups'
                    // few partials each) is copied into the builder's small
                    // containers: handed on as it is, with the room it grew
                    // or was given beyond its partials, it is held until its
                    // window completes (2,000 groups: +5 to +10 MiB of peak RSS).
                    let c = held.delayed(&t);
                    output.session(&c).give_iterator(parts.into_iter());
                }
            }
            let open = groups.first_open(wall_ms);
            let gauges_due = open == WindowTime::MAX
                || gauges_at.is_none_or(|t| now.duration_since(t) >= GAUGES_EVERY);
            if pacing.publish_groups && gauges_due {
                gauges_at = Some(now);
                for g in &groups.groups {
                    g.publish_gauges(now, &mut delta);
                }
            }
            flush(&stats, &mut delta);
            if open == WindowTime::MAX {
                cap = None;
                return;
            }
            if open > *held.time() {
                held.downgrade(&open);
            }
            // Discovery's interval holds even under a longer poll interval: a
            // folder whose change no event reported is still found.
            if let Some(due) = groups.discovery_due_in(now) {
                wait = wait.min(due.max(Duration::from_millis(1)));
            }
            // Writes reported while coalescing are read when the period ends.
            if let Some(within) = news.within {
                wait = wait.min(within.max(Duration::from_millis(1)));
            }
            // A group retrying a resume miss asks to be read again soon: the
            // worker is not held up meanwhile.
            let wake = groups.groups.iter().filter_map(|g| g.wake_at()).min();
            if let Some(at) = wake {
                wait = wait.min(
                    at.saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                );
            }
            if groups.pace_waiting() {
                // Its groups wait for a slower one of another worker.
                wait = wait.min(PACE_RECHECK);
            }
            if busy {
                activator.activate();
            } else {
                activator.activate_after(wait);
            }
        }
    })
}
