//! One file group on its way to Kafka: its tailer, its sequence, and the lines sent
//! but not yet acknowledged.
//!
//! The checkpointed place of a group is the last line the broker acknowledged with
//! every line before it, and the read position of the line after it: the start of
//! the oldest unacknowledged line, or — when none is in flight — the tailer's own
//! position (every line it delivered was sent or filtered out, and acknowledged).
//! So a restart sends again exactly the lines that might be missing, under the
//! sequence numbers they had.
//!
//! That holds only while the lines after the checkpoint are the ones sent under
//! those numbers before. The broker may hold more of an epoch than the checkpoint
//! names (acknowledged after the last checkpoint was written), so once the file
//! source reports a discontinuity ([`TailCounters::discontinuities`]: a resume
//! miss, a truncation without a copy, …) the lines after it must never take the
//! epoch's next numbers: a consumer would drop them as resends. The group's
//! [`Numbering`] then stops sending, holds the first line after the discontinuity,
//! waits for its lines in flight, draws a new epoch starting at that line, and
//! sends nothing of it until a checkpoint naming it is written — a
//! `kill -9` at any instruction leaves either the old epoch at a place before the
//! discontinuity (found again on restart) or the new one.
//!
//! [`TailCounters::discontinuities`]: tidemark_sources::tail::TailCounters::discontinuities

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

/// A line read after a discontinuity, waiting for its group's new epoch.
#[derive(Debug)]
pub struct Held {
    /// Where it starts (the new epoch's checkpointed place).
    pub start: Position,
    /// The line.
    pub line: Vec<u8>,
    /// The tailer's discontinuity count when it was delivered.
    pub discontinuities: u64,
}

/// Whether the group's lines may take its epoch's next numbers.
#[derive(Debug)]
pub enum Numbering {
    /// They may: every line since the epoch began continues the one before.
    Continuing,
    /// The file source reported a discontinuity: nothing more is sent in this
    /// epoch. Reading goes on until the first line after it (held), then waits
    /// for the lines in flight; then a new epoch is drawn, starting at that line.
    /// (Not before: the tailer's position may still name the place before the
    /// discontinuity, and a new epoch checkpointed there could, after a restart
    /// that finds that place again, number other lines than the ones it sent.)
    Broken {
        /// Lines read after it (at most a few: reading stops at the first).
        held: VecDeque<Held>,
    },
    /// A new epoch was drawn; nothing of it is sent before a checkpoint naming it
    /// is written (`saved`).
    Drawn {
        /// Lines to send first in it (never empty: the first is where it starts).
        held: VecDeque<Held>,
        /// A checkpoint naming the epoch was written.
        saved: bool,
    },
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
    /// Wall time (ms since the Unix epoch) taken before the read that set `status`
    /// began: a line written before then was in that read. A heartbeat says the
    /// group was at its end at this time, not when it is sent — a group can go
    /// unread for turns (reading paused, the rate limit) while its idle status
    /// stays, and a later stamp would claim lines written since.
    pub read_at_ms: i64,
    /// When it last sent a line or a heartbeat.
    pub last_sent: Option<Instant>,
    /// A heartbeat of it is queued and not yet reported on.
    pub heartbeat_in_flight: bool,
    /// Since when none of its files exists (see `group_retention`).
    pub gone_since: Option<Instant>,
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
    /// The tailer's discontinuity count the epoch's lines were read under.
    discontinuities: u64,
    /// See [`Numbering`].
    pub numbering: Numbering,
    /// The numbering settings' hash ([`crate::validate::numbering`]), kept with
    /// the epoch in the checkpoint.
    settings: u64,
}

impl Ship {
    /// Whether a line delivered under the tailer's discontinuity count `d` takes
    /// the epoch's next number. If not, [`Ship::hold`] it.
    pub fn continues(&self, d: u64) -> bool {
        matches!(self.numbering, Numbering::Continuing) && d == self.discontinuities
    }

    /// Keeps a line read after a discontinuity for the epoch drawn for it.
    pub fn hold(&mut self, start: &Position, line: &[u8], d: u64) {
        let held = Held {
            start: start.clone(),
            line: line.to_vec(),
            discontinuities: d,
        };
        match &mut self.numbering {
            Numbering::Broken { held: h } | Numbering::Drawn { held: h, .. } => h.push_back(held),
            Numbering::Continuing => {
                self.numbering = Numbering::Broken {
                    held: VecDeque::from([held]),
                }
            }
        }
    }

    /// After a read: the tailer's discontinuity count is `d`. A discontinuity no
    /// line was delivered after still breaks the epoch (the tailer's position is
    /// past it).
    pub fn note_discontinuities(&mut self, d: u64) {
        if matches!(self.numbering, Numbering::Continuing) && d != self.discontinuities {
            self.numbering = Numbering::Broken {
                held: VecDeque::new(),
            };
        }
    }

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
    /// A group resuming from `cp` (sequence `cp.seq`, reading at `cp.position`),
    /// numbering lines under the settings hashed as `settings`.
    pub fn new(
        live: PathBuf,
        host: &str,
        cp: &GroupCheckpoint,
        settings: u64,
        tailer: Tailer,
    ) -> Group {
        let id = GroupId {
            host: host.to_string(),
            group: live.to_string_lossy().into_owned(),
            epoch: cp.epoch,
        };
        let discontinuities = tailer.counters().discontinuities;
        Group {
            ship: Ship {
                key: id.key(),
                id,
                partition: cp.partition,
                sent_seq: cp.seq,
                acked_seq: cp.seq,
                pending: VecDeque::new(),
                discontinuities,
                numbering: Numbering::Continuing,
                settings,
            },
            live,
            tailer,
            status: ReadStatus::More,
            read_at_ms: 0,
            last_sent: None,
            heartbeat_in_flight: false,
            gone_since: None,
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

    /// Whether it may read now: its epoch continues, or is broken and waits for
    /// the first line after the discontinuity (which the read holds).
    pub fn reading(&self) -> bool {
        match &self.ship.numbering {
            Numbering::Continuing => true,
            Numbering::Broken { held } => held.is_empty(),
            Numbering::Drawn { .. } => false,
        }
    }

    /// At the end of its files with every line acknowledged: it may send a
    /// heartbeat (of its epoch's last line: true of a broken epoch too).
    pub fn is_idle(&self) -> bool {
        self.ship.pending.is_empty() && self.status == ReadStatus::Idle && self.reading()
    }

    /// The wall time a heartbeat of it may carry now: that of the read that found
    /// it at its end, if it [`is_idle`](Group::is_idle).
    pub fn idle_at_ms(&self) -> Option<i64> {
        self.is_idle().then_some(self.read_at_ms)
    }

    /// A broken epoch with a line held and nothing in flight: starts `epoch`
    /// (sequence from 0) at the held line, to be checkpointed before anything of
    /// it is sent. Returns the epoch left, or `None` if the group is not ready
    /// for one.
    pub fn draw_epoch(&mut self, epoch: u64) -> Option<u64> {
        if !self.ship.pending.is_empty() {
            return None;
        }
        let ship = &mut self.ship;
        let Numbering::Broken { held } = &mut ship.numbering else {
            return None;
        };
        let first = held.front()?.discontinuities;
        let held = std::mem::take(held);
        ship.discontinuities = first;
        let old = std::mem::replace(&mut ship.id.epoch, epoch);
        ship.sent_seq = 0;
        ship.acked_seq = 0;
        ship.numbering = Numbering::Drawn { held, saved: false };
        Some(old)
    }

    /// A checkpoint holding [`Group::checkpoint`] was written.
    pub fn saved(&mut self) {
        if let Numbering::Drawn { saved, .. } = &mut self.ship.numbering {
            *saved = true;
        }
    }

    /// A new epoch whose checkpoint is written: its held lines, to be sent first
    /// (in order), and the group reads on. A held line read after yet another
    /// discontinuity stays held: the epoch breaks again. `None` if the group has no
    /// saved new epoch.
    pub fn release(&mut self) -> Option<Vec<Held>> {
        let ship = &mut self.ship;
        let Numbering::Drawn { held, saved: true } = &mut ship.numbering else {
            return None;
        };
        let mut held = std::mem::take(held);
        let mut now = Vec::new();
        while held
            .front()
            .is_some_and(|h| h.discontinuities == ship.discontinuities)
        {
            now.extend(held.pop_front());
        }
        ship.numbering = if held.is_empty() {
            Numbering::Continuing
        } else {
            Numbering::Broken { held }
        };
        Some(now)
    }

    /// Its place, as the checkpoint keeps it; `None` while it has none to give
    /// beyond the one last written (its epoch is broken with nothing in flight:
    /// the tailer is past the discontinuity, and the epoch must not be
    /// checkpointed past it).
    pub fn checkpoint(&self) -> Option<GroupCheckpoint> {
        let ship = &self.ship;
        let position = match (&ship.numbering, ship.pending.front()) {
            (_, Some(p)) => Some(p.start.clone()),
            (Numbering::Continuing, None)
                if self.tailer.counters().discontinuities == ship.discontinuities =>
            {
                self.tailer.position()
            }
            (Numbering::Drawn { held, .. }, None) => Some(held.front()?.start.clone()),
            (Numbering::Continuing | Numbering::Broken { .. }, None) => return None,
        };
        Some(GroupCheckpoint {
            epoch: ship.id.epoch,
            partition: ship.partition,
            seq: ship.acked_seq,
            position,
            numbering: Some(ship.settings),
        })
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
            numbering: None,
        };
        let live = PathBuf::from("/nonexistent/a.log");
        let tailer = Tailer::new(live.clone(), TailOptions::default(), None);
        Group::new(live, "h", &cp, 1, tailer)
    }

    #[test]
    fn the_checkpoint_stays_at_the_oldest_unacknowledged_line() {
        let mut g = group(10);
        assert_eq!(g.ship.send(&pos(0)), 11);
        assert_eq!(g.ship.send(&pos(5)), 12);
        assert_eq!(g.ship.send(&pos(9)), 13);
        // Acknowledged out of order: the checkpoint waits for line 11.
        assert!(g.ack(12));
        let cp = g.checkpoint().unwrap();
        assert_eq!((cp.seq, cp.position.map(|p| p.offset)), (10, Some(0)));
        assert!(g.ack(11));
        let cp = g.checkpoint().unwrap();
        assert_eq!((cp.seq, cp.position.map(|p| p.offset)), (12, Some(9)));
        assert_eq!(g.in_flight(), 1);
        assert!(!g.ack(12), "already acknowledged");
        assert!(!g.ack(14), "never sent");
        assert!(g.ack(13));
        assert_eq!((g.ship.acked_seq(), g.in_flight()), (13, 0));
        // Nothing in flight: the tailer's own position (nothing read: none).
        assert_eq!(g.checkpoint().unwrap().position, None);
        assert_eq!(g.checkpoint().unwrap().epoch, 9);
    }

    #[test]
    fn a_discontinuity_breaks_the_epoch_until_a_new_one_is_saved() {
        let mut g = group(10);
        assert!(g.ship.continues(0));
        assert_eq!(g.ship.send(&pos(0)), 11);
        assert_eq!(g.ship.send(&pos(5)), 12);
        // A line after a discontinuity: held, not numbered.
        assert!(!g.ship.continues(1));
        g.ship.hold(&pos(100), b"new", 1);
        assert!(!g.reading());
        // With lines in flight: the place stays before the discontinuity, and no
        // epoch is drawn yet.
        assert_eq!(g.checkpoint().unwrap().position.map(|p| p.offset), Some(0));
        assert_eq!(g.draw_epoch(77), None);
        assert!(g.ack(11) && g.ack(12));
        // Nothing in flight, epoch broken: no place past the discontinuity under
        // the old epoch.
        assert_eq!(g.checkpoint(), None);
        assert_eq!(g.draw_epoch(77), Some(9));
        let cp = g.checkpoint().unwrap();
        assert_eq!(
            (cp.epoch, cp.seq, cp.position.map(|p| p.offset)),
            (77, 0, Some(100))
        );
        // Nothing of it is sent before a checkpoint naming it is written.
        assert!(g.release().is_none());
        assert!(!g.reading());
        g.saved();
        let held = g.release().unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].line, b"new");
        assert!(g.reading());
        assert!(g.ship.continues(1));
        assert_eq!(g.ship.send(&held[0].start), 1);
        assert!(g.ack(1));
        assert_eq!(g.ship.acked_seq(), 1);
    }

    #[test]
    fn a_discontinuity_without_a_line_after_it_breaks_the_epoch_until_one_comes() {
        let mut g = group(3);
        g.ship.note_discontinuities(0);
        assert!(matches!(g.ship.numbering, Numbering::Continuing));
        g.ship.note_discontinuities(2);
        assert!(matches!(g.ship.numbering, Numbering::Broken { .. }));
        // Reads on to find the first line after it; no place to checkpoint, no
        // epoch before that line.
        assert!(g.reading());
        assert_eq!(g.checkpoint(), None);
        assert_eq!(g.draw_epoch(5), None);
        assert!(!g.ship.continues(2));
        g.ship.hold(&pos(7), b"first", 2);
        assert!(!g.reading());
        assert_eq!(g.draw_epoch(5), Some(9));
        let cp = g.checkpoint().unwrap();
        assert_eq!(
            (cp.epoch, cp.seq, cp.position.map(|p| p.offset)),
            (5, 0, Some(7))
        );
        g.saved();
        assert_eq!(g.release().map(|h| h.len()), Some(1));
        assert!(g.reading());
    }

    #[test]
    fn lines_held_across_two_discontinuities_take_two_epochs() {
        let mut g = group(0);
        g.ship.hold(&pos(0), b"a", 1);
        g.ship.hold(&pos(2), b"b", 2);
        assert_eq!(g.draw_epoch(5), Some(9));
        g.saved();
        let first = g.release().unwrap();
        assert_eq!(first.len(), 1);
        assert!(!g.reading(), "b comes after another discontinuity");
        assert_eq!(g.draw_epoch(6), Some(5));
        assert_eq!(g.checkpoint().unwrap().position.map(|p| p.offset), Some(2));
    }
}
