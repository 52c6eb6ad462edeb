//! The file being read (handle, offsets, identity) and the bounded line buffer that
//! splits it into lines. This is the hot path: one `read` per fill, `memchr` over
//! the buffer, no allocation or `Position` clone per line.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Instant;

use flate2::read::MultiGzDecoder;

use super::position::{FileId, Position};
use super::stamp::Stamp;
use super::{LineMeta, TailCounters};

/// Buffer size of a group not paced (see [`PACED_BUFFER`]); it grows (up to `max_line_bytes`) only for a long line and
/// shrinks back once that line is gone. A read fills at most this much: larger
/// buffers cost memory, not speed. Between turns such a group holds only its
/// unread bytes ([`LineBuf::release`]).
pub(crate) const INITIAL_BUFFER: usize = 32 * 1024;

/// Buffer size of a group event-time pacing stopped since it last read all of
/// its file, on a thread with more than [`MANY_GROUPS`] groups. Thousands of such groups each
/// keep one buffer of this size between turns and read on in place: 2,000
/// groups waiting with full 32 KiB buffers held 64 MiB, and moving their
/// unread bytes out at every stop and back into a fresh buffer at the next
/// read (what they did before) had the kernel fault in every byte read
/// anew — a third of item 2's page faults (benches/README.md, "Issue 13:
/// item 2, page faults"). A third of [`INITIAL_BUFFER`]: several paced turns
/// read on from one fill, and a fill's `read` costs far less than its pages.
pub(crate) const PACED_BUFFER: usize = 12 * 1024;

/// More line buffers than this on a thread (a worker's groups) and its paced
/// groups read at [`PACED_BUFFER`]. Below it their memory is small anyway and
/// full-size reads are faster: a lone group is paced too (by its own
/// watermark), and its `read`s at a third of the size cost item 1 ~15% of
/// its CPU.
pub(crate) const MANY_GROUPS: usize = 64;

thread_local! {
    /// Line buffers alive on this thread.
    static GROUPS: Cell<usize> = const { Cell::new(0) };
}

pub(crate) enum Src {
    Plain(File),
    Gz(Box<MultiGzDecoder<BufReader<File>>>),
    /// A plain file closed while idle at its end to stay within the job's budget
    /// of open files ([`super::Tailer::park`]); reopened by identity (the
    /// [`Cur`]'s `id`) at `read_off` before the next read, once its path's
    /// inode, size or modification time (`mtime`, seconds and nanoseconds, when
    /// parked) differ. `born` is its birth time when the file system records
    /// one: a file deleted while closed frees its inode, and a new file on it
    /// that starts with the same bytes is told apart by it. `size_when_paused`:
    /// closed mid-read for event-time pacing ([`super::Tailer::park_paused`]),
    /// the file's size then; the bytes between `read_off` and it were on disk,
    /// unread, and are lost if the file is deleted meanwhile. `born_vouches`:
    /// the birth time was more than [`RACY_MARGIN`](super::stamp::RACY_MARGIN)
    /// old when the file was closed, on a file system stamped by this machine's
    /// clock, so a file made after that cannot share it (times are kept to a
    /// clock tick: a file deleted and made anew within one may).
    Closed {
        mtime: (i64, i64),
        born: Option<std::time::SystemTime>,
        born_vouches: bool,
        size_when_paused: Option<u64>,
    },
}

impl Src {
    /// Reads into `buf`; a plain file at `off` (positioned: the descriptor's
    /// own offset is never used, so a file reopened after parking or read again
    /// from its start needs no `lseek`), a compressed one where it left off.
    fn read(&mut self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        loop {
            let r = match self {
                Src::Plain(f) => f.read_at(buf, off),
                Src::Gz(g) => g.read(buf),
                // The tailer reopens a parked file before reading; never reached.
                Src::Closed { .. } => {
                    return Err(io::Error::other("read from a closed (parked) file"))
                }
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    pub fn plain(&self) -> Option<&File> {
        match self {
            Src::Plain(f) => Some(f),
            Src::Gz(_) | Src::Closed { .. } => None,
        }
    }
}

/// The open file of the group.
pub(crate) struct Cur {
    pub src: Src,
    /// Its path as last seen (files move; updated when a scan finds it renamed).
    pub path: PathBuf,
    /// Its identity; the fingerprint grows as a short file grows.
    pub id: FileId,
    pub gzip: bool,
    /// It was the file at the live path when last checked.
    pub live_now: bool,
    /// Offset reading started at (0, or a resume / copy offset).
    pub start_off: u64,
    /// Bytes consumed from the file so far (decompressed), including skipped ones.
    pub read_off: u64,
    /// Gzip: decompressed bytes still to discard to reach `start_off`.
    pub skip: u64,
    /// Lines seen in this file (meaningful only if `line_no_known`).
    pub line_no: u64,
    pub line_no_known: bool,
    /// The tailer's position refers to this file (a line of it was delivered, or
    /// reading began mid-file).
    pub pos_owned: bool,
    /// When a rotated file was first seen at EOF with an unterminated last line.
    pub partial_since: Option<Instant>,
    /// Last known size on disk (compressed for gzip), for lag.
    pub disk_size: u64,
    pub counted_deletion: bool,
    /// The inode's birth time as the `fstat` at its open saw it (when the file
    /// system keeps one): what the process-wide claim on it and a parked
    /// reopen compare, without another system call.
    pub born: Option<std::time::SystemTime>,
    /// Its status at the last content check that read its first bytes, if that
    /// status can vouch for them ([`Stamp::settled`]): while an `fstat` shows
    /// it unchanged, a check need not read them again.
    pub settled: Option<Stamp>,
    /// Its status at its open, if already settled when the scan that chose it
    /// began ([`Stamp::settled`]): while an `fstat` shows it unchanged, it was
    /// not copytruncated since that scan, so no copy of it (older lines) can
    /// have appeared that the scan did not list.
    pub chosen: Option<Stamp>,
    /// It is on a local file system, whose change times this machine's clock
    /// stamps ([`super::stamp::local_times`]): only then may a status vouch.
    pub local_times: bool,
}

thread_local! {
    /// A working-size buffer a group released, for the next group's refill: a
    /// worker reads its groups one at a time, so one spare per thread saves
    /// nearly every refill its allocation and zeroing (~2.4% of the
    /// instructions of 2,000 paced hosts, issue 13's item 2). Tried before under
    /// glibc's malloc, it cost ~5 MiB of peak RSS there (fragmentation); under
    /// the binary's jemalloc it costs none (benches/README.md, "Issue 13: item 2,
    /// fourth pass").
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Test view: where this thread's spare buffer is (0: none).
#[cfg(test)]
pub(crate) fn spare_addr() -> usize {
    SPARE.with(|s| {
        let b = s.take();
        let a = if b.is_empty() { 0 } else { b.as_ptr() as usize };
        s.set(b);
        a
    })
}

/// The line buffer: `buf[start..end]` holds bytes read but not yet delivered.
pub(crate) struct LineBuf {
    /// Shorter than `size` (down to empty) between turns ([`LineBuf::release`]).
    buf: Vec<u8>,
    /// The buffer's working size: [`PACED_BUFFER`] or [`INITIAL_BUFFER`] (as
    /// the last turn ended), or more for a long line.
    /// `fill` reads into a buffer of exactly this size, released or not, so a
    /// release changes no read and no line.
    size: usize,
    start: usize,
    end: usize,
    /// Inside a line longer than `max_line`: dropping bytes until its newline.
    skipping: bool,
    /// Where that oversize line started.
    skip_line_off: u64,
    max_line: usize,
}

impl LineBuf {
    pub fn new(max_line: usize) -> LineBuf {
        GROUPS.with(|g| g.set(g.get() + 1));
        LineBuf {
            // Allocated by the first `fill` (the spare, when there is one): a
            // group made and not read yet holds none.
            buf: Vec::new(),
            size: INITIAL_BUFFER,
            start: 0,
            end: 0,
            skipping: false,
            skip_line_off: 0,
            max_line,
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.skipping = false;
        self.shrink();
    }

    fn shrink(&mut self) {
        if self.size > 4 * INITIAL_BUFFER {
            self.size = INITIAL_BUFFER;
            self.buf.truncate(INITIAL_BUFFER);
            self.buf.shrink_to_fit();
        }
    }

    /// The group's turn ends, stopped by event-time pacing (`paced`) or not.
    /// An empty buffer is freed. A group paced since it last read all of its
    /// file keeps one [`PACED_BUFFER`] and reads on in it (its unread bytes
    /// move into one once they fit). Other unread bytes (a turn stopped by
    /// its budget, an unterminated line) move to an allocation of their size
    /// when that saves at least half of it. The next `fill` restores the working size first. Memory: thousands of
    /// groups wait between their turns.
    pub fn release(&mut self, paced: bool) {
        let held = self.end - self.start;
        if self.size <= INITIAL_BUFFER {
            // Paced until it has caught up with its file: a turn its byte
            // budget ends (a quarter of a paced group's) changes nothing.
            if paced && GROUPS.with(Cell::get) > MANY_GROUPS {
                self.size = PACED_BUFFER;
            } else if held == 0 {
                self.size = INITIAL_BUFFER;
            }
        }
        let kept = if held == 0 {
            Vec::new()
        } else if self.size == PACED_BUFFER {
            if self.buf.len() == PACED_BUFFER || held > PACED_BUFFER {
                return;
            }
            let mut b = vec![0; PACED_BUFFER];
            b[..held].copy_from_slice(&self.buf[self.start..self.end]);
            b
        } else if held <= self.buf.capacity() / 2 {
            self.buf[self.start..self.end].to_vec()
        } else {
            return;
        };
        let old = std::mem::replace(&mut self.buf, kept);
        self.start = 0;
        self.end = held;
        if old.len() == INITIAL_BUFFER {
            SPARE.with(|s| s.set(old));
        }
    }

    /// Reading starts inside a line (at `off`) that is too long to keep: drop it up
    /// to its newline.
    pub fn start_skipping(&mut self, off: u64) {
        self.skipping = true;
        self.skip_line_off = off;
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Test view: the size the next `fill` reads into.
    #[cfg(test)]
    pub fn working_size(&self) -> usize {
        self.size
    }

    /// Test view: where the buffer's bytes are.
    #[cfg(test)]
    pub fn addr(&self) -> usize {
        self.buf.as_ptr() as usize
    }

    /// Test view: bytes allocated for the buffer now.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    /// An unterminated line is buffered (and is not being skipped as oversize).
    pub fn has_partial(&self) -> bool {
        !self.skipping && self.end > self.start
    }

    /// A complete line is buffered, not yet delivered (a stopped `split`).
    pub fn has_line(&self) -> bool {
        !self.skipping
            && self.end > self.start
            && memchr::memchr(b'\n', &self.buf[self.start..self.end]).is_some()
    }

    /// Offset of the first line not yet delivered, given the file's read offset.
    pub fn next_line_off(&self, read_off: u64) -> u64 {
        if self.skipping {
            self.skip_line_off
        } else {
            read_off - (self.end - self.start) as u64
        }
    }

    /// Reads at most `cap` (at least 1) bytes from `cur`; 0 at end of file.
    pub fn fill(
        &mut self,
        cur: &mut Cur,
        cap: usize,
        counters: &mut TailCounters,
    ) -> io::Result<usize> {
        if self.buf.len() < self.size {
            // Released at the end of a turn: back to the working size, in the
            // thread's spare buffer when there is one (no allocation, no zeroing).
            let mut b = match self.size {
                INITIAL_BUFFER => SPARE.with(Cell::take),
                _ => Vec::new(),
            };
            if b.len() != self.size {
                b = vec![0; self.size];
            }
            let held = self.end - self.start;
            b[..held].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = b;
            self.start = 0;
            self.end = held;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() <= self.max_line {
                let grown = (self.buf.len() * 2).min(self.max_line + 1);
                self.buf.resize(grown, 0);
                self.size = grown;
            } else {
                // The partial line is longer than allowed: drop it, skip to its end.
                counters.oversize_lines += 1;
                self.skipping = true;
                self.skip_line_off = cur.read_off - self.end as u64;
                self.end = 0;
            }
        }
        let at = self.end;
        let want = (self.buf.len() - at).min(cap.max(1));
        let n = cur.src.read(&mut self.buf[at..at + want], cur.read_off)?;
        if n == 0 {
            return Ok(0);
        }
        cur.read_off += n as u64;
        counters.bytes += n as u64;
        cur.partial_since = None;
        let mut dropped = 0;
        if cur.skip > 0 {
            dropped = cur.skip.min(n as u64) as usize;
            cur.skip -= dropped as u64;
            self.buf.copy_within(at + dropped..at + n, at);
        }
        self.end = at + n - dropped;
        Ok(n)
    }

    /// Takes back the last `n` bytes a [`LineBuf::fill`] of a plain file read (nothing
    /// of them was delivered yet).
    pub fn unfill(&mut self, n: usize) {
        self.end -= n.min(self.end - self.start);
    }

    /// Delivers the complete lines in the buffer, up to the one after which
    /// `on_line` sets `stop`.
    pub fn split<F>(
        &mut self,
        cur: &mut Cur,
        pos: &mut Option<Position>,
        counters: &mut TailCounters,
        on_line: &mut F,
        stop: &std::cell::Cell<bool>,
    ) where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        sync_identity(cur, pos);
        let base = cur.read_off - self.end as u64;
        let mut p = self.start;
        if self.skipping {
            // The rest of an oversize line: drop up to its newline.
            match memchr::memchr(b'\n', &self.buf[p..self.end]) {
                Some(i) => {
                    cur.line_no += 1;
                    self.skipping = false;
                    p += i + 1;
                }
                None => p = self.end,
            }
        }
        if let Some(i) = memchr::memchr(b'\n', &self.buf[p..self.end]) {
            // The first line of this file delivered: the position moves into it.
            let pp = own_position(cur, pos, base + p as u64);
            let (path, known) = (&cur.path, cur.line_no_known);
            let (mut line_no, mut lines, mut oversize) = (cur.line_no, 0, 0);
            let mut nl = p + i;
            loop {
                line_no += 1;
                let line = &self.buf[p..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                // (A line longer than the buffer never gets here: `fill` drops it.)
                if line.len() > self.max_line {
                    oversize += 1;
                } else {
                    lines += 1;
                    pp.offset = base + p as u64;
                    let line_no = if known { line_no } else { 0 };
                    on_line(
                        LineMeta {
                            position: pp,
                            path,
                            line_no,
                            discontinuities: counters.discontinuities,
                        },
                        line,
                    );
                }
                p = nl + 1;
                if stop.get() {
                    // The rest stays buffered for the next call.
                    break;
                }
                match memchr::memchr(b'\n', &self.buf[p..self.end]) {
                    Some(i) => nl = p + i,
                    None => break,
                }
            }
            cur.line_no = line_no;
            counters.lines += lines;
            counters.oversize_lines += oversize;
        }
        if self.skipping {
            p = self.end;
        }
        self.start = p;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.shrink();
        }
        // While a compressed file is skipped up to the resume offset, the position
        // stays at that offset.
        if cur.pos_owned && cur.skip == 0 {
            if let Some(pp) = pos.as_mut() {
                pp.offset = self.next_line_off(cur.read_off);
            }
        }
    }

    /// Delivers the buffered unterminated last line (the file is finished with it),
    /// and empties the buffer.
    pub fn emit_partial<F>(
        &mut self,
        cur: &mut Cur,
        pos: &mut Option<Position>,
        counters: &mut TailCounters,
        on_line: &mut F,
    ) where
        F: FnMut(LineMeta<'_>, &[u8]),
    {
        if self.has_partial() && self.end - self.start > self.max_line {
            counters.oversize_lines += 1;
        } else if self.has_partial() {
            sync_identity(cur, pos);
            let off = cur.read_off - (self.end - self.start) as u64;
            cur.line_no += 1;
            counters.unterminated_lines += 1;
            deliver(
                cur,
                pos,
                counters,
                on_line,
                off,
                &self.buf[self.start..self.end],
            );
        }
        self.clear();
        if cur.pos_owned {
            if let Some(pp) = pos.as_mut() {
                pp.offset = cur.read_off;
            }
        }
    }
}

impl Drop for LineBuf {
    fn drop(&mut self) {
        GROUPS.with(|g| g.set(g.get().saturating_sub(1)));
    }
}

/// Keeps the lent position's identity in step with the file's (its fingerprint
/// grows while a short file grows). Once per buffer, not per line.
fn sync_identity(cur: &Cur, pos: &mut Option<Position>) {
    if cur.pos_owned {
        if let Some(p) = pos.as_mut() {
            if p.file.fingerprint_len != cur.id.fingerprint_len {
                p.file = cur.id.clone();
            }
        }
    }
}

/// Makes the lent position refer to this file (from its first delivered line) and
/// returns it. One `Position` per file, updated in place per line.
fn own_position<'p>(cur: &mut Cur, pos: &'p mut Option<Position>, off: u64) -> &'p mut Position {
    if !cur.pos_owned {
        *pos = None;
        cur.pos_owned = true;
    }
    pos.get_or_insert_with(|| Position {
        file: cur.id.clone(),
        path: cur.path.clone(),
        offset: off,
        gzip: cur.gzip,
    })
}

fn deliver<F>(
    cur: &mut Cur,
    pos: &mut Option<Position>,
    counters: &mut TailCounters,
    on_line: &mut F,
    off: u64,
    line: &[u8],
) where
    F: FnMut(LineMeta<'_>, &[u8]),
{
    let p = own_position(cur, pos, off);
    p.offset = off;
    counters.lines += 1;
    let line_no = if cur.line_no_known { cur.line_no } else { 0 };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    on_line(
        LineMeta {
            position: p,
            path: &cur.path,
            line_no,
            discontinuities: counters.discontinuities,
        },
        line,
    );
}
