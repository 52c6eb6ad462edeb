//! The agent's Kafka producer: librdkafka with `Role::AgentProducer`'s settings
//! (idempotent, `acks=all`, never gives a message up), delivery reports collected
//! for the main loop, broker errors counted, the bytes of records in flight kept.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use tidemark_kafka::wire::RecordHeaders;
use tidemark_kafka::{client_config, Role};

use crate::error::AgentError;
use crate::stats::Stats;
use crate::validate::Agent;

/// Which record a delivery report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The group's index in the agent's list.
    pub group: usize,
    /// The line's sequence number; 0 for a heartbeat.
    pub seq: u64,
}

/// A delivery report: the record, and the error if the broker did not take it.
pub type Report = (Ack, Option<KafkaError>);

/// Collects delivery reports and counts broker errors.
pub struct Context {
    reports: Mutex<Vec<Report>>,
    /// The size of the records queued and not yet reported on ([`record_size`]).
    in_flight_bytes: AtomicUsize,
    stats: Arc<Stats>,
    last_warning: Mutex<Option<Instant>>,
}

/// Broker errors are warned about at most this often (counted always).
const WARN_EVERY: Duration = Duration::from_secs(10);

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::warn!("librdkafka {fac}: {message}"),
            _ => tracing::debug!("librdkafka {fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.stats.broker_errors.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warning.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(
                "kafka: {error}: {reason} (lines wait in memory up to max_in_flight, then \
                 reading pauses; nothing is dropped)"
            );
        }
    }
}

impl ProducerContext for Context {
    /// The record and its size ([`record_size`]).
    type DeliveryOpaque = Box<(Ack, usize)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Box<(Ack, usize)>) {
        let (ack, size) = *opaque;
        self.in_flight_bytes.fetch_sub(size, Ordering::Relaxed);
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((ack, error));
    }
}

/// The producer and its reports.
pub struct Sender {
    producer: BaseProducer<Context>,
    topic: String,
    request_bytes: usize,
    /// When records in flight last got an answer, or the first was handed over, and the
    /// broker errors counted then.
    last_answer: Cell<(u64, Instant)>,
}

/// Records in flight without an answer (and no broker error) for this long: lines are
/// handed over up to `max_in_flight` (see [`Sender::may_hand_over`]).
const STALLED: Duration = Duration::from_secs(30);

/// librdkafka's default `batch.size`: the most bytes of records one produce request
/// holds for a partition.
const DEFAULT_BATCH_SIZE: usize = 1_000_000;

/// What a record counts for against `batch.size` as librdkafka builds a request: key,
/// value, headers, and about 30 bytes of framing (an estimate: the bound it serves is a
/// performance one, not a guarantee).
fn record_size(key: &[u8], payload: &[u8], header_bytes: usize) -> usize {
    key.len() + payload.len() + header_bytes + 30
}

impl Sender {
    /// A producer for the agent's brokers, topic and options.
    pub fn new(agent: &Agent, stats: Arc<Stats>) -> Result<Sender, AgentError> {
        let mut config = client_config(Role::AgentProducer, &agent.brokers, &agent.options)?;
        config.set_log_level(RDKafkaLogLevel::Warning);
        let producer = config
            .create_with_context(Context {
                reports: Mutex::new(Vec::new()),
                in_flight_bytes: AtomicUsize::new(0),
                stats,
                last_warning: Mutex::new(None),
            })
            .map_err(AgentError::Producer)?;
        let request_bytes = agent
            .options
            .get("batch.size")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_BATCH_SIZE);
        Ok(Sender {
            producer,
            topic: agent.topic.clone(),
            request_bytes,
            last_answer: Cell::new((0, Instant::now())),
        })
    }

    /// True when lines may be handed over: nothing is in flight, or librdkafka reported
    /// a broker error since the last answer (the broker is away: no request is in flight
    /// to spin behind), or what is in flight had no answer for [`STALLED`]. The agent
    /// hands lines over a produce request at a time — up to [`Sender::request_full`],
    /// then none until every record was answered. librdkafka's idempotent producer sends
    /// a partition's next request only once the one in flight is answered (it counts the
    /// messages in flight against its limit of 5 requests), and while records ready to
    /// go wait for that, its broker thread polls its sockets with no timeout: a spin that
    /// was most of the agent's CPU. Handed over a request at a time, lines wait in the
    /// file instead and the broker thread sleeps until the answer; a partition gets the
    /// throughput librdkafka gave it anyway (one request per round trip). While the
    /// broker is away, lines are handed over up to `max_in_flight` as before.
    pub fn may_hand_over(&self, now: Instant) -> bool {
        self.in_flight_bytes() == 0 || self.stalled(now)
    }

    /// The records in flight wait on a broker that is away (an error since the last
    /// answer) or silent for [`STALLED`]. A slow broker that answers is not stalled:
    /// opening the gate for it would make the agent spin and the broker slower still.
    fn stalled(&self, now: Instant) -> bool {
        let (errors, at) = self.last_answer.get();
        self.broker_errors() != errors || now.duration_since(at) >= STALLED
    }

    fn broker_errors(&self) -> u64 {
        self.producer
            .context()
            .stats
            .broker_errors
            .load(Ordering::Relaxed)
    }

    /// True once the records in flight fill a produce request (`batch.size`), unless
    /// they had no answer for [`STALLED`].
    pub fn request_full(&self, now: Instant) -> bool {
        self.in_flight_bytes() >= self.request_bytes && !self.stalled(now)
    }

    fn in_flight_bytes(&self) -> usize {
        self.producer
            .context()
            .in_flight_bytes
            .load(Ordering::Relaxed)
    }

    /// The topic's partition count, or `None` while the broker cannot say.
    pub fn partitions(&self, timeout: Duration) -> Option<i32> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), timeout)
            .ok()?;
        let topic = metadata.topics().iter().find(|t| t.name() == self.topic)?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            return None;
        }
        Some(topic.partitions().len() as i32)
    }

    /// Queues a record (headers as [`tidemark_kafka::wire`] writes them, copied
    /// straight into librdkafka's). A full local queue is waited out (polling
    /// meanwhile), never a reason to drop the record.
    pub fn send(
        &self,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        headers: RecordHeaders<'_>,
        ack: Ack,
    ) -> Result<(), AgentError> {
        let (owned, header_bytes) = headers.fold(
            (OwnedHeaders::new_with_capacity(8), 0),
            |(owned, bytes), name, value| {
                let owned = owned.insert(Header {
                    key: name,
                    value: Some(value),
                });
                (owned, bytes + name.len() + value.len() + 4)
            },
        );
        let size = record_size(key, payload, header_bytes);
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new((ack, size)))
            .partition(partition)
            .key(key)
            .payload(payload)
            // Stamped now (as librdkafka would for none): a broker's retention
            // drops records stamped in 1970.
            .timestamp(now_ms())
            .headers(owned);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    let ctx = self.producer.context();
                    if ctx.in_flight_bytes.fetch_add(size, Ordering::Relaxed) == 0 {
                        self.answered();
                    }
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(AgentError::Send(e)),
            }
        }
    }

    /// Serves delivery callbacks for up to `wait`, then hands over the reports.
    pub fn poll(&self, wait: Duration) -> Vec<Report> {
        self.producer.poll(wait);
        let mut reports = self
            .producer
            .context()
            .reports
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !reports.is_empty() {
            self.answered();
        }
        std::mem::take(&mut *reports)
    }

    fn answered(&self) {
        self.last_answer.set((self.broker_errors(), Instant::now()));
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
