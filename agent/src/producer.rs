//! The agent's Kafka producer: librdkafka with `Role::AgentProducer`'s settings
//! (idempotent, `acks=all`, never gives a message up), delivery reports collected
//! for the main loop, broker errors counted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
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
    type DeliveryOpaque = Box<Ack>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Box<Ack>) {
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((*ack, error));
    }
}

/// The producer and its reports.
pub struct Sender {
    producer: BaseProducer<Context>,
    topic: String,
}

impl Sender {
    /// A producer for the agent's brokers, topic and options.
    pub fn new(agent: &Agent, stats: Arc<Stats>) -> Result<Sender, AgentError> {
        let mut config = client_config(Role::AgentProducer, &agent.brokers, &agent.options)?;
        config.set_log_level(RDKafkaLogLevel::Warning);
        let producer = config
            .create_with_context(Context {
                reports: Mutex::new(Vec::new()),
                stats,
                last_warning: Mutex::new(None),
            })
            .map_err(AgentError::Producer)?;
        Ok(Sender {
            producer,
            topic: agent.topic.clone(),
        })
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

    /// Queues a record (headers as [`tidemark_kafka::wire`] writes them). A full local
    /// queue is waited out (polling meanwhile), never a reason to drop the record.
    pub fn send(
        &self,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        headers: Vec<(&'static str, Vec<u8>)>,
        ack: Ack,
    ) -> Result<(), AgentError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in &headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(ack))
            .partition(partition)
            .key(key)
            .payload(payload)
            // Stamped now (as librdkafka would for none): a broker's retention
            // drops records stamped in 1970.
            .timestamp(now_ms())
            .headers(owned);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
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
        std::mem::take(&mut *reports)
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
