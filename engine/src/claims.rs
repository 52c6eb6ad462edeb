//! One process's claim table: which group reads each file, by (device, inode)
//! and first bytes, whatever path found it.
//!
//! Discovery compares groups found in one pass by inode, but a second path to a
//! file can appear later: a link flip (`current -> releases/42`), a logrotate
//! `dateext` rename (`app.log` → `app.log-20261204`) that the glob also matches,
//! or another worker's discovery run in between. A group claims its files when
//! it is found and the file it reads whenever that changes; a group found later
//! whose file is claimed by another is that group's file under another name, not
//! a new group. The first bytes tell a reused inode from the claimed file; a file
//! whose first bytes cannot be read is never taken for a claimed one (it is
//! unknown, and left to its own group, which reports it).
//!
//! First bytes go stale when a file is truncated and rewritten in place (a
//! copytruncate): its group reads it again from 0, but its claim still holds
//! the old bytes, or none if it was empty when claimed, until the group reads
//! it again. A `dateext` rename in that time made it a new group, read twice
//! (review R17s). So each group also tells the table which inodes it holds
//! open ([`Claims::hold`]): an inode held open cannot be freed and reused, so a
//! path to it names the file that group reads, whatever it starts with now.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tidemark_sources::file::{AllowedRoots, FileGroup};
use tidemark_sources::tail::{id_of, identify, starts_like, FileId, HeldInodes};

/// Claims older than this many files per group are forgotten first: a group
/// reads far fewer files than this before they age out of the glob.
const MAX_PER_OWNER: usize = 512;

#[derive(Debug)]
struct Claim {
    id: FileId,
    /// The inode's birth time, when the filesystem keeps one.
    born: Option<SystemTime>,
    owner: Arc<Path>,
    /// Claim order, to forget a group's oldest claims first.
    seq: u64,
}

#[derive(Debug, Default)]
struct Table {
    by_inode: HashMap<(u64, u64), Claim>,
    per_owner: HashMap<Arc<Path>, usize>,
    seq: u64,
    /// The inodes each group holds open, and the group holding each.
    held: HashMap<Arc<Path>, HeldInodes>,
    held_by: HashMap<(u64, u64), Arc<Path>>,
}

/// Shared by the workers of one process (each process reads its own disks).
#[derive(Debug)]
pub struct Claims {
    table: Mutex<Table>,
    fp_bytes: usize,
}

/// What claiming a group's files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupClaim {
    /// None of its files is another group's: they are now its own.
    Claimed,
    /// A file of it is read by the group with this live path.
    SameAs(PathBuf),
}

impl Claims {
    /// `fp_bytes`: how many first bytes identify a file (the job's tail option).
    pub fn new(fp_bytes: usize) -> Arc<Claims> {
        Arc::new(Claims {
            table: Mutex::new(Table::default()),
            fp_bytes: fp_bytes.max(1),
        })
    }

    /// Claims every file of `g` for it, unless one is already another group's.
    /// Checked and claimed under one lock: two workers finding two paths to a
    /// file at once agree on one owner.
    /// Only files inside `roots` are opened, never blocking (a FIFO swapped in
    /// since discovery), as the tailer opens them.
    pub fn claim_group(&self, g: &FileGroup, roots: &AllowedRoots) -> GroupClaim {
        let files: Vec<Seen> = g
            .files_in_order()
            .filter_map(|(p, gzip)| self.identify(roots, p, gzip))
            .collect();
        let Ok(mut t) = self.table.lock() else {
            return GroupClaim::Claimed;
        };
        for f in &files {
            if let Some(h) = t.held_by.get(&(f.dev, f.ino)) {
                if **h != *g.live {
                    return GroupClaim::SameAs(h.to_path_buf());
                }
            }
            if let Some(c) = t.by_inode.get(&(f.dev, f.ino)) {
                if *c.owner != *g.live && same_file(&f.head, f.born, c) {
                    return GroupClaim::SameAs(c.owner.to_path_buf());
                }
            }
        }
        let owner: Arc<Path> = Arc::from(g.live.as_path());
        for f in files {
            t.insert(id_of(f.dev, f.ino, &f.head, self.fp_bytes), f.born, &owner);
        }
        GroupClaim::Claimed
    }

    /// Records that the group `owner` reads the file `id`, found at `path`
    /// (called when the file a group reads changes). A file another group claimed
    /// that still starts with the bytes it claimed stays theirs: returns that
    /// group then.
    ///
    /// `born` is the file's birth time as the group's own open of it saw it (the
    /// inode of `id`, whatever `path` names now): the claim opens nothing.
    pub fn claim(
        &self,
        id: &FileId,
        path: &Path,
        owner: &Path,
        born: Option<SystemTime>,
        roots: &AllowedRoots,
    ) -> Option<PathBuf> {
        let Ok(mut t) = self.table.lock() else {
            return None;
        };
        if let Some(h) = t.held_by.get(&(id.dev, id.ino)) {
            if **h != *owner {
                return Some(h.to_path_buf());
            }
        }
        if let Some(c) = t.by_inode.get(&(id.dev, id.ino)) {
            if *c.owner != *owner && !born_apart(born, c.born) {
                let theirs = *id == c.id
                    || self.identify(roots, path, is_gzip(path)).is_some_and(|f| {
                        (f.dev, f.ino) == (id.dev, id.ino) && same_file(&f.head, f.born, c)
                    });
                if theirs {
                    return Some(c.owner.to_path_buf());
                }
            }
        }
        let owner: Arc<Path> = Arc::from(owner);
        t.insert(id.clone(), born, &owner);
        None
    }

    /// Records which inodes the group `owner` holds open now (called whenever
    /// that changes: a file opened, closed, parked or set aside). While held,
    /// a path to one of them is that group's file: see the module docs.
    pub fn hold(&self, owner: &Path, now: HeldInodes) {
        let Ok(mut t) = self.table.lock() else {
            return;
        };
        let t = &mut *t;
        let before = t.held.remove(owner).unwrap_or_default();
        for key in before.into_iter().flatten() {
            if t.held_by.get(&key).is_some_and(|h| **h == *owner) {
                t.held_by.remove(&key);
            }
        }
        if now == HeldInodes::default() {
            return;
        }
        let owner: Arc<Path> = Arc::from(owner);
        for key in now.into_iter().flatten() {
            // Two groups holding one inode (two paths found in one discovery):
            // the first keeps it, as its claim does.
            t.held_by.entry(key).or_insert_with(|| owner.clone());
        }
        t.held.insert(owner, now);
    }

    /// The group reading the file at `path` (links followed), if one does and it
    /// is still that file (same first bytes); `None` for a file that cannot be
    /// read (its content is unknown).
    #[cfg(test)]
    pub fn owner_of(&self, path: &Path, gzip: bool, roots: &AllowedRoots) -> Option<PathBuf> {
        let f = self.identify(roots, path, gzip)?;
        let t = self.table.lock().ok()?;
        let c = t.by_inode.get(&(f.dev, f.ino))?;
        same_file(&f.head, f.born, c).then(|| c.owner.to_path_buf())
    }
}

/// A file as opened for a claim: its inode, birth time and first bytes.
struct Seen {
    dev: u64,
    ino: u64,
    born: Option<SystemTime>,
    head: Vec<u8>,
}

/// Whether a file on a claimed inode, born at `born`, whose first bytes are
/// `head`, is the claimed file. Another birth time is another file on the
/// reused inode, whatever it starts with. A file claimed while empty is known
/// by its inode alone, so only an empty file is taken for it: a new file on its
/// freed inode has content.
fn same_file(head: &[u8], born: Option<SystemTime>, claimed: &Claim) -> bool {
    if born_apart(born, claimed.born) {
        return false;
    }
    if claimed.id.fingerprint_len == 0 {
        return head.is_empty();
    }
    starts_like(head, &claimed.id)
}

/// Whether two birth times, both known, say two files.
fn born_apart(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a != b)
}

/// Whether the tailer reads `path` decompressed (a rotated `NAME.N.gz`).
fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

impl Claims {
    fn identify(&self, roots: &AllowedRoots, path: &Path, gzip: bool) -> Option<Seen> {
        let f = roots.open(path).ok()?;
        // One `fstat` for the inode and the birth time.
        let (m, head) = identify(f, gzip, self.fp_bytes).ok()?;
        Some(Seen {
            dev: m.dev(),
            ino: m.ino(),
            born: m.created().ok(),
            head,
        })
    }
}

impl Table {
    fn insert(&mut self, id: FileId, born: Option<SystemTime>, owner: &Arc<Path>) {
        self.seq += 1;
        let claim = Claim {
            id,
            born,
            owner: owner.clone(),
            seq: self.seq,
        };
        let key = (claim.id.dev, claim.id.ino);
        if let Some(old) = self.by_inode.insert(key, claim) {
            self.release(&old.owner);
        }
        let n = self.per_owner.entry(owner.clone()).or_insert(0);
        *n += 1;
        if *n > MAX_PER_OWNER {
            self.forget_oldest(owner);
        }
    }

    fn release(&mut self, owner: &Arc<Path>) {
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
        }
    }

    fn forget_oldest(&mut self, owner: &Arc<Path>) {
        let oldest = self
            .by_inode
            .iter()
            .filter(|(_, c)| c.owner == *owner)
            .min_by_key(|(_, c)| c.seq)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.by_inode.remove(&k);
            self.release(owner);
        }
    }
}

#[cfg(test)]
mod tests;
