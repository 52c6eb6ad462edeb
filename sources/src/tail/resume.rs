//! Where a new tailer starts, decided from a scan alone: the file holding a
//! checkpointed position (found again by identity after the files moved while
//! tidemark was stopped), or the last line start of the live file. The tailer
//! acts on these in `tailer/resume.rs`.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::identity::Cand;
use super::position::Position;
use crate::file::roots::AllowedRoots;

/// How many times a scan that did not find the checkpointed file is repeated.
pub(super) const MISS_RETRIES: u32 = 5;
/// How long after a miss the scan is repeated (time for a rename under way to land).
pub(super) const MISS_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// How a checkpointed position was found.
pub(super) enum Found {
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
pub(super) fn plan(pos: &Position, scan: &[Cand], live: &Path) -> (Option<(usize, u64)>, Found) {
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

/// The offset just after the last `\n` of the file `c` (as of its scan), and
/// whether that falls inside a line longer than `max_line` (no newline in its last
/// `max_line + 1` bytes). Reads only the file the scan saw (same inode, opened
/// inside `roots`); else the end: the open that follows finds it changed.
pub(super) fn last_line_start(roots: &AllowedRoots, c: &Cand, max_line: usize) -> (u64, bool) {
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
