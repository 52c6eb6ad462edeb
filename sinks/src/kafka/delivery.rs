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
pub struct Reports(pub Arc<Shared>);

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        match code {
            // The client can do nothing more (librdkafka's fatal error, e.g. a
            // broken idempotence guarantee), or would retry credentials that
            // will not change: fail the job, saying why.
            Some(RDKafkaErrorCode::Fatal) | Some(RDKafkaErrorCode::Authentication) => {
                tracing::error!(target: "tidemark::sink::kafka", "kafka producer: {error}: {reason}");
                self.0.fail(Failure::Client(format!("{error}: {reason}")));
            }
            // A broker away (transport, all brokers down, timeouts): librdkafka
            // retries, the records wait, the job pauses once they fill the queue.
            _ => {
                tracing::warn!(target: "tidemark::sink::kafka", "kafka producer: {error}: {reason} (retrying)");
                self.0.meter.failures.fetch_add(1, Ordering::Relaxed);
                self.0.meter.retries.fetch_add(1, Ordering::Relaxed);
                if self.0.tally().failure.is_none() {
                    self.0.meter.set_state(SinkState::Retrying);
                }
            }
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut t = self.0.tally();
        t.outstanding = t.outstanding.saturating_sub(1);
        match result {
            Ok(_) => {
                self.0.meter.records_written.fetch_add(1, Ordering::Relaxed);
                if t.failure.is_none() {
                    self.0.meter.set_state(SinkState::Ok);
                }
            }
            Err((e, _)) => {
                self.0.meter.failures.fetch_add(1, Ordering::Relaxed);
                if t.failure.is_none() {
                    tracing::error!(target: "tidemark::sink::kafka", "kafka record not delivered: {e}");
                    t.failure = Some(Failure::Delivery(e.to_string()));
                    self.0.meter.set_state(SinkState::Failed);
                }
            }
        }
        self.0.publish(&t);
        drop(t);
        self.0.changed.notify_all();
    }
}
