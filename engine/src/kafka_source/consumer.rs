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
use tidemark_kafka::SettingsError;

mod client;

use client::make_consumer;
#[cfg(test)]
use client::prefetch_settings;
pub use client::{new_partitions, SourceContext};

/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often read offsets are committed to the group id (lag tools only).
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// How often a live reader looks for partitions added to its topic (they are
/// found at start otherwise only).
pub const METADATA_EVERY: Duration = Duration::from_secs(30);
/// How long that look may take (the worker waits meanwhile).
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

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

/// This worker's consumer and where each of its partitions is.
pub struct Reader {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    /// Partition → the offset of the next record to read.
    next: BTreeMap<i32, i64>,
    /// Where each partition was assigned from.
    from: Vec<(i32, Offset)>,
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
    /// Partitions paused (librdkafka `pause`): pacing holds them back.
    paused: BTreeSet<i32>,
    /// The job's consumers over the cluster (they share its prefetch bound, and
    /// partition `p` is read by consumer `p mod consumers`).
    consumers: usize,
    /// This worker's place among them.
    index: usize,
    /// When the topic's partitions were last looked for.
    metadata_at: Instant,
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
        let consumer = make_consumer(source, job, peers)?;
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
        // Where the checkpoint says, else the partition's first record.
        let from: Vec<(i32, Offset)> = mine
            .iter()
            .map(|&p| {
                let o = starts
                    .get(&p)
                    .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                (p, o)
            })
            .collect();
        let next = mine
            .iter()
            // Records below a partition's first kept one are gone: a finite
            // run must not wait for them.
            .map(|&p| {
                let from = starts.get(&p).copied().unwrap_or(0);
                (p, from.max(lows.get(&p).copied().unwrap_or(0)))
            })
            .collect();
        let mut reader = Reader::open(consumer, &source.topic, from, next, ends)?;
        reader.start_ends = start_ends;
        reader.consumers = peers;
        reader.index = index;
        tracing::info!(
            "kafka source of job {job:?}: worker {index} of {peers} reads partitions {mine:?} of {} ({count} in all)",
            source.topic
        );
        Ok(reader)
    }

    /// A second reader of this reader's partitions over the same range (from the same
    /// starts to the ends they had at start), with its own consumer: it discovers the
    /// streams before the reading proper. Open it before this reader polls.
    pub fn scanner(&self, source: &KafkaSource, job: &str) -> Result<Reader, ConnectError> {
        let consumer = make_consumer(source, job, self.consumers)?;
        Reader::open(
            consumer,
            &self.topic,
            self.from.clone(),
            self.next.clone(),
            Some(self.start_ends.clone()),
        )
    }

    fn open(
        consumer: BaseConsumer<SourceContext>,
        topic: &str,
        from: Vec<(i32, Offset)>,
        next: BTreeMap<i32, i64>,
        ends: Option<BTreeMap<i32, i64>>,
    ) -> Result<Reader, ConnectError> {
        let mut list = TopicPartitionList::new();
        for &(p, o) in &from {
            list.add_partition_offset(topic, p, o)
                .map_err(|e| ConnectError::Kafka {
                    what: "cannot list a partition",
                    source: e,
                })?;
        }
        consumer.assign(&list).map_err(|e| ConnectError::Kafka {
            what: "cannot assign the partitions",
            source: e,
        })?;
        Ok(Reader {
            consumer,
            topic: topic.to_string(),
            from,
            next,
            ends,
            start_ends: BTreeMap::new(),
            at_eof: BTreeSet::new(),
            rewound: BTreeSet::new(),
            reached_end: BTreeSet::new(),
            paused: BTreeSet::new(),
            consumers: 1,
            index: 0,
            metadata_at: Instant::now(),
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

    /// Every partition reached its end at least once since start ([`Reader::reached_end`]).
    pub fn caught_up(&self) -> bool {
        caught_up(&self.next, &self.reached_end, &self.start_ends)
    }

    /// Whether partition `p` reached its end at least once since start: a partition-EOF
    /// event, or its records read up to the end it had when this reader connected.
    pub fn reached_end(&self, p: i32) -> bool {
        reached_end(p, &self.next, &self.reached_end, &self.start_ends)
    }

    /// Whether partition `p` is at its end now.
    pub fn at_eof(&self, p: i32) -> bool {
        self.at_eof.contains(&p)
    }

    /// The partitions this worker reads.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.next.keys().copied()
    }

    /// The offset of the next record to read from partition `p`.
    pub fn next_offset(&self, p: i32) -> Option<i64> {
        self.next.get(&p).copied()
    }

    /// Every partition not read to its end is paused by pacing: nothing is owed by
    /// the brokers (`broker_timeout` does not run meanwhile).
    pub fn held_back(&self) -> bool {
        !self.paused.is_empty()
            && self
                .next
                .keys()
                .all(|p| self.paused.contains(p) || self.partition_done(*p))
    }

    /// A finite run read partition `p` up to the end it had at start.
    pub fn partition_done(&self, p: i32) -> bool {
        let end = self.ends.as_ref().and_then(|e| e.get(&p));
        end.is_some_and(|end| self.next.get(&p).is_some_and(|n| n >= end))
    }

    /// Pauses the partitions `read` refuses and resumes those it allows (librdkafka
    /// `pause`/`resume` of the assigned partitions: no rebalancing; a paused
    /// partition's prefetched records are dropped and fetched again on resume, from
    /// the next record to read). Returns how many were paused now.
    pub fn pace(&mut self, mut read: impl FnMut(i32) -> bool) -> u64 {
        let (mut pause, mut resume) = (TopicPartitionList::new(), TopicPartitionList::new());
        let mut newly = Vec::new();
        let mut resumed = Vec::new();
        for &p in self.next.keys() {
            match (read(p), self.paused.contains(&p)) {
                (false, false) => {
                    pause.add_partition(&self.topic, p);
                    newly.push(p);
                }
                (true, true) => {
                    resume.add_partition(&self.topic, p);
                    resumed.push(p);
                }
                _ => {}
            }
        }
        if !newly.is_empty() {
            match self.consumer.pause(&pause) {
                Ok(()) => self.paused.extend(newly.iter().copied()),
                Err(e) => tracing::debug!("kafka source: pausing partitions {newly:?}: {e}"),
            }
        }
        if !resumed.is_empty() {
            match self.consumer.resume(&resume) {
                Ok(()) => {
                    for p in &resumed {
                        self.paused.remove(p);
                    }
                }
                Err(e) => tracing::debug!("kafka source: resuming partitions {resumed:?}: {e}"),
            }
        }
        newly.len() as u64
    }

    /// Live mode, every [`METADATA_EVERY`]: starts reading the partitions added to
    /// the topic since that are this worker's (`p mod workers`), from their first
    /// record (a new partition's records are all new). A finite run reads the
    /// partitions it had at start. Returns the partitions added.
    pub fn look_for_new_partitions(&mut self) -> Vec<i32> {
        if self.ends.is_some() || self.metadata_at.elapsed() < METADATA_EVERY {
            return Vec::new();
        }
        self.metadata_at = Instant::now();
        let count = match self
            .consumer
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
        {
            Ok(m) => m
                .topics()
                .iter()
                .find(|t| t.name() == self.topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len()),
            Err(e) => {
                tracing::debug!("kafka source: reading the topic's metadata: {e}");
                return Vec::new();
            }
        };
        self.add_partitions(count)
    }

    /// Starts reading this worker's partitions below `count` it does not read yet.
    fn add_partitions(&mut self, count: usize) -> Vec<i32> {
        let new = new_partitions(self.next.keys().copied(), count, self.index, self.consumers);
        if new.is_empty() {
            return new;
        }
        let mut list = TopicPartitionList::new();
        for &p in &new {
            if let Err(e) = list.add_partition_offset(&self.topic, p, Offset::Beginning) {
                tracing::warn!("kafka source: listing new partition {p}: {e}");
                return Vec::new();
            }
        }
        if let Err(e) = self.consumer.incremental_assign(&list) {
            // Looked for again next time.
            tracing::warn!("kafka source: assigning new partitions {new:?}: {e}");
            return Vec::new();
        }
        for &p in &new {
            self.next.insert(p, 0);
            self.from.push((p, Offset::Beginning));
        }
        tracing::info!(
            "kafka source: topic {} has {count} partitions now; this worker also reads {new:?}, from their first record",
            self.topic
        );
        new
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
    next.keys()
        .all(|p| self::reached_end(*p, next, reached_end, start_ends))
}

/// See [`Reader::reached_end`]; arguments as for [`caught_up`].
fn reached_end(
    p: i32,
    next: &BTreeMap<i32, i64>,
    reached_end: &BTreeSet<i32>,
    start_ends: &BTreeMap<i32, i64>,
) -> bool {
    reached_end.contains(&p)
        || start_ends
            .get(&p)
            .is_some_and(|end| next.get(&p).is_some_and(|n| n >= end))
}

#[cfg(test)]
mod tests;
