//! Where a kafka source resumes after a restart, kept in the job's checkpoint with
//! the sink commit (never in the broker: the group id only shows the lag).
//!
//! The file source's recovery model, per stream: each stream marks the first record
//! of each window it has open with the offset of that record, its watermark state
//! and its sequence state just before it. For a committed frontier `F`, a stream
//! resumes at its first mark of a window at or above `F` (or, with no such window
//! open, where its reading had got to), and a partition is read again from the least
//! resume offset of its streams. On the way, each stream skips its records below its
//! own resume offset (their effect is in the restored state), and counts its records
//! of windows below `F` for the watermark only, as the uninterrupted run did.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::sequence::SeqState;
use crate::time::EventMs;
use crate::watermark::ClockState;

/// A kafka source's part of a checkpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct KafkaCheckpoint {
    /// Every stream seen, by (host, group, partition); sorted.
    pub streams: Vec<StreamCheckpoint>,
    /// Each partition read: the offset reading had got to.
    pub partitions: Vec<PartitionCheckpoint>,
}

/// Where reading of a partition had got to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionCheckpoint {
    /// The partition.
    pub partition: i32,
    /// The offset of the next record to read.
    pub next_offset: i64,
}

/// One stream's resume point.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StreamCheckpoint {
    /// The agent's host ("" for a partition's stream of other records).
    pub host: String,
    /// The agent's group, or `partition N`.
    pub group: String,
    /// Its partition.
    pub partition: i32,
    /// Its first record to take again.
    pub offset: i64,
    /// Its records below this were read before: those of windows below the
    /// frontier count for the watermark only; later ones are new.
    pub seen_to: i64,
    /// Watermark state just before `offset`.
    pub max_seen_ms: Option<EventMs>,
    /// See [`ClockState::floor_ms`].
    pub floor_ms: Option<EventMs>,
    /// See [`ClockState::suspect_ms`].
    pub suspect_ms: Option<EventMs>,
    /// Sequence state just before `offset`.
    pub seq: SeqState,
}

impl StreamCheckpoint {
    /// The watermark state to restart from.
    pub(crate) fn clock(&self) -> ClockState {
        ClockState {
            max_seen_ms: self.max_seen_ms,
            floor_ms: self.floor_ms,
            suspect_ms: self.suspect_ms,
        }
    }
}

/// A stream's state just before one of its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Point {
    pub(crate) offset: i64,
    pub(crate) clock: ClockState,
    pub(crate) seq: SeqState,
}

/// One stream's marks: the first record of each open window, and where it is now.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamMarks {
    /// (window start, the state before its first record), in record order.
    marks: Vec<(EventMs, Point)>,
    /// The state after its last record (`offset`: the next one).
    tail: Option<Point>,
    /// The `seen_to` it was restored with: its records below were read by an
    /// earlier run, whether or not this run has read them again yet. Published
    /// before it read anything again (a restored stream is published at once,
    /// and the first checkpoint after a start is written at once), its tail is
    /// its resume offset: without this, that checkpoint would forget how far the
    /// earlier run had read, and a second kill would count those lines of
    /// windows already written as `late_after_written`.
    seen_to: Option<i64>,
}

impl StreamMarks {
    /// Marks `window`'s first record unless it has one.
    pub(crate) fn mark(&mut self, window: EventMs, before: Point) {
        if !self.marks.iter().rev().any(|(w, _)| *w == window) {
            self.marks.push((window, before));
        }
    }

    pub(crate) fn has(&self, window: EventMs) -> bool {
        self.marks.iter().rev().any(|(w, _)| *w == window)
    }

    /// Restored with `seen_to` (see the field).
    pub(crate) fn set_seen_to(&mut self, seen_to: i64) {
        self.seen_to = Some(seen_to);
    }

    /// The stream's state after a record.
    pub(crate) fn set_tail(&mut self, after: Point) {
        self.tail = Some(after);
    }

    /// Forgets marks of windows below `committed` (never needed again).
    pub(crate) fn prune_below(&mut self, committed: EventMs) {
        self.marks.retain(|(w, _)| *w >= committed);
    }

    /// The offset of the first marked record (after [`Self::prune_below`]: where
    /// the stream resumes), if any window is marked.
    pub(crate) fn first_offset(&self) -> Option<i64> {
        self.marks.first().map(|(_, p)| p.offset)
    }

    /// The offset after its last record, if it had one.
    pub(crate) fn tail_offset(&self) -> Option<i64> {
        self.tail.map(|t| t.offset)
    }
}

/// What the board holds for a stream.
#[derive(Clone, Debug)]
enum Published {
    /// From the checkpoint resumed from; its worker has not published since.
    Restored(StreamCheckpoint),
    /// Published by its worker.
    Live { partition: i32, marks: StreamMarks },
}

/// The process's kafka streams' resume marks: published by the sources, read by
/// whoever writes the checkpoint.
#[derive(Debug, Default)]
pub struct KafkaBoard {
    state: Mutex<BoardState>,
}

#[derive(Debug, Default)]
struct BoardState {
    /// By (host, group, partition): a group read in two partitions (a new epoch
    /// after partitions were added) is two streams, each resumed in its own.
    streams: BTreeMap<(String, String, i32), Published>,
    partitions: BTreeMap<i32, i64>,
}

impl KafkaBoard {
    /// Starts from the checkpoint resumed from: what a stream not published yet
    /// keeps.
    pub(crate) fn restore(&self, cp: &KafkaCheckpoint) {
        if let Ok(mut s) = self.state.lock() {
            for st in &cp.streams {
                s.streams.insert(
                    (st.host.clone(), st.group.clone(), st.partition),
                    Published::Restored(st.clone()),
                );
            }
            for p in &cp.partitions {
                s.partitions.insert(p.partition, p.next_offset);
            }
        }
    }

    /// A worker's streams' marks and its partitions' read offsets, taken together.
    pub(crate) fn publish<'a>(
        &self,
        streams: impl IntoIterator<Item = ((&'a str, &'a str), i32, &'a StreamMarks)>,
        partitions: impl IntoIterator<Item = (i32, i64)>,
    ) {
        if let Ok(mut s) = self.state.lock() {
            for ((host, group), partition, marks) in streams {
                s.streams.insert(
                    (host.to_string(), group.to_string(), partition),
                    Published::Live {
                        partition,
                        marks: marks.clone(),
                    },
                );
            }
            s.partitions.extend(partitions);
        }
    }

    /// Forgets streams pruned by their worker: the next checkpoint has them no more.
    pub(crate) fn forget<'a>(&self, keys: impl IntoIterator<Item = (&'a str, &'a str, i32)>) {
        if let Ok(mut s) = self.state.lock() {
            for (host, group, partition) in keys {
                s.streams
                    .remove(&(host.to_string(), group.to_string(), partition));
            }
        }
    }

    /// Whether anything was ever read or restored (a file job's checkpoints have
    /// no kafka part).
    pub(crate) fn is_empty(&self) -> bool {
        self.state
            .lock()
            .map_or(true, |s| s.streams.is_empty() && s.partitions.is_empty())
    }

    /// The resume points for a committed `frontier_ms`.
    pub(crate) fn checkpoint(&self, frontier_ms: EventMs) -> KafkaCheckpoint {
        let Ok(s) = self.state.lock() else {
            return KafkaCheckpoint::default();
        };
        let mut out = KafkaCheckpoint::default();
        let mut least: BTreeMap<i32, i64> = s.partitions.clone();
        for ((host, group, _), published) in &s.streams {
            let cp = match published {
                Published::Restored(cp) => cp.clone(),
                Published::Live { partition, marks } => {
                    let Some(tail) = marks.tail else { continue };
                    // With no window open at or above the frontier, the stream resumes
                    // where its partition's reading had got to, in the state after its
                    // last record: it has no record in between (its marks and the
                    // partition's offset are published together, after every record
                    // below that offset was taken). Resuming at its own tail instead
                    // would make one quiet stream (a host gone, a date-named file
                    // rotated away) pin its partition there for every restart.
                    let read_to = s
                        .partitions
                        .get(partition)
                        .copied()
                        .unwrap_or(tail.offset)
                        .max(tail.offset);
                    let at = marks.marks.iter().find(|(w, _)| *w >= frontier_ms).map_or(
                        Point {
                            offset: read_to,
                            ..tail
                        },
                        |(_, p)| *p,
                    );
                    StreamCheckpoint {
                        host: host.clone(),
                        group: group.clone(),
                        partition: *partition,
                        offset: at.offset,
                        seen_to: at
                            .offset
                            .max(tail.offset)
                            .max(marks.seen_to.unwrap_or(i64::MIN)),
                        max_seen_ms: at.clock.max_seen_ms,
                        floor_ms: at.clock.floor_ms,
                        suspect_ms: at.clock.suspect_ms,
                        seq: at.seq,
                    }
                }
            };
            let l = least.entry(cp.partition).or_insert(cp.offset);
            *l = (*l).min(cp.offset);
            out.streams.push(cp);
        }
        out.partitions = least
            .into_iter()
            .map(|(partition, next_offset)| PartitionCheckpoint {
                partition,
                next_offset,
            })
            .collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offset: i64, max: i64, last: u64) -> Point {
        Point {
            offset,
            clock: ClockState {
                max_seen_ms: Some(max),
                ..ClockState::default()
            },
            seq: SeqState {
                epoch: Some(1),
                last,
            },
        }
    }

    #[test]
    fn a_stream_resumes_at_its_first_window_not_committed_and_a_partition_at_the_least() {
        let board = KafkaBoard::default();
        let mut a = StreamMarks::default();
        a.mark(0, point(10, 5, 3));
        a.mark(60_000, point(40, 60_500, 30));
        a.set_tail(point(90, 130_000, 80));
        let mut b = StreamMarks::default();
        b.set_tail(point(50, 10_000, 7));
        board.publish([(("h1", "g"), 0, &a), (("h2", "g"), 0, &b)], [(0, 100)]);
        let cp = board.checkpoint(60_000);
        let sa = &cp.streams[0];
        assert_eq!((sa.offset, sa.seen_to, sa.seq.last), (40, 90, 30));
        // No window open at or above the frontier: where the partition's reading
        // had got to, in the state after its last record.
        let sb = &cp.streams[1];
        assert_eq!((sb.offset, sb.seen_to, sb.seq.last), (100, 100, 7));
        assert_eq!(
            cp.partitions,
            vec![PartitionCheckpoint {
                partition: 0,
                next_offset: 40
            }]
        );
        // Every window committed: both resume where reading had got to.
        let cp = board.checkpoint(180_000);
        assert_eq!(cp.partitions[0].next_offset, 100);
        assert_eq!((cp.streams[0].offset, cp.streams[0].seq.last), (100, 80));
    }

    /// Review R14k: a stream that went quiet (a host decommissioned, a date-named log
    /// file that rotated away: each a group of its own) pinned its partition's resume
    /// offset at its last record for ever. Every restart then read the partition
    /// again from there — after retention moved past it, from the start of the
    /// retained log (auto.offset.reset = earliest) — and nothing closed until that
    /// re-read reached the end. The quiet stream had no record between its tail and
    /// the partition's read offset (both are published together), so it resumes at
    /// the partition's offset, keeping its sequence state for resend detection.
    #[test]
    fn a_quiet_stream_pins_its_partition_resume_offset() {
        let board = KafkaBoard::default();
        let mut quiet = StreamMarks::default();
        quiet.set_tail(point(11, 10_000, 7));
        let mut busy = StreamMarks::default();
        busy.set_tail(point(5_000_000, 86_400_000, 4_999_000));
        board.publish(
            [(("old-host", "g"), 0, &quiet), (("web-1", "g"), 0, &busy)],
            [(0, 5_000_000)],
        );
        // Every window committed: nothing open anywhere.
        let cp = board.checkpoint(EventMs::MAX / 2);
        assert_eq!(
            cp.partitions[0].next_offset,
            5_000_000,
            "a restart reads {} records again for a stream that has none of them",
            5_000_000 - cp.partitions[0].next_offset
        );
        // Its sequence and clock state are kept: a resend is still told.
        let q = &cp.streams[0];
        assert_eq!(
            (q.host.as_str(), q.seq.last, q.max_seen_ms),
            ("old-host", 7, Some(10_000))
        );
    }

    #[test]
    fn a_restored_stream_keeps_its_point_until_published() {
        let board = KafkaBoard::default();
        let restored = KafkaCheckpoint {
            streams: vec![StreamCheckpoint {
                host: "h".into(),
                group: "g".into(),
                partition: 2,
                offset: 7,
                seen_to: 9,
                max_seen_ms: Some(1),
                floor_ms: None,
                suspect_ms: None,
                seq: SeqState::default(),
            }],
            partitions: vec![PartitionCheckpoint {
                partition: 2,
                next_offset: 9,
            }],
        };
        board.restore(&restored);
        assert_eq!(
            board.checkpoint(EventMs::MAX),
            KafkaCheckpoint {
                partitions: vec![PartitionCheckpoint {
                    partition: 2,
                    next_offset: 7
                }],
                ..restored.clone()
            }
        );
    }
}
