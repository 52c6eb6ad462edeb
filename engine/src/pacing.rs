//! Event-time pacing (what Flink calls watermark alignment): the inputs of a job
//! — file groups today, replay segments and Kafka partitions later — read in
//! step by event time, not by bytes. An input more than a bound ahead of the
//! slowest one waits, and a turn stops once its watermark reaches that bound.
//!
//! Why: a window closes only when every input's watermark has passed it, and
//! until then each input's partial of it is alive (in the source and in the
//! stages after it). Read by bytes, 2,000 small hosts each read their whole hour
//! in one turn: every host's partial of every minute is alive at once. Paced,
//! only the windows between the slowest input and the bound are.
//!
//! Pacing decides only the order of reading. Every input keeps its own watermark
//! and drops as late only what that watermark says, so results are the same
//! whatever the order (the oracle and torture tests check this).
//!
//! "Slowest" counts only inputs with something to read now. One idle at its end
//! (live mode), waiting for a file or a descriptor, parked, or finished holds no
//! one back: otherwise a quiet host would stall a live fleet, and a group waiting
//! for a descriptor that only another group's progress frees would deadlock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::time::EventMs;

/// What an input's slot holds when it sets no limit (nothing to read).
const NO_LIMIT: EventMs = EventMs::MAX;

/// How many windows an input may run ahead of the slowest. Memory grows with
/// it (about that many windows of every input alive at once); CPU falls with it:
/// each turn reads about that many windows of one input, and switching inputs
/// every few lines leaves each one's state cold in the cache. Measured on 2,000
/// hosts x 60 one-minute windows (18 lines a minute, benches/README.md "Issue 13:
/// event-time pacing"): 1 window 131 MiB and +35% CPU over reading by bytes;
/// 2: 144 MiB, +16%; 4: 156 MiB, +12%; 6: 162 MiB, +6% (reading by bytes: 460 MiB).
/// Instructions are the same whatever the bound (callgrind). Replay's segments
/// and Kafka's partitions; `run`'s file groups take [`FILE_GROUP_BOUND_WINDOWS`].
pub const BOUND_WINDOWS: i64 = 6;

/// [`BOUND_WINDOWS`] for the file groups of `run` (and of a cluster's jobs).
/// With more groups than `max_open_files` (256 by default), a group's turn also
/// closes another group's file and opens its own again, checking its identity
/// (eight system calls): fewer, longer turns pay that less often. On the 2,000
/// hosts above, 10 windows took 3.9% less CPU than 6 at the same peak RSS
/// (160 MiB; 8: 146 MiB, 12: 167 MiB, neither faster; benches/README.md "Issue
/// 13: item 2, ninth pass"). Replay puts its segments down between turns
/// without such checks: 10 windows there took no less CPU and 30% more memory.
pub const FILE_GROUP_BOUND_WINDOWS: i64 = 10;

/// How far (event time) an input may run ahead of the slowest:
/// [`BOUND_WINDOWS`] windows, at least a second.
pub fn default_bound_ms(window_ms: i64) -> EventMs {
    bound_ms(window_ms, BOUND_WINDOWS)
}

/// How far (event time) a file group may run ahead of the slowest:
/// [`FILE_GROUP_BOUND_WINDOWS`] windows, at least a second.
pub fn file_group_bound_ms(window_ms: i64) -> EventMs {
    bound_ms(window_ms, FILE_GROUP_BOUND_WINDOWS)
}

/// `windows` windows of `window_ms`, at least a second.
fn bound_ms(window_ms: i64, windows: i64) -> EventMs {
    window_ms.saturating_mul(windows).max(1_000)
}

/// Where one input stands before a round of turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// It has something to read (or has not been read yet): it holds the others
    /// back at its watermark, `None` before its first line (the furthest behind).
    Reading(Option<EventMs>),
    /// Idle at its end, waiting (for a file, a descriptor, a retry), parked or
    /// finished: it holds no one back.
    Quiet,
}

/// The slowest watermark of each of a process's workers for one job, so that
/// workers align with each other too. Lock-free: each worker writes its own slot
/// once per round and reads the others'.
#[derive(Debug)]
pub struct PaceBoard {
    slots: Vec<AtomicI64>,
}

impl PaceBoard {
    /// A board for `workers` workers, none of them setting a limit yet.
    pub fn new(workers: usize) -> Arc<PaceBoard> {
        Arc::new(PaceBoard {
            slots: (0..workers.max(1))
                .map(|_| AtomicI64::new(NO_LIMIT))
                .collect(),
        })
    }

    fn publish(&self, slot: usize, slowest: EventMs) {
        if let Some(s) = self.slots.get(slot) {
            s.store(slowest, Ordering::Relaxed);
        }
    }

    fn slowest(&self) -> EventMs {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .min()
            .unwrap_or(NO_LIMIT)
    }
}

/// One worker's pacer for one job's inputs.
#[derive(Debug, Clone)]
pub struct Pacer {
    bound_ms: EventMs,
    board: Arc<PaceBoard>,
    slot: usize,
}

/// How far this round's turns may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// A turn stops once the input's watermark reaches this; an input already
    /// there waits. [`EventMs::MAX`]: no limit.
    limit: EventMs,
}

impl Horizon {
    /// No limit: every input reads.
    pub const OPEN: Horizon = Horizon { limit: NO_LIMIT };

    /// Whether an input at watermark `wm` may take its turn now (one that has
    /// not seen a line yet always may: it is the furthest behind).
    pub fn allows(&self, wm: Option<EventMs>) -> bool {
        wm.is_none_or(|w| w < self.limit)
    }

    /// The watermark at which a turn stops ([`EventMs::MAX`]: never).
    pub fn stop_at(&self) -> EventMs {
        self.limit
    }
}

impl Pacer {
    /// Worker `slot`'s pacer on `board`, letting inputs run `bound_ms` ahead of
    /// the slowest.
    pub fn new(bound_ms: EventMs, board: Arc<PaceBoard>, slot: usize) -> Pacer {
        Pacer {
            bound_ms: bound_ms.max(1),
            board,
            slot,
        }
    }

    /// Publishes this worker's slowest input among `lanes` and returns the
    /// horizon for its next round: the slowest of all workers plus the bound.
    pub fn horizon(&self, lanes: impl IntoIterator<Item = Lane>) -> Horizon {
        let mine = lanes
            .into_iter()
            .filter_map(|l| match l {
                Lane::Reading(wm) => Some(wm.unwrap_or(EventMs::MIN)),
                Lane::Quiet => None,
            })
            .min()
            .unwrap_or(NO_LIMIT);
        self.board.publish(self.slot, mine);
        self.horizon_now()
    }

    /// This worker has nothing to read: it holds no one back.
    pub fn release(&self) {
        self.board.publish(self.slot, NO_LIMIT);
    }

    fn horizon_now(&self) -> Horizon {
        match self.board.slowest() {
            NO_LIMIT => Horizon::OPEN,
            s => Horizon {
                limit: s.saturating_add(self.bound_ms),
            },
        }
    }
}

#[cfg(test)]
mod tests;
