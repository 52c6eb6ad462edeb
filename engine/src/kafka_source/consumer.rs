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

/// How often a live reader looks for partitions added to its topic (they are
/// found at start otherwise only).
pub const METADATA_EVERY: Duration = Duration::from_secs(30);
/// How long that look may take (the worker waits meanwhile).
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

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

/// What librdkafka may prefetch for one job, over all its consumers (the job's
/// workers across the cluster), in KiB. librdkafka's own default is 64 MiB per
/// consumer (`queued.max.messages.kbytes`), so a job of 16 workers, or 20 jobs on a
/// member, could hold a gigabyte of records not read yet.
pub const PREFETCH_PER_JOB_KIB: u64 = 64 * 1024;

/// The least a consumer is given: librdkafka fetches at least one
/// `message.max.bytes` (1 MB by default) at a time whatever the queue's bound.
const PREFETCH_MIN_KIB: u64 = 1024;

/// librdkafka's `message.max.bytes` default: `fetch.max.bytes` may not be below it.
const MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// The prefetch settings of one of a job's `consumers` consumers: its share of
/// [`PREFETCH_PER_JOB_KIB`] (at least 1 MiB) as `queued.max.messages.kbytes`, or the
/// user's own value when it is lower; a `fetch.max.bytes` of the user's (librdkafka
/// lowers its default to the queue's bound itself, but not a value set) is lowered
/// to the share too.
pub fn prefetch_settings(
    options: &BTreeMap<String, String>,
    consumers: usize,
) -> Vec<(&'static str, String)> {
    let share = (PREFETCH_PER_JOB_KIB / consumers.max(1) as u64).max(PREFETCH_MIN_KIB);
    let user = |name: &str| options.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let kib = user("queued.max.messages.kbytes").map_or(share, |u| u.min(share));
    let mut out = vec![("queued.max.messages.kbytes", kib.to_string())];
    if let Some(fetch) = user("fetch.max.bytes") {
        let floor = user("message.max.bytes").unwrap_or(MESSAGE_MAX_BYTES);
        out.push((
            "fetch.max.bytes",
            fetch.min((kib * 1024).max(floor)).to_string(),
        ));
    }
    out
}

/// A consumer with the job's settings (its group id only receives offsets), one of
/// the job's `consumers`.
fn make_consumer(
    source: &KafkaSource,
    job: &str,
    consumers: usize,
) -> Result<BaseConsumer, ConnectError> {
    let mut config = client_config(Role::Consumer, &source.brokers, &source.options)?;
    config.set("group.id", source.group_id_for(job));
    for (name, value) in prefetch_settings(&source.options, consumers) {
        config.set(name, value);
    }
    config.create().map_err(|source| ConnectError::Kafka {
        what: "cannot make a consumer",
        source,
    })
}

/// The partitions below `count` that worker `index` of `workers` reads (`p mod
/// workers`) and that are not in `have`.
pub fn new_partitions(
    have: impl IntoIterator<Item = i32>,
    count: usize,
    index: usize,
    workers: usize,
) -> Vec<i32> {
    let have: BTreeSet<i32> = have.into_iter().collect();
    (0..count as i32)
        .filter(|p| *p as usize % workers.max(1) == index && !have.contains(p))
        .collect()
}

/// This worker's consumer and where each of its partitions is.
pub struct Reader {
    consumer: BaseConsumer,
    topic: String,
    /// Partition → the offset of the next record to read.
    next: BTreeMap<i32, i64>,
    /// Where each partition was assigned from.
    from: Vec<(i32, Offset)>,
    /// A finite run: partition → its end (high watermark) at start.
    ends: Option<BTreeMap<i32, i64>>,
    /// Partition → its end at start (a live run's backlog).
    range_ends: BTreeMap<i32, i64>,
    /// Partitions at their end since their last record.
    at_eof: BTreeSet<i32>,
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
        let mut ends = None;
        let mut lows = BTreeMap::new();
        // Each partition's end now: where a finite run stops, and the backlog a live
        // run's discovery pass reads.
        let mut range_ends = BTreeMap::new();
        for &p in &mine {
            let (low, high) = consumer
                .fetch_watermarks(&source.topic, p, REQUEST_TIMEOUT)
                .map_err(|e| ConnectError::Kafka {
                    what: "cannot read a partition's end",
                    source: e,
                })?;
            range_ends.insert(p, high);
            if !follow {
                lows.insert(p, low);
            }
        }
        if !follow {
            ends = Some(range_ends.clone());
        }
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
        reader.range_ends = range_ends;
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
            Some(self.range_ends.clone()),
        )
    }

    fn open(
        consumer: BaseConsumer,
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
            range_ends: BTreeMap::new(),
            at_eof: BTreeSet::new(),
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

    /// Every partition reached its end at least once since start.
    pub fn caught_up(&self) -> bool {
        self.next.keys().all(|p| self.reached_end.contains(p))
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

#[cfg(test)]
mod tests;
