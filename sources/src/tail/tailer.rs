//! The tailer: a file group (live file plus rotated siblings) read as one ordered
//! stream of lines, following renames, copytruncate, truncation and deletion.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use changed::Checked;

use super::done::DoneSet;
use super::identity::Scanner;
use super::position::{FileId, Left, Position};
use super::source::{Cur, LineBuf};
use super::state::{Blocked, Outcome, Reopen, Resume, Start, Stream};
use super::unreadable::Unreadable;
use super::{LineMeta, ReadStatus, TailCounters, TailOptions};
use crate::file::roots::AllowedRoots;

// The tailer's parts; each adds methods to `Tailer` and may use its private
// fields. They import shared types from `super::state`, never this file's.
mod changed;
mod park;
mod pause;
mod resume;
mod switch;
mod unreadable;

/// At most this many end-of-file decisions (file switches) per `read_some`.
const MAX_EOF_STEPS: u32 = 32;
/// How often an unconsumed live file looks for an older file that appeared next to
/// it, besides whenever the directory changes.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_ERRORS: usize = 16;

enum Step {
    Continue,
    Idle,
    Finished,
}

/// Reads one file group as a single ordered stream of lines: rotated siblings oldest
/// first, each drained before the next newer one, then the live file (followed as it
/// grows in follow mode). See the [module docs](super) for rotation handling.
pub struct Tailer {
    live: PathBuf,
    opts: TailOptions,
    /// Visible to the tests in `tail::tests`, which set its hooks.
    pub(super) scanner: Scanner,
    done: DoneSet,
    /// Where the tailer is in the stream, with the files that state holds.
    stream: Stream,
    lb: LineBuf,
    /// The next line not yet delivered; lent to `on_line` (offset set per line).
    pos: Option<Position>,
    counters: TailCounters,
    errors: VecDeque<String>,
    last_error: Option<String>,
    /// Bytes in files newer than the current one not yet read (as of the last scan).
    pending_bytes: u64,
    scratch: Vec<u8>,
    /// Files left since [`Tailer::take_left`] (see there).
    left: Vec<Left>,
    last_rescan: Option<Instant>,
    dir_mtime: Option<(i64, i64)>,
    /// The content check that passed last in this call (see `changed.rs`).
    checked: Option<Checked>,
    /// The clock of the current `read_some` call.
    now: Instant,
    /// The file the group is waiting for (follow mode). Not a state of the
    /// stream: a group waits for a file whatever it is doing.
    blocked: Option<Blocked>,
    /// A read of this call waited for an unreadable file.
    blocked_now: bool,
    /// See [`Tailer::unreadable`].
    unreadable: Vec<Unreadable>,
    /// The last scan could not list the folder and had no earlier listing to
    /// use: which siblings exist is unknown (follow mode waits).
    untrusted_scan: bool,
    unreadable_changes: u64,
    /// Test hook: runs before a file of a scan is opened.
    #[cfg(test)]
    pub(super) open_hook: Option<OpenHook>,
}

/// See [`Tailer::open_hook`].
#[cfg(test)]
pub(super) type OpenHook = Box<dyn FnMut(&Path) + Send>;

impl Tailer {
    /// `live`: the group's live path. `resume`: where a previous run stopped (a line
    /// start, from [`Tailer::position`] or a [`LineMeta::position`]), or `None` to
    /// start at the beginning of the oldest sibling.
    pub fn new(live: PathBuf, opts: TailOptions, resume: Option<Position>) -> Tailer {
        let stream = match &resume {
            Some(p) => Stream::Placing(Start::Resume(Resume {
                pos: p.clone(),
                retries: 0,
                retry_at: None,
            })),
            None => Stream::Between,
        };
        Tailer::build(live, opts, resume, stream)
    }

    /// Starts at the end of the live file (after its last complete line); rotated
    /// siblings count as already read. For "start from the end" when no usable
    /// checkpoint exists.
    pub fn at_end(live: PathBuf, opts: TailOptions) -> Tailer {
        Tailer::build(live, opts, None, Stream::Placing(Start::End))
    }

    fn build(
        live: PathBuf,
        mut opts: TailOptions,
        pos: Option<Position>,
        stream: Stream,
    ) -> Tailer {
        opts.fingerprint_bytes = opts.fingerprint_bytes.clamp(1, 1 << 20);
        opts.max_line_bytes = opts.max_line_bytes.max(16);
        let head_len = pos
            .as_ref()
            .map_or(0, |p| p.file.fingerprint_len as usize)
            .min(1 << 20);
        Tailer {
            scanner: Scanner::new(live.clone(), opts.fingerprint_bytes, head_len),
            live,
            done: DoneSet::default(),
            stream,
            lb: LineBuf::new(opts.max_line_bytes),
            pos,
            counters: TailCounters::default(),
            errors: VecDeque::new(),
            last_error: None,
            pending_bytes: 0,
            scratch: Vec::new(),
            left: Vec::new(),
            last_rescan: None,
            dir_mtime: None,
            checked: None,
            now: Instant::now(),
            blocked: None,
            blocked_now: false,
            unreadable: Vec::new(),
            untrusted_scan: false,
            unreadable_changes: 0,
            #[cfg(test)]
            open_hook: None,
            opts,
        }
    }

    /// Reads only files whose real path (symlinks resolved) lies inside `roots`
    /// (see [`AllowedRoots`]); the live file, rotated siblings, and any file a
    /// resume position names alike. A file outside is skipped, never read, counted
    /// in [`TailCounters::outside_roots`] and reported once through
    /// [`Tailer::take_error`]. Call before the first read. Without it (or with
    /// [`AllowedRoots::any`]) any path is read.
    pub fn with_allowed_roots(mut self, roots: AllowedRoots) -> Tailer {
        self.scanner.set_roots(roots);
        self
    }

    /// Reads at most about `budget` bytes, calling `on_line` for each complete line
    /// (without its `\n` / `\r\n`) in stream order. Never fails: I/O problems are
    /// counted and reported through [`Tailer::take_error`].
    pub fn read_some<F>(&mut self, budget: usize, now: Instant, on_line: F) -> ReadStatus
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        self.read_some_until(budget, now, &Cell::new(false), on_line)
    }

    /// [`Tailer::read_some`] that also ends once `on_line` sets `stop` (event-time
    /// pacing: a group far enough ahead waits for the others). The lines after the
    /// one that set it stay unread — buffered, delivered first by the next call —
    /// so [`Tailer::position`] stays exact; it returns [`ReadStatus::More`] then.
    pub fn read_some_until<F>(
        &mut self,
        budget: usize,
        now: Instant,
        stop: &Cell<bool>,
        on_line: F,
    ) -> ReadStatus
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        if self.backing_off(now) {
            return ReadStatus::Blocked;
        }
        self.now = now;
        self.blocked_now = false;
        let mut status = self.read_lines(budget, now, stop, on_line);
        // The turn ends: a waiting group keeps only its unread bytes, or its
        // paced buffer.
        self.lb.release(stop.get());
        self.end_wait();
        if self.blocked_now && status == ReadStatus::Idle {
            status = ReadStatus::Blocked;
        }
        if self.scanner.has_refused() {
            for o in self.scanner.take_refused() {
                self.counters.outside_roots += 1;
                self.push_error(o.to_string());
            }
        }
        status
    }

    fn read_lines<F>(
        &mut self,
        budget: usize,
        now: Instant,
        stop: &Cell<bool>,
        mut on_line: F,
    ) -> ReadStatus
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        if let Stream::Finished = self.stream {
            return ReadStatus::Finished;
        }
        self.checked = None; // a check of an earlier call is no check of this one
                             // Complete lines left by a stopped call come first: everything below
                             // (end of file, truncation, rotation, parking) assumes only an
                             // unterminated line can be buffered.
        if self.lb.has_line() {
            if let Some(cur) = self.stream.cur_mut() {
                self.lb
                    .split(cur, &mut self.pos, &mut self.counters, &mut on_line, stop);
                if stop.get() {
                    return ReadStatus::More;
                }
            }
        }
        self.check_start(now);
        if self.parked_unchanged(now) {
            return ReadStatus::Idle; // nothing new: stays closed
        }
        if let Reopen::Blocked = self.reopen_parked(&mut on_line) {
            return ReadStatus::Idle; // `blocked_now`: reported as Blocked
        }
        let mut used = 0usize;
        let mut steps = 0u32;
        loop {
            if self.stream.cur().is_none() && !self.advance() {
                if self.resume_retry_pending(now) {
                    // Not idle and not finished: the group's first lines are to come.
                    return ReadStatus::Blocked;
                }
                // Without follow, a group waiting for a file (out of descriptors)
                // is not finished: `read_some` reports it `Blocked`.
                if self.opts.follow || self.blocked_now {
                    return ReadStatus::Idle;
                }
                self.step(Stream::finish);
                return ReadStatus::Finished;
            }
            if used >= budget {
                return ReadStatus::More;
            }
            if (self.past_verified() || self.fingerprint_incomplete()) && !self.checked_here() {
                // About to read beyond what was last checked, or the file is still
                // shorter than its fingerprint: a copytruncate may have truncated and
                // rewritten it in place since. Check first — reading on at our offset
                // would take the new content for the old, and an identity grown from
                // it would match no file on restart, so the copy holding our unread
                // lines would be skipped. The fingerprint grows only here, verified.
                match self.cur_meta() {
                    Some(seen) if self.content_changed(&seen) => {
                        self.on_truncated();
                        continue;
                    }
                    Some(seen) => {
                        if let Some(cur) = self.stream.cur_mut() {
                            cur.disk_size = seen.meta.len();
                        }
                    }
                    None => {}
                }
            }
            let Some(cur) = self.stream.cur_mut() else {
                continue;
            };
            match self.lb.fill(cur, budget - used, &mut self.counters) {
                Ok(0) => {
                    steps += 1;
                    if steps > MAX_EOF_STEPS {
                        return ReadStatus::More;
                    }
                    match self.at_eof(now, &mut on_line) {
                        Step::Continue => {}
                        Step::Idle => return ReadStatus::Idle,
                        Step::Finished => {
                            self.step(Stream::finish);
                            return ReadStatus::Finished;
                        }
                    }
                }
                Ok(n) => {
                    if self.read_was_stale(n) || self.older_appeared_first(n) {
                        continue;
                    }
                    used += n;
                    let Some(cur) = self.stream.cur_mut() else {
                        continue;
                    };
                    self.lb
                        .split(cur, &mut self.pos, &mut self.counters, &mut on_line, stop);
                    if stop.get() {
                        return ReadStatus::More;
                    }
                }
                Err(e) => {
                    self.counters.read_errors += 1;
                    if cur.gzip {
                        self.damaged_gzip(&e);
                        continue;
                    }
                    if self.opts.follow || crate::fds::is_out_of_fds(&e) {
                        // Nothing was consumed: the same read is tried again.
                        let path = cur.path.clone();
                        self.block_on(&path, &e);
                        return ReadStatus::Blocked;
                    }
                    let (path, at) = (cur.path.clone(), cur.read_off);
                    let e = io::Error::new(e.kind(), format!("read failed at byte {at}: {e}"));
                    self.skip_unreadable(&path, &e);
                    self.finish_current(&mut on_line);
                }
            }
        }
    }

    /// When the tailer wants to be read again, if sooner than its caller's poll
    /// interval: a scan that missed the checkpointed file is repeated shortly after
    /// (a rename may have been under way). Reads before then return
    /// [`ReadStatus::Blocked`] at once; the tailer never sleeps in `read_some`.
    pub fn wake_at(&self) -> Option<Instant> {
        // Only a retry still ahead: one that came due while the tailer waits for
        // something else (an unreadable file, descriptors, an empty folder) would
        // otherwise ask its worker back every millisecond.
        self.stream
            .resume()
            .and_then(|r| r.retry_at)
            .filter(|at| *at > self.now)
    }

    fn resume_retry_pending(&self, now: Instant) -> bool {
        self.wake_at().is_some_and(|at| now < at)
    }

    /// Where the next line not yet delivered starts: what a checkpoint stores to
    /// resume exactly after the last delivered line. While nothing of the current
    /// file has been delivered, this is the end of the newest file already read that
    /// still exists (or `None` if none does: a restart reads every existing file).
    pub fn position(&self) -> Option<Position> {
        self.pos.clone()
    }

    pub fn counters(&self) -> TailCounters {
        self.counters
    }

    /// The oldest unreported problem: a message naming the file and what to do.
    pub fn take_error(&mut self) -> Option<String> {
        self.errors.pop_front()
    }

    /// Bytes behind the end of the current file, plus the sizes of newer files not
    /// read yet (as of the last scan; a compressed file counts its compressed size).
    pub fn lag_bytes(&self) -> u64 {
        let cur = match self.stream.cur() {
            Some(c) if c.gzip => c.disk_size,
            Some(c) => c
                .disk_size
                .saturating_sub(self.lb.next_line_off(c.read_off)),
            None => 0,
        };
        cur + self.pending_bytes
    }

    /// The file being read, under the name it had when last seen.
    pub fn current_path(&self) -> Option<&Path> {
        self.stream.cur().map(|c| c.path.as_path())
    }

    /// The identity of the file being read.
    pub fn current_file(&self) -> Option<&FileId> {
        self.stream.cur().map(|c| &c.id)
    }

    /// The birth time of the file being read, as its open saw it (if the file
    /// system keeps one).
    pub fn current_born(&self) -> Option<std::time::SystemTime> {
        self.stream.cur().and_then(|c| c.born)
    }

    /// The current file is read to its end (for now).
    fn at_eof<F>(&mut self, now: Instant, on_line: &mut F) -> Step
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        let gzip = match self.stream.cur() {
            Some(c) => c.gzip,
            None => return Step::Continue,
        };
        let seen = if gzip { None } else { self.cur_meta() };
        let Some(seen) = seen else {
            // A compressed file does not grow: finish it (its last line too).
            self.finish_current(on_line);
            return Step::Continue;
        };
        // Always checked, even when a check passed at this offset in this call: the
        // lines of the last read were delivered since, and a copytruncate to the same
        // size in that time is seen only here (review R17s; a parked file would
        // otherwise look unchanged for good).
        if self.content_changed(&seen) {
            self.on_truncated();
            return Step::Continue;
        }
        let meta = seen.meta;
        let Some(cur) = self.stream.cur_mut() else {
            return Step::Continue;
        };
        cur.disk_size = meta.len();
        if meta.len() > cur.read_off {
            return Step::Continue; // it grew since that read
        }
        let (dev, ino, read_off, start_off) = (cur.id.dev, cur.id.ino, cur.read_off, cur.start_off);
        let live = self.is_live(dev, ino);
        if !self.opts.follow {
            self.finish_current(on_line);
            return if live { Step::Finished } else { Step::Continue };
        }
        if live {
            if let Some(cur) = self.stream.cur_mut() {
                cur.live_now = true;
            }
            self.pending_bytes = 0;
            if read_off == 0 && start_off == 0 && self.read_older_first(now, false) {
                return Step::Continue;
            }
            return Step::Idle;
        }
        self.rotated_at_eof(now, meta.nlink() == 0, on_line)
    }

    /// At the end of a file that is no longer the live one (renamed or deleted).
    /// Its unterminated last line is delivered once no byte has arrived for
    /// `unterminated_wait`. It is left (and closed) once deleted, or once another
    /// file not read yet (normally a newer one) has data: until then a writer may
    /// still append through an old handle.
    fn rotated_at_eof<F>(&mut self, now: Instant, deleted: bool, on_line: &mut F) -> Step
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        let Some(cur) = self.stream.cur_mut() else {
            return Step::Continue;
        };
        if cur.live_now {
            cur.live_now = false;
            if !deleted {
                self.counters.rotations += 1;
            }
        }
        if deleted && !cur.counted_deletion {
            cur.counted_deletion = true;
            self.counters.deletions += 1;
        }
        let (dev, ino) = (cur.id.dev, cur.id.ino);
        let scan = self.scan();
        let Some(cur) = self.stream.cur_mut() else {
            return Step::Continue;
        };
        let idx = scan.iter().position(|c| c.is_inode(dev, ino));
        if let Some(c) = idx.map(|i| &scan[i]) {
            if c.path != cur.path {
                cur.path = c.path.clone();
                if cur.pos_owned {
                    if let Some(p) = self.pos.as_mut() {
                        p.path = c.path.clone();
                    }
                }
            }
        }
        // Nothing consumed from this file yet, and an older unread file appeared (the
        // copy of a copytruncate done while we held it empty): read that first.
        if cur.read_off == 0 && cur.start_off == 0 && self.set_aside_for_older(&scan) {
            return Step::Continue;
        }
        // A file set aside waits for this one to be left.
        let mut others_have_data = self.stream.has_set_aside();
        let Some(cur) = self.stream.cur_mut() else {
            return Step::Continue;
        };
        // Unread data elsewhere (normally newer files) is the reason to move on.
        let mut pending = 0;
        for (j, c) in scan.iter().enumerate() {
            if idx == Some(j) || c.is_inode(dev, ino) {
                continue;
            }
            if self.done.state(c).is_some() {
                if idx.is_none_or(|i| j > i) {
                    pending += c.size;
                }
                others_have_data |= if c.gzip {
                    !c.head.is_empty()
                } else {
                    c.size > 0
                };
            }
        }
        self.pending_bytes = pending;
        if self.lb.has_partial() {
            let since = *cur.partial_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.opts.unterminated_wait {
                return Step::Idle;
            }
            self.lb
                .emit_partial(cur, &mut self.pos, &mut self.counters, on_line);
        }
        if !deleted && !others_have_data {
            return Step::Idle;
        }
        self.finish_current(on_line);
        match self.open_next(&scan) {
            Outcome::Opened | Outcome::Raced => Step::Continue,
            Outcome::Nothing | Outcome::Blocked | Outcome::Later => Step::Idle,
        }
    }

    fn is_live(&self, dev: u64, ino: u64) -> bool {
        fs::metadata(&self.live).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
    }

    /// Delivers the current file's unterminated last line, records it as read and
    /// closes it.
    fn finish_current<F>(&mut self, on_line: &mut F)
    where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        let Some(mut cur) = self.close_cur() else {
            return;
        };
        self.lb
            .emit_partial(&mut cur, &mut self.pos, &mut self.counters, on_line);
        self.done.insert(cur.id, cur.read_off);
    }

    /// Test view: scans repeated so far for a checkpointed file not found.
    #[cfg(test)]
    pub(super) fn resume_retries(&self) -> u32 {
        self.stream.resume().map_or(0, |r| r.retries)
    }

    /// Test view: the line buffer's size.
    #[cfg(test)]
    pub(super) fn line_buffer_capacity(&self) -> usize {
        self.lb.capacity()
    }

    /// Moves the stream to its next state (see [`Stream`] for the transitions).
    fn step(&mut self, to: impl FnOnce(Stream) -> Stream) {
        let from = std::mem::replace(&mut self.stream, Stream::Between);
        self.stream = to(from);
        self.checked = None;
    }

    /// Leaves the file being read ([`Stream::close`]) and returns it.
    fn close_cur(&mut self) -> Option<Cur> {
        let (to, cur) = std::mem::replace(&mut self.stream, Stream::Between).close();
        self.stream = to;
        self.checked = None;
        self.note_left(cur.as_ref());
        cur
    }

    /// Queues a message for `take_error`, unless it repeats the previous one.
    fn push_error(&mut self, msg: String) {
        if self.last_error.as_deref() == Some(msg.as_str()) {
            return;
        }
        if self.errors.len() == MAX_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(msg.clone());
        self.last_error = Some(msg);
    }
}
