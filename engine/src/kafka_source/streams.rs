//! A worker's streams by name (agent host and group, or `partition N` for other
//! records), and the forgetting of streams that stopped sending.
//!
//! - **Lookup without allocation.** A record names its stream with borrowed text;
//!   the map is searched with it as it is ([`KeyView`]) and a name is copied only
//!   when a stream is new.
//! - **Name order.** Streams are iterated in name order, whatever order their
//!   records arrived in: partials of a window are handed on, and checkpoints list
//!   streams, in the same order in an uninterrupted run, after a restart and for
//!   any `-w` (a hash map's order would differ).
//! - **Retention** (`[source] stream_retention`, docs/kafka.md). A stream that had
//!   no record for that long, whose partition is read to its end, and that holds
//!   nothing (no window open, none waiting for the sinks) is forgotten: its memory
//!   and its place in every checkpoint. Only when no restart could read its records
//!   again: its last record must be below every other stream's resume point in
//!   its partition. Its sequence and clock are remembered a while longer (a few
//!   dozen bytes, [`REMEMBER_RETENTIONS`] retentions, this process only), so a
//!   stream that comes back goes on where it was — warned and counted
//!   (`kafka_streams_returned`); later, or after a restart, it is a new stream.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::stats::JobStats;
use crate::time::EventMs;
use crate::watermark::ClockState;

use super::group::Stream;
use super::sequence::SeqState;

/// How often streams are looked over for retention (at most; as often as the
/// retention when it is shorter).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How many retentions a forgotten stream's sequence and clock are kept.
pub(crate) const REMEMBER_RETENTIONS: u32 = 7;
/// Warnings about streams that came back logged per worker before only counting.
const MAX_WARNINGS: u32 = 20;

/// A stream's name, owned: (host, group, partition); host "" for other records'
/// streams. The partition is part of it: an agent that lost its state draws a new
/// epoch, and its group's records then go to the partition the new key hashes to
/// (with the topic's partition count of now). Its records there are another
/// stream's, resumed from offsets of that partition; one stream spanning both
/// would checkpoint offsets of one partition as the other's (and two workers
/// would overwrite each other's board entry).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamKey {
    host: Box<str>,
    group: Box<str>,
    partition: i32,
}

impl StreamKey {
    /// The name of `group` of `host` in `partition`.
    pub(crate) fn new(host: &str, group: &str, partition: i32) -> StreamKey {
        StreamKey {
            host: host.into(),
            group: group.into(),
            partition,
        }
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }
}

/// A stream's name, owned or borrowed, ordered as [`StreamKey`] (host, group,
/// then partition): the map is searched with borrowed names.
pub(crate) trait KeyView {
    fn view(&self) -> (&str, &str, i32);
}

impl KeyView for StreamKey {
    fn view(&self) -> (&str, &str, i32) {
        (&self.host, &self.group, self.partition)
    }
}

impl KeyView for (&str, &str, i32) {
    fn view(&self) -> (&str, &str, i32) {
        *self
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for StreamKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.view() == other.view()
    }
}

impl Eq for dyn KeyView + '_ {}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.view().cmp(&other.view())
    }
}

/// What is kept of a forgotten stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gone {
    pub(crate) seq: SeqState,
    pub(crate) clock: ClockState,
    at: Instant,
}

/// A worker's streams.
pub(crate) struct Streams {
    map: BTreeMap<StreamKey, Stream>,
    /// Forgotten streams by hashed name (this process only).
    gone: HashMap<u64, Gone>,
    hasher: ahash::RandomState,
    swept_at: Option<Instant>,
    /// `partition N`, written once per partition.
    partition_names: BTreeMap<i32, Box<str>>,
    /// Warnings about returning streams logged.
    warned: u32,
    /// The streams forgotten while a discovery pass's findings are in use (a live
    /// catch-up, [`super::pace`]): the pass found them and they were read, so what
    /// it found no longer applies to them ([`Streams::forgot`]). Without this, one
    /// was taken for a stream not read yet (review R16l). Kept by name, not by hash
    /// as `gone` is: a collision would take a stream not read yet for a read one.
    forgotten: BTreeSet<StreamKey>,
    /// No pass's findings are in use any more: `forgotten` stays empty.
    pass_over: bool,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            map: BTreeMap::new(),
            gone: HashMap::new(),
            hasher: ahash::RandomState::new(),
            swept_at: None,
            partition_names: BTreeMap::new(),
            warned: 0,
            forgotten: BTreeSet::new(),
            pass_over: false,
        }
    }
}

impl Streams {
    /// Adds a stream restored from a checkpoint (its partition: `stream.partition`).
    pub(crate) fn insert(&mut self, host: &str, group: &str, stream: Stream) {
        self.map.insert(
            StreamKey {
                host: host.into(),
                group: group.into(),
                partition: stream.partition,
            },
            stream,
        );
    }

    /// The stream named `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &StreamKey) -> Option<&Stream> {
        self.map.get(key)
    }

    /// Whether the stream named `key` is here.
    pub(crate) fn contains_key(&self, key: &StreamKey) -> bool {
        self.map.contains_key(key)
    }

    /// Whether the stream named `key` was forgotten (`stream_retention`) while a
    /// discovery pass's findings are in use: read, whether or not it is back.
    pub(crate) fn forgot(&self, key: &StreamKey) -> bool {
        self.forgotten.contains(key)
    }

    /// The discovery pass's findings are no longer in use (a live run caught up,
    /// or it had none): the names forgotten meanwhile are not kept, nor later ones.
    pub(crate) fn pass_over(&mut self) {
        self.pass_over = true;
        self.forgotten = BTreeSet::new();
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Stream> {
        self.map.values()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.map.values_mut()
    }

    /// In name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&StreamKey, &Stream)> {
        self.map.iter()
    }

    /// In name order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&StreamKey, &mut Stream)> {
        self.map.iter_mut()
    }

    /// The stream of an agent's (`host`, `group`) in `partition`, made by `make`
    /// when new (given what is kept of it if it was forgotten). A group found in
    /// another partition already (a new epoch after partitions were added) is
    /// warned and counted (`kafka_streams_moved`).
    pub(crate) fn agent(
        &mut self,
        host: &str,
        group: &str,
        partition: i32,
        stats: &mut JobStats,
        make: impl FnOnce(Option<Gone>) -> Stream,
    ) -> &mut Stream {
        let found = self
            .map
            .contains_key(&(host, group, partition) as &dyn KeyView);
        if !found {
            let lo = StreamKey {
                host: host.into(),
                group: group.into(),
                partition: i32::MIN,
            };
            let elsewhere = self
                .map
                .range(lo..)
                .take_while(|(k, _)| k.host() == host && k.group() == group)
                .map(|(k, _)| k.partition)
                .next();
            if let Some(other) = elsewhere {
                stats.kafka_streams_moved += 1;
                self.warned += 1;
                if self.warned <= MAX_WARNINGS {
                    tracing::warn!(
                        "kafka: agent {host} group {group} now sends to partition {partition} (it was read in partition {other}: a new epoch after the topic's partitions changed); read as a stream of its own there (counted in kafka_streams_moved)"
                    );
                }
            }
            let hash = self.hasher.hash_one((host, group, partition));
            let back = self.gone.remove(&hash);
            if back.is_some() {
                stats.kafka_streams_returned += 1;
                self.warned += 1;
                if self.warned <= MAX_WARNINGS {
                    tracing::warn!(
                        "kafka: agent {host} group {group} sends again after stream_retention had forgotten it; it goes on where it was (counted in kafka_streams_returned)"
                    );
                }
            }
            self.insert(host, group, make(back));
        }
        self.map
            .get_mut(&(host, group, partition) as &dyn KeyView)
            .expect("found or inserted above")
    }

    /// The stream of other records in `partition`, made by `make(name)` when new.
    pub(crate) fn foreign(
        &mut self,
        partition: i32,
        make: impl FnOnce(&str) -> Stream,
    ) -> &mut Stream {
        let name: &str = self
            .partition_names
            .entry(partition)
            .or_insert_with(|| format!("partition {partition}").into());
        let key = ("", name, partition);
        if !self.map.contains_key(&key as &dyn KeyView) {
            let stream = make(name);
            self.map.insert(
                StreamKey {
                    host: "".into(),
                    group: name.into(),
                    partition,
                },
                stream,
            );
        }
        self.map
            .get_mut(&key as &dyn KeyView)
            .expect("found or inserted above")
    }

    /// Live mode, once a minute (or per retention if shorter): forgets the streams past `retention` (see the
    /// module docs); `read_to_end(p)`: partition `p` is at its end. Returns the
    /// names forgotten (the checkpoint board forgets them too).
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        retention: Duration,
        committed: EventMs,
        read_to_end: impl Fn(i32) -> bool,
        stats: &mut JobStats,
    ) -> Vec<StreamKey> {
        let every = SWEEP_EVERY.min(retention);
        if self.swept_at.is_some_and(|t| now.duration_since(t) < every) {
            return Vec::new();
        }
        self.swept_at = Some(now);
        let remember = retention.saturating_mul(REMEMBER_RETENTIONS);
        self.gone.retain(|_, g| now.duration_since(g.at) < remember);
        // Per partition, the least resume point of the streams that stay: a
        // restart reads the partition again from there.
        let mut least: BTreeMap<i32, i64> = BTreeMap::new();
        let mut idle = Vec::new();
        for (k, s) in self.map.iter_mut() {
            s.prune_marks(committed);
            if s.forgettable(now, retention) && read_to_end(s.partition) {
                idle.push(k.clone());
            } else if let Some(o) = s.resume_offset() {
                let l = least.entry(s.partition).or_insert(o);
                *l = (*l).min(o);
            }
        }
        let mut forgotten = Vec::new();
        for k in idle {
            let s = &self.map[&k];
            // Its records would be read again after a restart, and taken as a
            // new stream's: keep it until the others move on.
            if let (Some(tail), Some(l)) = (s.tail_offset(), least.get(&s.partition)) {
                if tail > *l {
                    continue;
                }
            }
            let Some(s) = self.map.remove(&k) else {
                continue;
            };
            let (seq, clock) = s.kept();
            self.gone.insert(
                self.hasher.hash_one((k.host(), k.group(), k.partition)),
                Gone {
                    seq,
                    clock,
                    at: now,
                },
            );
            stats.kafka_streams_pruned += 1;
            tracing::info!(
                "kafka: stream {} {} had no record for {} and holds nothing: forgotten (stream_retention)",
                k.host(),
                k.group(),
                tidemark_jobs::duration::format_duration(retention)
            );
            if !self.pass_over {
                self.forgotten.insert(k.clone());
            }
            forgotten.push(k);
        }
        forgotten
    }
}

#[cfg(test)]
mod tests;
