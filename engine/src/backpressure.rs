//! Back-pressure from the sinks to the sources: while any sink of a job says it
//! is backlogged ([`SinkMeter::set_backlogged`]: its queue is full because its
//! receiver is slow or down), every source of the job stops reading and looks
//! again after [`PAUSE_RECHECK`], as it does when its rate limit is used up.
//! Nothing is dropped; the unread lines wait in their files, so memory stays
//! flat however long the receiver is down.
//!
//! A paused source is not idle: its data is there, unread. It neither reads nor
//! applies the idle rule while paused, and when it goes on each of its groups
//! starts its idle (and stuck-clock) timers afresh, so a pause longer than
//! `idle_timeout` never lets a watermark follow the wall clock past lines that
//! were written during the pause (they would be late). Discovery goes on while
//! paused: a file created meanwhile is found when it appears, as without the
//! pause, and its lines are judged from then.
//!
//! [`ReadGate`] is made once per job and process from the job's sink meters and
//! shared by its workers' sources; checking it is a few relaxed atomic loads per
//! activation. It also counts the pauses (once per pause of the job, whichever
//! worker sees it first) into [`crate::JobStats::output_pauses`] and
//! [`crate::JobStats::output_paused_ms`].
//!
//! [`SinkMeter::set_backlogged`]: crate::stats::SinkMeter::set_backlogged

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{JobStats, SinkMeters};

/// How soon a paused source looks again whether it may read.
pub const PAUSE_RECHECK: Duration = Duration::from_millis(20);

/// Pauses shorter apart than this are logged together (one line per interval).
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Whether a job's sources may read now (see the module docs).
#[derive(Debug)]
pub struct ReadGate {
    meters: SinkMeters,
    base: Instant,
    /// Since when the job has been paused, in ms after `base` plus one; 0 while
    /// it reads.
    paused_at: AtomicU64,
    /// When a pause was last logged (ms after `base` plus one; 0: never), and
    /// the pauses begun since.
    logged_at: AtomicU64,
    unlogged: AtomicU64,
}

/// What a source does on an activation, from [`ReadGate::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Read.
    Open,
    /// Do not read; look again after [`PAUSE_RECHECK`].
    Paused,
}

impl ReadGate {
    /// The gate of a job whose sinks have `meters` (none: never paused).
    pub fn new(meters: SinkMeters) -> Arc<ReadGate> {
        Arc::new(ReadGate {
            meters,
            base: Instant::now(),
            paused_at: AtomicU64::new(0),
            logged_at: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        })
    }

    /// A gate that never pauses (a process without the job's sinks).
    pub fn open() -> Arc<ReadGate> {
        ReadGate::new(SinkMeters::default())
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64 + 1
    }

    /// Whether the job's sources may read now. The first source to see a pause
    /// begin counts it in `delta`; the first to see it end adds its length.
    pub fn check(&self, now: Instant, delta: &mut JobStats) -> Gate {
        if self.meters.backlogged() {
            let at = self.ms(now);
            if self
                .paused_at
                .compare_exchange(0, at, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                delta.output_pauses += 1;
                self.log_pause(at);
            }
            Gate::Paused
        } else {
            self.end(now, delta);
            Gate::Open
        }
    }

    /// Ends a pause in progress, if any, adding its length to `delta` (also
    /// when the job stops while paused).
    pub fn end(&self, now: Instant, delta: &mut JobStats) {
        if self.paused_at.load(Ordering::Relaxed) == 0 {
            return;
        }
        let since = self.paused_at.swap(0, Ordering::AcqRel);
        if since != 0 {
            let ms = self.ms(now).saturating_sub(since);
            delta.output_paused_ms += ms;
            tracing::debug!("reads go on after a pause of {ms} ms");
        }
    }

    /// Logs the pause that began at `at`, unless one was logged within
    /// [`LOG_EVERY`] (it is then counted in the next line).
    fn log_pause(&self, at: u64) {
        let unlogged = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.logged_at.load(Ordering::Relaxed);
        let due = last == 0 || at.saturating_sub(last) >= LOG_EVERY.as_millis() as u64;
        if !due
            || self
                .logged_at
                .compare_exchange(last, at, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.unlogged.fetch_sub(unlogged, Ordering::Relaxed);
        let names: Vec<&str> = self
            .meters
            .0
            .iter()
            .filter(|m| m.is_backlogged())
            .map(|m| m.name())
            .collect();
        tracing::warn!(
            "reads paused: the sink {} is backlogged (its receiver is slow or down); \
             nothing is dropped, reading goes on once it catches up{}",
            names.join(", "),
            if unlogged > 1 {
                format!(" ({unlogged} pauses since the last such message)")
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::SinkMeter;

    #[test]
    fn a_pause_is_counted_once_and_its_length_added_when_it_ends() {
        let m = SinkMeter::named("slow");
        let gate = ReadGate::new(SinkMeters(vec![SinkMeter::named("fine"), m.clone()]));
        let t0 = Instant::now();
        let mut d = JobStats::default();
        assert_eq!(gate.check(t0, &mut d), Gate::Open);
        m.set_backlogged(true);
        // Two workers see the same pause: counted once.
        assert_eq!(gate.check(t0, &mut d), Gate::Paused);
        assert_eq!(
            gate.check(t0 + Duration::from_millis(5), &mut d),
            Gate::Paused
        );
        assert_eq!((d.output_pauses, d.output_paused_ms), (1, 0));
        m.set_backlogged(false);
        assert_eq!(
            gate.check(t0 + Duration::from_millis(250), &mut d),
            Gate::Open
        );
        assert_eq!(
            gate.check(t0 + Duration::from_millis(260), &mut d),
            Gate::Open
        );
        assert_eq!(d.output_pauses, 1);
        assert!((240..=260).contains(&d.output_paused_ms), "{d:?}");
        // A stop during a pause ends it too.
        m.set_backlogged(true);
        assert_eq!(
            gate.check(t0 + Duration::from_secs(1), &mut d),
            Gate::Paused
        );
        gate.end(t0 + Duration::from_secs(2), &mut d);
        assert_eq!(d.output_pauses, 2);
        assert!(d.output_paused_ms >= 1_240, "{d:?}");
    }

    #[test]
    fn a_job_without_sinks_here_never_pauses() {
        let mut d = JobStats::default();
        assert_eq!(ReadGate::open().check(Instant::now(), &mut d), Gate::Open);
        assert_eq!(d, JobStats::default());
    }
}
