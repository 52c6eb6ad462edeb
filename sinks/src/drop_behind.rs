//! Output already written is dropped from the page cache, all but the last few MiB.
//!
//! A file sink appends and never reads back. Left to the kernel, every page it
//! wrote stays cached until memory runs short: a catch-up or replay writing
//! hundreds of MiB evicts what other programs had cached, and each new page it
//! writes is one the kernel must find and fault in afresh. Behind the last
//! [`KEEP`] bytes (where a follower of the output reads), written pages are
//! handed back once on disk, and the next windows' writes reuse them.
//!
//! Every [`KEEP`] bytes written, a step starts the write-back of those bytes
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait) and drops the
//! range the step before started (`posix_fadvise(DONTNEED)`, which drops only
//! clean pages): by then it is on disk, or nearly. So between `KEEP` and
//! `2 × KEEP` (and the window being written) stay cached. A page still being
//! written when its turn comes is not looked at again: it leaves the cache as
//! any cached page does. Pages written before the sink opened the file (a
//! resume) are left alone. Durability is not touched: what makes windows
//! durable is the sink's `sync`, as before; the write-back is what that `sync`,
//! or the kernel, would have done later.

use std::fs::File;

/// Written bytes behind the end kept cached: what a follower of the output
/// (tailing it, or reading it right after the run) most likely reads next.
pub const KEEP: u64 = 16 << 20;

/// Steps end on a multiple of this (of any page size up to 64 KiB): a page
/// the next write fills further is not written back half full, to be written
/// again (and, on storage that keeps pages stable while they are written, to
/// hold that next write up).
const ALIGN: u64 = 64 << 10;

/// Where the file's cached pages were handed back up to, and written back from.
#[derive(Debug, Clone, Copy)]
pub struct DropBehind {
    /// Pages before this were dropped (or never written by this sink).
    dropped: u64,
    /// Write-back was started up to here.
    started: u64,
}

impl DropBehind {
    /// For a file this sink appends to from `len` on.
    pub fn from(len: u64) -> DropBehind {
        DropBehind {
            dropped: len,
            started: len,
        }
    }

    /// After an append that made the file `len` bytes long: once [`KEEP`] more
    /// bytes were written since the last step, drops the range whose write-back
    /// that step started and starts the write-back of what came since. Advice
    /// only: a refusal (a file system without it) changes nothing and is not an
    /// error.
    pub fn after_write(&mut self, file: &File, len: u64) {
        let end = len - len % ALIGN;
        if end < self.started.saturating_add(KEEP) {
            return;
        }
        start_write_back(file, self.started, end);
        drop_clean(file, self.dropped, self.started);
        self.dropped = self.started;
        self.started = end;
    }
}

/// `posix_fadvise(DONTNEED)` over `[from, to)`: drops its clean pages. (It
/// would also start the write-back of dirty ones; `start_write_back` did.)
#[cfg(target_os = "linux")]
fn drop_clean(file: &File, from: u64, to: u64) {
    use rustix::fs::{fadvise, Advice};
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        let _ = fadvise(file, from, Some(len), Advice::DontNeed);
    }
}

/// Starts writing `[from, to)` to disk, without waiting and without dropping a
/// page (a `DONTNEED` would drop the pages of it the kernel has written back
/// already: the last bytes, which are to stay cached). rustix has no
/// `sync_file_range`, hence libc. Never with `SYNC_FILE_RANGE_WAIT_*`: waiting
/// clears the file's record of a failed write-back, and the result here is
/// ignored, so the sink's fsync would no longer report it.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_write_back(file: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(n)) = (i64::try_from(from), i64::try_from(to.saturating_sub(from))) else {
        return;
    };
    if n == 0 {
        return; // 0 would mean "to the end of the file"
    }
    // SAFETY: a plain system call on a descriptor `file` keeps open; no memory
    // is passed. Its result is advice too: ignored.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
}

// Elsewhere (no `sync_file_range`, and not every system has `posix_fadvise`),
// written pages are left to the kernel.
#[cfg(not(target_os = "linux"))]
fn drop_clean(_: &File, _: u64, _: u64) {}
#[cfg(not(target_os = "linux"))]
fn start_write_back(_: &File, _: u64, _: u64) {}
