//! Where a finite run's input ends in event time: the bound the alerts step to
//! at the end of input, the same whatever the speed the input was read at.
//!
//! While input is read, the collector steps the alerts to the output frontier,
//! the least watermark of the groups still reading. How far that frontier got
//! before the end depends on scheduling: trailing lines that feed no series
//! still move a watermark, and whether a frontier past the last window with
//! records was ever seen decides whether alerts resolve in the gap windows
//! before it. So at the end of input the alerts step to a bound every frontier
//! seen is below: the largest first open window any group's (or replay
//! segment's) final watermark leaves. A group's final watermark depends on its
//! lines alone (and is restored from a checkpoint), so a paced run, a full-speed
//! run, a resumed run and a replay end at the same bound; a replay caps it at
//! its range's end.
//!
//! Shared by the threads of one process: a finite run (`--until-eof`, replay)
//! is one process; a cluster member follows its files and never ends input.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::time::EventMs;

/// The largest first open window the sources' final watermarks leave, raised
/// by each source as it reads, read by the collector at the end of input.
#[derive(Debug)]
pub struct InputEnd {
    reached: AtomicI64,
    cap: EventMs,
}

impl Default for InputEnd {
    fn default() -> Self {
        InputEnd::capped_at(EventMs::MAX)
    }
}

impl InputEnd {
    /// A bound never above `cap` (a replay's range end).
    pub fn capped_at(cap: EventMs) -> InputEnd {
        InputEnd {
            reached: AtomicI64::new(EventMs::MIN),
            cap,
        }
    }

    /// A source's group (or segment) leaves windows before `window_ms` closed.
    pub fn raise(&self, window_ms: EventMs) {
        self.reached.fetch_max(window_ms, Ordering::SeqCst);
    }

    /// The bound: every frontier the sources held is at or below it.
    pub fn get(&self) -> EventMs {
        self.reached.load(Ordering::SeqCst).min(self.cap)
    }
}
