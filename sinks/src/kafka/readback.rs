//! The read-back of a resumed run: which (window, series) records of this job
//! the topic holds already from the windows at or after the checkpoint's
//! frontier, so that the sink sends only the others.
//!
//! Each partition is read backwards from its end, in chunks that double, and
//! only as far as the first record of this job (from the end) whose window is
//! before the frontier: every record of this job before that one is of a
//! window before the frontier too (docs/kafka.md, "Why the read-back is exact",
//! gives the argument). A partition where the job has no such record is read
//! whole.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::record::{origin, Origin};
use super::Halt;

/// The first chunk read back from a partition's end; each further one doubles,
/// up to [`MAX_CHUNK`]. Small in unit tests, so that they read in many chunks.
const FIRST_CHUNK: i64 = if cfg!(test) { 4 } else { 1024 };
const MAX_CHUNK: i64 = 1 << 20;
/// How long one poll or metadata request waits before the halt is looked at again.
pub const POLL: Duration = Duration::from_millis(500);

/// The records of this job the topic holds from the frontier on.
#[derive(Debug, Default)]
pub struct Present {
    /// Keys by window start.
    windows: BTreeMap<i64, HashSet<Vec<u8>>>,
    /// Records of this job at or after the frontier found.
    pub found: u64,
    /// Records with this job's name whose window could not be read (never a
    /// record of this sink's; counted and logged).
    pub unreadable: u64,
    /// Records read in all (any job's), for the log.
    pub read: u64,
}

impl Present {
    /// Whether the topic holds `key` of the window at `window_ms`; forgets it,
    /// since each is handed over once per run.
    pub fn take(&mut self, window_ms: i64, key: &[u8]) -> bool {
        let Some(keys) = self.windows.get_mut(&window_ms) else {
            return false;
        };
        let held = keys.remove(key);
        if keys.is_empty() {
            self.windows.remove(&window_ms);
        }
        held
    }

    /// Forgets the windows before `window_ms` (handed over already); returns
    /// how many records of them were found and not handed over again (the
    /// job's series changed since they were written).
    pub fn forget_before(&mut self, window_ms: i64) -> usize {
        let later = self.windows.split_off(&window_ms);
        let left: usize = self.windows.values().map(HashSet::len).sum();
        self.windows = later;
        left
    }

    /// Whether nothing is left to skip.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    pub(super) fn insert(&mut self, window_ms: i64, key: Vec<u8>) {
        if self.windows.entry(window_ms).or_default().insert(key) {
            self.found += 1;
        }
    }
}

/// Why the read-back did not finish.
#[derive(Debug)]
pub enum Interrupted {
    /// The job stopped (or the sink was dropped) meanwhile.
    Halted,
}

/// Reads back every partition of `topic` (`partitions` of them) for `job`'s
/// records of windows at or after `frontier_ms`. A broker away is waited for,
/// until `halt`.
pub fn read_back(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    job: &str,
    frontier_ms: i64,
    halt: &Halt,
) -> Result<Present, Interrupted> {
    let mut present = Present::default();
    for partition in 0..partitions {
        let (low, high) = watermarks(consumer, topic, partition, halt)?;
        let mut end = high;
        let mut chunk = FIRST_CHUNK;
        while end > low {
            let start = (end - chunk).max(low);
            let older = read_range(
                consumer,
                topic,
                partition,
                (start, end),
                job,
                frontier_ms,
                &mut present,
                halt,
            )?;
            if older {
                break;
            }
            end = start;
            chunk = (chunk * 2).min(MAX_CHUNK);
        }
    }
    let _ = consumer.unassign();
    Ok(present)
}

/// The partition's (low, high) watermarks, asked until the broker answers.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    halt: &Halt,
) -> Result<(i64, i64), Interrupted> {
    let mut warned = false;
    loop {
        if halt.is_set() {
            return Err(Interrupted::Halted);
        }
        match consumer.fetch_watermarks(topic, partition, POLL * 10) {
            Ok(w) => return Ok(w),
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        "kafka sink: cannot read the offsets of {topic} partition {partition} to read back what the last run wrote ({e}); retrying until the broker answers"
                    );
                    warned = true;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Reads the offsets `[start, end)` of one partition into `present`; true if a
/// record of this job before the frontier was among them (the scan stops there).
#[allow(clippy::too_many_arguments)]
fn read_range(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    (start, end): (i64, i64),
    job: &str,
    frontier_ms: i64,
    present: &mut Present,
    halt: &Halt,
) -> Result<bool, Interrupted> {
    let mut list = TopicPartitionList::new();
    // The partition exists (the metadata said so), so this cannot fail.
    let _ = list.add_partition_offset(topic, partition, Offset::Offset(start));
    let mut older = false;
    let mut warned = false;
    let mut assigned = false;
    loop {
        if halt.is_set() {
            return Err(Interrupted::Halted);
        }
        if !assigned {
            if let Err(e) = consumer.assign(&list) {
                tracing::warn!(
                    "kafka sink: cannot read back {topic} partition {partition}: {e}; retrying"
                );
                std::thread::sleep(POLL);
                continue;
            }
            assigned = true;
        }
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(m)) => {
                if m.partition() != partition || m.offset() < start {
                    continue;
                }
                let offset = m.offset();
                if offset < end {
                    present.read += 1;
                    let headers = m
                        .headers()
                        .into_iter()
                        .flat_map(|h| h.iter())
                        .map(|h| (h.key, h.value));
                    match origin(job, headers) {
                        Origin::Ours { window_ms } if window_ms >= frontier_ms => {
                            present.insert(window_ms, m.key().unwrap_or_default().to_vec())
                        }
                        Origin::Ours { .. } => older = true,
                        Origin::Unreadable => present.unreadable += 1,
                        Origin::Other => {}
                    }
                }
                // Offsets can skip (compaction, transaction markers): the last
                // one of the range, or any past it, ends the range.
                if offset >= end - 1 {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(e)) if !warned => {
                tracing::warn!(
                    "kafka sink: reading back {topic} partition {partition}: {e}; retrying"
                );
                warned = true;
            }
            Some(Err(_)) => {}
        }
    }
    let _ = consumer.unassign();
    Ok(older)
}
