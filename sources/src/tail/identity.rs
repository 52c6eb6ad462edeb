//! File identity: fingerprints of a file's first bytes, and the files of a group as
//! one directory scan sees them.
//!
//! The fingerprint is FNV-1a (64-bit) over the first `fingerprint_len` bytes
//! (decompressed for gzip). It is stored in checkpoints, so its definition must never
//! change.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;

use super::position::FileId;
use super::stamp;
use crate::file::discover::{rotated_siblings_listed, RotatedFile};
use crate::file::roots::{outside_error, AllowedRoots, Outside};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A running fingerprint, for hashing a file's first bytes as they are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FpHasher(u64);

impl FpHasher {
    pub fn new() -> FpHasher {
        FpHasher(FNV_OFFSET)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The fingerprint of `bytes` (a file's first bytes).
pub(crate) fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = FpHasher::new();
    h.update(bytes);
    h.finish()
}

/// The identity of a file whose first bytes are `head` (fingerprinting at most
/// `fp_bytes` of them).
pub(crate) fn file_id(dev: u64, ino: u64, head: &[u8], fp_bytes: usize) -> FileId {
    let n = head.len().min(fp_bytes);
    FileId {
        dev,
        ino,
        fingerprint: fingerprint(&head[..n]),
        fingerprint_len: n as u32,
    }
}

/// Whether `head` starts with the bytes `id` fingerprints.
pub(crate) fn prefix_matches(head: &[u8], id: &FileId) -> bool {
    let n = id.fingerprint_len as usize;
    let Some(head) = head.get(..n) else {
        return false;
    };
    verified::matches(head, id.fingerprint, || fingerprint(head))
}

mod verified;

/// Reads a plain file's first `len` bytes into `out` (positioned reads: the file's
/// own offset is untouched).
pub(crate) fn read_head_file(file: &File, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    out.resize(len, 0);
    let mut got = 0;
    while got < len {
        match file.read_at(&mut out[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                out.truncate(got);
                return Err(e);
            }
        }
    }
    out.truncate(got);
    Ok(())
}

/// The first `len` (decompressed) bytes of the open file `f`. A damaged gzip stream
/// yields what could be decompressed before the damage.
fn read_head_of(f: File, gzip: bool, len: usize) -> io::Result<Vec<u8>> {
    if !gzip {
        let mut out = Vec::new();
        read_head_file(&f, len, &mut out)?;
        return Ok(out);
    }
    let mut dec = MultiGzDecoder::new(BufReader::new(f));
    let mut out = vec![0; len];
    let mut got = 0;
    while got < len {
        match dec.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    out.truncate(got);
    Ok(out)
}

/// The metadata (device, inode, birth time) and first `len` (decompressed)
/// bytes of the open file `f`, both from it and from one `fstat`: what a
/// process-wide claim on a file is checked against. An error if it is not a
/// regular file or cannot be read.
pub fn identify(f: File, gzip: bool, len: usize) -> io::Result<(fs::Metadata, Vec<u8>)> {
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let head = read_head_of(f, gzip, len)?;
    Ok((m, head))
}

/// Whether `head` (a file's first bytes) starts with the bytes `id` fingerprints.
pub fn starts_like(head: &[u8], id: &FileId) -> bool {
    prefix_matches(head, id)
}

/// The identity of a file whose first bytes are `head`, fingerprinted over at
/// most `fp_bytes` of them.
pub fn id_of(dev: u64, ino: u64, head: &[u8], fp_bytes: usize) -> FileId {
    file_id(dev, ino, head, fp_bytes)
}

/// One file of the group, as of one scan.
#[derive(Debug, Clone)]
pub(crate) struct Cand {
    pub path: PathBuf,
    pub gzip: bool,
    /// The file at the live path (not a rotated sibling).
    pub live: bool,
    /// On-disk size (compressed size for gzip).
    pub size: u64,
    /// The first bytes (decompressed), up to the scanner's head length; empty if
    /// unreadable.
    pub head: Arc<[u8]>,
    /// Identity over `min(fingerprint_bytes, head)`.
    pub id: FileId,
    /// Why it could not be opened (permissions, too many open files, an I/O
    /// error). Its head is then empty: it is known by its inode alone.
    pub unreadable: Option<Arc<io::Error>>,
    /// The clock before the scan that listed it began (see `tail/stamp.rs`): a
    /// file last changed well before it was not changed after that scan. The
    /// epoch when the scan fell back on an older listing (one failed).
    pub listed_from: SystemTime,
}

impl Cand {
    pub fn is_inode(&self, dev: u64, ino: u64) -> bool {
        self.id.dev == dev && self.id.ino == ino
    }

    /// The same file: same inode, and it still starts with the fingerprinted bytes.
    pub fn strong(&self, id: &FileId) -> bool {
        self.is_inode(id.dev, id.ino) && prefix_matches(&self.head, id)
    }

    /// The same content under another inode (a compressed or copied file). A file
    /// fingerprinted over zero bytes has no content to recognise.
    pub fn same_content(&self, id: &FileId) -> bool {
        id.fingerprint_len > 0 && prefix_matches(&self.head, id)
    }
}

/// How many times [`Scanner::scan`] looks again for two scans in a row that agree.
const SETTLE_TRIES: u32 = 8;

/// At most this many files refused as outside the allowed roots are remembered (so
/// that each is reported once, not at every scan).
const MAX_REFUSED: usize = 1024;

struct Cached {
    size: u64,
    mtime: (i64, i64),
    head: Arc<[u8]>,
}

/// Lists a group's files (rotated siblings oldest first, then the live file) with
/// their identities. Heads are cached per inode while size and mtime are unchanged,
/// so a repeated scan costs a directory listing and a `stat` per file.
///
/// With allowed roots, a file is listed only once it was opened through
/// [`AllowedRoots::open`] (its real path inside a root); only such files' heads are
/// cached, so a cached inode is one that was checked. A file refused is left out of
/// the scan, never read, and queued once for [`Scanner::take_refused`].
pub(crate) struct Scanner {
    live: PathBuf,
    fp_bytes: usize,
    head_len: usize,
    cache: HashMap<(u64, u64), Cached>,
    roots: AllowedRoots,
    /// Files refused so far (path, real path): each is reported once.
    refused_seen: HashSet<(PathBuf, PathBuf)>,
    /// Refused files not reported yet.
    refused: Vec<Outside>,
    /// The last listing of the folder that succeeded: used while it cannot be
    /// listed (too many open files), so that no sibling seems gone meanwhile.
    last_listing: Vec<RotatedFile>,
    /// Why the folder could not be listed at the last scan, not reported yet.
    list_error: Option<io::Error>,
    /// A listing of the folder has succeeded (`last_listing` is real).
    listed_once: bool,
    /// Test hook: runs between listing the directory and looking at the files.
    #[cfg(test)]
    pub(crate) list_hook: Option<Box<dyn FnMut() + Send>>,
    /// Test hook: an error to fail the open of a path with (root reads any file,
    /// so permissions alone cannot make one unreadable in a test run as root).
    #[cfg(test)]
    pub(crate) fail_open: Option<FailOpen>,
}

/// See [`Scanner::fail_open`].
#[cfg(test)]
pub(crate) type FailOpen = Box<dyn FnMut(&std::path::Path) -> Option<io::Error> + Send>;

impl Scanner {
    pub fn new(live: PathBuf, fp_bytes: usize, head_len: usize) -> Scanner {
        Scanner {
            live,
            fp_bytes,
            head_len: head_len.max(fp_bytes),
            cache: HashMap::new(),
            roots: AllowedRoots::any(),
            refused_seen: HashSet::new(),
            refused: Vec::new(),
            last_listing: Vec::new(),
            list_error: None,
            listed_once: false,
            #[cfg(test)]
            list_hook: None,
            #[cfg(test)]
            fail_open: None,
        }
    }

    /// Opens `path` for reading inside the allowed roots (every open of the
    /// group's files goes through here).
    pub fn open(&mut self, path: &std::path::Path) -> io::Result<File> {
        #[cfg(test)]
        if let Some(e) = self.fail_open.as_mut().and_then(|f| f(path)) {
            return Err(e);
        }
        self.roots.open(path)
    }

    /// Restricts the files read to `roots` (see [`AllowedRoots`]).
    pub fn set_roots(&mut self, roots: AllowedRoots) {
        self.roots = roots;
        self.cache.clear();
    }

    pub fn roots(&self) -> &AllowedRoots {
        &self.roots
    }

    /// Whether [`Scanner::take_refused`] has anything.
    pub fn has_refused(&self) -> bool {
        !self.refused.is_empty()
    }

    /// Files refused as outside the allowed roots since the last call, each
    /// reported once.
    pub fn take_refused(&mut self) -> Vec<Outside> {
        std::mem::take(&mut self.refused)
    }

    /// Whether `path` leads outside the allowed roots now (noted if so).
    fn refuse_path(&mut self, path: &std::path::Path) -> bool {
        match self.roots.outside(path) {
            Some(o) => {
                self.note_refused(&o);
                true
            }
            None => false,
        }
    }

    /// Records a refused file; true if it was not reported before.
    pub fn note_refused(&mut self, o: &Outside) -> bool {
        if self.refused_seen.len() >= MAX_REFUSED {
            self.refused_seen.clear();
        }
        let new = self.refused_seen.insert((o.path.clone(), o.real.clone()));
        if new {
            self.refused.push(o.clone());
        }
        new
    }

    /// The group's files, as two scans in a row see them alike (same names, same
    /// inodes; retried up to [`SETTLE_TRIES`] times, else the last scan).
    ///
    /// One scan is not a snapshot: it lists the directory, then looks at each file
    /// by name, and a rotation renaming siblings meanwhile can make it miss one
    /// (say `NAME.2`, listed, renamed and compressed to `NAME.2.gz` before it was
    /// looked at). Choosing the next file from such a scan opens a newer file
    /// before the missed older one, which is read after it, out of order (torture
    /// seed 9011; likely 1057 and 8020 too: the missed file's lines were late for
    /// the engine and dropped, a whole file lost without a warning). A second
    /// scan after a rotation that overlapped the first sees the files moved (names
    /// or inodes differ), so scans that agree saw no rotation in between.
    pub fn scan(&mut self) -> Vec<Cand> {
        let began = stamp::clock();
        let mut last = self.scan_once(began);
        for _ in 0..SETTLE_TRIES {
            let again = self.scan_once(began);
            let same = again.len() == last.len()
                && again
                    .iter()
                    .zip(&last)
                    .all(|(a, b)| a.path == b.path && a.is_inode(b.id.dev, b.id.ino));
            last = again;
            if same {
                break;
            }
        }
        if self.list_error.is_some() {
            // A listing failed: the scan used an older one, of unknown age.
            for c in &mut last {
                c.listed_from = SystemTime::UNIX_EPOCH;
            }
        }
        last
    }

    /// Why the group's folder could not be listed since the last call (each scan
    /// then used the last listing that succeeded), and whether one ever did.
    pub fn take_list_error(&mut self) -> Option<(io::Error, bool)> {
        self.list_error.take().map(|e| (e, self.listed_once))
    }

    fn list(&mut self) -> Vec<RotatedFile> {
        #[cfg(test)]
        if let Some(e) = self.live.parent().and_then(|dir| {
            let fail = self.fail_open.as_mut()?;
            fail(dir)
        }) {
            self.list_error = Some(e);
            return self.last_listing.clone();
        }
        match rotated_siblings_listed(&self.live) {
            Ok(found) => {
                self.last_listing.clone_from(&found);
                self.listed_once = true;
                found
            }
            Err(e) => {
                self.list_error = Some(e);
                self.last_listing.clone()
            }
        }
    }

    fn scan_once(&mut self, began: SystemTime) -> Vec<Cand> {
        let mut files: Vec<(PathBuf, bool, bool)> = self
            .list()
            .into_iter()
            .map(|r| (r.path, r.gzip, false))
            .collect();
        files.push((self.live.clone(), false, true));
        let mut cache = HashMap::with_capacity(files.len());
        let mut out = Vec::with_capacity(files.len());
        #[cfg(test)]
        if let Some(hook) = self.list_hook.as_mut() {
            hook();
        }
        for (path, gzip, live) in files {
            // `metadata` follows symlinks: a symlinked live path is its target.
            let Ok(mut meta) = fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let cached = self
                .cache
                .remove(&(meta.dev(), meta.ino()))
                .filter(|c| c.size == meta.len() && c.mtime == (meta.mtime(), meta.mtime_nsec()));
            let head = match cached {
                // Checked when it was opened; the path may lead elsewhere since.
                Some(_) if self.refuse_path(&path) => continue,
                Some(c) => c.head,
                None => {
                    // Identity and head from one open file: a rotation renaming files
                    // between a `stat` of the path and a read of it would give one
                    // file's inode the first bytes of another (and cache that).
                    // With allowed roots, only a file whose real path is inside one
                    // is opened (checked again on the open file).
                    let f = match self.open(&path) {
                        Ok(f) => f,
                        Err(e) => {
                            if let Some(o) = outside_error(&e) {
                                let o = o.clone();
                                self.note_refused(&o);
                                continue;
                            }
                            if e.kind() == io::ErrorKind::NotFound {
                                continue; // gone since the listing
                            }
                            // Listed, never cached: the next scan tries again. What
                            // to do with it (wait, or skip and report) is the
                            // tailer's choice.
                            out.push(Cand {
                                id: file_id(meta.dev(), meta.ino(), &[], self.fp_bytes),
                                path,
                                gzip,
                                live,
                                size: meta.len(),
                                head: Arc::from(&[][..]),
                                unreadable: Some(Arc::new(e)),
                                listed_from: began,
                            });
                            continue;
                        }
                    };
                    match f.metadata() {
                        // A kernel file (a link into /proc swapped in after the
                        // scan) is endless or changing: never read (see kernel_fs).
                        Ok(m) if m.is_file() && crate::file::kernel_fs::of_file(&f).is_none() => {
                            meta = m
                        }
                        _ => continue,
                    }
                    read_head_of(f, gzip, self.head_len)
                        .unwrap_or_default()
                        .into()
                }
            };
            let key = (meta.dev(), meta.ino());
            let mtime = (meta.mtime(), meta.mtime_nsec());
            cache.insert(
                key,
                Cached {
                    size: meta.len(),
                    mtime,
                    head: head.clone(),
                },
            );
            out.push(Cand {
                id: file_id(key.0, key.1, &head, self.fp_bytes),
                path,
                gzip,
                live,
                size: meta.len(),
                head,
                unreadable: None,
                listed_from: began,
            });
        }
        self.cache = cache;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_fnv1a() {
        // Checkpoints store fingerprints: these values must never change.
        assert_eq!(fingerprint(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fingerprint(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut h = FpHasher::new();
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), fingerprint(b"hello world"));
    }

    #[test]
    fn prefix_matching() {
        let id = file_id(1, 2, b"abcdef", 4);
        assert_eq!(id.fingerprint_len, 4);
        assert!(prefix_matches(b"abcdXYZ", &id));
        assert!(!prefix_matches(b"abc", &id));
        assert!(!prefix_matches(b"abXd", &id));
    }

    /// The remembered heads change no answer: checked again and again, in any
    /// order, with heads that match, differ, are short or empty, the answer
    /// is the hash's every time.
    #[test]
    fn remembered_heads_answer_as_the_hash_does() {
        use proptest::prelude::*;
        let heads = prop::collection::vec(prop::collection::vec(0u8..3, 0..6), 1..6);
        let checks = prop::collection::vec((0usize..6, 0usize..6, 0u32..6), 1..60);
        proptest!(|(heads in heads, checks in checks)| {
            verified::forget();
            for (h, of, len) in checks {
                let head = &heads[h % heads.len()];
                let id = file_id(1, 2, &heads[of % heads.len()], len as usize);
                let n = id.fingerprint_len as usize;
                let by_hash = head.len() >= n && fingerprint(&head[..n]) == id.fingerprint;
                prop_assert_eq!(prefix_matches(head, &id), by_hash, "{:?} {:?}", head, id);
            }
        });
    }

    /// Review R19b: a file shorter than its fingerprint has a longer head at
    /// each check as it grows; up to 1 MiB each (`fingerprint_bytes`), they
    /// took 4,096 entries × the head per thread.
    #[test]
    fn remembered_heads_stay_within_their_bytes() {
        verified::forget();
        let head = vec![b'x'; 1 << 20];
        for n in (1..=64).map(|i| i * (16 << 10)) {
            let id = file_id(1, 2, &head, n);
            assert!(prefix_matches(&head, &id));
            assert!(
                verified::remembered() <= 8 << 20,
                "{}",
                verified::remembered()
            );
        }
    }

    /// Bytes other than those remembered are hashed, not refused: a head
    /// whose hash is the fingerprint matches whatever was remembered for it.
    #[test]
    fn a_head_other_than_the_remembered_one_is_hashed() {
        verified::forget();
        assert!(verified::matches(b"aaaa", 7, || 7));
        // Another head said to hash to 7 (a collision): the hash decides.
        assert!(verified::matches(b"bbbb", 7, || 7));
        assert!(!verified::matches(b"cccc", 7, || 8));
        // The head remembered last needs no hash.
        assert!(verified::matches(b"bbbb", 7, || unreachable!(
            "hashed again"
        )));
        assert!(!verified::matches(b"aaaa", 7, || 8));
    }
}
