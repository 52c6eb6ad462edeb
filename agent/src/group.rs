//! One file group on its way to Kafka: its tailer, its sequence, and the lines sent
//! but not yet acknowledged.
//!
//! The checkpointed place of a group is the last line the broker acknowledged with
//! every line before it, and the read position of the line after it: the start of
//! the oldest unacknowledged line, or — when none is in flight — the tailer's own
//! position (every line it delivered was sent or filtered out, and acknowledged).
//! So a restart sends again exactly the lines that might be missing, under the
//! sequence numbers they had.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use tidemark_kafka::GroupId;
use tidemark_sources::tail::{Position, ReadStatus, Tailer};

use crate::state::GroupCheckpoint;

/// A line sent and not yet acknowledged.
struct Pending {
    /// Where the line starts: the resume position once the lines before it are
    /// acknowledged.
    start: Position,
    acked: bool,
}

/// A file group being shipped.
pub struct Group {
    /// The group's live path.
    pub live: PathBuf,
    /// Reads the group's files.
    pub tailer: Tailer,
    /// Its sequence and lines in flight (apart from the tailer, so that a read's
    /// callback can send while the tailer is borrowed).
    pub ship: Ship,
    /// How its last read ended.
    pub status: ReadStatus,
    /// When it last sent a line or a heartbeat.
    pub last_sent: Option<Instant>,
    /// A heartbeat of it is queued and not yet reported on.
    pub heartbeat_in_flight: bool,
}

/// A group's sequence: the numbers given, and the lines not yet acknowledged.
pub struct Ship {
    /// Host, group name and epoch, as the records carry them.
    pub id: GroupId,
    /// `host/group`.
    pub key: Vec<u8>,
    /// Where its records go.
    pub partition: i32,
    /// The last sequence number given to a line (0: none yet in this epoch).
    pub sent_seq: u64,
    /// Every line up to this one is acknowledged.
    acked_seq: u64,
    /// Lines `acked_seq + 1 ..= sent_seq`, oldest first.
    pending: VecDeque<Pending>,
}

impl Ship {
    /// Gives the next sequence number to a line starting at `start`, now in flight.
    pub fn send(&mut self, start: &Position) -> u64 {
        self.sent_seq += 1;
        self.pending.push_back(Pending {
            start: start.clone(),
            acked: false,
        });
        self.sent_seq
    }

    /// The last line acknowledged with every line before it.
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq
    }
}

impl Group {
    /// A group resuming from `cp` (sequence `cp.seq`, reading at `cp.position`).
    pub fn new(live: PathBuf, host: &str, cp: &GroupCheckpoint, tailer: Tailer) -> Group {
        let id = GroupId {
            host: host.to_string(),
            group: live.to_string_lossy().into_owned(),
            epoch: cp.epoch,
        };
        Group {
            ship: Ship {
                key: id.key(),
                id,
                partition: cp.partition,
                sent_seq: cp.seq,
                acked_seq: cp.seq,
                pending: VecDeque::new(),
            },
            live,
            tailer,
            status: ReadStatus::More,
            last_sent: None,
            heartbeat_in_flight: false,
        }
    }

    /// The broker acknowledged line `seq`. Returns false for a number that is not in
    /// flight (a bug: it is logged by the caller).
    pub fn ack(&mut self, seq: u64) -> bool {
        let ship = &mut self.ship;
        let Some(i) = seq
            .checked_sub(ship.acked_seq + 1)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return false;
        };
        let Some(p) = ship.pending.get_mut(i) else {
            return false;
        };
        if p.acked {
            return false;
        }
        p.acked = true;
        while ship.pending.front().is_some_and(|p| p.acked) {
            ship.pending.pop_front();
            ship.acked_seq += 1;
        }
        true
    }

    /// Lines in flight.
    pub fn in_flight(&self) -> usize {
        self.ship.pending.len()
    }

    /// At the end of its files with every line acknowledged: it may send a heartbeat.
    pub fn is_idle(&self) -> bool {
        self.ship.pending.is_empty() && self.status == ReadStatus::Idle
    }

    /// Its place, as the checkpoint keeps it.
    pub fn checkpoint(&self) -> GroupCheckpoint {
        GroupCheckpoint {
            epoch: self.ship.id.epoch,
            partition: self.ship.partition,
            seq: self.ship.acked_seq,
            position: match self.ship.pending.front() {
                Some(p) => Some(p.start.clone()),
                None => self.tailer.position(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_sources::tail::{FileId, TailOptions};

    fn pos(offset: u64) -> Position {
        Position {
            file: FileId {
                dev: 1,
                ino: 2,
                fingerprint: 3,
                fingerprint_len: 4,
            },
            path: PathBuf::from("/l/a.log"),
            offset,
            gzip: false,
        }
    }

    fn group(seq: u64) -> Group {
        let cp = GroupCheckpoint {
            epoch: 9,
            partition: 0,
            seq,
            position: None,
        };
        let live = PathBuf::from("/nonexistent/a.log");
        let tailer = Tailer::new(live.clone(), TailOptions::default(), None);
        Group::new(live, "h", &cp, tailer)
    }

    #[test]
    fn the_checkpoint_stays_at_the_oldest_unacknowledged_line() {
        let mut g = group(10);
        assert_eq!(g.ship.send(&pos(0)), 11);
        assert_eq!(g.ship.send(&pos(5)), 12);
        assert_eq!(g.ship.send(&pos(9)), 13);
        // Acknowledged out of order: the checkpoint waits for line 11.
        assert!(g.ack(12));
        let cp = g.checkpoint();
        assert_eq!((cp.seq, cp.position.map(|p| p.offset)), (10, Some(0)));
        assert!(g.ack(11));
        let cp = g.checkpoint();
        assert_eq!((cp.seq, cp.position.map(|p| p.offset)), (12, Some(9)));
        assert_eq!(g.in_flight(), 1);
        assert!(!g.ack(12), "already acknowledged");
        assert!(!g.ack(14), "never sent");
        assert!(g.ack(13));
        assert_eq!((g.ship.acked_seq(), g.in_flight()), (13, 0));
        // Nothing in flight: the tailer's own position (nothing read: none).
        assert_eq!(g.checkpoint().position, None);
        assert_eq!(g.checkpoint().epoch, 9);
    }
}
