//! Closing an idle live file to stay within a budget of open files, and opening it
//! again by identity (issue 10: one job's files must not exhaust the process's
//! descriptors and fail another job).
//!
//! A follow-mode tailer idle at the end of its live file can [`Tailer::park`] it:
//! the descriptor is closed; the file's identity (device, inode, fingerprint) and
//! the offset read so far stay in the current file ([`Src::Closed`]), as do bytes
//! of an unterminated line already read. The next [`Tailer::read_some`] opens it
//! again *by identity*: at its path if the path still names it, else among the
//! group's rotated siblings, else under any name in its folder (a dateext rename:
//! `app.log-20261204`); then reading goes on at the offset, and rotation,
//! truncation and deletion are handled as for a file kept open. A file gone
//! meanwhile is recorded as read up to its last delivered line if a copy with its
//! content (a `.gz`) continues from there. Otherwise it was deleted or moved out
//! of its folder: lines written to it since it was closed cannot be read (no
//! descriptor was kept, that is the point of parking). Its unterminated last line
//! already read is delivered, as for a file kept open, and the possible loss is
//! counted (`lost_while_parked`) and reported naming the file: never silent. A
//! file closed mid-read for pacing ([`Tailer::park_paused`]) loses its unread
//! rest then: counted apart (`lost_while_paused`), the warning says from which
//! byte.
//!
//! If the reopen finds no descriptor (EMFILE/ENFILE) or cannot open the file, the
//! group waits for it ([`ReadStatus::Blocked`](super::ReadStatus::Blocked)), tried
//! again on every call: never skipped, never fatal.

use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Tailer;
use crate::file::EscapedPath;
use crate::tail::identity::{prefix_matches, read_head_file};
use crate::tail::position::{FileId, HeldInodes, Left};
use crate::tail::source::{Cur, Src};
use crate::tail::stamp::{self, Stamp};
use crate::tail::state::Reopen;
use crate::tail::LineMeta;

/// Files left kept for [`Tailer::take_left`]: far more than one call leaves.
const MAX_LEFT: usize = 64;

impl Tailer {
    /// Closes the live file's descriptor if the tailer is idle at its end in
    /// follow mode (see the docs of `tail/tailer/park.rs`). Returns whether it did; a file
    /// that is not idle at its end, compressed, or waiting behind a file set aside
    /// is left open.
    pub fn park(&mut self) -> bool {
        let Some(mtime) = self.parkable_since() else {
            return false;
        };
        if let Some(cur) = self.stream.cur_mut() {
            // Its birth time from its open: the inode is the same.
            let born = match &cur.src {
                Src::Plain(_) => cur.born,
                _ => None,
            };
            cur.src = Src::Closed {
                mtime,
                born,
                born_vouches: birth_vouches(born, cur.local_times),
                size_when_paused: None,
            };
            self.counters.parks += 1;
            return true;
        }
        false
    }

    /// The modification time of the live file if [`Tailer::park`] would close
    /// it (one `fstat`): the least recently written is parked first, since a
    /// file written often is the one likely to be rotated or deleted while
    /// closed, and only a descriptor reads what was written to it before that.
    pub fn parkable_since(&self) -> Option<(i64, i64)> {
        // Lines still buffered (a paced read stopped) are delivered first.
        if !self.opts.follow
            || self.stream.has_set_aside()
            || self.blocked.is_some()
            || self.lb.has_line()
        {
            return None;
        }
        let cur = self.stream.cur()?;
        // Found renamed when opened again (`resume_in`), it is live no more
        // though its end of file has not said so yet: it is read on, then left.
        if !cur.live_now || cur.path != self.live || cur.gzip || cur.read_off < cur.disk_size {
            return None;
        }
        let Src::Plain(f) = &cur.src else {
            return None;
        };
        let m = f.metadata().ok()?;
        // Written or deleted since the last read: only its descriptor can still
        // read it all (a deleted file cannot be opened again), so it stays open.
        if m.len() > cur.read_off || m.nlink() == 0 {
            return None;
        }
        Some((m.mtime(), m.mtime_nsec()))
    }

    /// Whether the tailer holds a descriptor open (a parked file holds none).
    pub fn holds_file(&self) -> bool {
        let cur_open = self
            .stream
            .cur()
            .is_some_and(|c| !matches!(c.src, Src::Closed { .. }));
        cur_open || self.stream.has_set_aside()
    }

    /// The (device, inode) of each file this tailer holds open: the one it
    /// reads and the one set aside (a copytruncate's live file, waiting for its
    /// copy to be read). An inode held open cannot be freed and reused, so any
    /// path to it names a file this tailer reads to its end, whatever its first
    /// bytes are now (truncated and rewritten in place since it was claimed).
    pub fn held_inodes(&self) -> HeldInodes {
        let open = |c: &Cur| (!matches!(c.src, Src::Closed { .. })).then_some((c.id.dev, c.id.ino));
        [
            self.stream.cur().and_then(open),
            self.stream.set_aside_file().and_then(|(c, _)| open(c)),
        ]
    }

    /// The files this tailer left (finished, rotated away, truncated) since the
    /// last call, each with its identity when left: what it read of them may
    /// differ from what the claim table last heard (the caller claims the file
    /// being read only between calls to [`Tailer::read_some`]). A live file
    /// truncated in place, read again from 0 and renamed away (a copytruncate,
    /// then a `dateext` rename) within one call kept its old first bytes in
    /// the table, and its new name became a second group (review R17s).
    pub fn take_left(&mut self) -> Vec<Left> {
        std::mem::take(&mut self.left)
    }

    pub(super) fn note_left(&mut self, cur: Option<&Cur>) {
        if let Some(c) = cur {
            // Bounded for a caller that never takes them: the oldest go first.
            if self.left.len() >= MAX_LEFT {
                self.left.remove(0);
            }
            self.left.push((c.path.clone(), c.id.clone(), c.born));
        }
    }

    /// Whether the current file is parked.
    pub fn is_parked(&self) -> bool {
        self.stream
            .cur()
            .is_some_and(|c| matches!(c.src, Src::Closed { .. }))
    }

    /// Whether a parked current file is as it was parked: its path names it, with
    /// the size read and the same modification time (one `stat`, no descriptor);
    /// and, if nothing of it is consumed yet, no older unread file appeared next
    /// to it — the copy of a copytruncate done just before it was closed empty,
    /// lines a writer still appends to the file rotated away — which a file kept
    /// open would read first: as for a file kept open, a folder `stat`, and a
    /// listing when the folder changed or once per `RESCAN_INTERVAL`.
    pub(super) fn parked_unchanged(&mut self, now: std::time::Instant) -> bool {
        let Some(cur) = self.stream.cur() else {
            return false;
        };
        let Src::Closed { mtime, .. } = cur.src else {
            return false;
        };
        // Closed in the middle of a rotated file, or without follow
        // (`park_paused`): it is read on to its end, changed or not.
        if !cur.live_now || !self.opts.follow {
            return false;
        }
        let same = std::fs::metadata(&cur.path).is_ok_and(|m| {
            m.dev() == cur.id.dev
                && m.ino() == cur.id.ino
                && m.len() == cur.read_off
                && (m.mtime(), m.mtime_nsec()) == mtime
        });
        if !same || cur.read_off != 0 || cur.start_off != 0 {
            return same;
        }
        let id = cur.id.clone();
        if !self.rescan_due(now) {
            return true;
        }
        let scan = self.scan();
        if self.unread_before(&scan, &id).is_empty() {
            return true;
        }
        // Opened again, its end of file looks for that file: due again.
        self.dir_mtime = None;
        self.last_rescan = None;
        false
    }

    /// Opens a parked current file again by identity, at its offset.
    pub(super) fn reopen_parked<F>(&mut self, on_line: &mut F) -> Reopen
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        let Some(cur) = self.stream.cur() else {
            return Reopen::NotParked;
        };
        if !matches!(cur.src, Src::Closed { .. }) {
            return Reopen::NotParked;
        }
        let (path, id, read_off) = (cur.path.clone(), cur.id.clone(), cur.read_off);
        let settled = cur.settled;
        let (born, born_vouches, size_when_paused) = match cur.src {
            Src::Closed {
                born,
                born_vouches,
                size_when_paused,
                ..
            } => (born, born_vouches, size_when_paused),
            _ => (None, false, None),
        };
        // The usual case: the path still names the file. Its inode alone does
        // not say so: deleted while closed, its inode may hold the new file now.
        // A status unchanged since a check that read the first bytes does (the
        // new file's change time is later).
        match self.scanner.open(&path) {
            Ok(f) => match f.metadata() {
                Ok(m) if is_parked_file(&m, &id, born) => {
                    let head = if settled == Some(Stamp::of(&m)) {
                        Ok(true)
                    } else {
                        head_matches(&f, &id)
                    };
                    match head {
                        Ok(true) => return self.resume_in(f, None),
                        // Unreadable now: nothing is known of it; tried again.
                        Err(e) => return self.reopen_failed(&path, &e),
                        Ok(false) if born_vouches => {
                            // The same file (inode and a settled birth time) with
                            // other first bytes: truncated or rewritten in place
                            // while closed. Handled as for a file kept open — its
                            // copy (copytruncate) read on from where we were, else
                            // the file read again from 0 and the truncation
                            // reported — not as a deletion: an unterminated line
                            // buffered was cut by the truncation, never completed.
                            let reopened = self.resume_in(f, None);
                            self.on_truncated();
                            return reopened;
                        }
                        // No birth time to tell a truncation from a file deleted
                        // and made anew on the same inode: the file is looked
                        // for elsewhere, else taken as deleted.
                        Ok(false) => {}
                    }
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
        let moved = match scan.iter().find(|c| !c.gzip && c.strong(&id)) {
            Some(c) => Some(c.path.clone()),
            // Renamed to a name that is no sibling (dateext, any rename in the
            // folder): a file kept open would still be read, so look for it.
            None => match self.find_in_folder(&path, &id, born) {
                Ok(at) => at,
                Err(e) => return self.reopen_failed(&path, &e),
            },
        };
        if let Some(at) = moved {
            match self.scanner.open(&at) {
                Ok(f) => match f.metadata() {
                    Ok(m) if is_parked_file(&m, &id, born) => return self.resume_in(f, Some(at)),
                    // Its inode born again: the parked file was deleted and a new
                    // file took its inode number (ext4 reuses one at once), which
                    // a fingerprint over no bytes cannot tell apart. Not ours:
                    // waiting for it would wait forever (test
                    // `regression_a_parked_file_whose_inode_was_reborn_...`).
                    Ok(m) if m.dev() == id.dev && m.ino() == id.ino => {}
                    Ok(_) => return Reopen::Blocked, // renamed again meanwhile: next call
                    Err(e) => return self.reopen_failed(&at, &e),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Reopen::Blocked,
                Err(e) => return self.reopen_failed(&at, &e),
            }
        }
        let continued = scan
            .iter()
            .any(|c| !c.is_inode(id.dev, id.ino) && c.same_content(&id));
        if continued {
            // Compressed (or copied) while closed: what was delivered is read; the
            // copy continues after the last delivered line, its unterminated last
            // line included.
            let line_off = self.lb.next_line_off(read_off);
            self.lb.clear();
            self.done.read_up_to(id, line_off);
            self.close_cur();
            self.counters.deletions += 1;
            return Reopen::Gone;
        }
        // Deleted or moved out of the folder while closed.
        self.done.insert(id, read_off);
        self.counters.deletions += 1;
        let unread_when_closed = size_when_paused.filter(|&size| size > read_off);
        if let Some(size) = unread_when_closed {
            // Closed mid-read (pacing): its unread rest was on disk, and only a
            // descriptor could still read it. An unterminated line buffered is
            // the start of a line of that rest, not the file's last line: it is
            // lost with the rest, not delivered cut.
            let lost_from = self.lb.next_line_off(read_off);
            self.lb.clear();
            self.close_cur();
            self.counters.lost_while_paused += 1;
            self.counters.discontinuities += 1;
            self.push_error(format!(
                "{}: deleted or moved out of its folder while closed mid-read (event-time \
                 pacing, to stay within max_open_files): its unread lines from byte \
                 {lost_from} (of {size} when closed) were lost. hint: raise max_open_files \
                 above the number of file groups, or rotate by renaming within the folder",
                EscapedPath(&path)
            ));
        } else {
            if let Some(mut cur) = self.close_cur() {
                self.lb
                    .emit_partial(&mut cur, &mut self.pos, &mut self.counters, on_line);
            }
            self.counters.lost_while_parked += 1;
            self.counters.discontinuities += 1;
            self.push_error(format!(
                "{}: deleted or moved out of its folder while closed to stay within \
                 max_open_files; lines written to it after byte {read_off}, if any, could \
                 not be read. hint: raise max_open_files, or rotate by renaming within the \
                 folder",
                EscapedPath(&path)
            ));
        }
        Reopen::Gone
    }

    /// The parked file under another name in the live file's folder: the
    /// listing gives each entry's inode without a `stat`; the one with the parked
    /// inode is the file if it still starts with the fingerprinted bytes (an
    /// inode freed by a deletion may hold another file now). Out of file
    /// descriptors is an error (the group waits): it says nothing of the file.
    fn find_in_folder(
        &mut self,
        live: &Path,
        id: &FileId,
        born: Option<std::time::SystemTime>,
    ) -> io::Result<Option<PathBuf>> {
        let dir = match live.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let out_of_fds = |e: io::Error| {
            if crate::fds::is_out_of_fds(&e) {
                Err(e)
            } else {
                Ok(None)
            }
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return out_of_fds(e),
        };
        let Some(at) = entries
            .filter_map(Result::ok)
            .find(|e| e.ino() == id.ino && e.path() != live)
            .map(|e| e.path())
        else {
            return Ok(None);
        };
        let f = match self.scanner.open(&at) {
            Ok(f) => f,
            Err(e) => return out_of_fds(e),
        };
        let same = f
            .metadata()
            .is_ok_and(|m| is_parked_file(&m, id, born) && m.is_file());
        Ok((same && starts_as(&f, id)).then_some(at))
    }

    /// Reads on in `f` (found at `moved`, if not at its path) from the current
    /// file's `read_off`: reads are positioned, no seek.
    fn resume_in(&mut self, f: std::fs::File, moved: Option<PathBuf>) -> Reopen {
        let Some(cur) = self.stream.cur_mut() else {
            return Reopen::NotParked;
        };
        cur.src = Src::Plain(f);
        if let Some(at) = moved {
            // `live_now` stays: end of file notices the rename and counts the
            // rotation as for a file kept open.
            cur.path = at;
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

/// Whether `m` is the parked file `id`, born at `born`: same device and inode,
/// and the same birth time where both are known (a file deleted while closed
/// frees its inode, and ext4 hands it to the next new file at once; one that
/// starts with the same banner would pass the fingerprint).
fn is_parked_file(m: &std::fs::Metadata, id: &FileId, born: Option<std::time::SystemTime>) -> bool {
    m.dev() == id.dev
        && m.ino() == id.ino
        && match (born, m.created()) {
            (Some(parked), Ok(now)) => parked == now,
            _ => true,
        }
}

/// Whether a birth time `born` taken now vouches for a file's identity later:
/// more than [`RACY_MARGIN`](crate::tail::stamp::RACY_MARGIN) old, on a file
/// system whose times this machine's clock stamps (see `Src::Closed`).
pub(super) fn birth_vouches(born: Option<std::time::SystemTime>, local_times: bool) -> bool {
    local_times && born.is_some_and(|b| stamp::settled(b, stamp::clock()))
}

/// Whether the open file `f` starts with the bytes `id` fingerprints.
fn starts_as(f: &std::fs::File, id: &FileId) -> bool {
    head_matches(f, id).unwrap_or(false)
}

/// [`starts_as`], or the error that kept its first bytes from being read.
fn head_matches(f: &std::fs::File, id: &FileId) -> io::Result<bool> {
    #[cfg(test)]
    super::changed::count_content_read();
    let mut head = Vec::new();
    read_head_file(f, id.fingerprint_len as usize, &mut head)?;
    Ok(prefix_matches(&head, id))
}
