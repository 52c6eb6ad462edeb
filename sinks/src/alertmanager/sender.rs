//! The sender thread: sends the [`Book`]'s state when it changed and every
//! resend interval (wall clock — Alertmanager forgets an alert that is not
//! re-sent before its `endsAt`), retries with backoff, and records a refusal
//! for the sink to fail the job with. The job's thread only updates the book
//! and never waits for the network.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tidemark_engine::stats::sink::{Rejection, SinkMeter, SinkState};

use super::body;
use super::book::{Book, Next};
use super::http::{Client, Outcome};
use super::AlertmanagerError;

/// First wait after a failed attempt; doubles up to the resend interval (at
/// most [`MAX_BACKOFF`]).
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The sender's clocks: monotonic for the schedule, wall for what Alertmanager
/// reads. Tests fake them.
pub trait Clock: Send + Sync {
    /// Time since some fixed instant; never goes back.
    fn mono(&self) -> Duration;
    /// Ms since the Unix epoch.
    fn wall_ms(&self) -> i64;
}

/// The machine's clocks.
pub struct SystemClock(Instant);

impl SystemClock {
    /// A clock whose monotonic time starts now.
    pub fn new() -> SystemClock {
        SystemClock(Instant::now())
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn mono(&self) -> Duration {
        self.0.elapsed()
    }
    fn wall_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// What the job's thread and the sender share.
pub struct Shared {
    inner: Mutex<Inner>,
    /// Signalled on every update, every attempt's end, and quit.
    changed: Condvar,
    pub meter: Arc<SinkMeter>,
    pub clock: Arc<dyn Clock>,
}

pub struct Inner {
    pub book: Book,
    /// Set when Alertmanager refused the alerts for good: the sink fails.
    pub fatal: Option<AlertmanagerError>,
    /// The last failed attempt's reason, while failing.
    pub last_failure: Option<String>,
    /// The sink was dropped: stop.
    pub quit: bool,
    /// Times the sender went to wait (tests: it looked at the book and found
    /// nothing due).
    pub waits: u64,
}

impl Shared {
    pub fn new(book: Book, meter: Arc<SinkMeter>, clock: Arc<dyn Clock>) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                book,
                fatal: None,
                last_failure: None,
                quit: false,
                waits: 0,
            }),
            changed: Condvar::new(),
            meter,
            clock,
        }
    }

    /// The state, locked. A panic while it was held leaves plain data behind,
    /// still consistent enough to report and stop.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the sender (and whoever waits for it).
    pub fn notify(&self) {
        self.changed.notify_all();
    }

    /// Waits for a change, at most `limit` (`None`: until one comes).
    pub fn wait<'a>(
        &self,
        guard: MutexGuard<'a, Inner>,
        limit: Option<Duration>,
    ) -> MutexGuard<'a, Inner> {
        match limit {
            None => self.changed.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                self.changed
                    .wait_timeout(guard, d)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        }
    }
}

/// The sender's loop, until the sink is dropped or Alertmanager refused.
pub fn run(shared: Arc<Shared>, client: Client, generator_url: String, describe: String) {
    let meter = &shared.meter;
    let clock = &shared.clock;
    let mut backoff = MIN_BACKOFF;
    let mut failing_since: Option<(Duration, u64)> = None;
    let mut g = shared.lock();
    loop {
        if g.quit || g.fatal.is_some() {
            return;
        }
        let now = clock.mono();
        match g.book.next(now) {
            Next::Idle => {
                g.waits += 1;
                shared.notify();
                g = shared.wait(g, None);
            }
            Next::WaitUntil(t) => {
                g.waits += 1;
                shared.notify();
                g = shared.wait(g, Some(t.saturating_sub(now)));
            }
            Next::Send => {
                let generation = g.book.generation();
                let alerts = g.book.postable(clock.wall_ms());
                drop(g);
                let (text, left_out) = body::encode(&alerts, &generator_url);
                if !left_out.is_empty() {
                    // Only a time outside years -9999..=9999 does this.
                    meter.failures.fetch_add(left_out.len() as u64, Relaxed);
                    tracing::warn!(
                        "{describe}: {} alerts left out of the send, their times cannot be written in RFC 3339: {}",
                        left_out.len(),
                        left_out.join(", ")
                    );
                }
                let sent = (alerts.len() - left_out.len()) as u64;
                meter.queue_records.store(sent, Relaxed);
                meter.queue_bytes.store(text.len() as u64, Relaxed);
                let outcome = client.post(&text);
                g = shared.lock();
                let now = clock.mono();
                match outcome {
                    Outcome::Delivered => {
                        g.book.sent(generation, now);
                        meter.batches.fetch_add(1, Relaxed);
                        meter.records_written.fetch_add(sent, Relaxed);
                        meter.queue_records.store(0, Relaxed);
                        meter.queue_bytes.store(0, Relaxed);
                        meter.set_state(SinkState::Ok);
                        if let Some((since, retries)) = failing_since.take() {
                            tracing::info!(
                                "{describe}: alerts delivered again after {:.1}s and {retries} retries",
                                now.saturating_sub(since).as_secs_f64()
                            );
                        }
                        g.last_failure = None;
                        backoff = MIN_BACKOFF;
                    }
                    Outcome::Retry { why, retry_after } => {
                        meter.failures.fetch_add(1, Relaxed);
                        meter.retries.fetch_add(1, Relaxed);
                        meter.set_state(SinkState::Retrying);
                        let cap = g.book.resend_interval().clamp(MIN_BACKOFF, MAX_BACKOFF);
                        let wait = retry_after.unwrap_or(backoff).min(cap);
                        backoff = (backoff * 2).min(cap);
                        match &mut failing_since {
                            None => {
                                // Logged once per outage; recovery is logged too.
                                tracing::warn!(
                                    "{describe}: sending alerts failed ({why}); retrying (every {:.1}s at most), the alerts are kept",
                                    cap.as_secs_f64()
                                );
                                failing_since = Some((now, 1));
                            }
                            Some((_, n)) => *n += 1,
                        }
                        g.last_failure = Some(why);
                        g.book.failed(now, wait);
                    }
                    Outcome::Refused { status, body, hint } => {
                        meter.failures.fetch_add(1, Relaxed);
                        meter.reject(Rejection::Refused, sent);
                        meter.set_state(SinkState::Failed);
                        let e = AlertmanagerError::Refused {
                            endpoint: client.endpoint().to_string(),
                            status,
                            body,
                            hint,
                        };
                        tracing::error!("{describe}: {e}");
                        g.fatal = Some(e);
                    }
                    Outcome::Unsendable { why } => {
                        meter.failures.fetch_add(1, Relaxed);
                        meter.reject(Rejection::Refused, sent);
                        meter.set_state(SinkState::Failed);
                        let e = AlertmanagerError::Unsendable {
                            endpoint: client.endpoint().to_string(),
                            why,
                        };
                        tracing::error!("{describe}: {e}");
                        g.fatal = Some(e);
                    }
                }
                shared.notify();
            }
        }
    }
}
