//! Per agent group (host, group): which records to take, by epoch and sequence.
//!
//! An agent numbers each group's lines from 1 within an epoch. A record at or below
//! the last taken of the same epoch is a resend (the agent restarted from a
//! checkpoint older than what the broker has) and is dropped; a jump past the next
//! number means lines were lost upstream (counted and warned, the record taken); a
//! new epoch means the agent lost its state for the group (accepted, warned).

use serde::{Deserialize, Serialize};

/// The last record taken from a group: what a checkpoint keeps per group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqState {
    /// The epoch of the last record taken; `None` before any.
    pub epoch: Option<u64>,
    /// The last sequence number taken in that epoch (0: none yet).
    pub last: u64,
}

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next record: take it.
    Take,
    /// Taken, but `lost` lines before it never arrived.
    Gap {
        /// How many sequence numbers were skipped.
        lost: u64,
    },
    /// At or below what was taken: a resend, dropped.
    Resend,
    /// A new epoch: taken; `lost` lines of it before this one never arrived.
    NewEpoch {
        /// The epoch taken before (`None`: the first record of the group).
        from: Option<u64>,
        /// Sequence numbers of the new epoch before this record.
        lost: u64,
    },
}

impl SeqState {
    /// Judges a line numbered `seq` of `epoch`, and takes it unless it is a resend.
    pub fn line(&mut self, epoch: u64, seq: u64) -> Verdict {
        if self.epoch != Some(epoch) {
            let from = self.epoch;
            *self = SeqState {
                epoch: Some(epoch),
                last: seq,
            };
            return new_epoch(from, seq);
        }
        if seq <= self.last {
            return Verdict::Resend;
        }
        let lost = seq - self.last - 1;
        self.last = seq;
        if lost == 0 {
            Verdict::Take
        } else {
            Verdict::Gap { lost }
        }
    }

    /// Judges a heartbeat saying every line up to `seq` of `epoch` was sent. `Take`
    /// means the group has nothing outstanding: it is at its end.
    pub fn heartbeat(&mut self, epoch: u64, seq: u64) -> Verdict {
        if self.epoch != Some(epoch) {
            let from = self.epoch;
            *self = SeqState {
                epoch: Some(epoch),
                last: seq,
            };
            return new_epoch(from, seq + 1);
        }
        if seq < self.last {
            // Sent before lines already taken (an agent that restarted): stale.
            return Verdict::Resend;
        }
        let lost = seq - self.last;
        self.last = seq;
        if lost == 0 {
            Verdict::Take
        } else {
            Verdict::Gap { lost }
        }
    }
}

/// The first record of an epoch numbered `seq`: lines 1..seq never arrived.
fn new_epoch(from: Option<u64>, seq: u64) -> Verdict {
    Verdict::NewEpoch {
        from,
        lost: seq.saturating_sub(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_order_are_taken_and_resends_dropped() {
        let mut s = SeqState::default();
        assert_eq!(
            s.line(7, 1),
            Verdict::NewEpoch {
                from: None,
                lost: 0
            }
        );
        assert_eq!(s.line(7, 2), Verdict::Take);
        assert_eq!(s.line(7, 3), Verdict::Take);
        // The agent restarted from a checkpoint at 1: 2 and 3 come again.
        assert_eq!(s.line(7, 2), Verdict::Resend);
        assert_eq!(s.line(7, 3), Verdict::Resend);
        assert_eq!(s.line(7, 4), Verdict::Take);
        assert_eq!(
            s,
            SeqState {
                epoch: Some(7),
                last: 4
            }
        );
    }

    #[test]
    fn gaps_and_new_epochs_are_told() {
        let mut s = SeqState::default();
        assert_eq!(
            s.line(1, 5),
            Verdict::NewEpoch {
                from: None,
                lost: 4
            }
        );
        assert_eq!(s.line(1, 9), Verdict::Gap { lost: 3 });
        assert_eq!(
            s.line(2, 1),
            Verdict::NewEpoch {
                from: Some(1),
                lost: 0
            }
        );
        // A line of the old epoch after the new one: a new epoch again (taken,
        // told), never silently dropped.
        assert!(matches!(
            s.line(1, 10),
            Verdict::NewEpoch { from: Some(2), .. }
        ));
    }

    #[test]
    fn heartbeats_say_whether_the_group_is_complete() {
        let mut s = SeqState::default();
        assert_eq!(
            s.line(3, 1),
            Verdict::NewEpoch {
                from: None,
                lost: 0
            }
        );
        assert_eq!(s.heartbeat(3, 1), Verdict::Take);
        assert_eq!(s.heartbeat(3, 0), Verdict::Resend);
        // Lines 2 and 3 were sent but never arrived.
        assert_eq!(s.heartbeat(3, 3), Verdict::Gap { lost: 2 });
        assert_eq!(s.line(3, 3), Verdict::Resend);
        assert_eq!(s.line(3, 4), Verdict::Take);
        let mut fresh = SeqState::default();
        assert_eq!(
            fresh.heartbeat(9, 0),
            Verdict::NewEpoch {
                from: None,
                lost: 0
            }
        );
    }
}
