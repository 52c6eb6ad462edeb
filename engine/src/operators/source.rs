//! Stage 1: the file source. Reads this worker's file groups, aggregates per host,
//! and emits each group's per-host partials when that group's watermark closes a
//! window. No exchange happens before this point.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidemark_sources::file::ReadStatus;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream};

use crate::group::GroupState;
use crate::series::HostPartial;
use crate::stats::{flush, JobStats, SharedStats};
use crate::time::{EventMs, WindowTime};

/// How the source paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Bytes read from one group per activation.
    pub chunk_bytes: usize,
    /// Bytes read per activation over all groups, so one activation stays short.
    pub activation_bytes: usize,
    /// How soon to look again when every group is idle at EOF.
    pub poll_interval: Duration,
}

/// Builds the source operator over `groups` (this worker's share).
pub fn file_source<'scope>(
    scope: Scope<'scope, WindowTime>,
    mut groups: Vec<GroupState>,
    pacing: Pacing,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
) -> Stream<'scope, WindowTime, Vec<HostPartial>> {
    source(scope, "FileSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut delta = JobStats {
            file_groups: groups.len() as u64,
            ..JobStats::default()
        };
        let mut next_group = 0usize;
        move |output| {
            let Some(held) = cap.as_mut() else {
                return;
            };
            if stop.load(Ordering::SeqCst) {
                // Not final: open windows are left unemitted (a restart recomputes them).
                delta.windows_open_at_stop +=
                    groups.iter().map(|g| g.open_windows() as u64).sum::<u64>();
                groups.clear();
                flush(&stats, &mut delta);
                cap = None;
                return;
            }
            let now = Instant::now();
            let wall_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as EventMs)
                .unwrap_or(0);
            let mut busy = false;
            let mut spent = 0usize;
            // Round-robin start so a busy group cannot starve the ones after it.
            let n = groups.len();
            for k in 0..n {
                if spent >= pacing.activation_bytes {
                    busy = true;
                    break;
                }
                let g = &mut groups[(next_group + k) % n];
                if g.is_finished() {
                    continue;
                }
                let before = delta.bytes_read;
                let status = g.read(pacing.chunk_bytes, now, wall_ms, &mut delta);
                spent += (delta.bytes_read - before) as usize;
                if status == ReadStatus::More {
                    busy = true;
                }
                g.apply_idle(now, wall_ms);
            }
            if n > 0 {
                next_group = (next_group + 1) % n;
            }
            let mut ready: BTreeMap<WindowTime, Vec<HostPartial>> = BTreeMap::new();
            for g in groups.iter_mut() {
                g.close_windows(|t, p| ready.entry(t).or_default().push(p));
            }
            for (t, parts) in ready {
                let c = held.delayed(&t);
                output.session(&c).give_iterator(parts.into_iter());
            }
            let open = groups
                .iter()
                .map(|g| g.first_open())
                .min()
                .unwrap_or(WindowTime::MAX);
            flush(&stats, &mut delta);
            if open == WindowTime::MAX {
                cap = None;
                return;
            }
            if open > *held.time() {
                held.downgrade(&open);
            }
            if busy {
                activator.activate();
            } else {
                activator.activate_after(pacing.poll_interval);
            }
        }
    })
}
