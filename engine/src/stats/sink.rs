//! Per-sink self-metrics, shared live between a sink and whoever reports on it.
//!
//! A sink that sends over the network can block worker 0 for as long as its
//! receiver is down (back-pressure), which is exactly when its counters matter
//! most. So they are atomics the sink updates from any thread (its sender's
//! too), read by `/metrics` and the status line without waiting for the
//! collector: [`SinkMeter`]. The [`crate::sink::Sinks`] fan-out keeps one per
//! sink and counts the windows and records every sink was handed; a sink with
//! more to say (batches, retries, a queue) hands its own meter over through
//! [`crate::sink::Sink::meter`].

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Why a receiver refused samples for good (never retried).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// Older than what the receiver already holds for the series.
    OutOfOrder,
    /// Older than the receiver accepts at all (outside its head block).
    TooOld,
    /// Any other 4xx answer: the request itself was refused.
    Refused,
    /// The receiver holds another value for the same series and timestamp
    /// ("duplicate sample for timestamp"): never expected, not even when a
    /// resumed run sends windows again (those carry the same values), so always
    /// a loss — e.g. a resume after `timestamp`, `series` or `external_labels`
    /// changed.
    Conflict,
}

impl Rejection {
    /// Every reason, in the order [`SinkMeter::rejected`] keeps them.
    pub const ALL: [Rejection; 4] = [
        Rejection::OutOfOrder,
        Rejection::TooOld,
        Rejection::Refused,
        Rejection::Conflict,
    ];

    /// The `reason` label value, e.g. `out_of_order`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::OutOfOrder => "out_of_order",
            Rejection::TooOld => "too_old",
            Rejection::Refused => "refused",
            Rejection::Conflict => "conflict",
        }
    }
}

/// Whether a sink's destination takes what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkState {
    /// Writing, or idle with nothing to write.
    #[default]
    Ok,
    /// The last attempt failed and is being retried: windows wait (and the
    /// job's reads pause once the queue is full).
    Retrying,
    /// The sink failed for good; the job fails with it.
    Failed,
}

impl SinkState {
    /// The `state` label value, e.g. `retrying`.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkState::Ok => "ok",
            SinkState::Retrying => "retrying",
            SinkState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> SinkState {
        match v {
            1 => SinkState::Retrying,
            2 => SinkState::Failed,
            _ => SinkState::Ok,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            SinkState::Ok => 0,
            SinkState::Retrying => 1,
            SinkState::Failed => 2,
        }
    }
}

/// What a sink's records and batches are called in the run's summary, e.g.
/// `sample(s)` and `request(s)` (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    /// What [`SinkMeter::records_written`] counts.
    pub records: &'static str,
    /// What [`SinkMeter::batches`] counts.
    pub batches: &'static str,
}

impl Default for Units {
    fn default() -> Units {
        Units {
            records: "sample(s)",
            batches: "request(s)",
        }
    }
}

/// One sink's live counters. Counters only grow; `queue_*` are gauges.
#[derive(Debug, Default)]
pub struct SinkMeter {
    /// What the sink is ([`crate::sink::Sink::describe`]); set by the fan-out.
    name: std::sync::OnceLock<String>,
    /// What its records and batches are, for the run's summary (see
    /// [`SinkMeter::set_units`]).
    units: std::sync::OnceLock<Units>,
    /// Windows handed to the sink.
    pub windows: AtomicU64,
    /// Records (series of a window) handed to the sink, before its own filter.
    pub records: AtomicU64,
    /// Records the sink wrote or sent and had acknowledged.
    pub records_written: AtomicU64,
    /// Batches (requests, syncs) the sink completed.
    pub batches: AtomicU64,
    /// Attempts that failed and were tried again.
    pub retries: AtomicU64,
    /// Attempts that failed, retried or not.
    pub failures: AtomicU64,
    /// Samples refused for good, by [`Rejection`] (in [`Rejection::ALL`] order).
    pub rejected: [AtomicU64; 4],
    /// Samples of a resumed run's first windows that the receiver answered
    /// it already held ("out of order" before a window had every request
    /// accepted): windows the last run had sent before it stopped, sent again
    /// as the engine guarantees. Expected, so not in `rejected`.
    pub resent_held: AtomicU64,
    /// Records waiting to be sent.
    pub queue_records: AtomicU64,
    /// Bytes waiting to be sent (encoded).
    pub queue_bytes: AtomicU64,
    state: AtomicU8,
    /// Set by a sink whose queue is full: the job's sources pause reading
    /// until it is clear again (back-pressure: nothing is dropped, memory stays
    /// flat while a receiver is slow or down).
    backlogged: std::sync::atomic::AtomicBool,
}

impl SinkMeter {
    /// A meter for the sink `name`.
    pub fn named(name: impl Into<String>) -> Arc<SinkMeter> {
        let m = SinkMeter::default();
        let _ = m.name.set(name.into());
        Arc::new(m)
    }

    /// The sink's name, once the fan-out set it.
    pub fn name(&self) -> &str {
        self.name.get().map(String::as_str).unwrap_or("")
    }

    /// Says what the sink's records and batches are, for the run's summary:
    /// an Alertmanager sink sends alerts, not samples. Default: samples and
    /// requests.
    pub fn set_units(&self, units: Units) {
        let _ = self.units.set(units);
    }

    /// Names the sink unless it already has a name.
    pub fn set_name(&self, name: String) {
        let _ = self.name.set(name);
    }

    /// Counts one refusal of `samples` samples for `why`.
    pub fn reject(&self, why: Rejection, samples: u64) {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejected[i].fetch_add(samples, Ordering::Relaxed);
    }

    /// Samples refused for `why` so far.
    pub fn rejected(&self, why: Rejection) -> u64 {
        let i = Rejection::ALL.iter().position(|r| *r == why).unwrap_or(0);
        self.rejected[i].load(Ordering::Relaxed)
    }

    /// The sink's state now.
    pub fn state(&self) -> SinkState {
        SinkState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Sets the sink's state.
    pub fn set_state(&self, s: SinkState) {
        self.state.store(s.to_u8(), Ordering::Relaxed);
    }

    /// Whether the sink asks the job to pause reading (its queue is full).
    pub fn is_backlogged(&self) -> bool {
        self.backlogged.load(Ordering::Relaxed)
    }

    /// Asks the job's sources to pause reading (`true`) or lets them go on.
    pub fn set_backlogged(&self, on: bool) {
        self.backlogged.store(on, Ordering::Relaxed);
    }

    /// A plain copy of the counters now.
    pub fn snapshot(&self) -> SinkSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SinkSnapshot {
            name: self.name().to_string(),
            units: self.units.get().copied().unwrap_or_default(),
            windows: get(&self.windows),
            records: get(&self.records),
            records_written: get(&self.records_written),
            batches: get(&self.batches),
            retries: get(&self.retries),
            failures: get(&self.failures),
            rejected: Rejection::ALL.map(|r| (r, self.rejected(r))),
            resent_held: get(&self.resent_held),
            queue_records: get(&self.queue_records),
            queue_bytes: get(&self.queue_bytes),
            state: self.state(),
        }
    }
}

/// [`SinkMeter`]'s values at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are SinkMeter's, documented there.
pub struct SinkSnapshot {
    pub name: String,
    pub units: Units,
    pub windows: u64,
    pub records: u64,
    pub records_written: u64,
    pub batches: u64,
    pub retries: u64,
    pub failures: u64,
    pub rejected: [(Rejection, u64); 4],
    pub resent_held: u64,
    pub queue_records: u64,
    pub queue_bytes: u64,
    pub state: SinkState,
}

/// A job's sink meters, in the order of its sinks: what [`crate::JobStats`]
/// carries so that every reader of the job's stats can report on its sinks.
/// Two lists are equal when they hold the same meters (the same sinks), whatever
/// their counters say.
#[derive(Debug, Default, Clone)]
pub struct SinkMeters(pub Vec<Arc<SinkMeter>>);

impl PartialEq for SinkMeters {
    fn eq(&self, o: &SinkMeters) -> bool {
        self.0.len() == o.0.len() && self.0.iter().zip(&o.0).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for SinkMeters {}

impl SinkMeters {
    /// Adds the meters of `o` that are not here yet.
    pub fn merge(&mut self, o: &SinkMeters) {
        for m in &o.0 {
            if !self.0.iter().any(|x| Arc::ptr_eq(x, m)) {
                self.0.push(m.clone());
            }
        }
    }

    /// Whether any sink asks the job to pause reading.
    pub fn backlogged(&self) -> bool {
        self.0.iter().any(|m| m.is_backlogged())
    }

    /// Every meter's values now.
    pub fn snapshot(&self) -> Vec<SinkSnapshot> {
        self.0.iter().map(|m| m.snapshot()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_counts_rejections_by_reason_and_keeps_its_state() {
        let m = SinkMeter::named("remote_write http://p/api/v1/write");
        m.reject(Rejection::TooOld, 3);
        m.reject(Rejection::OutOfOrder, 2);
        m.reject(Rejection::TooOld, 1);
        m.set_state(SinkState::Retrying);
        let s = m.snapshot();
        assert_eq!(s.name, "remote_write http://p/api/v1/write");
        assert_eq!(
            s.rejected,
            [
                (Rejection::OutOfOrder, 2),
                (Rejection::TooOld, 4),
                (Rejection::Refused, 0),
                (Rejection::Conflict, 0)
            ]
        );
        assert_eq!(s.state, SinkState::Retrying);
    }

    #[test]
    fn meters_merge_by_identity() {
        let a = SinkMeter::named("a");
        let b = SinkMeter::named("b");
        let mut x = SinkMeters(vec![a.clone()]);
        x.merge(&SinkMeters(vec![a.clone(), b.clone()]));
        assert_eq!(x, SinkMeters(vec![a, b]));
    }
}
