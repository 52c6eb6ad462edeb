//! Keeping a worker within its share of `max_open_files`: which group's file
//! to close so that a group waiting for a descriptor can read.

use super::{GroupSet, Turn};
use crate::time::EventMs;

/// What `park_one_ahead` did for a group waiting for a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CloseAhead {
    /// It closed the file of a group ahead: a descriptor is free.
    Closed,
    /// No group holding a descriptor is ahead of it.
    NoneAhead,
    /// Groups are ahead, but none of their files can be closed mid-read
    /// safely: the group waits, and those ahead read on unbounded.
    Refused,
}

impl GroupSet {
    /// Keeps this worker within its share of `max_open_files`: parks (closes) the
    /// live file of a group other than `except` that is idle at its end, the least
    /// recently written first (see `Tailer::parkable_since`); among equals
    /// round-robin, so no group is always the one closed. Returns whether one was.
    pub(super) fn park_one_other(&mut self, except: usize) -> bool {
        if !self.follow {
            // Only a follower parks a file idle at its end. Asking each holder
            // anyway read up to the share's cold group states per turn: with
            // 2,000 groups catching up, 2.3 M calls (issue 13, item 2).
            return false;
        }
        let n = self.groups.len();
        // Only a group holding a file can give one up; its place in the
        // round-robin from `park_next` breaks ties, as a walk over every
        // group from there would.
        let pick = self
            .holders
            .iter()
            .filter(|&j| j != except && self.groups[j].holds_file())
            .filter_map(|j| {
                let since = self.groups[j].parkable_since()?;
                Some(((since, (j + n - self.park_next) % n), j))
            })
            .min_by_key(|&(key, _)| key);
        match pick {
            Some((_, j)) if self.groups[j].park() => {
                self.holders.remove(j);
                self.note_held(j);
                self.park_next = (j + 1) % n;
                true
            }
            _ => false,
        }
    }

    /// Keeps this worker within its share of `max_open_files` when no file is
    /// idle at its end: closes mid-read the file of the group furthest ahead of
    /// group `behind` by event time (see [`crate::pacing`]). It reads on from
    /// its buffered lines, then opens its file again when a descriptor is free.
    /// Without this, with more groups than descriptors, the groups holding one
    /// would read their whole backlog before the others start, and every window
    /// would stay open until then. The furthest ahead is tried first; one that
    /// cannot be closed safely (a compressed file, one set aside by rotation or
    /// deleted while open, one reading a rotated sibling) passes the turn to the
    /// next furthest, so that one such group does not leave pacing unbounded.
    pub(super) fn park_one_ahead(&mut self, behind: usize) -> CloseAhead {
        let from = self.groups[behind].watermark().unwrap_or(EventMs::MIN);
        loop {
            // One pass over the holders' turns, not their group states: this
            // runs whenever a group needs a descriptor, and with 2,000 groups
            // reading every holder's cold state was 3.4% of a run. Usually the
            // furthest ahead can be closed; a refusal passes the turn to the
            // next furthest.
            let mut ahead = false;
            let mut furthest: Option<(EventMs, usize)> = None;
            for j in self.holders.iter().filter(|&j| j != behind) {
                let Turn::More(Some(wm)) = self.turns[j] else {
                    continue;
                };
                if wm <= from {
                    continue;
                }
                ahead = true;
                if !self.pause_refused[j] {
                    furthest = furthest.max(Some((wm, j)));
                }
            }
            let Some((_, j)) = furthest else {
                return if ahead {
                    CloseAhead::Refused
                } else {
                    CloseAhead::NoneAhead
                };
            };
            if !self.groups[j].holds_file() {
                // Not a holder after all: the list is mended, and it was never
                // a candidate.
                self.holders.remove(j);
                continue;
            }
            if self.groups[j].park_paused() {
                self.holders.remove(j);
                self.note_held(j);
                return CloseAhead::Closed;
            }
            self.pause_refused[j] = true;
        }
    }
}
