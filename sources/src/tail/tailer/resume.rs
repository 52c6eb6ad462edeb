//! Placing a new tailer: at a checkpointed position, or at the end of the live
//! file (the plans are made in [`crate::tail::resume`]).

use super::Tailer;
use crate::file::EscapedPath;
use crate::tail::done::WHOLE;
use crate::tail::identity::Cand;
use crate::tail::position::Position;
use crate::tail::resume::{last_line_start, plan, Found, MISS_RETRIES, MISS_RETRY_WAIT};
use crate::tail::state::{OpenFail, Outcome, Resume, Start, Stream};

impl Tailer {
    /// Resumes at `pos`: the file holding it is read from its offset, files older
    /// than it count as read, newer ones follow in order.
    /// Until it is found (or given up on), the tailer stays `Placing` it.
    pub(super) fn locate_resume(&mut self, mut r: Resume, scan: &[Cand]) -> Outcome {
        // `scan` is settled (two scans in a row agreed, see `Scanner::scan`): a
        // listing taken mid-rotation cannot place the position wrongly (torture
        // seed 3057: the copy holding it was missed and newer files marked read).
        // A file that cannot be opened could be the one holding the position (its
        // content is unknown): wait until it can be (follow mode or out of file descriptors; otherwise
        // `Tailer::scan` left it out).
        if let Some(c) = scan.iter().find(|c| c.unreadable.is_some()) {
            if let Some(e) = &c.unreadable {
                let (path, e) = (c.path.clone(), e.clone());
                self.block_on(&path, &e);
            }
            self.stream = Stream::Placing(Start::Resume(r));
            return Outcome::Blocked;
        }
        let (at, found) = plan(&r.pos, scan, &self.live);
        if matches!(found, Found::MissLive | Found::MissSibling) && r.retries < MISS_RETRIES {
            // A directory listing taken while logrotate renames siblings may skip
            // one; a miss costs data (or a re-read), so look again before accepting.
            // Later, not by sleeping here: the caller is a timely worker that runs
            // every other job's operators too (see `Tailer::wake_at`).
            r.retries += 1;
            r.retry_at = Some(self.now + MISS_RETRY_WAIT);
            self.stream = Stream::Placing(Start::Resume(r));
            return Outcome::Later;
        }
        let mut opened = None;
        if let Some((i, start)) = at {
            match self.open(&scan[i], start) {
                Ok(()) => opened = Some(i),
                Err(OpenFail::Raced) => {
                    self.stream = Stream::Placing(Start::Resume(r));
                    return Outcome::Raced;
                }
                Err(OpenFail::Io(e)) => {
                    self.open_failed(&scan[i], &e);
                    if self.waits_for(&e) {
                        self.stream = Stream::Placing(Start::Resume(r));
                        return Outcome::Blocked;
                    }
                    if !scan[i].live {
                        self.done.insert(scan[i].id.clone(), scan[i].size);
                    }
                }
            }
        }
        let older = at.map_or(scan.len(), |(i, _)| i);
        for c in &scan[..older] {
            let size = if c.gzip { WHOLE } else { c.size };
            self.done.insert(c.id.clone(), size);
        }
        // A copy shorter than the checkpointed offset (the writer appended between
        // the copy and the truncation, and we had read that) resumes at its end:
        // the lines past it are not the ones that followed.
        let short_copy = matches!(found, Found::Exact | Found::Copy)
            && at.is_some_and(|(i, start)| !scan[i].gzip && start < r.pos.offset);
        if short_copy || !matches!(found, Found::Exact | Found::Copy) {
            self.counters.discontinuities += 1;
        }
        self.report_resume(&r.pos, scan, at.map(|(i, _)| i), found);
        match opened {
            Some(i) => {
                self.pending_bytes = self.pending_after(scan, i);
                Outcome::Opened
            }
            None => self.open_first_pending(scan),
        }
    }

    fn report_resume(&mut self, pos: &Position, scan: &[Cand], at: Option<usize>, found: Found) {
        let was = EscapedPath(&pos.path);
        let ino = pos.file.ino;
        let name = |i: Option<usize>| at.or(i).map(|i| EscapedPath(&scan[i].path).to_string());
        let msg = match found {
            Found::Exact => return,
            Found::Copy => {
                self.counters.copytruncates += 1;
                return;
            }
            Found::Truncated => {
                self.counters.truncations += 1;
                format!(
                    "{was}: shorter than the checkpointed offset {}: it was truncated while \
                     tidemark was stopped and no copy of its old content was found; reading \
                     it again from the start (lines written after that offset before the \
                     truncation are lost)",
                    pos.offset
                )
            }
            Found::Rewritten => {
                self.counters.resume_misses += 1;
                format!(
                    "{}: holds different content than checkpointed (rewritten in place, or \
                     its inode {ino} reused by a new file); reading it from the start",
                    name(None).unwrap_or_else(|| was.to_string())
                )
            }
            Found::MissLive => {
                self.counters.resume_misses += 1;
                let siblings = scan.iter().filter(|c| !c.live).count();
                format!(
                    "{was}: the checkpointed file (inode {ino}) is gone: deleted or replaced \
                     while tidemark was stopped. Continuing with {} from its start; its \
                     {siblings} rotated sibling(s) count as already read. If tidemark was \
                     stopped across several rotations, replay those siblings to recover \
                     their lines",
                    EscapedPath(&self.live)
                )
            }
            Found::MissSibling => {
                self.counters.resume_misses += 1;
                format!(
                    "{was}: the checkpointed file (inode {ino}) is gone: rotated out while \
                     tidemark was stopped. Reading all {} remaining file(s) of the group from \
                     the oldest ({}); lines the checkpoint already covered may be read again",
                    scan.len(),
                    name(Some(0)).unwrap_or_default()
                )
            }
        };
        self.push_error(msg);
    }

    /// Starts after the live file's last complete line; siblings count as read.
    pub(super) fn locate_end(&mut self, scan: &[Cand]) -> Outcome {
        let Some(i) = scan.iter().position(|c| c.live) else {
            // No live file yet: whatever appears at the live path later is new.
            for c in scan {
                self.done
                    .insert(c.id.clone(), if c.gzip { WHOLE } else { c.size });
            }
            // The siblings count as read: say so, or a checkpoint taken now would
            // hold no position and a restart would read them after all.
            self.pos = self.done.anchor(scan);
            self.nothing_there();
            return Outcome::Nothing;
        };
        let c = &scan[i];
        if let Some(e) = &c.unreadable {
            let (path, e) = (c.path.clone(), e.clone());
            self.block_on(&path, &e);
            self.stream = Stream::Placing(Start::End);
            return Outcome::Blocked;
        }
        let (start, mid_line) = last_line_start(self.scanner.roots(), c, self.opts.max_line_bytes);
        match self.open(c, start) {
            Ok(()) => {}
            Err(OpenFail::Raced) => {
                self.stream = Stream::Placing(Start::End);
                return Outcome::Raced;
            }
            Err(OpenFail::Io(e)) => {
                self.open_failed(c, &e);
                self.stream = Stream::Placing(Start::End);
                return if self.waits_for(&e) {
                    Outcome::Blocked
                } else {
                    Outcome::Nothing
                };
            }
        }
        if mid_line {
            self.lb.start_skipping(start);
            self.counters.oversize_lines += 1;
        }
        for c in &scan[..i] {
            self.done
                .insert(c.id.clone(), if c.gzip { WHOLE } else { c.size });
        }
        if self.pos.is_none() {
            // An empty live file gives no position of its own; the siblings it
            // skipped do (same reason as above).
            self.pos = self.done.anchor(&scan[..i]);
        }
        self.pending_bytes = 0;
        Outcome::Opened
    }
}
