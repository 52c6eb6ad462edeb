//! The bounded queue between the sink (worker 0, which encodes windows) and its
//! sender thread (which sends them, one request in flight at a time).
//!
//! Bounded in samples: above `capacity` the sink asks the job to pause reading
//! ([`SinkMeter::set_backlogged`]) and lets it go on below half of it; at twice
//! the capacity the sink is no longer [`Queue::ready`], and the collector keeps
//! the next windows pending instead of handing them over (worker 0 never blocks
//! on the queue: in a cluster it runs every job's collector and the commands).
//! So the queue holds at most twice its capacity plus one window's samples,
//! however long a receiver is down. [`Queue::wait_room`] still blocks at twice
//! the capacity, as a safety net for a caller that does not ask first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tidemark_engine::stats::sink::SinkMeter;

use super::frame::Batch;
use super::SendFailure;

pub struct Queue {
    state: Mutex<State>,
    changed: Condvar,
    meter: Arc<SinkMeter>,
    capacity: u64,
    /// The job's stop flags ([`tidemark_engine::sink::Sink::watch_stop`]).
    stop: Mutex<Vec<Arc<AtomicBool>>>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Batch>,
    /// Samples and bytes waiting or in flight.
    samples: u64,
    bytes: u64,
    in_flight: bool,
    /// Set once: the sender gave up; nothing is sent any more.
    failed: Option<SendFailure>,
    /// The sink is gone: the sender ends.
    closed: bool,
}

impl Queue {
    pub fn new(capacity: usize, meter: Arc<SinkMeter>) -> Queue {
        Queue {
            state: Mutex::default(),
            changed: Condvar::new(),
            meter,
            capacity: capacity.max(1) as u64,
            stop: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it left plain counters: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another window may be pushed without waiting: below twice the
    /// capacity, or the sender gave up (the push fails at once then).
    pub fn ready(&self) -> bool {
        let s = self.lock();
        s.samples < 2 * self.capacity || s.failed.is_some()
    }

    /// Whether every batch pushed so far is settled (or the sender gave up):
    /// [`Queue::wait_idle`] returns at once.
    pub fn idle(&self) -> bool {
        let s = self.lock();
        (!s.in_flight && s.waiting.is_empty()) || s.failed.is_some()
    }

    /// Waits while the queue holds twice its capacity (never when the caller
    /// asked [`Queue::ready`] first). Fails if the sender gave up.
    pub fn wait_room(&self) -> Result<(), SendFailure> {
        let mut s = self.lock();
        while s.samples >= 2 * self.capacity && s.failed.is_none() {
            s = self.wait(s);
        }
        match &s.failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// Adds a batch, without waiting (see [`Queue::wait_room`]). Fails if the
    /// sender gave up.
    pub fn push(&self, b: Batch) -> Result<(), SendFailure> {
        let mut s = self.lock();
        if let Some(f) = &s.failed {
            return Err(f.clone());
        }
        s.samples += b.samples;
        s.bytes += b.body.len() as u64;
        s.waiting.push_back(b);
        if s.samples > self.capacity {
            self.meter.set_backlogged(true);
        }
        self.gauges(&s);
        self.changed.notify_all();
        Ok(())
    }

    /// The sender's next batch, once there is one; `None` once the sink is gone
    /// (or the sender failed), even with batches left: nobody waits for them
    /// any more, and nothing was committed for them (the next run sends them).
    /// The batch still counts as queued until [`Queue::done`].
    pub fn next(&self) -> Option<Batch> {
        let mut s = self.lock();
        loop {
            if s.failed.is_some() || s.closed {
                return None;
            }
            if let Some(b) = s.waiting.pop_front() {
                s.in_flight = true;
                return Some(b);
            }
            s = self.wait(s);
        }
    }

    /// The batch in flight is settled (acknowledged or rejected for good).
    pub fn done(&self, b: &Batch) {
        let mut s = self.lock();
        s.samples = s.samples.saturating_sub(b.samples);
        s.bytes = s.bytes.saturating_sub(b.body.len() as u64);
        s.in_flight = false;
        if s.samples < self.capacity / 2 || s.samples == 0 {
            self.meter.set_backlogged(false);
        }
        self.gauges(&s);
        self.changed.notify_all();
    }

    /// The sender gives up: every waiter gets `f`; queued batches are dropped
    /// (nothing is committed: the next run sends them again).
    pub fn fail(&self, f: SendFailure) {
        let mut s = self.lock();
        if s.failed.is_none() {
            s.failed = Some(f);
        }
        s.waiting.clear();
        s.in_flight = false;
        s.samples = 0;
        s.bytes = 0;
        // Reads must not stay paused for a sink that is done.
        self.meter.set_backlogged(false);
        self.gauges(&s);
        self.changed.notify_all();
    }

    /// Waits until every batch pushed so far is settled; fails if the sender
    /// gave up.
    pub fn wait_idle(&self) -> Result<(), SendFailure> {
        let mut s = self.lock();
        while (s.in_flight || !s.waiting.is_empty()) && s.failed.is_none() {
            s = self.wait(s);
        }
        match &s.failed {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// The sink is gone: the sender ends after its current attempt.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Whether the sender should give up instead of retrying: the job is
    /// stopping, or the sink is gone.
    pub fn stopping(&self) -> bool {
        self.lock().closed
            || self
                .stop
                .lock()
                .map(|flags| flags.iter().any(|f| f.load(Ordering::SeqCst)))
                .unwrap_or(false)
    }

    pub fn watch_stop(&self, flag: Arc<AtomicBool>) {
        if let Ok(mut flags) = self.stop.lock() {
            flags.push(flag);
        }
    }

    /// Sleeps up to `d`, waking early when the sender should give up (checked
    /// every 50 ms: a stop flag has no way to wake a waiter).
    pub fn sleep(&self, d: Duration) -> bool {
        let until = std::time::Instant::now() + d;
        loop {
            if self.stopping() {
                return false;
            }
            let now = std::time::Instant::now();
            if now >= until {
                return true;
            }
            let s = self.lock();
            let step = (until - now).min(Duration::from_millis(50));
            let _ = self.changed.wait_timeout(s, step);
        }
    }

    /// Samples waiting or in flight.
    #[cfg(test)]
    pub fn samples(&self) -> u64 {
        self.lock().samples
    }

    fn wait<'a>(&self, s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(s).unwrap_or_else(|p| p.into_inner())
    }

    fn gauges(&self, s: &State) {
        self.meter.queue_records.store(s.samples, Ordering::Relaxed);
        self.meter.queue_bytes.store(s.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(samples: u64) -> Batch {
        Batch {
            window_start_ms: 0,
            sample_ms: 60_000,
            samples,
            stale: 0,
            first_series: String::new(),
            body: vec![0; 10],
        }
    }

    #[test]
    fn the_backlog_flag_goes_on_above_capacity_and_off_below_half() {
        let meter = SinkMeter::named("rw");
        let q = Queue::new(100, meter.clone());
        q.push(batch(60)).unwrap();
        assert!(!meter.is_backlogged());
        q.push(batch(41)).unwrap();
        assert!(meter.is_backlogged(), "101 > 100");
        assert_eq!(meter.queue_records.load(Ordering::Relaxed), 101);
        assert_eq!(meter.queue_bytes.load(Ordering::Relaxed), 20);
        let b = q.next().unwrap();
        q.done(&b);
        // 41 left: still above 50? no, below half: reads go on.
        assert!(!meter.is_backlogged());
        q.push(batch(30)).unwrap();
        q.push(batch(40)).unwrap();
        assert!(meter.is_backlogged(), "111");
        let b = q.next().unwrap();
        q.done(&b);
        assert!(meter.is_backlogged(), "70 is not below half of 100");
        let b = q.next().unwrap();
        q.done(&b);
        assert!(!meter.is_backlogged(), "40");
        assert_eq!(q.samples(), 40);
    }

    #[test]
    fn wait_room_blocks_at_twice_the_capacity_until_the_sender_drains() {
        let meter = SinkMeter::named("rw");
        let q = Arc::new(Queue::new(10, meter));
        q.push(batch(19)).unwrap();
        assert!(q.ready());
        q.push(batch(1)).unwrap();
        assert!(!q.ready() && !q.idle());
        let pushed = Arc::new(AtomicBool::new(false));
        let t = {
            let (q, pushed) = (q.clone(), pushed.clone());
            std::thread::spawn(move || {
                q.wait_room().unwrap();
                q.push(batch(5)).unwrap();
                pushed.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!pushed.load(Ordering::SeqCst), "must wait at 2x capacity");
        let b = q.next().unwrap();
        q.done(&b);
        t.join().unwrap();
        assert!(pushed.load(Ordering::SeqCst));
        assert_eq!(q.samples(), 6);
        assert!(q.ready());
    }

    #[test]
    fn a_failure_wakes_every_waiter_and_frees_the_queue() {
        let meter = SinkMeter::named("rw");
        let q = Arc::new(Queue::new(10, meter.clone()));
        q.push(batch(25)).unwrap();
        let t = {
            let q = q.clone();
            std::thread::spawn(move || q.wait_room())
        };
        let idle = {
            let q = q.clone();
            std::thread::spawn(move || q.wait_idle())
        };
        std::thread::sleep(Duration::from_millis(50));
        q.fail(SendFailure::Stopped { pending: 25 });
        assert!(t.join().unwrap().is_err());
        assert!(idle.join().unwrap().is_err());
        assert!(!meter.is_backlogged());
        assert_eq!(q.samples(), 0);
        assert!(q.next().is_none());
    }
}
