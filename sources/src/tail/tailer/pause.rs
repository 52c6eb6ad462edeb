//! Closing a file in the middle of reading it, for event-time pacing: a group
//! waiting for the slower ones should not hold a descriptor that a group behind
//! it needs (with more groups than `max_open_files`, the groups that never got
//! one would hold every window open). It is a park ([`super::park`]) at any
//! offset: the next read opens the file again by identity and goes on at its
//! offset. Lines already read stay buffered and are delivered without a
//! descriptor ([`Tailer::read_buffered_until`]).
//!
//! Only a descriptor reads a deleted file, so the unread rest of a closed file
//! is safe only while the file exists. Logrotate renames the live file (found
//! again by identity, under any name in its folder), compresses or copies it
//! (read from the copy), but deletes the oldest rotated file: so only the file
//! at the live path is closed mid-read, never a rotated sibling (the next one
//! deleted). A live file deleted outright while closed (or renamed and deleted
//! before the group reads on) loses its unread rest: counted
//! (`lost_while_paused`) and warned with the byte it was lost from, never
//! silent. Groups whose files cannot be closed hold their descriptors: the group
//! behind waits for one (exact, but pacing then bounds memory less).

use std::cell::Cell;
use std::os::unix::fs::MetadataExt;

use super::park::birth_vouches;
use super::Tailer;
use crate::tail::source::Src;
use crate::tail::{LineMeta, ReadStatus};

impl Tailer {
    /// Closes the current file's descriptor wherever reading is in it. Returns
    /// whether it did: a compressed file (a reopen cannot seek in it), a file
    /// deleted while open (only its descriptor still reads it), a rotated
    /// sibling (logrotate deletes those; see the module docs), a file set aside
    /// or a tailer waiting for a file is left as it is.
    pub fn park_paused(&mut self) -> bool {
        if self.stream.has_set_aside() || self.blocked.is_some() {
            return false;
        }
        let Some(cur) = self.stream.cur_mut() else {
            return false;
        };
        // A rotated sibling found by a scan carries its own name: refused
        // without a system call (many groups may ask every round).
        if cur.gzip || cur.path != self.live {
            return false;
        }
        let Src::Plain(f) = &cur.src else {
            return false;
        };
        let Ok(m) = f.metadata() else {
            return false;
        };
        if m.nlink() == 0 {
            return false;
        }
        // The file at the live path now: not one renamed away from it while
        // open (the next rotation may delete that one).
        let at_live =
            std::fs::metadata(&self.live).is_ok_and(|l| l.dev() == m.dev() && l.ino() == m.ino());
        if !at_live {
            return false;
        }
        let born = m.created().ok();
        cur.src = Src::Closed {
            mtime: (m.mtime(), m.mtime_nsec()),
            born,
            born_vouches: birth_vouches(born, cur.local_times),
            size_when_paused: Some(m.len()),
        };
        self.counters.parks += 1;
        true
    }

    /// Complete lines are buffered, not yet delivered (a read stopped early).
    pub fn has_buffered_lines(&self) -> bool {
        self.lb.has_line()
    }

    /// Delivers only lines already buffered, up to the one after which
    /// `on_line` sets `stop`: no file is opened or read (a parked group reads on
    /// without a descriptor). [`ReadStatus::More`]: the file goes on.
    pub fn read_buffered_until<F>(&mut self, stop: &Cell<bool>, mut on_line: F) -> ReadStatus
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        if self.lb.has_line() {
            if let Some(cur) = self.stream.cur_mut() {
                self.lb
                    .split(cur, &mut self.pos, &mut self.counters, &mut on_line, stop);
            }
        }
        self.lb.release(stop.get());
        ReadStatus::More
    }

    /// Test view: bytes allocated for the line buffer now (between turns,
    /// only the unread ones).
    #[cfg(test)]
    pub(in crate::tail) fn line_buffer_allocated(&self) -> usize {
        self.lb.allocated()
    }

    /// Test view: the size the line buffer's next fill reads into.
    #[cfg(test)]
    pub(in crate::tail) fn line_buffer_working_size(&self) -> usize {
        self.lb.working_size()
    }

    /// Test view: where the line buffer's bytes are.
    #[cfg(test)]
    pub(in crate::tail) fn line_buffer_addr(&self) -> usize {
        self.lb.addr()
    }
}
