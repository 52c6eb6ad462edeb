//! Closing an idle live file to stay within a budget of open files, and opening it
//! again by identity (issue 10: one job's files must not exhaust the process's
//! descriptors and fail another job).
//!
//! A follow-mode tailer idle at the end of its live file can [`Tailer::park`] it:
//! the descriptor is closed; the file's identity (device, inode, fingerprint) and
//! the offset read so far stay in the current file ([`Src::Closed`]), as do bytes
//! of an unterminated line already read. The next [`Tailer::read_some`] opens it
//! again *by identity*: at its path if the path still names it, else among the
//! group's rotated siblings (renamed while closed); then reading goes on at the
//! offset, and rotation, truncation and deletion are handled as for a file kept
//! open. A file gone meanwhile (deleted, or compressed: a new inode) is recorded as
//! read up to its last delivered line, so a compressed copy continues from there.
//!
//! If the reopen finds no descriptor (EMFILE/ENFILE) or cannot open the file, the
//! group waits for it ([`ReadStatus::Blocked`](super::ReadStatus::Blocked)), tried
//! again on every call: never skipped, never fatal.

use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use super::identity::Cand;
use super::source::Src;
use super::tailer::Tailer;

/// What reopening a parked file came to.
pub(super) enum Reopen {
    /// Nothing parked: the current file (if any) is open.
    NotParked,
    Reopened,
    /// The file is no longer anywhere in the group: the tailer moves on.
    Gone,
    /// It could not be opened now: the group waits (tried again next call).
    Blocked,
}

impl Tailer {
    /// Closes the live file's descriptor if the tailer is idle at its end in
    /// follow mode (see the [module docs](self)). Returns whether it did; a file
    /// that is not idle at its end, compressed, or waiting behind a file set aside
    /// is left open.
    pub fn park(&mut self) -> bool {
        if !self.opts.follow || self.parked.is_some() || self.blocked.is_some() {
            return false;
        }
        let Some(cur) = self.cur.as_mut() else {
            return false;
        };
        if !cur.live_now || cur.gzip || cur.read_off < cur.disk_size {
            return false;
        }
        let Src::Plain(f) = &cur.src else {
            return false;
        };
        let Ok(m) = f.metadata() else {
            return false;
        };
        cur.src = Src::Closed {
            mtime: (m.mtime(), m.mtime_nsec()),
        };
        self.counters.parks += 1;
        true
    }

    /// Whether the tailer holds a descriptor open (a parked file holds none).
    pub fn holds_file(&self) -> bool {
        let cur_open = self
            .cur
            .as_ref()
            .is_some_and(|c| !matches!(c.src, Src::Closed { .. }));
        cur_open || self.parked.is_some()
    }

    /// Whether the current file is parked.
    pub fn is_parked(&self) -> bool {
        self.cur
            .as_ref()
            .is_some_and(|c| matches!(c.src, Src::Closed { .. }))
    }

    /// Whether a parked current file is as it was parked: its path names it, with
    /// the size read and the same modification time. One `stat`, no descriptor.
    pub(super) fn parked_unchanged(&self) -> bool {
        let Some(cur) = self.cur.as_ref() else {
            return false;
        };
        let Src::Closed { mtime } = cur.src else {
            return false;
        };
        std::fs::metadata(&cur.path).is_ok_and(|m| {
            m.dev() == cur.id.dev
                && m.ino() == cur.id.ino
                && m.len() == cur.read_off
                && (m.mtime(), m.mtime_nsec()) == mtime
        })
    }

    /// Opens a parked current file again by identity, at its offset.
    pub(super) fn reopen_parked(&mut self) -> Reopen {
        let Some(cur) = self.cur.as_ref() else {
            return Reopen::NotParked;
        };
        if !matches!(cur.src, Src::Closed { .. }) {
            return Reopen::NotParked;
        }
        let (path, id, read_off) = (cur.path.clone(), cur.id.clone(), cur.read_off);
        // The usual case: the path still names the file.
        match self.scanner.open(&path) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.dev() == id.dev && m.ino() == id.ino => {
                    return self.resume_in(f, None, read_off);
                }
                Ok(_) => {}
                Err(e) => return self.reopen_failed(&path, &e),
            },
            Err(e) if crate::fds::is_out_of_fds(&e) => return self.reopen_failed(&path, &e),
            Err(_) => {} // gone from its path (renamed, deleted): look among siblings
        }
        let scan = self.scan();
        if self.untrusted_scan || self.blocked_now {
            return Reopen::Blocked;
        }
        if let Some(c) = scan.iter().find(|c| !c.gzip && c.strong(&id)) {
            let c: Cand = c.clone();
            return match self.scanner.open(&c.path) {
                Ok(f) => match f.metadata() {
                    Ok(m) if m.dev() == id.dev && m.ino() == id.ino => {
                        self.resume_in(f, Some(&c), read_off)
                    }
                    Ok(_) => Reopen::Blocked, // renamed again meanwhile: next call
                    Err(e) => self.reopen_failed(&c.path, &e),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => Reopen::Blocked,
                Err(e) => self.reopen_failed(&c.path, &e),
            };
        }
        // Deleted or compressed while closed: what was delivered is read; a copy
        // with its content (a `.gz`) continues after the last delivered line.
        let line_off = self.lb.next_line_off(read_off);
        self.lb.clear();
        self.done.insert(id, line_off);
        self.cur = None;
        self.counters.deletions += 1;
        Reopen::Gone
    }

    fn resume_in(&mut self, mut f: std::fs::File, moved: Option<&Cand>, off: u64) -> Reopen {
        if let Err(e) = f.seek(SeekFrom::Start(off)) {
            let path = moved.map_or_else(
                || {
                    self.cur
                        .as_ref()
                        .map(|c| c.path.clone())
                        .unwrap_or_default()
                },
                |c| c.path.clone(),
            );
            return self.reopen_failed(&path, &e);
        }
        let Some(cur) = self.cur.as_mut() else {
            return Reopen::NotParked;
        };
        cur.src = Src::Plain(f);
        if let Some(c) = moved {
            // `live_now` stays: end of file notices the rename and counts the
            // rotation as for a file kept open.
            cur.path = c.path.clone();
        }
        self.counters.reopens += 1;
        Reopen::Reopened
    }

    fn reopen_failed(&mut self, path: &std::path::Path, e: &io::Error) -> Reopen {
        if crate::fds::is_out_of_fds(e) {
            self.counters.reopen_waits += 1;
        }
        self.block_on(path, e);
        Reopen::Blocked
    }
}
