//! The librdkafka side of a kafka source: this worker's partitions assigned by the
//! fixed rule, read from where the job starts, up to the end they had at start in a
//! finite run; offsets committed to the group id only for lag tools.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{Message, Offset, TopicPartitionList};
use thiserror::Error;
use tidemark_jobs::KafkaSource;
use tidemark_kafka::{client_config, Role, SettingsError};

/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often read offsets are committed to the group id (lag tools only).
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// How long a finite run (`--until-eof`) waits for brokers that do not answer
/// before it fails; a live run keeps trying (they may come back).
pub const FINITE_CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a worker could not start reading its partitions (it tries again).
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The settings were refused (validation checks them first).
    #[error("its client settings: {0}")]
    Settings(#[from] SettingsError),
    /// librdkafka could not make a consumer, or a request failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The topic is not there (or has no partitions).
    #[error("topic {0:?} does not exist on the brokers (or has no partitions)")]
    NoTopic(String),
}

/// One record as read, borrowed from the consumer until the next poll.
pub struct Record<'a> {
    message: BorrowedMessage<'a>,
}

impl Record<'_> {
    /// Its partition.
    pub fn partition(&self) -> i32 {
        self.message.partition()
    }

    /// Its offset in the partition.
    pub fn offset(&self) -> i64 {
        self.message.offset()
    }

    /// Name and value (`None` for a null value) of each header, in order.
    pub fn headers(&self) -> Vec<(&str, Option<&[u8]>)> {
        self.message
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default()
    }

    /// The value (empty for a null value).
    pub fn payload(&self) -> &[u8] {
        self.message.payload().unwrap_or_default()
    }
}

/// What one poll gave.
pub enum Polled<'a> {
    Record(Record<'a>),
    /// Nothing available right now.
    Nothing,
    /// A record past the end a finite run reads to, or a partition's end reached.
    Skip,
    Error(KafkaError),
}

/// This worker's consumer and where each of its partitions is.
pub struct Reader {
    consumer: BaseConsumer,
    topic: String,
    /// Partition → the offset of the next record to read.
    next: BTreeMap<i32, i64>,
    /// A finite run: partition → its end (high watermark) at start.
    ends: Option<BTreeMap<i32, i64>>,
    /// Partition → its end (high watermark) when this reader connected.
    start_ends: BTreeMap<i32, i64>,
    /// Partitions at their end since their last record.
    at_eof: BTreeSet<i32>,
    /// Partitions that have reached their end at least once since start.
    reached_end: BTreeSet<i32>,
    /// What was last committed, and when.
    committed: BTreeMap<i32, i64>,
    committed_at: Instant,
}

impl Reader {
    /// Connects, finds the topic's partitions and assigns this worker's share:
    /// partition `p` goes to global worker `p mod peers`.
    pub fn connect(
        source: &KafkaSource,
        job: &str,
        index: usize,
        peers: usize,
        follow: bool,
        starts: &BTreeMap<i32, i64>,
    ) -> Result<Reader, ConnectError> {
        let mut config = client_config(Role::Consumer, &source.brokers, &source.options)?;
        config.set("group.id", source.group_id_for(job));
        let consumer: BaseConsumer = config.create().map_err(|source| ConnectError::Kafka {
            what: "cannot make a consumer",
            source,
        })?;
        let metadata = consumer
            .fetch_metadata(Some(&source.topic), REQUEST_TIMEOUT)
            .map_err(|e| ConnectError::Kafka {
                what: "cannot read the topic's metadata",
                source: e,
            })?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == source.topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            return Err(ConnectError::NoTopic(source.topic.clone()));
        }
        let mine: Vec<i32> = (0..count as i32)
            .filter(|p| *p as usize % peers.max(1) == index)
            .collect();
        // Each partition's end now: where a finite run stops, and for a live run the
        // point past which the partition counts as read to its end once. The
        // partition-EOF event alone does not do for the latter: a broker may never
        // send one while records keep coming (tansu 0.6.0 answers a fetch with a
        // high watermark read after the records, so a partition that gets a record
        // every half second never looked caught up, and a live cluster job closed
        // no window for minutes: tests/kafka_cluster_e2e.rs).
        let mut start_ends = BTreeMap::new();
        let mut lows = BTreeMap::new();
        for &p in &mine {
            let (low, high) = consumer
                .fetch_watermarks(&source.topic, p, REQUEST_TIMEOUT)
                .map_err(|e| ConnectError::Kafka {
                    what: "cannot read a partition's end",
                    source: e,
                })?;
            start_ends.insert(p, high);
            lows.insert(p, low);
        }
        let ends = (!follow).then(|| start_ends.clone());
        let mut list = TopicPartitionList::new();
        for &p in &mine {
            // Where the checkpoint says, else the partition's first record.
            let from = starts
                .get(&p)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            list.add_partition_offset(&source.topic, p, from)
                .map_err(|e| ConnectError::Kafka {
                    what: "cannot list a partition",
                    source: e,
                })?;
        }
        consumer.assign(&list).map_err(|e| ConnectError::Kafka {
            what: "cannot assign the partitions",
            source: e,
        })?;
        tracing::info!(
            "kafka source of job {job:?}: worker {index} of {peers} reads partitions {mine:?} of {} ({count} in all)",
            source.topic
        );
        Ok(Reader {
            consumer,
            topic: source.topic.clone(),
            next: mine
                .iter()
                // Records below a partition's first kept one are gone: a finite
                // run must not wait for them.
                .map(|&p| {
                    let from = starts.get(&p).copied().unwrap_or(0);
                    (p, from.max(lows.get(&p).copied().unwrap_or(0)))
                })
                .collect(),
            ends,
            start_ends,
            at_eof: BTreeSet::new(),
            reached_end: BTreeSet::new(),
            committed: BTreeMap::new(),
            committed_at: Instant::now(),
        })
    }

    /// The next record, if one is waiting.
    pub fn poll(&mut self) -> Polled<'_> {
        let message: BorrowedMessage<'_> = match self.consumer.poll(Duration::ZERO) {
            None => return Polled::Nothing,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                self.at_eof.insert(p);
                self.reached_end.insert(p);
                return Polled::Skip;
            }
            Some(Err(e)) => return Polled::Error(e),
            Some(Ok(m)) => m,
        };
        let (p, offset) = (message.partition(), message.offset());
        if let Some(end) = self.ends.as_ref().and_then(|e| e.get(&p)) {
            if offset >= *end {
                // Written after a finite run started: not its input.
                return Polled::Skip;
            }
        }
        self.next.insert(p, offset + 1);
        self.at_eof.remove(&p);
        Polled::Record(Record { message })
    }

    /// Whether this worker reads partition `p`.
    pub fn reads(&self, p: i32) -> bool {
        self.next.contains_key(&p)
    }

    /// Each partition's next offset to read.
    pub fn positions(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.next.iter().map(|(p, n)| (*p, *n))
    }

    /// A finite run read every partition up to the end it had at start.
    pub fn finished(&self) -> bool {
        self.ends.as_ref().is_some_and(|ends| {
            ends.iter()
                .all(|(p, end)| self.next.get(p).is_some_and(|n| n >= end))
        })
    }

    /// Every partition reached its end at least once since start: a partition-EOF
    /// event, or its records read up to the end it had when this reader connected.
    pub fn caught_up(&self) -> bool {
        caught_up(&self.next, &self.reached_end, &self.start_ends)
    }

    /// Whether partition `p` is at its end now.
    pub fn at_eof(&self, p: i32) -> bool {
        self.at_eof.contains(&p)
    }

    /// Commits the offsets read to the group id (only so lag tools see them; the
    /// job's own position is not taken from there). Every few seconds, or `now`.
    pub fn commit_for_lag(&mut self, now: bool) {
        if !now && self.committed_at.elapsed() < COMMIT_EVERY {
            return;
        }
        self.committed_at = Instant::now();
        let mut list = TopicPartitionList::new();
        for (&p, &next) in &self.next {
            if next > 0 && self.committed.get(&p) != Some(&next) {
                let _ = list.add_partition_offset(&self.topic, p, Offset::Offset(next));
            }
        }
        if list.count() == 0 {
            return;
        }
        let mode = if now {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        match self.consumer.commit(&list, mode) {
            Ok(()) => self
                .committed
                .extend(self.next.iter().map(|(p, n)| (*p, *n))),
            Err(e) => tracing::debug!("kafka source: committing offsets for lag tools: {e}"),
        }
    }
}

/// See [`Reader::caught_up`]: `next` (partition → next offset to read), the partitions
/// that had a partition-EOF event, and each partition's end at connect.
fn caught_up(
    next: &BTreeMap<i32, i64>,
    reached_end: &BTreeSet<i32>,
    start_ends: &BTreeMap<i32, i64>,
) -> bool {
    next.iter().all(|(p, next)| {
        reached_end.contains(p) || start_ends.get(p).is_some_and(|end| next >= end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (kafka_cluster_e2e): a partition that gets records faster than the
    /// broker's fetch wait may never have a partition-EOF event; read up to the end
    /// it had at connect, it is caught up all the same.
    #[test]
    fn a_partition_read_to_its_end_at_connect_is_caught_up_without_an_eof_event() {
        let ends = BTreeMap::from([(1, 40), (3, 0)]);
        let eof = BTreeSet::new();
        // Partition 1 still has its backlog; partition 3 was empty.
        assert!(!caught_up(&BTreeMap::from([(1, 39), (3, 0)]), &eof, &ends));
        assert!(caught_up(&BTreeMap::from([(1, 40), (3, 0)]), &eof, &ends));
        // Records written since count for nothing here: the end at connect does.
        assert!(caught_up(&BTreeMap::from([(1, 57), (3, 2)]), &eof, &ends));
        // An EOF event still counts.
        let eof = BTreeSet::from([1]);
        assert!(caught_up(&BTreeMap::from([(1, 12), (3, 0)]), &eof, &ends));
    }
}
