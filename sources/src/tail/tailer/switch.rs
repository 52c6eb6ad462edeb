//! Choosing and opening the next file of the stream; setting a file aside while
//! older ones are read ([`Stream::SetAside`]); recovering from a truncation
//! (copytruncate or plain).

use std::io::{self, BufReader};
use std::os::unix::fs::MetadataExt;

use flate2::read::MultiGzDecoder;

use super::Tailer;
use crate::file::roots::outside_error;
use crate::file::EscapedPath;
use crate::tail::identity::{file_id, prefix_matches, read_head_file, Cand};
use crate::tail::position::{FileId, Position};
use crate::tail::source::{Cur, Src};
use crate::tail::stamp::{self, Stamp};
use crate::tail::state::{OpenFail, Outcome, Start, Stream};

impl Tailer {
    /// The current file was truncated or rewritten in place. If a copy of its old
    /// content sits next to it (copytruncate), continue in the copy where we were;
    /// the file itself is read from 0 after it. Otherwise read it again from 0.
    pub(super) fn on_truncated(&mut self) {
        let Some(mut cur) = self.close_cur() else {
            return;
        };
        let line_off = self.lb.next_line_off(cur.read_off);
        self.lb.clear();
        let scan = self.scan();
        let old = cur.id.clone();
        let copy = scan.iter().rposition(|c| {
            !c.is_inode(old.dev, old.ino) && c.same_content(&old) && self.done.state(c).is_some()
        });
        let read_off = cur.read_off;
        let rewound = self.rewind(&mut cur);
        if let Some(j) = copy {
            self.counters.copytruncates += 1;
            // Lines up to `line_off` of the old content are delivered: its copy is
            // read from there, whenever a scan finds it. The open below may race
            // with the next rotation renaming the copy (torture seeds 1018, 3005):
            // the copy is then opened as a pending file, and must not start at 0.
            self.done.read_up_to(old.clone(), line_off);
            let c = &scan[j];
            if rewound && !self.stream.has_set_aside() {
                // Its new content comes right after the copy (if a scan cannot find
                // it any more, it is deleted: files after the copy came later).
                let before = scan[..=j]
                    .iter()
                    .filter(|c| self.done.state(c).is_some())
                    .map(|c| c.id.clone())
                    .collect();
                self.step(|s| s.set_aside(cur, before));
            }
            let start = if c.gzip {
                line_off
            } else {
                line_off.min(c.size)
            };
            if start < line_off {
                // The copy ends before the place we had read to (the writer
                // appended between the copy and the truncation).
                self.counters.discontinuities += 1;
            }
            match self.open(c, start) {
                Ok(()) => self.pending_bytes = self.pending_after(&scan, j),
                Err(OpenFail::Io(e)) => self.open_failed(c, &e),
                Err(OpenFail::Raced) => {}
            }
            return;
        }
        self.counters.truncations += 1;
        self.counters.discontinuities += 1;
        self.push_error(format!(
            "{}: truncated in place (we had read {read_off} bytes) and no copy of its old \
             content was found next to it; reading it again from the start. Lines written \
             after byte {line_off} before the truncation, if any, are lost",
            EscapedPath(&cur.path),
        ));
        if rewound {
            self.pos = self.done.anchor(&scan);
            self.step(|s| s.open(cur));
        }
    }

    /// Makes `cur` a new file read from offset 0 (same handle, new content).
    pub(super) fn rewind(&mut self, cur: &mut Cur) -> bool {
        let Src::Plain(f) = &mut cur.src else {
            return false;
        };
        let fp_bytes = self.opts.fingerprint_bytes;
        let _ = read_head_file(f, fp_bytes, &mut self.scratch);
        cur.id = file_id(cur.id.dev, cur.id.ino, &self.scratch, fp_bytes);
        cur.settled = None;
        cur.chosen = None;
        cur.read_off = 0;
        cur.start_off = 0;
        cur.skip = 0;
        cur.line_no = 0;
        cur.line_no_known = true;
        cur.pos_owned = false;
        cur.partial_since = None;
        true
    }

    /// Sets the current file (nothing consumed from it) aside if unread files precede
    /// it, and opens the oldest of them. A deleted file is set aside only if the scan
    /// still finds its content (compressed): else its place among the others is
    /// unknown, and it is read first.
    pub(super) fn set_aside_for_older(&mut self, scan: &[Cand]) -> bool {
        let Some(cur) = self.stream.cur() else {
            return false;
        };
        if self.stream.has_set_aside() {
            return false;
        }
        // Nothing unread before it (the usual case) needs no `fstat`.
        let before = self.unread_before(scan, &cur.id);
        if before.is_empty() {
            return false;
        }
        let deleted = cur
            .src
            .plain()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.nlink() == 0);
        if deleted && Tailer::locate(scan, &cur.id).is_none() {
            return false;
        }
        let Some(cur) = self.close_cur() else {
            return false;
        };
        self.lb.clear();
        self.step(|s| s.set_aside(cur, before));
        if let Outcome::Nothing = self.open_first_pending(scan) {
            self.take_back_set_aside(scan);
        }
        true
    }

    /// Called after the first read (`n` bytes, nothing delivered yet) of a live file
    /// with nothing consumed: if an older unread file appeared next to it before
    /// those bytes were written, it must be read first. The scan comes after the
    /// read, so it sees every file made before that data; if there is one, the read
    /// is taken back and the file set aside.
    ///
    /// Torture seed 834: the live file, rewound empty after a copytruncate and
    /// set aside while its copy was read, got new lines, was copytruncated again and
    /// got newer ones, all before it was read. The second copy (holding the
    /// lines in between) was not in the scan taken before, and the newer lines were
    /// read as the continuation of the empty file: the lines in between were
    /// lost without a word.
    pub(super) fn older_appeared_first(&mut self, n: usize) -> bool {
        let fresh = !self.stream.has_set_aside()
            && self.stream.cur().is_some_and(|c| {
                c.live_now && !c.gzip && c.start_off == 0 && c.read_off == n as u64
            });
        if !fresh || self.unchanged_since_chosen() {
            return false;
        }
        let scan = self.scan();
        let Some(cur) = self.stream.cur() else {
            return false;
        };
        // As `set_aside_for_older` decides (a deleted file it cannot place is
        // read on); nothing unread before it (the usual case) needs no `fstat`.
        if self.unread_before(&scan, &cur.id).is_empty() {
            return false;
        }
        let deleted = cur
            .src
            .plain()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.nlink() == 0);
        if deleted && Tailer::locate(&scan, &cur.id).is_none() {
            return false;
        }
        let Some(cur) = self.stream.cur_mut() else {
            return false;
        };
        if !matches!(cur.src, Src::Plain(_)) {
            return false;
        }
        self.lb.unfill(n);
        cur.read_off = 0;
        self.counters.bytes -= n as u64;
        self.set_aside_for_older(&scan)
    }

    /// Whether the current file's status is as it was at its open, and was
    /// settled then (see [`Cur::chosen`]): no copy of it can have appeared
    /// since the scan that chose it (2,000 files caught up on each listed
    /// their folder twice more for it, issue 13's item 2).
    fn unchanged_since_chosen(&self) -> bool {
        self.stream.cur().is_some_and(|c| {
            c.chosen.is_some_and(|chosen| {
                c.src
                    .plain()
                    .and_then(|f| f.metadata().ok())
                    .is_some_and(|m| Stamp::of(&m) == chosen)
            })
        })
    }

    /// Where `id` is in `scan`: under its inode, or by content (compressed since).
    pub(super) fn locate(scan: &[Cand], id: &FileId) -> Option<usize> {
        scan.iter()
            .position(|c| c.is_inode(id.dev, id.ino) || c.same_content(id))
    }

    /// Unread files that precede `id` in stream order (if it is no longer in the
    /// group, it was the live file: every unread sibling).
    pub(super) fn unread_before(&self, scan: &[Cand], id: &FileId) -> Vec<FileId> {
        let at = Tailer::locate(scan, id);
        scan.iter()
            .enumerate()
            .filter(|&(j, c)| at.map_or(!c.live, |i| j < i) && self.done.state(c).is_some())
            .map(|(_, c)| c.id.clone())
            .collect()
    }

    /// The set-aside file's turn has come: no unread file precedes it (or, once it is
    /// out of the group, none of those it was set aside for is still unread).
    pub(super) fn set_aside_ready(&self, scan: &[Cand]) -> bool {
        let Some((file, before)) = self.stream.set_aside_file() else {
            return false;
        };
        if Tailer::locate(scan, &file.id).is_some() {
            return self.unread_before(scan, &file.id).is_empty();
        }
        !before.iter().any(|id| {
            scan.iter()
                .any(|c| (c.strong(id) || c.same_content(id)) && self.done.state(c).is_some())
        })
    }

    /// Extends the set-aside file's fingerprint over what it holds now (it may have been
    /// set aside empty), so that a scan recognises it once compressed.
    pub(super) fn refresh_set_aside(&mut self) {
        let fp_bytes = self.opts.fingerprint_bytes;
        let Some(file) = self.stream.set_aside_file_mut() else {
            return;
        };
        let Some(f) = file.src.plain() else {
            return;
        };
        let id = &mut file.id;
        if (id.fingerprint_len as usize) < fp_bytes
            && read_head_file(f, fp_bytes, &mut self.scratch).is_ok()
            && self.scratch.len() > id.fingerprint_len as usize
            && prefix_matches(&self.scratch, id)
        {
            *id = file_id(id.dev, id.ino, &self.scratch, fp_bytes);
        }
    }

    /// Reads the set-aside file now ([`Stream::take_back`]), checking first
    /// that it was not truncated meanwhile.
    pub(super) fn take_back_set_aside(&mut self, scan: &[Cand]) {
        if let Some((file, _)) = self.stream.set_aside_file() {
            let at = Tailer::locate(scan, &file.id);
            self.pending_bytes = at.map_or(0, |i| self.pending_after(scan, i));
            self.step(Stream::take_back);
            self.lb.clear();
            // It may have been truncated (copytruncate) while set aside.
            if let Some(seen) = self.cur_meta() {
                if self.content_changed(&seen) {
                    self.on_truncated();
                }
            }
        }
    }

    /// Opens the next file to read: placing a new tailer first, then the oldest file
    /// not read yet.
    pub(super) fn advance(&mut self) -> bool {
        if self.resume_retry_pending(self.now) {
            return false;
        }
        // Enough for a few ordinary races (a resume miss is retried by a later call).
        for _ in 0..8 {
            let scan = self.scan();
            if self.untrusted_scan {
                return false; // the start (a resume point, the end) is kept for later
            }
            // Placing: the start is taken out, and put back by the locate
            // functions if it is to be tried again.
            let outcome = match std::mem::replace(&mut self.stream, Stream::Between) {
                Stream::Placing(Start::Resume(r)) if scan.is_empty() => {
                    self.stream = Stream::Placing(Start::Resume(r));
                    self.nothing_there();
                    return false;
                }
                Stream::Placing(Start::Resume(r)) => self.locate_resume(r, &scan),
                Stream::Placing(Start::End) => self.locate_end(&scan),
                other => {
                    self.stream = other;
                    self.open_next(&scan)
                }
            };
            match outcome {
                Outcome::Opened => return true,
                Outcome::Nothing | Outcome::Blocked | Outcome::Later => return false,
                Outcome::Raced => {}
            }
        }
        false
    }

    pub(super) fn nothing_there(&mut self) {
        if !self.opts.follow {
            self.push_error(format!(
                "{}: no such file, and no rotated siblings next to it: nothing to read",
                EscapedPath(&self.live)
            ));
        }
    }

    /// After a file is finished: the position falls back to the newest file read
    /// that still exists; then the set-aside file once the files it waits for are
    /// read, else the oldest unread file.
    pub(super) fn open_next(&mut self, scan: &[Cand]) -> Outcome {
        self.pos = self.done.anchor(scan);
        self.refresh_set_aside();
        if self.set_aside_ready(scan) {
            self.take_back_set_aside(scan);
            return Outcome::Opened;
        }
        match self.open_first_pending(scan) {
            Outcome::Nothing if self.stream.has_set_aside() => {
                self.take_back_set_aside(scan);
                Outcome::Opened
            }
            o => o,
        }
    }

    /// Opens the oldest file of `scan` not read to its end.
    pub(super) fn open_first_pending(&mut self, scan: &[Cand]) -> Outcome {
        for (i, c) in scan.iter().enumerate() {
            let Some(start) = self.done.state(c) else {
                continue;
            };
            if let Some(e) = &c.unreadable {
                // Only when it waits (see `Tailer::scan`): nothing after it is read.
                self.block_on(&c.path, e);
                return Outcome::Blocked;
            }
            let aside = self.stream.set_aside_file().map(|(file, _)| &file.id);
            if aside.is_some_and(|id| c.is_inode(id.dev, id.ino) || c.same_content(id)) {
                // The set-aside file (maybe compressed since): its turn.
                self.take_back_set_aside(scan);
                return Outcome::Opened;
            }
            match self.open(c, start) {
                Ok(()) => {
                    self.pending_bytes = self.pending_after(scan, i);
                    return Outcome::Opened;
                }
                Err(OpenFail::Raced) => return Outcome::Raced,
                Err(OpenFail::Io(e)) => {
                    self.open_failed(c, &e);
                    if self.waits_for(&e) {
                        return Outcome::Blocked; // retried on the next call
                    }
                    if c.live {
                        return Outcome::Nothing;
                    }
                    self.done.insert(c.id.clone(), c.size);
                }
            }
        }
        self.pending_bytes = 0;
        Outcome::Nothing
    }

    pub(super) fn pending_after(&self, scan: &[Cand], i: usize) -> u64 {
        scan[i + 1..]
            .iter()
            .filter(|c| self.done.state(c).is_some())
            .map(|c| c.size)
            .sum()
    }

    /// Opens `c` to read from `start` (decompressed bytes for gzip).
    pub(super) fn open(&mut self, c: &Cand, start: u64) -> Result<(), OpenFail> {
        #[cfg(test)]
        if let Some(hook) = self.open_hook.as_mut() {
            hook(&c.path);
        }
        // The scan opened `c` inside the allowed roots (if any); a path that leads
        // out of them now names another file: look again.
        let f = match self.scanner.open(&c.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenFail::Raced),
            Err(e) => match outside_error(&e) {
                Some(o) => {
                    let o = o.clone();
                    self.scanner.note_refused(&o);
                    return Err(OpenFail::Raced);
                }
                None => return Err(OpenFail::Io(e)),
            },
        };
        let m = f.metadata().map_err(OpenFail::Io)?;
        if !c.is_inode(m.dev(), m.ino()) {
            return Err(OpenFail::Raced);
        }
        let local_times = !c.gzip && stamp::local_times(&f);
        // A plain file is read at `read_off` (positioned reads): no seek.
        let src = if c.gzip {
            Src::Gz(Box::new(MultiGzDecoder::new(BufReader::new(f))))
        } else {
            Src::Plain(f)
        };
        let mut cur = Cur {
            src,
            path: c.path.clone(),
            id: c.id.clone(),
            gzip: c.gzip,
            live_now: c.live,
            start_off: start,
            read_off: if c.gzip { 0 } else { start },
            skip: if c.gzip { start } else { 0 },
            line_no: 0,
            line_no_known: start == 0,
            pos_owned: false,
            partial_since: None,
            disk_size: c.size,
            counted_deletion: false,
            born: m.created().ok(),
            settled: None,
            chosen: local_times
                .then(|| Stamp::settled(&m, c.listed_from))
                .flatten(),
            local_times,
        };
        if start > 0 {
            self.pos = Some(Position {
                file: c.id.clone(),
                path: c.path.clone(),
                offset: start,
                gzip: c.gzip,
            });
            cur.pos_owned = true;
        }
        self.lb.clear();
        self.step(|s| s.open(cur));
        self.counters.files_opened += 1;
        Ok(())
    }

    /// `c` could not be opened: wait for it (follow mode) or skip and list it.
    pub(super) fn open_failed(&mut self, c: &Cand, e: &io::Error) {
        self.open_failed_at(&c.path, e);
    }
}
