//! Files of the group already read to their end, recognised again after they are
//! renamed, compressed or copied.

use std::collections::VecDeque;

use super::identity::Cand;
use super::position::{FileId, Position};

/// A group keeps at most this many finished files in mind (a group has far fewer).
const MAX_DONE: usize = 256;

/// Size recorded for a compressed file marked read without reading it (on resume):
/// "to its end", whatever its decompressed size.
pub(crate) const WHOLE: u64 = u64::MAX;

#[derive(Debug, Clone)]
struct Done {
    id: FileId,
    /// Bytes read (decompressed) when it was finished.
    size: u64,
    /// Read only up to `size`, not to its end: the content was truncated away under
    /// us and its copy (plain or compressed) is to be read from `size` on.
    partial: bool,
}

#[derive(Debug, Default)]
pub(crate) struct DoneSet {
    entries: VecDeque<Done>,
}

impl DoneSet {
    /// Records `id` as read up to `size`. Entries are told apart by whole identity,
    /// not inode alone: a freed inode is soon reused by a new file, and the old
    /// file's compressed copy must still be recognised as read.
    pub fn insert(&mut self, id: FileId, size: u64) {
        self.push(Done {
            id,
            size,
            partial: false,
        });
    }

    /// Records that the content `id` fingerprints (a file truncated by a
    /// copytruncate) was delivered up to the line at `offset`: its copy, wherever and
    /// however compressed a later scan finds it, is read from there — even if the
    /// copy could not be opened right away (renamed by the next rotation meanwhile).
    pub fn read_up_to(&mut self, id: FileId, offset: u64) {
        self.push(Done {
            id,
            size: offset,
            partial: true,
        });
    }

    fn push(&mut self, done: Done) {
        self.entries.retain(|d| d.id != done.id);
        if self.entries.len() == MAX_DONE {
            self.entries.pop_front();
        }
        self.entries.push_back(done);
    }

    /// The entry for `c`. An entry fingerprinted over zero bytes (an empty file)
    /// matches by inode alone, so not a compressed file with content: a freed inode
    /// is soon reused (a plain file that grew since is read from where we stopped).
    fn find(&self, c: &Cand) -> Option<&Done> {
        self.entries.iter().rev().find(|d| {
            let by_inode = d.id.fingerprint_len > 0 || !c.gzip || c.head.is_empty();
            (by_inode && c.strong(&d.id)) || c.same_content(&d.id)
        })
    }

    /// Whether `c`, a file that cannot be opened (its content unknown), is one
    /// finished: same inode, and as long as what was read of it. A freed inode is
    /// soon reused, and a new file on it must not be dropped as read; a compressed
    /// file's size cannot be compared (it was read decompressed), so its inode
    /// decides.
    pub fn has_unopened(&self, c: &Cand) -> bool {
        self.entries.iter().any(|d| {
            d.id.dev == c.id.dev
                && d.id.ino == c.id.ino
                && (c.gzip || d.size == WHOLE || d.size == c.size)
        })
    }

    /// `None` if `c` is already read to its end; otherwise the offset to read it
    /// from: 0 for a file never read, or where we stopped for a finished plain file
    /// that has grown since (a late write into a rotated file is read, not lost).
    ///
    /// A compressed file is recognised by content alone (compression gives it a new
    /// inode); a copy of a finished file (same first bytes, other inode) counts as
    /// the same content too.
    ///
    /// Content read only partly (see [`DoneSet::read_up_to`]) continues where it
    /// stopped, also once compressed (decompressed offset; its size is unknown).
    pub fn state(&self, c: &Cand) -> Option<u64> {
        match self.find(c) {
            None => Some(0),
            Some(d) if d.partial && c.gzip => Some(d.size),
            Some(d) if !c.gzip && d.size != WHOLE && c.size > d.size => Some(d.size),
            Some(_) => None,
        }
    }

    /// A position at the end of the newest existing file already read (not empty),
    /// or `None` if there is none: then every existing file is unread and a restart
    /// must begin with the oldest. Used as the group's position while no line of
    /// the current file has been delivered.
    pub fn anchor(&self, scan: &[Cand]) -> Option<Position> {
        scan.iter().rev().find_map(|c| {
            let d = self.find(c)?;
            (d.size > 0).then(|| Position {
                file: d.id.clone(),
                path: c.path.clone(),
                offset: d.size,
                gzip: c.gzip,
            })
        })
    }
}
