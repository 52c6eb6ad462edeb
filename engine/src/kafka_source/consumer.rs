//! The librdkafka side of a kafka source: this worker's partitions assigned by the
//! fixed rule, read from where the job starts, up to the end they had at start in a
//! finite run; offsets committed to the group id only for lag tools.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use thiserror::Error;
use tidemark_jobs::KafkaSource;
use tidemark_kafka::{client_config, Role, SettingsError};

/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often read offsets are committed to the group id (lag tools only).
const COMMIT_EVERY: Duration = Duration::from_secs(5);

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
    /// A finite run got no record and no partition end from the brokers for
    /// `broker_timeout` before reaching the end it reads to.
    #[error("no record from the brokers {brokers} for {waited} (broker_timeout) before the end of the topic was read: are they down? a finite run gives up")]
    Stalled {
        /// `brokers` of the job.
        brokers: String,
        /// How long it waited, as written in a job (`5m`).
        waited: String,
    },
    /// A finite run reached a partition's end as the brokers see it, below the end
    /// (high watermark) that partition had at start, and nothing came for
    /// `broker_timeout`: the brokers are up, the records in between are not
    /// readable (an open transaction under `isolation.level = read_committed`,
    /// or the log was truncated).
    #[error("partition {partition} of the topic is at its end at offset {at}, below the end {end} it had when the run started, and nothing came for {waited} (broker_timeout): an open transaction or a truncated log? a finite run gives up")]
    StuckBelowEnd {
        /// The partition.
        partition: i32,
        /// Where the consumer stands in it.
        at: i64,
        /// Its end at start.
        end: i64,
        /// How long it waited, as written in a job (`5m`).
        waited: String,
    },
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
    pub fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> + '_ {
        self.message
            .headers()
            .into_iter()
            .flat_map(|h| h.iter().map(|h| (h.key, h.value)))
    }

    /// When the broker appended it, if the topic stamps records so
    /// (`message.timestamp.type = LogAppendTime`); `None` for a producer's time.
    pub fn append_time_ms(&self) -> Option<i64> {
        match self.message.timestamp() {
            rdkafka::Timestamp::LogAppendTime(ms) => Some(ms),
            _ => None,
        }
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
    /// A record below the partition's next offset: the broker sent reading back
    /// (an offset it refused as out of range, reset to the earliest kept record).
    /// Taken already: skipped. `first`: the first of this jump back.
    Again {
        partition: i32,
        offset: i64,
        next: i64,
        first: bool,
    },
    Error(KafkaError),
}

/// Client errors logged in full before only every `ERRORS_LOGGED_EVERY`th is.
const ERRORS_LOGGED: u32 = 20;
const ERRORS_LOGGED_EVERY: u32 = 100;

/// The consumer's librdkafka context: a partition's end is an event the source
/// handles ([`Polled::Skip`]), not an error to print; other client errors go to
/// the log as warnings, rate-limited (librdkafka retries them itself).
#[derive(Default)]
pub struct SourceContext {
    errors: std::sync::atomic::AtomicU32,
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        let n = self
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n <= ERRORS_LOGGED || n.is_multiple_of(ERRORS_LOGGED_EVERY) {
            tracing::warn!(
                "kafka source: librdkafka ({n} client errors so far): {error}: {reason}"
            );
        }
    }
}

impl ConsumerContext for SourceContext {}

/// This worker's consumer and where each of its partitions is.
pub struct Reader {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    /// Partition → the offset of the next record to read.
    next: BTreeMap<i32, i64>,
    /// A finite run: partition → its end (high watermark) at start.
    ends: Option<BTreeMap<i32, i64>>,
    /// Partition → its end (high watermark) when this reader connected.
    start_ends: BTreeMap<i32, i64>,
    /// Partitions at their end since their last record.
    at_eof: BTreeSet<i32>,
    /// Partitions being read again below their next offset (a jump back).
    rewound: BTreeSet<i32>,
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
        let consumer: BaseConsumer<SourceContext> = config
            .create_with_context(SourceContext::default())
            .map_err(|source| ConnectError::Kafka {
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
            rewound: BTreeSet::new(),
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
                if self.ends.is_some() {
                    past_markers(&self.consumer, &self.topic, &mut self.next, p);
                }
                return Polled::Skip;
            }
            Some(Err(e)) => return Polled::Error(e),
            Some(Ok(m)) => m,
        };
        let (p, offset) = (message.partition(), message.offset());
        if let Some(&next) = self.next.get(&p) {
            if offset < next {
                // Taken already: `auto.offset.reset = earliest` sent reading back
                // to the first kept record. An agent's would be dropped by sequence,
                // another shipper's counted twice.
                let first = self.rewound.insert(p);
                return Polled::Again {
                    partition: p,
                    offset,
                    next,
                    first,
                };
            }
        }
        self.rewound.remove(&p);
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

    /// A finite run: a partition at its end as the brokers see it but below the
    /// end it had at start — (partition, where it stands, its end).
    pub fn stuck_below_end(&self) -> Option<(i32, i64, i64)> {
        let ends = self.ends.as_ref()?;
        self.at_eof.iter().find_map(|p| {
            let (next, end) = (*self.next.get(p)?, *ends.get(p)?);
            (next < end).then_some((*p, next, end))
        })
    }
    /// Client errors librdkafka reported so far (brokers down, refused...).
    pub fn client_errors(&self) -> u32 {
        self.consumer
            .context()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
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

/// A finite run at the end of partition `p`: its next offset becomes the
/// consumer's position there. A transaction's commit or abort marker takes an
/// offset but is never delivered, so after a partition whose last offset is
/// one, the next offset of the last record stays below the end read at start
/// for ever; librdkafka moves its position past markers (they are consumed,
/// not returned), and at the partition's end every offset below the position
/// was read or is a marker.
fn past_markers(
    consumer: &BaseConsumer<SourceContext>,
    topic: &str,
    next: &mut BTreeMap<i32, i64>,
    p: i32,
) {
    let position = match consumer.position() {
        Ok(list) => list
            .find_partition(topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }),
        Err(e) => {
            tracing::debug!("kafka source: reading the consumer's position: {e}");
            None
        }
    };
    if let (Some(o), Some(next)) = (position, next.get_mut(&p)) {
        *next = (*next).max(o);
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
mod tests;
