//! The producer's side of the sink: librdkafka's delivery reports counted down,
//! the first failure kept, and the sink's state for `/metrics`.
//!
//! Every record sent counts one outstanding delivery; its report (from the
//! producer's polling thread) counts it down and wakes a waiting `sync`. A
//! record that failed for good, or a fatal or authentication error of the
//! client, is kept as the sink's failure: the job fails at the sink's next step,
//! and nothing after it is committed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use tidemark_engine::stats::sink::{SinkMeter, SinkState};

/// Why the producer failed for good.
#[derive(Debug, Clone)]
pub enum Failure {
    /// A record was refused (not retriable).
    Delivery(String),
    /// The client cannot go on (librdkafka's fatal error, or authentication).
    Client(String),
}

/// Outstanding deliveries and the first failure.
#[derive(Default)]
pub struct Tally {
    pub outstanding: u64,
    pub failure: Option<Failure>,
}

/// Shared by the sink, the producer's context and the opening thread.
pub struct Shared {
    tally: Mutex<Tally>,
    changed: Condvar,
    pub meter: Arc<SinkMeter>,
    /// Outstanding deliveries at or above which the sink asks the job to pause.
    capacity: u64,
}

impl Shared {
    pub fn new(meter: Arc<SinkMeter>, capacity: u64) -> Shared {
        Shared {
            tally: Mutex::new(Tally::default()),
            changed: Condvar::new(),
            meter,
            capacity,
        }
    }

    /// The tally; a poisoned lock (a panic elsewhere) still holds valid counts.
    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` more records sent.
    pub fn sent(&self, n: u64) {
        let mut t = self.tally();
        t.outstanding += n;
        self.publish(&t);
    }

    /// Takes back `n` records counted by [`Shared::sent`] that librdkafka did not take.
    pub fn unsent(&self, n: u64) {
        let mut t = self.tally();
        t.outstanding = t.outstanding.saturating_sub(n);
        self.publish(&t);
    }

    /// Keeps `f` unless an earlier failure is kept already.
    pub fn fail(&self, f: Failure) {
        let mut t = self.tally();
        if t.failure.is_none() {
            t.failure = Some(f);
        }
        self.meter.set_state(SinkState::Failed);
        self.changed.notify_all();
    }

    /// Waits until `done(tally)` or `timeout` passed; returns the tally then.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Tally) -> bool,
    ) -> MutexGuard<'_, Tally> {
        let t = self.tally();
        let (t, _) = self
            .changed
            .wait_timeout_while(t, timeout, |t| !done(t))
            .unwrap_or_else(|e| e.into_inner());
        t
    }

    /// Wakes whoever waits (a stop).
    pub fn wake(&self) {
        self.changed.notify_all();
    }

    /// The queue gauge and the back-pressure flag: on at the capacity, off
    /// below half of it, so that reads do not flap on and off per record.
    fn publish(&self, t: &Tally) {
        self.meter
            .queue_records
            .store(t.outstanding, Ordering::Relaxed);
        if t.outstanding >= self.capacity {
            self.meter.set_backlogged(true);
        } else if t.outstanding <= self.capacity / 2 {
            self.meter.set_backlogged(false);
        }
    }

    /// Whether another window may be handed over.
    pub fn below_capacity(&self) -> bool {
        self.tally().outstanding < self.capacity
    }
}

/// The producer's context: delivery reports and client errors go to [`Shared`].
pub struct Reports {
    pub shared: Arc<Shared>,
    /// When a retried error was last logged (ms since the Unix epoch), and how
    /// many were not logged since: librdkafka reports a broker away every few
    /// seconds, for as long as it is away.
    last_logged: Mutex<(i64, u64)>,
}

/// At most one log line about retried errors per this many ms.
const LOG_EVERY_MS: i64 = 30_000;

impl Reports {
    pub fn new(shared: Arc<Shared>) -> Reports {
        Reports {
            shared,
            last_logged: Mutex::new((i64::MIN, 0)),
        }
    }

    /// Logs a retried error, at most once per [`LOG_EVERY_MS`], saying how many
    /// were not logged in between.
    fn log_retried(&self, error: &KafkaError, reason: &str) {
        let now = jiff::Timestamp::now().as_millisecond();
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_sub(last.0) < LOG_EVERY_MS {
            last.1 += 1;
            return;
        }
        let quiet = std::mem::take(&mut last.1);
        last.0 = now;
        drop(last);
        tracing::warn!(
            "kafka sink producer: {error}: {reason} (retrying; {quiet} more such error(s) since the last one logged)"
        );
    }
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        match code {
            // The client can do nothing more (librdkafka's fatal error, e.g. a
            // broken idempotence guarantee), or would retry credentials that
            // will not change: fail the job, saying why.
            Some(RDKafkaErrorCode::Fatal) | Some(RDKafkaErrorCode::Authentication) => {
                tracing::error!("kafka sink producer: {error}: {reason}");
                self.shared
                    .fail(Failure::Client(format!("{error}: {reason}")));
            }
            // A broker away (transport, all brokers down, timeouts): librdkafka
            // retries, the records wait, the job pauses once they fill the queue.
            _ => {
                self.log_retried(&error, reason);
                self.shared.meter.failures.fetch_add(1, Ordering::Relaxed);
                self.shared.meter.retries.fetch_add(1, Ordering::Relaxed);
                if self.shared.tally().failure.is_none() {
                    self.shared.meter.set_state(SinkState::Retrying);
                }
            }
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let shared = &self.shared;
        let mut t = shared.tally();
        t.outstanding = t.outstanding.saturating_sub(1);
        match result {
            Ok(_) => {
                shared.meter.records_written.fetch_add(1, Ordering::Relaxed);
                if t.failure.is_none() {
                    shared.meter.set_state(SinkState::Ok);
                }
            }
            Err((e, _)) => {
                shared.meter.failures.fetch_add(1, Ordering::Relaxed);
                if t.failure.is_none() {
                    tracing::error!("kafka sink: a record was not delivered: {e}");
                    t.failure = Some(Failure::Delivery(e.to_string()));
                    shared.meter.set_state(SinkState::Failed);
                }
            }
        }
        shared.publish(&t);
        drop(t);
        shared.changed.notify_all();
    }
}
