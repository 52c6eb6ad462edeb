//! Placing a new tailer: at a checkpointed position (found again by identity after
//! the files moved while tidemark was stopped), or at the end of the live file.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::done::WHOLE;
use super::identity::Cand;
use super::position::Position;
use super::tailer::{OpenFail, Outcome, Start, Tailer};
use crate::file::roots::AllowedRoots;
use crate::file::EscapedPath;

/// How many times a scan that did not find the checkpointed file is repeated.
const MISS_RETRIES: u32 = 5;
/// How long after a miss the scan is repeated (time for a rename under way to land).
pub(super) const MISS_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How a checkpointed position was found.
enum Found {
    /// The same file (maybe renamed or compressed): resume at the offset.
    Exact,
    /// Its inode was truncated while stopped; the old content is in a copy.
    Copy,
    /// Truncated while stopped, no copy: read it again from 0.
    Truncated,
    /// Its inode holds different content: read it from 0.
    Rewritten,
    /// Gone; it was the live file: read the live file from 0, siblings count as read.
    MissLive,
    /// Gone; it was a rotated sibling (aged out): read every file from the oldest.
    MissSibling,
}

/// Which file of `scan` to resume in, from which offset, and how it was found.
/// `None`: the file was the live one, it is gone and nothing replaced it yet.
fn plan(pos: &Position, scan: &[Cand], live: &Path) -> (Option<(usize, u64)>, Found) {
    let id = &pos.file;
    let clamp = |c: &Cand| {
        if c.gzip {
            pos.offset
        } else {
            pos.offset.min(c.size)
        }
    };
    if let Some(i) = scan.iter().position(|c| c.strong(id)) {
        let c = &scan[i];
        if c.gzip || c.size >= pos.offset {
            return (Some((i, pos.offset)), Found::Exact);
        }
        // Truncated while stopped: copytruncate leaves the old content in a copy.
        let copy = scan
            .iter()
            .rposition(|k| !k.is_inode(id.dev, id.ino) && k.same_content(id));
        return match copy {
            Some(j) => (Some((j, clamp(&scan[j]))), Found::Copy),
            None => (Some((i, 0)), Found::Truncated),
        };
    }
    // Compressed (new inode), or copied by a copytruncate while stopped. If several
    // files start alike, the oldest: reading a line twice beats losing one.
    if let Some(j) = scan.iter().position(|c| c.same_content(id)) {
        return (Some((j, clamp(&scan[j]))), Found::Exact);
    }
    if let Some(i) = scan
        .iter()
        .position(|c| !c.gzip && c.is_inode(id.dev, id.ino))
    {
        return (Some((i, 0)), Found::Rewritten);
    }
    if pos.path == live {
        let i = scan.iter().position(|c| c.live);
        return (i.map(|i| (i, 0)), Found::MissLive);
    }
    (Some((0, 0)), Found::MissSibling)
}

impl Tailer {
    /// Resumes at `pos`: the file holding it is read from its offset, files older
    /// than it count as read, newer ones follow in order.
    pub(super) fn locate_resume(&mut self, pos: Position, scan: &[Cand]) -> Outcome {
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
            self.start = Start::Resume(pos);
            return Outcome::Blocked;
        }
        let (at, found) = plan(&pos, scan, &self.live);
        if matches!(found, Found::MissLive | Found::MissSibling)
            && self.resume_retries < MISS_RETRIES
        {
            // A directory listing taken while logrotate renames siblings may skip
            // one; a miss costs data (or a re-read), so look again before accepting.
            // Later, not by sleeping here: the caller is a timely worker that runs
            // every other job's operators too (see `Tailer::wake_at`).
            self.resume_retries += 1;
            self.resume_retry_at = Some(self.now + MISS_RETRY_WAIT);
            self.start = Start::Resume(pos);
            return Outcome::Later;
        }
        let mut opened = None;
        if let Some((i, start)) = at {
            match self.open(&scan[i], start) {
                Ok(()) => opened = Some(i),
                Err(OpenFail::Raced) => {
                    self.start = Start::Resume(pos);
                    return Outcome::Raced;
                }
                Err(OpenFail::Io(e)) => {
                    self.open_failed(&scan[i], &e);
                    if self.waits_for(&e) {
                        self.start = Start::Resume(pos);
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
        self.report_resume(&pos, scan, at.map(|(i, _)| i), found);
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
            self.start = Start::End;
            return Outcome::Blocked;
        }
        let (start, mid_line) = last_line_start(self.scanner.roots(), c, self.opts.max_line_bytes);
        match self.open(c, start) {
            Ok(()) => {}
            Err(OpenFail::Raced) => {
                self.start = Start::End;
                return Outcome::Raced;
            }
            Err(OpenFail::Io(e)) => {
                self.open_failed(c, &e);
                self.start = Start::End;
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

/// The offset just after the last `\n` of the file `c` (as of its scan), and
/// whether that falls inside a line longer than `max_line` (no newline in its last
/// `max_line + 1` bytes). Reads only the file the scan saw (same inode, opened
/// inside `roots`); else the end: the open that follows finds it changed.
fn last_line_start(roots: &AllowedRoots, c: &Cand, max_line: usize) -> (u64, bool) {
    let size = c.size;
    let window = (max_line as u64 + 1).min(size);
    let from = size - window;
    let mut tail = Vec::with_capacity(window as usize);
    let read = roots.open(&c.path).and_then(|mut f| {
        let m = f.metadata()?;
        if !c.is_inode(m.dev(), m.ino()) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        f.seek(SeekFrom::Start(from))?;
        f.take(window).read_to_end(&mut tail)
    });
    if read.is_err() {
        return (size, false);
    }
    match memchr::memrchr(b'\n', &tail) {
        Some(k) => (from + k as u64 + 1, false),
        None if from == 0 => (0, false),
        None => (size, true),
    }
}
