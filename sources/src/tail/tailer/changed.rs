//! Has the file being read changed under us? A truncation or a rewrite in place
//! (copytruncate) is noticed before anything read past the last check is
//! delivered, and the fingerprint of a short file grows only over bytes verified.
//!
//! A check is an `fstat` and a read of the fingerprinted bytes. One `read_some`
//! call checked the same file at the same offset up to three times in a row
//! (at its start, before reading past the size last seen, at the end of the
//! file after a read of nothing). The check before reading on is skipped when
//! one passed in this call and nothing was read since: a change after it is
//! caught by the check after the read (`read_was_stale`), before any line of
//! that read is delivered. The check at the end of the file always runs: the
//! last read's lines were delivered since the check before it (review R17s).
//!
//! A check reads the first bytes only while the file's status does not vouch
//! for them ([`Stamp`]): a file last changed well before a check that passed,
//! and unchanged since as `fstat` sees it, still starts with them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Instant, SystemTime};

use super::{Tailer, RESCAN_INTERVAL};
use crate::tail::identity::{fingerprint, prefix_matches, read_head_file};
use crate::tail::stamp::{self, Stamp};

/// The current file's status from one `fstat`, and the clock before it.
pub(super) struct Seen {
    pub meta: fs::Metadata,
    before: SystemTime,
}

/// A content check that passed: the file (device, inode), the offset read to
/// and the size it had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checked {
    dev: u64,
    ino: u64,
    read_off: u64,
    size: u64,
}

#[cfg(test)]
thread_local! {
    /// Fingerprint reads of content checks on this thread (for the tests that count).
    static CONTENT_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Tests: one more read of a file's first bytes to check it.
#[cfg(test)]
pub(super) fn count_content_read() {
    CONTENT_READS.with(|c| c.set(c.get() + 1));
}

impl Tailer {
    /// Test view: content checks' fingerprint reads so far on this thread.
    #[cfg(test)]
    pub(in crate::tail) fn content_reads() -> u64 {
        CONTENT_READS.with(|c| c.get())
    }

    /// Once per call: notice a truncation or rewrite since the last call, and an
    /// older file that appeared while the live file had nothing consumed.
    pub(super) fn check_start(&mut self, now: Instant) {
        let Some(seen) = self.cur_meta() else {
            return;
        };
        if self.content_changed(&seen) {
            self.on_truncated();
            return;
        }
        let Some(cur) = self.stream.cur_mut() else {
            return;
        };
        let meta = seen.meta;
        cur.disk_size = meta.len();
        if cur.live_now && cur.read_off == 0 && cur.start_off == 0 && meta.len() > 0 {
            self.read_older_first(now, true);
        }
    }

    /// Checks a plain file again after reading `n` bytes of it, before any of them
    /// is delivered: a copytruncate and rewrite between the check before the read
    /// and the read itself would make the new content pass for the rest of the old
    /// (torture seed 834). If the file changed, the read is taken back and the
    /// truncation handled; the copy is read from where we were.
    pub(super) fn read_was_stale(&mut self, n: usize) -> bool {
        let Some(seen) = self.cur_meta() else {
            return false;
        };
        if !self.content_changed(&seen) {
            if let Some(cur) = self.stream.cur_mut() {
                cur.disk_size = seen.meta.len();
            }
            return false;
        }
        if let Some(cur) = self.stream.cur_mut() {
            self.lb.unfill(n);
            cur.read_off -= n as u64;
            self.counters.bytes -= n as u64;
        }
        self.on_truncated();
        true
    }

    /// Whether the current plain file's fingerprint covers fewer bytes than
    /// configured (it was short when last checked).
    pub(super) fn fingerprint_incomplete(&self) -> bool {
        self.stream.cur().is_some_and(|c| {
            !c.gzip
                && c.src.plain().is_some()
                && (c.id.fingerprint_len as usize) < self.opts.fingerprint_bytes
        })
    }

    /// Whether the next read of the current plain file goes past the size seen at
    /// its last check.
    pub(super) fn past_verified(&self) -> bool {
        self.stream
            .cur()
            .is_some_and(|c| !c.gzip && c.src.plain().is_some() && c.read_off >= c.disk_size)
    }

    /// The current live file has nothing consumed yet: if an older file not yet read
    /// has appeared (say the copy of a copytruncate done while we held the file
    /// empty), read that first. Returns whether it switched.
    pub(super) fn read_older_first(&mut self, now: Instant, force: bool) -> bool {
        if !force && !self.rescan_due(now) {
            return false;
        }
        let scan = self.scan();
        self.set_aside_for_older(&scan)
    }

    pub(super) fn rescan_due(&mut self, now: Instant) -> bool {
        let dir = match self.live.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mtime = fs::metadata(dir).ok().map(|m| (m.mtime(), m.mtime_nsec()));
        let due = mtime != self.dir_mtime
            || self
                .last_rescan
                .is_none_or(|t| now.saturating_duration_since(t) >= RESCAN_INTERVAL);
        if due {
            self.dir_mtime = mtime;
            self.last_rescan = Some(now);
        }
        due
    }

    /// Whether a check passed in this call for the current file at its offset
    /// (nothing read since).
    pub(super) fn checked_here(&self) -> bool {
        let Some((cur, c)) = self.stream.cur().zip(self.checked) else {
            return false;
        };
        (c.dev, c.ino, c.read_off) == (cur.id.dev, cur.id.ino, cur.read_off)
    }

    pub(super) fn cur_meta(&self) -> Option<Seen> {
        let file = self.stream.cur()?.src.plain()?;
        let before = stamp::clock();
        let meta = file.metadata().ok()?;
        Some(Seen { meta, before })
    }

    /// Whether the current (plain) file's content was replaced since we read it:
    /// shorter than what we read or than its fingerprint, or its first bytes changed.
    /// Extends the fingerprint of a file that has grown past it.
    pub(super) fn content_changed(&mut self, seen: &Seen) -> bool {
        let size = seen.meta.len();
        let Some(cur) = self.stream.cur_mut() else {
            return false;
        };
        let Some(file) = cur.src.plain() else {
            return false;
        };
        if size < cur.read_off || size < u64::from(cur.id.fingerprint_len) {
            return true;
        }
        let want = (self.opts.fingerprint_bytes as u64).min(size) as usize;
        let vouched = cur.settled.is_some_and(|s| s == Stamp::of(&seen.meta));
        if vouched && want == cur.id.fingerprint_len as usize {
            // Unchanged since a check that read the first bytes: still them.
            self.checked = Some(Checked {
                dev: cur.id.dev,
                ino: cur.id.ino,
                read_off: cur.read_off,
                size,
            });
            return false;
        }
        cur.settled = None;
        #[cfg(test)]
        if want > 0 {
            count_content_read();
        }
        if want == 0 || read_head_file(file, want, &mut self.scratch).is_err() {
            return false;
        }
        let n = cur.id.fingerprint_len as usize;
        if !prefix_matches(&self.scratch, &cur.id) {
            return true;
        }
        cur.settled = if cur.local_times {
            Stamp::settled(&seen.meta, seen.before)
        } else {
            None
        };
        if self.scratch.len() > n {
            cur.id.fingerprint = fingerprint(&self.scratch);
            cur.id.fingerprint_len = self.scratch.len() as u32;
            if cur.pos_owned {
                if let Some(p) = self.pos.as_mut() {
                    p.file = cur.id.clone();
                }
            }
        }
        self.checked = Some(Checked {
            dev: cur.id.dev,
            ino: cur.id.ino,
            read_off: cur.read_off,
            size,
        });
        false
    }
}
