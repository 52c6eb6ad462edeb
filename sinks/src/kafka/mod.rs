//! `kind = "kafka"`: closed windows to a Kafka topic, one record per series per
//! window (docs/kafka.md, "Kafka sink").
//!
//! A record's value is the series' JSON Lines record, byte for byte the jsonl
//! sink's line without its newline; its key is the series (record and labels,
//! [`record::key`]), and its partition the one a Java client's default
//! partitioner gives that key ([`tidemark_kafka::partition_for`]), so that a
//! series' windows are in order in one partition. Headers name the job and the
//! window ([`record::header`]).
//!
//! # Exactness: read back
//!
//! A Kafka topic cannot take back a record, and a plain topic does not replace
//! one by key, so the sink reads back ([`tidemark_engine::sink`], "How a sink
//! keeps the results exact"):
//!
//! - [`Sink::sync`] returns only once every record sent was acknowledged
//!   (`acks=all`), so a checkpoint at frontier F never claims a window the topic
//!   does not hold whole.
//! - A resumed run (frontier F) first reads the topic back ([`readback`]) and
//!   collects the (window, key) of this job's records of windows at or after F:
//!   those the last run wrote after its last checkpoint, whole windows or part
//!   of one. It then sends each record of those windows only if it is not there
//!   already. Every (window, series) ends in the topic exactly once.
//!
//! The read-back is exact because of how the records land: the producer is
//! idempotent with gapless delivery and no message timeout, so in each partition
//! a run's records that arrived are a prefix of those it sent there, in window
//! order; and each run resumes at a frontier no earlier than the last. The
//! argument, and what it asks of the operator (one job name per topic, the topic
//! not re-partitioned under a running job), is in docs/kafka.md.
//!
//! # Back-pressure
//!
//! Opening does not wait for the broker: a thread finds the topic's partitions
//! (and on a resume reads back) while the sink says it is not
//! [`Sink::ready`], and asks the job to pause reading. Later, a broker away keeps
//! records unacknowledged (librdkafka retries them for ever); once
//! `queue_capacity` of them are outstanding the sink is not ready and the job
//! pauses: nothing is dropped, the job goes on when the broker returns. A record
//! refused for good, or a fatal or authentication error, fails the job.

mod delivery;
mod open;
pub mod readback;
pub mod record;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use thiserror::Error;
use tidemark_engine::stats::sink::{SinkMeter, Units};
use tidemark_engine::ClosedWindow;
use tidemark_jobs::{KafkaSinkConfig, SeriesChoice};
use tidemark_kafka::{client_config, partition_for, Role, SettingsError};

use crate::format::rfc3339;
use crate::{wanted, BoxError, Sink};
use delivery::{Failure, Reports, Shared};
use open::{Opened, Opener, Slot};
use readback::POLL;

/// Why the sink cannot open or go on.
#[derive(Debug, Error)]
pub enum KafkaSinkError {
    /// The settings were refused (validation checks them first).
    #[error("the kafka sink's options: {0}")]
    Settings(#[from] SettingsError),
    /// librdkafka could not make a client.
    #[error("cannot make the kafka sink's {what}: {source}")]
    Client {
        what: &'static str,
        source: KafkaError,
    },
    #[error("cannot start the kafka sink's opening thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(
        "the topic {topic} does not exist on the brokers {brokers}. hint: create it (e.g. \
         kafka-topics.sh --create --topic {topic} --partitions 6); the sink does not create \
         topics"
    )]
    TopicMissing { topic: String, brokers: String },
    #[error("the brokers {brokers} refuse the topic {topic}: {reason}. hint: check the ACLs and credentials in the sink's options")]
    TopicRefused {
        topic: String,
        brokers: String,
        reason: String,
    },
    #[error(
        "a record for the topic {topic} was refused: {reason}. Nothing unacknowledged was \
         committed: once fixed, run the job again and the windows after its checkpoint are \
         sent"
    )]
    Delivery { topic: String, reason: String },
    #[error(
        "the kafka producer for {topic} cannot go on: {reason}. hint: check the brokers and \
         the TLS/SASL options. Nothing unacknowledged was committed"
    )]
    Fatal { topic: String, reason: String },
    #[error(
        "the job stopped while the brokers had not acknowledged {pending} record(s) for the \
         topic {topic}; they are not committed (the next run sends them)"
    )]
    Stopped { topic: String, pending: u64 },
    /// An earlier step failed (with this message): nothing more is sent.
    #[error("{0} (an earlier step failed; nothing more is sent)")]
    Failed(String),
    #[error("the kafka sink's opening thread stopped unexpectedly (a bug: please report it with the log)")]
    Panicked,
}

/// Set when the sink should give up waiting: the job's stop flag, or the sink dropped.
#[derive(Default)]
pub struct Halt {
    dropped: AtomicBool,
    stop: OnceLock<Arc<AtomicBool>>,
}

impl Halt {
    /// Whether to give up.
    pub fn is_set(&self) -> bool {
        self.dropped.load(Ordering::Relaxed)
            || self.stop.get().is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

pub struct KafkaSink {
    cfg: KafkaSinkConfig,
    job: String,
    series: SeriesChoice,
    producer: ThreadedProducer<Reports>,
    shared: Arc<Shared>,
    halt: Arc<Halt>,
    /// Filled once by the opening thread.
    slot: Slot,
    opened: Option<Opened>,
    /// Set once a step failed (its message): every later one fails too.
    failed: Option<String>,
    key: String,
    value: String,
}

impl KafkaSink {
    /// Opens the sink for the job `job`; `resume_from`: the checkpoint's frontier
    /// on a resume (the topic is read back from it), `None` for a new output.
    /// Returns at once: the broker is reached by a thread.
    pub fn open(
        cfg: &KafkaSinkConfig,
        series: SeriesChoice,
        job: &str,
        resume_from: Option<i64>,
    ) -> Result<KafkaSink, KafkaSinkError> {
        let meter = SinkMeter::named(describe(cfg));
        meter.set_units(Units {
            records: "record(s)",
            batches: "sync(s)",
        });
        // The job pauses reading until the topic is found (and read back).
        meter.set_backlogged(true);
        let shared = Arc::new(Shared::new(meter, cfg.queue_capacity as u64));
        let mut producer_cfg = client_config(Role::SinkProducer, &cfg.brokers, &cfg.options)?;
        // On top of Role::SinkProducer's: what the read-back's exactness rests
        // on (validation refuses them as options).
        for (k, v, _) in KafkaSinkConfig::FIXED {
            producer_cfg.set(k, v);
        }
        let producer: ThreadedProducer<Reports> = producer_cfg
            .create_with_context(Reports::new(shared.clone()))
            .map_err(|source| KafkaSinkError::Client {
                what: "producer",
                source,
            })?;
        let mut consumer_cfg = client_config(Role::SinkReadBack, &cfg.brokers, &cfg.options)?;
        // The read-back reads from offsets it picks, in ranges; a range below a
        // log start moved by retention starts at the log start.
        consumer_cfg.set("auto.offset.reset", "earliest");
        // librdkafka's consumer fetches only with a group id; nothing is ever
        // committed to it (partitions are assigned, offsets never stored).
        consumer_cfg.set("group.id", "tidemark-kafka-sink-readback");
        let halt = Arc::new(Halt::default());
        let slot: Slot = Arc::default();
        let opener = Opener {
            consumer_cfg,
            topic: cfg.topic.clone(),
            brokers: cfg.brokers.clone(),
            job: job.to_string(),
            resume_from,
            halt: halt.clone(),
            shared: shared.clone(),
        };
        let filled = slot.clone();
        std::thread::Builder::new()
            .name("kafka-sink-open".into())
            .spawn(move || {
                let result = opener.open();
                opener.shared.meter.set_backlogged(false);
                *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                opener.shared.wake();
            })
            .map_err(KafkaSinkError::Thread)?;
        Ok(KafkaSink {
            cfg: cfg.clone(),
            job: job.to_string(),
            series,
            producer,
            shared,
            halt,
            slot,
            opened: None,
            failed: None,
            key: String::new(),
            value: String::new(),
        })
    }

    /// Whether the opening thread is done (found the topic, or failed).
    fn open_done(&self) -> bool {
        self.opened.is_some() || self.slot.lock().is_ok_and(|s| s.is_some())
    }

    /// The topic's partitions and read-back, waiting for the opening thread if
    /// it is not done (only when called without [`Sink::ready`] first).
    fn opened(&mut self) -> Result<&mut Opened, KafkaSinkError> {
        while self.opened.is_none() {
            let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            match taken {
                Some(Ok(o)) => self.opened = Some(o),
                Some(Err(e)) => return Err(e),
                None if self.halt.is_set() => return Err(self.stopped(0)),
                None => drop(self.shared.wait_until(POLL, |_| false)),
            }
        }
        Ok(self.opened.as_mut().expect("set above"))
    }

    fn stopped(&self, pending: u64) -> KafkaSinkError {
        KafkaSinkError::Stopped {
            topic: self.cfg.topic.clone(),
            pending,
        }
    }

    /// The kept failure, if any, as the sink's error.
    fn check(&self) -> Result<(), KafkaSinkError> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            self.shared
                .fail(Failure::Client(format!("{code:?}: {reason}")));
        }
        match &self.shared.tally().failure {
            None => Ok(()),
            Some(f) => Err(self.failure(f)),
        }
    }

    fn failure(&self, f: &Failure) -> KafkaSinkError {
        let topic = self.cfg.topic.clone();
        match f {
            Failure::Delivery(reason) => KafkaSinkError::Delivery {
                topic,
                reason: reason.clone(),
            },
            Failure::Client(reason) => KafkaSinkError::Fatal {
                topic,
                reason: reason.clone(),
            },
        }
    }

    /// Sends one window's records, skipping those the read-back found.
    fn write(&mut self, w: &ClosedWindow) -> Result<(), KafkaSinkError> {
        self.check()?;
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        let window = w.start_ms.to_string();
        let opened = self.opened()?;
        let partitions = opened.partitions;
        let mut present = std::mem::take(&mut opened.present);
        let left = present.forget_before(w.start_ms);
        if left > 0 {
            tracing::warn!(
                "kafka sink {}: {left} record(s) of earlier windows in the topic were not handed over again in this run (the job's series changed since they were written)",
                self.cfg.topic
            );
        }
        let mut skipped = 0u64;
        let mut result = Ok(());
        for s in w.series.iter().filter(|s| wanted(self.series, s)) {
            record::key(s, &mut self.key);
            if present.take(w.start_ms, self.key.as_bytes()) {
                skipped += 1;
                continue;
            }
            record::value(s, &start, &end, &mut self.value);
            let partition = partition_for(self.key.as_bytes(), partitions);
            if let Err(e) = self.send(partition, &window) {
                result = Err(e);
                break;
            }
        }
        if let Some(o) = self.opened.as_mut() {
            o.present = present;
        }
        if skipped > 0 {
            self.shared
                .meter
                .resent_held
                .fetch_add(skipped, Ordering::Relaxed);
            tracing::info!(
                "kafka sink {}: {skipped} record(s) of the window of {start} are in the topic already (written before the restart); not sent again",
                self.cfg.topic
            );
        }
        result
    }

    /// Sends the record in `self.key` / `self.value`, waiting while librdkafka's
    /// own queue is full (a window larger than it).
    fn send(&self, partition: i32, window: &str) -> Result<(), KafkaSinkError> {
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: record::header::JOB,
                value: Some(self.job.as_bytes()),
            })
            .insert(Header {
                key: record::header::WINDOW,
                value: Some(window.as_bytes()),
            });
        let mut rec = BaseRecord::to(&self.cfg.topic)
            .key(self.key.as_bytes())
            .payload(self.value.as_bytes())
            .partition(partition)
            .headers(headers);
        loop {
            // Counted before sending: the report may come before `send` returns.
            self.shared.sent(1);
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((e, back)) => {
                    self.shared.unsent(1);
                    if e != KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) {
                        return Err(KafkaSinkError::Delivery {
                            topic: self.cfg.topic.clone(),
                            reason: e.to_string(),
                        });
                    }
                    rec = back;
                    self.wait_some_delivered()?;
                }
            }
        }
    }

    /// Waits for a delivery report (or a failure, or the stop).
    fn wait_some_delivered(&self) -> Result<(), KafkaSinkError> {
        let before = self.shared.tally().outstanding;
        let t = self
            .shared
            .wait_until(POLL, |t| t.outstanding < before || t.failure.is_some());
        let pending = t.outstanding;
        drop(t);
        self.check()?;
        if self.halt.is_set() {
            return Err(self.stopped(pending));
        }
        Ok(())
    }

    /// Waits until every record sent was acknowledged. A sink that could not
    /// open fails here too, so that a job with no window yet hears of it.
    fn wait_delivered(&mut self) -> Result<(), KafkaSinkError> {
        if self.opened.is_none() {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match slot.take() {
                Some(Err(e)) => return Err(e),
                Some(Ok(o)) => self.opened = Some(o),
                None => {}
            }
        }
        loop {
            self.check()?;
            let t = self
                .shared
                .wait_until(POLL, |t| t.outstanding == 0 || t.failure.is_some());
            let pending = t.outstanding;
            drop(t);
            self.check()?;
            if pending == 0 {
                return Ok(());
            }
            if self.halt.is_set() {
                return Err(self.stopped(pending));
            }
        }
    }

    /// Runs a step, unless an earlier one failed; a failure is kept.
    fn step<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, KafkaSinkError>,
    ) -> Result<T, BoxError> {
        if let Some(m) = &self.failed {
            return Err(KafkaSinkError::Failed(m.clone()).into());
        }
        let r = f(self);
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        Ok(r?)
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        describe(&self.cfg)
    }

    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        self.step(|s| s.write(w))
    }

    /// Waits until every record sent so far was acknowledged: only then may
    /// the checkpoint claim their windows. Nothing to remember: a resume reads
    /// the topic back from the checkpoint's frontier.
    fn sync(&mut self, _frontier_ms: i64) -> Result<(), BoxError> {
        self.step(|s| s.wait_delivered())?;
        self.shared.meter.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.step(|s| s.wait_delivered())
    }

    /// Not while the topic is being found (or read back), nor while
    /// `queue_capacity` records wait for their acknowledgement; always once
    /// failed, so that the job hears of it at the next window.
    fn ready(&self) -> bool {
        if self.failed.is_some() || self.shared.tally().failure.is_some() {
            return true;
        }
        self.open_done() && self.shared.below_capacity()
    }

    fn settled(&self) -> bool {
        let t = self.shared.tally();
        t.outstanding == 0 || t.failure.is_some()
    }

    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(self.shared.meter.clone())
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        let _ = self.halt.stop.set(stop);
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // The opening thread gives up at its next look (not joined: it may be
        // waiting on a broker that is away).
        self.halt.dropped.store(true, Ordering::Relaxed);
        self.shared.wake();
    }
}

fn describe(cfg: &KafkaSinkConfig) -> String {
    format!("kafka {} (brokers {})", cfg.topic, cfg.brokers)
}

#[cfg(test)]
mod tests;
