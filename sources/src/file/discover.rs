//! Finding file groups: a live file (matched by an `include` glob) plus its rotated
//! siblings (`NAME.1`, `NAME.2.gz`, …) next to it, oldest first.
//!
//! With [`AllowedRoots`], a matched path or sibling whose real path (symlinks
//! resolved) is outside every root is left out and reported in the result's
//! `outside` list; the caller warns about it. (Files are checked again when they
//! are opened: see [`crate::file::roots`].)
//!
//! Nothing is left out silently: besides `outside`, a [`Discovered`] lists the
//! paths that are another way to a file already found (same device and inode),
//! matched paths that are not regular files (FIFOs, devices, sockets: never
//! opened), folders that could not be listed and directory links that lead back
//! to their own ancestor ([`crate::file::walk`]); the caller warns and counts.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::looked::Looked;
use super::roots::{AllowedRoots, Outside};
use super::walk::{walk_glob, walk_glob_and_rotated, WalkLoop, Walked};

/// One rotated sibling of a live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedFile {
    pub path: PathBuf,
    /// The rotation number: `NAME.3.gz` is 3. Higher is older.
    pub number: u32,
    pub gzip: bool,
}

/// A live file and its rotated siblings; the unit that has one watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGroup {
    pub live: PathBuf,
    /// Oldest first (highest rotation number first).
    pub rotated: Vec<RotatedFile>,
}

impl FileGroup {
    /// Every file of the group in reading order: rotated oldest first, then the live file.
    pub fn files_in_order(&self) -> impl Iterator<Item = (&Path, bool)> {
        self.rotated
            .iter()
            .map(|r| (r.path.as_path(), r.gzip))
            .chain(std::iter::once((self.live.as_path(), false)))
    }
}

#[derive(Debug, Error)]
pub enum DiscoverError {
    #[error("include glob {glob:?} is not a valid pattern: {source}")]
    BadGlob {
        glob: String,
        source: glob::PatternError,
    },
    #[error("exclude glob {glob:?} is not a valid pattern: {source}")]
    BadExclude {
        glob: String,
        source: glob::PatternError,
    },
    #[error("archive glob {glob:?} is not a valid pattern: {source}")]
    BadArchive {
        glob: String,
        source: glob::PatternError,
    },
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Sorted by live path.
    pub groups: Vec<FileGroup>,
    /// Matched paths and rotated siblings left out because their real path is
    /// outside the allowed roots; sorted by path, each once.
    pub outside: Vec<Outside>,
    /// Groups left out because one of their files is a file of another group
    /// (same device and inode: a directory link, `a/../a`, a hard link).
    pub duplicates: Vec<Duplicate>,
    /// Matched paths (or rotated siblings) that are not regular files, with what
    /// they are ("a FIFO", "a kernel file (in /proc)"): never opened (a FIFO would
    /// block the reader; a kernel file is endless or changing, see
    /// [`super::kernel_fs`]).
    pub not_regular: Vec<(PathBuf, &'static str)>,
    /// Folders the globs could not list, with the error.
    pub unlistable: Vec<(PathBuf, String)>,
    /// Directory links leading back to their own ancestor: not followed.
    pub loops: Vec<WalkLoop>,
    /// Groups whose files were looked at (rotated siblings listed, inodes
    /// compared): [`discover_new`] skips the groups already known.
    pub examined: usize,
}

/// A group left out as another path to the files of a group already found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The live path left out.
    pub path: PathBuf,
    /// The live path of the group that reads its files.
    pub same_as: PathBuf,
}

impl Discovered {
    fn note_walk(&mut self, w: &mut Walked) {
        self.unlistable.append(&mut w.unlistable);
        self.loops.append(&mut w.loops);
    }
}

/// What a matched path is (links followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    /// Gone since it was listed, or a dangling link: nothing to read.
    Missing,
    Folder,
    /// A FIFO, device or socket, with what it is.
    Special(&'static str),
}

fn kind(path: &Path, looked: &mut Looked) -> Kind {
    let Some(m) = looked.stat(path) else {
        return Kind::Missing;
    };
    let t = m.file_type;
    if t.is_file() {
        match looked.kernel_fs(path, m.dev) {
            Some(what) => Kind::Special(what),
            None => Kind::Regular,
        }
    } else if t.is_dir() {
        Kind::Folder
    } else if t.is_fifo() {
        Kind::Special("a FIFO (named pipe)")
    } else if t.is_socket() {
        Kind::Special("a socket")
    } else if t.is_char_device() {
        Kind::Special("a character device")
    } else if t.is_block_device() {
        Kind::Special("a block device")
    } else {
        Kind::Special("not a regular file")
    }
}

/// What a matched path that is not a regular file is ("a FIFO (named pipe)", "a
/// folder"), or `None` for a regular file or a path that does not exist (any
/// more). Links are followed.
pub fn not_regular(path: &Path) -> Option<&'static str> {
    match kind(path, &mut Looked::default()) {
        Kind::Regular | Kind::Missing => None,
        Kind::Folder => Some("a folder"),
        Kind::Special(what) => Some(what),
    }
}

/// What [`discover_archive`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveFiles {
    /// Sorted by path.
    pub files: Vec<PathBuf>,
    /// Matched paths left out because their real path is outside the allowed
    /// roots; sorted by path, each once.
    pub outside: Vec<Outside>,
}

/// Expands `include` globs (minus `exclude`), and finds each live file's rotated siblings.
///
/// Groups come back sorted by live path, so every worker and every run numbers them
/// the same way. A path that is itself a rotated sibling of another matched path
/// (`access.log.1` when the glob is `access.log*`) is not a live file of its own: it is
/// read once, as part of its group.
///
/// A matched file or sibling whose real path is outside `roots` is left out (and
/// listed in [`Discovered::outside`]). A group is still found through a sibling
/// inside the roots when its live path leads outside: the tailer refuses to open
/// that one.
///
/// One file reached by several paths (a directory link such as `current ->
/// releases/42`, `a/../a`, a hard link) is read once: groups are compared by the
/// (device, inode) of their files, and of groups sharing a file the one whose
/// live path is its real path (no link on the way) is kept, else the first in
/// sorted order; the others are listed in [`Discovered::duplicates`].
/// A folder that cannot be listed, a directory link back to an ancestor, and a
/// matched path that is not a regular file are listed too (see [`Discovered`]).
pub fn discover(
    include: &[String],
    exclude: &[String],
    roots: &AllowedRoots,
) -> Result<Discovered, DiscoverError> {
    discover_preferring(include, exclude, roots, &HashSet::new())
}

/// [`discover`], but of groups sharing a file, one whose live path is in `known`
/// (a group already being read) is kept before any other: a new path to a file
/// already read must not become a group of its own.
pub fn discover_preferring(
    include: &[String],
    exclude: &[String],
    roots: &AllowedRoots,
    known: &HashSet<PathBuf>,
) -> Result<Discovered, DiscoverError> {
    discover_inner(include, exclude, roots, known, &HashSet::new())
}

/// [`discover`], but only the groups whose live path is not in `known` (the
/// groups already being read): their files are not looked at again, so a
/// discovery costs the glob walk plus what is new. Whether a new group is
/// another path to a known group's file is for the caller to tell (the
/// engine's claim table); new groups are compared with each other here.
pub fn discover_new(
    include: &[String],
    exclude: &[String],
    roots: &AllowedRoots,
    known: &HashSet<PathBuf>,
) -> Result<Discovered, DiscoverError> {
    discover_inner(include, exclude, roots, &HashSet::new(), known)
}

fn discover_inner(
    include: &[String],
    exclude: &[String],
    roots: &AllowedRoots,
    known: &HashSet<PathBuf>,
    skip: &HashSet<PathBuf>,
) -> Result<Discovered, DiscoverError> {
    let excludes = compile_excludes(exclude)?;
    let mut found = Discovered::default();
    let mut outside = Vec::new();
    let mut live = Vec::new();
    // Each path stat'ed once, each device statfs'ed once, for the whole pass.
    let mut looked = Looked::default();
    // Every rotated name the walks saw, by the live path it belongs to: a
    // group's siblings are taken from here rather than by listing its folder
    // once more (see `siblings_among`).
    let mut rotated_names: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
    for g in include {
        let bad = |source| DiscoverError::BadGlob {
            glob: g.clone(),
            source,
        };
        let pattern = glob::Pattern::new(g).map_err(bad)?;
        // One walk for the live files and the rotated names (`{g}.*`).
        let (mut walked, rotated) = walk_glob_and_rotated(g).map_err(bad)?;
        found.note_walk(&mut walked);
        for p in walked.paths {
            if skip.contains(&p) || excludes.iter().any(|e| e.matches_path(&p)) {
                continue;
            }
            match kind(&p, &mut looked) {
                Kind::Regular if allowed(roots, &p, &mut outside) => live.push(p),
                // A folder matched by a wildcard is not worth a word.
                Kind::Regular | Kind::Missing | Kind::Folder => {}
                Kind::Special(what) => found.not_regular.push((p, what)),
            }
        }
        // A group whose live file is missing right now — between a rotation's
        // rename and create, or a host whose current log was removed — still has
        // rotated siblings to read. Missing it would make it "new" a moment later.
        for p in rotated {
            if let Some((base, _, _)) = split_rotated(&p) {
                rotated_names
                    .entry(base.clone())
                    .or_default()
                    .push(p.clone());
                if skip.contains(&base)
                    || !pattern.matches_path(&base)
                    || excludes.iter().any(|e| e.matches_path(&base))
                {
                    continue;
                }
                match kind(&p, &mut looked) {
                    Kind::Regular if allowed(roots, &p, &mut outside) => live.push(base),
                    Kind::Regular | Kind::Missing | Kind::Folder => {}
                    Kind::Special(what) => found.not_regular.push((p, what)),
                }
            }
        }
    }
    live.sort();
    live.dedup();
    let all: std::collections::HashSet<PathBuf> = live.iter().cloned().collect();
    let mut groups = Vec::new();
    for p in &live {
        if let Some((base, _, _)) = split_rotated(p) {
            // A sibling of a known group is part of it.
            if all.contains(&base) || skip.contains(&base) {
                continue;
            }
        }
        found.examined += 1;
        let names = rotated_names.get(p).map_or(&[][..], Vec::as_slice);
        groups.push(FileGroup {
            live: p.clone(),
            rotated: siblings_among(names, &mut looked, |path| {
                roots.is_any() || allowed(roots, path, &mut outside)
            }),
        });
    }
    let (groups, duplicates) = dedup_by_inode(groups, known, &mut looked);
    found.groups = groups;
    found.duplicates = duplicates;
    found.outside = sorted(outside);
    found.not_regular.sort();
    found.not_regular.dedup();
    found.unlistable.sort();
    found.unlistable.dedup();
    found.loops.sort_by(|a, b| a.path.cmp(&b.path));
    found.loops.dedup();
    Ok(found)
}

/// Of groups that share a file (same device and inode, live or rotated), keeps
/// the first: those in `known` first, then in sorted order. `groups` is sorted by
/// live path, and so is what is kept.
fn dedup_by_inode(
    groups: Vec<FileGroup>,
    known: &HashSet<PathBuf>,
    looked: &mut Looked,
) -> (Vec<FileGroup>, Vec<Duplicate>) {
    // Siblings too: a link may lead to another group's rotated file, and while a
    // live file is missing (mid-rotation) its siblings are all a group has.
    let mut inodes = |g: &FileGroup| -> Vec<(u64, u64)> {
        g.files_in_order()
            .filter_map(|(p, _)| looked.stat(p))
            .map(|m| (m.dev, m.ino))
            .collect()
    };
    let ids: Vec<Vec<(u64, u64)>> = groups.iter().map(&mut inodes).collect();
    let mut paths_to: HashMap<(u64, u64), usize> = HashMap::new();
    for id in ids.iter().flatten() {
        *paths_to.entry(*id).or_default() += 1;
    }
    let shared = |i: usize| ids[i].iter().any(|id| paths_to[id] > 1);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    // Of paths to one file, the real path (no link on the way) names the group:
    // it stays the same when a link such as `current -> releases/42` is flipped,
    // while the link then leads to another file. Stable: sorted order is kept
    // within each class.
    order.sort_by_cached_key(|&i| {
        let g = &groups[i];
        (!known.contains(&g.live), shared(i) && is_alias(&g.live))
    });
    let mut claimed: HashMap<(u64, u64), usize> = HashMap::new();
    let mut same_as: Vec<Option<usize>> = vec![None; groups.len()];
    for i in order {
        if let Some(&first) = ids[i].iter().find_map(|id| claimed.get(id)) {
            same_as[i] = Some(first);
            continue;
        }
        for id in &ids[i] {
            claimed.insert(*id, i);
        }
    }
    let mut duplicates = Vec::new();
    for (i, first) in same_as.iter().enumerate() {
        if let Some(first) = first {
            duplicates.push(Duplicate {
                path: groups[i].live.clone(),
                same_as: groups[*first].live.clone(),
            });
        }
    }
    let kept = groups
        .into_iter()
        .zip(same_as)
        .filter_map(|(g, dup)| dup.is_none().then_some(g))
        .collect();
    (kept, duplicates)
}

/// Whether `path` is not the real path of what it names: a link on the way, or
/// `..` (a path that cannot be resolved is not preferred either).
fn is_alias(path: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return true;
    };
    match std::env::current_dir() {
        Ok(cwd) => real != cwd.join(path),
        Err(_) => real != path,
    }
}

/// Whether `path` is inside `roots`; if not, it is added to `outside`.
fn allowed(roots: &AllowedRoots, path: &Path, outside: &mut Vec<Outside>) -> bool {
    match roots.outside(path) {
        None => true,
        Some(o) => {
            outside.push(o);
            false
        }
    }
}

fn sorted(mut outside: Vec<Outside>) -> Vec<Outside> {
    outside.sort_by(|a, b| a.path.cmp(&b.path));
    outside.dedup_by(|a, b| a.path == b.path);
    outside
}

/// Every regular file (symlinks followed) that an `archive` glob matches and no
/// `exclude` glob does (matched against the full path), sorted by path.
///
/// A file is listed once even when globs match it under several paths (a symlink
/// and its target, `a/../a/x`): paths with the same (device, inode) are one file,
/// listed under the first path found (globs in order, each glob's matches in
/// sorted order). Unlike [`discover`], nothing is grouped: each archived file
/// stands alone, and rotated names (`NAME.3.gz`) are listed like any other.
/// Unreadable directories are skipped, and a file that vanishes during the scan
/// is left out, as is (listed in [`ArchiveFiles::outside`]) one whose real path
/// is outside `roots`.
pub fn discover_archive(
    archive: &[String],
    exclude: &[String],
    roots: &AllowedRoots,
) -> Result<ArchiveFiles, DiscoverError> {
    let excludes = compile_excludes(exclude)?;
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    let mut outside = Vec::new();
    for g in archive {
        let walked = walk_glob(g).map_err(|source| DiscoverError::BadArchive {
            glob: g.clone(),
            source,
        })?;
        for p in walked.paths {
            if excludes.iter().any(|e| e.matches_path(&p)) {
                continue;
            }
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            if m.is_file() && allowed(roots, &p, &mut outside) && seen.insert((m.dev(), m.ino())) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(ArchiveFiles {
        files: found,
        outside: sorted(outside),
    })
}

fn compile_excludes(exclude: &[String]) -> Result<Vec<glob::Pattern>, DiscoverError> {
    exclude
        .iter()
        .map(|g| {
            glob::Pattern::new(g).map_err(|source| DiscoverError::BadExclude {
                glob: g.clone(),
                source,
            })
        })
        .collect()
}

/// `dir/NAME.3.gz` → (`dir/NAME`, 3, true); `dir/NAME.1` → (`dir/NAME`, 1, false).
pub fn split_rotated(path: &Path) -> Option<(PathBuf, u32, bool)> {
    let name = path.file_name()?.to_str()?;
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (name, false),
    };
    let dot = stem.rfind('.')?;
    let digits = &stem[dot + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || dot == 0 {
        return None;
    }
    let number: u32 = digits.parse().ok()?;
    Some((path.with_file_name(&stem[..dot]), number, gzip))
}

/// Rotated siblings of `live`, oldest (highest number) first. When both `NAME.2` and
/// `NAME.2.gz` exist (a compressor was interrupted), the plain one is complete and wins.
pub fn rotated_siblings(live: &Path) -> Vec<RotatedFile> {
    siblings(live, |_| true).unwrap_or_default()
}

/// [`rotated_siblings`], or why the folder could not be listed (a folder that
/// does not exist has no siblings: not an error).
pub fn rotated_siblings_listed(live: &Path) -> std::io::Result<Vec<RotatedFile>> {
    siblings(live, |_| true)
}

/// [`rotated_siblings`] inside `roots`: a sibling whose real path is outside is
/// left out (before choosing between `NAME.2` and `NAME.2.gz`) and added to
/// `outside`.
pub fn rotated_siblings_within(
    live: &Path,
    roots: &AllowedRoots,
    outside: &mut Vec<Outside>,
) -> Vec<RotatedFile> {
    if roots.is_any() {
        return rotated_siblings(live);
    }
    siblings(live, |p| allowed(roots, p, outside)).unwrap_or_default()
}

/// The rotated siblings among `names` (paths a walk of `{glob}.*` found, each
/// a rotated name of one live file: `split_rotated` gives it as their base), as
/// [`siblings`] takes them from a listing of the folder: regular files that
/// `keep` accepts, oldest first, the plain one of `NAME.2` and `NAME.2.gz`.
/// Every sibling of a live file a glob matched is among them: its name is the
/// live file's with `.N` or `.N.gz` appended, which `{glob}.*` matches in the
/// same folder.
fn siblings_among(
    names: &[PathBuf],
    looked: &mut Looked,
    mut keep: impl FnMut(&Path) -> bool,
) -> Vec<RotatedFile> {
    let mut found: Vec<RotatedFile> = Vec::new();
    for path in names {
        if let Some((_, number, gzip)) = split_rotated(path) {
            let is_file = looked.stat(path).is_some_and(|s| s.file_type.is_file());
            if is_file && keep(path) {
                found.push(RotatedFile {
                    path: path.clone(),
                    number,
                    gzip,
                });
            }
        }
    }
    // Two globs may have walked the same folder: a name once.
    found.sort_by(|a, b| {
        b.number
            .cmp(&a.number)
            .then(a.gzip.cmp(&b.gzip))
            .then(a.path.cmp(&b.path))
    });
    found.dedup_by(|later, earlier| later.path == earlier.path);
    found.dedup_by(|later, earlier| later.number == earlier.number);
    found
}

fn siblings(live: &Path, mut keep: impl FnMut(&Path) -> bool) -> std::io::Result<Vec<RotatedFile>> {
    let Some(dir) = live.parent() else {
        return Ok(Vec::new());
    };
    let names = match super::looked::names_in(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<RotatedFile> = Vec::new();
    for name in names {
        let path = dir.join(name);
        if let Some((base, number, gzip)) = split_rotated(&path) {
            if base == live && path.is_file() && keep(&path) {
                found.push(RotatedFile { path, number, gzip });
            }
        }
    }
    found.sort_by(|a, b| b.number.cmp(&a.number).then(a.gzip.cmp(&b.gzip)));
    found.dedup_by(|later, earlier| later.number == earlier.number);
    Ok(found)
}

#[cfg(test)]
mod tests;
