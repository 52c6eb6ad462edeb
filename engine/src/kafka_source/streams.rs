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
use std::collections::{BTreeMap, HashMap};
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

    pub(crate) fn values(&self) -> impl Iterator<Item = &Stream> {
        self.map.values()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.map.values_mut()
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
            forgotten.push(k);
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka_source::group::{AgentItem, RecordCx, StreamStart};
    use crate::plan::Plan;
    use tidemark_kafka::wire::GroupRef;
    use tidemark_sources::parse::LineParser;

    const HOUR: Duration = Duration::from_secs(3600);

    fn job() -> tidemark_jobs::Job {
        let text = "name = \"j\"\n[source]\nkind = \"kafka\"\nbrokers = \"k:1\"\ntopic = \"t\"\n[parse]\nformat = \"json\"\n[[metric]]\nname = \"reqs\"\nkind = \"counter\"\n[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n";
        tidemark_jobs::from_str(text, "j.toml", std::path::Path::new("/")).unwrap()
    }

    /// Streams `a` and `b` of partition 0, fed `(host, offset, seq, second)` lines
    /// at `t0`; windows below `closed` (ms) are handed on and in the sinks.
    fn streams(lines: &[(&str, i64, u64, i64)], t0: Instant, closed: EventMs) -> Streams {
        let job = job();
        let plan = Plan::new(&job);
        let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
        let mut streams = Streams::default();
        let mut stats = JobStats::default();
        let start = StreamStart {
            floor: 0,
            skip_below: EventMs::MIN,
            checkpointing: true,
            now: t0,
        };
        let (mut warned, mut warned_ahead) = (0, 0);
        for (host, offset, seq, second) in lines {
            let group = GroupRef {
                host,
                group: "/g",
                epoch: 1,
            };
            let ts = jiff::Timestamp::from_millisecond(1_800_000_000_000 + second * 1000).unwrap();
            let text = format!("{{\"time\":\"{ts}\"}}");
            let s = streams.agent(host, "/g", 0, &mut stats, |_| {
                Stream::new("/g", 0, &plan, start)
            });
            let mut cx = RecordCx {
                parser: &mut parser,
                plan: &plan,
                wall_ms: 1_800_000_000_000,
                max_line: 1 << 20,
                stats: &mut stats,
                warned: &mut warned,
                heartbeat_grace_ms: 60_000,
                warned_ahead: &mut warned_ahead,
                append_ms: None,
            };
            let item = AgentItem::Line {
                seq: *seq,
                line: text.as_bytes(),
                host,
            };
            s.agent_record(*offset, &group, item, &mut cx);
        }
        for s in streams.values_mut() {
            // Windows below `closed` are handed on (a heartbeat's doing).
            s.at_end(closed + 60_000, &plan, 60_000);
            s.close_windows(&plan, |_, _| {});
        }
        streams
    }

    /// Review R14k: streams were never forgotten, so a (host, group) that stopped
    /// sending long ago (k8s pods churn host names) stayed in memory and in every
    /// checkpoint for ever.
    #[test]
    fn streams_are_never_pruned() {
        let t0 = Instant::now();
        let base = 1_800_000_000_000;
        // `a` wrote long ago; `b` still has a window open (at offset 5).
        let lines = [("a", 0, 1, 10), ("a", 1, 2, 20), ("b", 5, 1, 200)];
        let mut st = streams(&lines, t0, base + 120_000);
        let mut stats = JobStats::default();
        // Not before stream_retention, nor while its partition is being read.
        assert!(st
            .sweep(t0 + HOUR, 24 * HOUR, base + 120_000, |_| true, &mut stats)
            .is_empty());
        st.swept_at = None;
        assert!(st
            .sweep(
                t0 + 25 * HOUR,
                24 * HOUR,
                base + 120_000,
                |_| false,
                &mut stats
            )
            .is_empty());
        st.swept_at = None;
        let gone = st.sweep(
            t0 + 25 * HOUR,
            24 * HOUR,
            base + 120_000,
            |_| true,
            &mut stats,
        );
        let names: Vec<(&str, &str)> = gone.iter().map(|k| (k.host(), k.group())).collect();
        assert_eq!(names, [("a", "/g")], "b holds a window");
        assert_eq!(stats.kafka_streams_pruned, 1);
        assert_eq!(st.values().count(), 1);
        // It comes back: it goes on with its sequence (3 follows 2: nothing lost).
        let job = job();
        let plan = Plan::new(&job);
        let start = StreamStart {
            floor: 0,
            skip_below: EventMs::MIN,
            checkpointing: true,
            now: t0,
        };
        let mut kept = None;
        st.agent("a", "/g", 0, &mut stats, |g| {
            kept = g;
            Stream::new("/g", 0, &plan, start)
        });
        let kept = kept.expect("its sequence and clock were kept");
        assert_eq!((kept.seq.last, stats.kafka_streams_returned), (2, 1));
        assert_eq!(kept.clock.max_seen_ms, Some(base + 20_000));
    }

    /// A quiet stream whose records a restart would read again (another stream of
    /// its partition resumes before them) is kept: taken again as a new stream,
    /// its late lines could count.
    #[test]
    fn a_stream_whose_records_a_restart_reads_again_is_kept() {
        let t0 = Instant::now();
        let base = 1_800_000_000_000;
        let lines = [("b", 0, 1, 200), ("a", 1, 1, 10), ("a", 2, 2, 20)];
        let mut st = streams(&lines, t0, base + 120_000);
        let mut stats = JobStats::default();
        let gone = st.sweep(
            t0 + 25 * HOUR,
            24 * HOUR,
            base + 120_000,
            |_| true,
            &mut stats,
        );
        assert!(gone.is_empty());
        assert_eq!(stats.kafka_streams_pruned, 0);
        // Once `b`'s first window is in the sinks, `a` goes (`b` still holds it in
        // memory: not handed on).
        st.swept_at = None;
        let gone = st.sweep(
            t0 + 25 * HOUR,
            24 * HOUR,
            base + 240_000,
            |_| true,
            &mut stats,
        );
        assert_eq!(
            gone.len(),
            1,
            "b still has its window in memory (not handed on)"
        );
    }

    #[test]
    fn borrowed_names_find_owned_ones_in_name_order() {
        let mut m: BTreeMap<StreamKey, u32> = BTreeMap::new();
        for (i, (h, g)) in [("b", "x"), ("a", "z"), ("a", "y"), ("", "partition 1")]
            .iter()
            .enumerate()
        {
            m.insert(
                StreamKey {
                    host: (*h).into(),
                    group: (*g).into(),
                    partition: 1,
                },
                i as u32,
            );
        }
        assert_eq!(m.get(&("a", "z", 1) as &dyn KeyView), Some(&1));
        assert_eq!(m.get(&("a", "z", 0) as &dyn KeyView), None);
        assert_eq!(m.get(&("a", "x", 1) as &dyn KeyView), None);
        let order: Vec<(&str, &str)> = m.keys().map(|k| (k.host(), k.group())).collect();
        assert_eq!(
            order,
            [("", "partition 1"), ("a", "y"), ("a", "z"), ("b", "x")]
        );
    }

    /// Review R15k: an agent that lost its state draws a new epoch, and after
    /// partitions were added its group's key (host, group, epoch) may hash to
    /// another partition. The stream found by (host, group) kept its old
    /// partition: the marks of the lines it took from the new partition were put
    /// in the checkpoint as offsets of the old one, and the new partition was not
    /// held back for them — after a kill -9 the open window's lines there are never
    /// read again (lost), while the old partition resumes at a meaningless offset.
    #[test]
    fn a_group_that_moves_to_another_partition_resumes_in_its_new_one() {
        use crate::kafka_source::resume::KafkaBoard;
        let job = job();
        let plan = Plan::new(&job);
        let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
        let mut streams = Streams::default();
        let mut stats = JobStats::default();
        let start = StreamStart {
            floor: 0,
            skip_below: EventMs::MIN,
            checkpointing: true,
            now: Instant::now(),
        };
        let (mut warned, mut warned_ahead) = (0, 0);
        // (epoch, partition, offset, seq, second): epoch 1 in partition 0, then the
        // agent lost its state: epoch 2 goes to partition 1; one window (0..60 s).
        for (epoch, partition, offset, seq, second) in
            [(1u64, 0i32, 10i64, 1u64, 5i64), (2, 1, 500, 1, 20)]
        {
            let group = GroupRef {
                host: "h",
                group: "/g",
                epoch,
            };
            let ts = jiff::Timestamp::from_millisecond(1_800_000_000_000 + second * 1000).unwrap();
            let text = format!("{{\"time\":\"{ts}\"}}");
            let s = streams.agent("h", "/g", partition, &mut stats, |_| {
                Stream::new("/g", partition, &plan, start)
            });
            let mut cx = RecordCx {
                parser: &mut parser,
                plan: &plan,
                wall_ms: 1_800_000_000_000,
                max_line: 1 << 20,
                stats: &mut stats,
                warned: &mut warned,
                heartbeat_grace_ms: 60_000,
                warned_ahead: &mut warned_ahead,
                append_ms: None,
            };
            let item = AgentItem::Line {
                seq,
                line: text.as_bytes(),
                host: "h",
            };
            s.agent_record(offset, &group, item, &mut cx);
        }
        assert_eq!(stats.kafka_streams_moved, 1, "warned and counted");
        // What SourceState::publish hands the board, and a checkpoint with the
        // window still open.
        let board = KafkaBoard::default();
        let published: Vec<_> = streams
            .iter_mut()
            .map(|(k, s)| ((k.host(), k.group()), s.partition, s.marks.clone().unwrap()))
            .collect();
        board.publish(
            published.iter().map(|(k, p, m)| (*k, *p, m)),
            [(0, 11), (1, 501)],
        );
        let cp = board.checkpoint(1_800_000_000_000);
        let p1 = cp.partitions.iter().find(|p| p.partition == 1).unwrap();
        assert!(
            p1.next_offset <= 500,
            "partition 1 resumes at {} past the open window's line at 500 (the stream is checkpointed in partition {} at offset {})",
            p1.next_offset,
            cp.streams[0].partition,
            cp.streams[0].offset
        );
    }
}
