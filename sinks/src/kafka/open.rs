//! The sink's opening thread: finds the topic's partitions and, on a resume,
//! reads back what the last run wrote, while the sink says it is not ready.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

use super::delivery::{Failure, Shared};
use super::readback::{read_back, Interrupted, Present, POLL};
use super::{Halt, KafkaSinkError};
use crate::format::rfc3339;

/// What the opening thread found.
#[derive(Debug)]
pub(super) struct Opened {
    pub partitions: i32,
    /// On a resume: this job's records from the frontier on, already in the topic.
    pub present: Present,
}

pub(super) type Slot = Arc<Mutex<Option<Result<Opened, KafkaSinkError>>>>;

/// The opening thread's work: find the topic's partitions, read back on a resume.
pub(super) struct Opener {
    pub consumer_cfg: ClientConfig,
    pub topic: String,
    pub brokers: String,
    pub job: String,
    pub resume_from: Option<i64>,
    pub halt: Arc<Halt>,
    pub shared: Arc<Shared>,
}

impl Opener {
    pub fn open(&self) -> Result<Opened, KafkaSinkError> {
        let consumer: BaseConsumer =
            self.consumer_cfg
                .create()
                .map_err(|source| KafkaSinkError::Client {
                    what: "read-back consumer",
                    source,
                })?;
        let partitions = self.partitions(&consumer)?;
        let present = match self.resume_from {
            None => Present::default(),
            Some(frontier_ms) => {
                let present = read_back(
                    &consumer,
                    &self.topic,
                    partitions,
                    &self.job,
                    frontier_ms,
                    &self.halt,
                )
                .map_err(|Interrupted::Halted| KafkaSinkError::Stopped {
                    topic: self.topic.clone(),
                    pending: 0,
                })?;
                tracing::info!(
                    "kafka sink {}: read back {} record(s); {} of this job's from {} on are there already and will not be sent again",
                    self.topic,
                    present.read,
                    present.found,
                    rfc3339(frontier_ms)
                );
                if present.unreadable > 0 {
                    tracing::warn!(
                        "kafka sink {}: {} record(s) carry this job's name ({}) but no readable window: not this sink's records, ignored. hint: give each job writing to the topic its own name",
                        self.topic,
                        present.unreadable,
                        self.job
                    );
                }
                present
            }
        };
        Ok(Opened {
            partitions,
            present,
        })
    }

    /// The topic's partition count, asked until the brokers answer.
    fn partitions(&self, consumer: &BaseConsumer) -> Result<i32, KafkaSinkError> {
        let mut warned = false;
        loop {
            if self.halt.is_set() {
                return Err(KafkaSinkError::Stopped {
                    topic: self.topic.clone(),
                    pending: 0,
                });
            }
            if let Some(f) = self.shared.tally().failure.clone() {
                let reason = match f {
                    Failure::Delivery(r) | Failure::Client(r) => r,
                };
                return Err(KafkaSinkError::Fatal {
                    topic: self.topic.clone(),
                    reason,
                });
            }
            // All topics, not this one: asking for a missing topic by name can
            // make a broker create it.
            match consumer.fetch_metadata(None, POLL * 10) {
                Ok(md) => match md.topics().iter().find(|t| t.name() == self.topic) {
                    None => {
                        return Err(KafkaSinkError::TopicMissing {
                            topic: self.topic.clone(),
                            brokers: self.brokers.clone(),
                        })
                    }
                    Some(t) => match t.error() {
                        None if !t.partitions().is_empty() => {
                            return Ok(t.partitions().len() as i32)
                        }
                        None => {}
                        Some(code) => {
                            let code = RDKafkaErrorCode::from(code);
                            match code {
                                RDKafkaErrorCode::UnknownTopicOrPartition => {
                                    return Err(KafkaSinkError::TopicMissing {
                                        topic: self.topic.clone(),
                                        brokers: self.brokers.clone(),
                                    })
                                }
                                RDKafkaErrorCode::TopicAuthorizationFailed => {
                                    return Err(KafkaSinkError::TopicRefused {
                                        topic: self.topic.clone(),
                                        brokers: self.brokers.clone(),
                                        reason: code.to_string(),
                                    })
                                }
                                _ => {}
                            }
                        }
                    },
                },
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "kafka sink {}: the brokers {} do not answer ({e}); the job waits for them",
                            self.topic,
                            self.brokers
                        );
                        warned = true;
                    }
                    self.shared.meter.retries.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(POLL);
        }
    }
}
