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

use super::roots::{AllowedRoots, Outside};
use super::walk::{walk_glob, WalkLoop, Walked};

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
    /// they are ("a FIFO"): never opened (a FIFO would block the reader).
    pub not_regular: Vec<(PathBuf, &'static str)>,
    /// Folders the globs could not list, with the error.
    pub unlistable: Vec<(PathBuf, String)>,
    /// Directory links leading back to their own ancestor: not followed.
    pub loops: Vec<WalkLoop>,
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

fn kind(path: &Path) -> Kind {
    let Ok(m) = std::fs::metadata(path) else {
        return Kind::Missing;
    };
    let t = m.file_type();
    if t.is_file() {
        Kind::Regular
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
    match kind(path) {
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
/// (device, inode) of their files, and of groups sharing a file only the first in
/// sorted order is kept; the others are listed in [`Discovered::duplicates`].
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
    let excludes = compile_excludes(exclude)?;
    let mut found = Discovered::default();
    let mut outside = Vec::new();
    let mut live = Vec::new();
    for g in include {
        let bad = |source| DiscoverError::BadGlob {
            glob: g.clone(),
            source,
        };
        let pattern = glob::Pattern::new(g).map_err(bad)?;
        let mut walked = walk_glob(g).map_err(bad)?;
        found.note_walk(&mut walked);
        for p in walked.paths {
            if excludes.iter().any(|e| e.matches_path(&p)) {
                continue;
            }
            match kind(&p) {
                Kind::Regular if allowed(roots, &p, &mut outside) => live.push(p),
                // A folder matched by a wildcard is not worth a word.
                Kind::Regular | Kind::Missing | Kind::Folder => {}
                Kind::Special(what) => found.not_regular.push((p, what)),
            }
        }
        // A group whose live file is missing right now — between a rotation's
        // rename and create, or a host whose current log was removed — still has
        // rotated siblings to read. Missing it would make it "new" a moment later.
        let mut walked = walk_glob(&format!("{g}.*")).map_err(bad)?;
        found.note_walk(&mut walked);
        for p in walked.paths {
            if let Some((base, _, _)) = split_rotated(&p) {
                if !pattern.matches_path(&base) || excludes.iter().any(|e| e.matches_path(&base)) {
                    continue;
                }
                match kind(&p) {
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
            if all.contains(&base) {
                continue;
            }
        }
        groups.push(FileGroup {
            live: p.clone(),
            rotated: rotated_siblings_within(p, roots, &mut outside),
        });
    }
    let (groups, duplicates) = dedup_by_inode(groups, known);
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
) -> (Vec<FileGroup>, Vec<Duplicate>) {
    // Siblings too: a link may lead to another group's rotated file, and while a
    // live file is missing (mid-rotation) its siblings are all a group has.
    let inodes = |g: &FileGroup| -> Vec<(u64, u64)> {
        g.files_in_order()
            .filter_map(|(p, _)| std::fs::metadata(p).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect()
    };
    let mut order: Vec<usize> = (0..groups.len()).collect();
    // Stable: within each half, sorted order is kept.
    order.sort_by_key(|&i| !known.contains(&groups[i].live));
    let mut claimed: HashMap<(u64, u64), usize> = HashMap::new();
    let mut same_as: Vec<Option<usize>> = vec![None; groups.len()];
    for i in order {
        let ids = inodes(&groups[i]);
        if let Some(&first) = ids.iter().find_map(|id| claimed.get(id)) {
            same_as[i] = Some(first);
            continue;
        }
        for id in ids {
            claimed.insert(id, i);
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

fn siblings(live: &Path, mut keep: impl FnMut(&Path) -> bool) -> std::io::Result<Vec<RotatedFile>> {
    let Some(dir) = live.parent() else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<RotatedFile> = Vec::new();
    for entry in entries.flatten() {
        let path = dir.join(entry.file_name());
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
mod tests {
    use super::*;

    fn any() -> AllowedRoots {
        AllowedRoots::any()
    }

    #[test]
    fn split_rotated_names() {
        let p = Path::new("/l/access.log.12.gz");
        assert_eq!(
            split_rotated(p),
            Some((PathBuf::from("/l/access.log"), 12, true))
        );
        assert_eq!(
            split_rotated(Path::new("/l/access.log.1")),
            Some((PathBuf::from("/l/access.log"), 1, false))
        );
        assert_eq!(split_rotated(Path::new("/l/access.log")), None);
        assert_eq!(split_rotated(Path::new("/l/access.log.gz")), None);
        assert_eq!(split_rotated(Path::new("/l/.1")), None);
    }

    #[test]
    fn groups_with_siblings_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "a.log",
            "a.log.1",
            "a.log.2.gz",
            "a.log.3.gz",
            "a.log.2",
            "b.log",
        ] {
            std::fs::write(d.path().join(n), b"x\n").unwrap();
        }
        let glob = format!("{}/*.log*", d.path().display());
        let groups = discover(&[glob], &[], &any()).unwrap().groups;
        assert_eq!(groups.len(), 2, "{groups:?}");
        let a = &groups[0];
        assert_eq!(a.live, d.path().join("a.log"));
        let names: Vec<_> = a
            .files_in_order()
            .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["a.log.3.gz", "a.log.2", "a.log.1", "a.log"]);
        assert!(groups[1].rotated.is_empty());
    }

    /// Regression: between a rotation's rename and create the live file is missing;
    /// discovery then skipped the group, and it came back a moment later as a "new"
    /// file whose older lines were all late.
    #[test]
    fn a_group_whose_live_file_is_missing_is_still_found() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("web-1")).unwrap();
        std::fs::write(d.path().join("web-1/access.log.1"), b"x\n").unwrap();
        std::fs::write(d.path().join("web-1/access.log.2.gz"), b"").unwrap();
        std::fs::create_dir_all(d.path().join("web-2")).unwrap();
        std::fs::write(d.path().join("web-2/access.log"), b"x\n").unwrap();
        // Not a sibling of anything the glob matches.
        std::fs::write(d.path().join("web-2/error.log.1"), b"x\n").unwrap();
        let glob = format!("{}/*/access.log", d.path().display());
        let groups = discover(&[glob], &[], &any()).unwrap().groups;
        let lives: Vec<_> = groups.iter().map(|g| g.live.clone()).collect();
        assert_eq!(
            lives,
            [
                d.path().join("web-1/access.log"),
                d.path().join("web-2/access.log")
            ]
        );
        assert_eq!(groups[0].rotated.len(), 2);
    }

    #[test]
    fn exclude_and_bad_glob() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.log"), b"x\n").unwrap();
        std::fs::write(d.path().join("b.log"), b"x\n").unwrap();
        let inc = format!("{}/*.log", d.path().display());
        let exc = format!("{}/b.*", d.path().display());
        let groups = discover(&[inc], &[exc], &any()).unwrap().groups;
        assert_eq!(groups.len(), 1);
        assert!(discover(&["[".into()], &[], &any()).is_err());
    }

    #[test]
    fn archive_files_sorted_deduplicated_and_excluded() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["web-2", "web-1", "web-1/sub"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for n in [
            "web-2/access.log-20260101.gz",
            "web-1/access.log-20260102.gz",
            "web-1/access.log-20260101.gz",
            "web-1/access.log-20260103",
            "web-1/error.log-20260101.gz",
            "web-1/access.log-skip.gz",
        ] {
            std::fs::write(root.join(n), b"x\n").unwrap();
        }
        // A directory that matches the glob is not a file.
        std::fs::create_dir_all(root.join("web-1/access.log-dir")).unwrap();
        // A symlink to a file already matched is the same file; a dangling one is none.
        std::os::unix::fs::symlink(
            root.join("web-2/access.log-20260101.gz"),
            root.join("web-1/sub/access.log-link.gz"),
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("web-1/access.log-dangling"))
            .unwrap();
        let r = root.display();
        let files = discover_archive(
            &[
                format!("{r}/*/access.log-*"),
                // Matches files already matched: each is listed once.
                format!("{r}/web-1/access.log-2026010[12].gz"),
                format!("{r}/web-1/../web-2/*.gz"),
                format!("{r}/web-1/sub/*.gz"),
            ],
            &[format!("{r}/*/*-skip.gz")],
            &any(),
        )
        .unwrap()
        .files;
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "web-1/access.log-20260101.gz",
                "web-1/access.log-20260102.gz",
                "web-1/access.log-20260103",
                "web-2/access.log-20260101.gz",
            ],
            "{files:?}"
        );

        assert!(discover_archive(&[], &[], &any()).unwrap().files.is_empty());
        assert!(discover_archive(&[format!("{r}/nothing/*")], &[], &any())
            .unwrap()
            .files
            .is_empty());
        match discover_archive(&[format!("{r}/a[.gz")], &[], &any()) {
            Err(e @ DiscoverError::BadArchive { .. }) => {
                assert!(e.to_string().starts_with("archive glob \""), "{e}");
                assert!(e.to_string().contains("a[.gz"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            discover_archive(&[format!("{r}/*")], &["[".into()], &any()),
            Err(DiscoverError::BadExclude { .. })
        ));
    }

    /// `BASE/root` (the allowed root) with links leading out of it to `BASE/out`,
    /// and links that stay inside.
    fn escape_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (root, out) = (base.join("root"), base.join("out"));
        for dir in [&root.join("sub"), &out] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for f in [
            root.join("app.log"),
            root.join("app.log.2"),
            root.join("sub/x.log"),
            root.join("sub/real.log"),
            out.join("secret"),
            out.join("passwd"),
            out.join("x.log"),
        ] {
            std::fs::write(f, b"x\n").unwrap();
        }
        // Out of the root: a file, a rotated sibling, a directory.
        symlink(out.join("secret"), root.join("evil.log")).unwrap();
        symlink(out.join("passwd"), root.join("app.log.1")).unwrap();
        symlink(&out, root.join("x")).unwrap();
        // Inside it: a file and a directory reached through links.
        symlink(root.join("sub/real.log"), root.join("ok.log")).unwrap();
        symlink(root.join("sub"), root.join("linked")).unwrap();
        (d, root, out)
    }

    fn names(root: &Path, paths: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
        paths
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn links_out_of_the_allowed_roots_are_not_discovered() {
        let (_d, root, out) = escape_tree();
        let roots = AllowedRoots::new(&[&root]);
        let r = root.display();
        let found = discover(&[format!("{r}/*.log")], &[], &roots).unwrap();
        let lives = names(&root, found.groups.iter().map(|g| g.live.clone()));
        assert_eq!(lives, ["app.log", "ok.log"], "{found:?}");
        // The rotated sibling that leads out is not part of its group.
        let rotated = names(
            &root,
            found.groups[0].rotated.iter().map(|f| f.path.clone()),
        );
        assert_eq!(rotated, ["app.log.2"]);
        let outside: Vec<(String, PathBuf)> = found
            .outside
            .iter()
            .map(|o| {
                (
                    o.path.strip_prefix(&root).unwrap().display().to_string(),
                    o.real.clone(),
                )
            })
            .collect();
        assert_eq!(
            outside,
            [
                ("app.log.1".to_string(), out.join("passwd")),
                ("evil.log".to_string(), out.join("secret"))
            ]
        );

        // A directory link out of the root, matched by a wildcard.
        let found = discover(&[format!("{r}/*/x.log")], &[], &roots).unwrap();
        let lives = names(&root, found.groups.iter().map(|g| g.live.clone()));
        // `linked` leads to `sub`: one file, read once, under the first path.
        assert_eq!(lives, ["linked/x.log"]);
        assert_eq!(found.duplicates.len(), 1, "{found:?}");
        assert_eq!(found.outside.len(), 1, "{found:?}");
        assert_eq!(found.outside[0].path, root.join("x/x.log"));
        assert_eq!(found.outside[0].real, out.join("x.log"));

        // Without roots, everything is found (each file once).
        let all = discover(&[format!("{r}/*.log"), format!("{r}/*/x.log")], &[], &any()).unwrap();
        assert_eq!(all.groups.len(), 5, "{all:?}");
        assert!(all.outside.is_empty());
        assert_eq!(all.groups[0].rotated.len(), 2);
    }

    #[test]
    fn a_group_found_through_its_sibling_keeps_only_siblings_inside() {
        let (_d, root, out) = escape_tree();
        // The live file leads out; its rotated sibling is inside.
        std::os::unix::fs::symlink(out.join("secret"), root.join("gone.log")).unwrap();
        std::fs::write(root.join("gone.log.1"), b"x\n").unwrap();
        let roots = AllowedRoots::new(&[&root]);
        let found = discover(&[format!("{}/gone.log", root.display())], &[], &roots).unwrap();
        assert_eq!(found.groups.len(), 1);
        assert_eq!(found.groups[0].live, root.join("gone.log"));
        assert_eq!(found.groups[0].rotated.len(), 1);
        assert_eq!(found.outside.len(), 1);
        assert_eq!(found.outside[0].path, root.join("gone.log"));
    }

    #[test]
    fn archive_links_out_of_the_allowed_roots_are_not_listed() {
        let (_d, root, out) = escape_tree();
        let roots = AllowedRoots::new(&[&root]);
        let r = root.display();
        let found = discover_archive(
            &[format!("{r}/*.log*"), format!("{r}/*/x.log")],
            &[],
            &roots,
        )
        .unwrap();
        assert_eq!(
            names(&root, found.files),
            ["app.log", "app.log.2", "linked/x.log", "ok.log"]
        );
        let outside: Vec<PathBuf> = found.outside.iter().map(|o| o.real.clone()).collect();
        assert_eq!(
            outside,
            [out.join("passwd"), out.join("secret"), out.join("x.log")]
        );
        let all = discover_archive(&[format!("{r}/*.log*")], &[], &any()).unwrap();
        assert_eq!(all.files.len(), 5);
    }

    /// Regression (issue 10 §3): live discovery deduplicated by path, so one file
    /// reached by several paths was read (and counted) once per path.
    #[test]
    fn one_file_reached_by_several_paths_is_one_group() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let b = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(b.join("releases/42")).unwrap();
        std::fs::write(b.join("releases/42/app.log"), b"x\n").unwrap();
        std::fs::write(b.join("releases/42/app.log.1"), b"y\n").unwrap();
        symlink("releases/42", b.join("current")).unwrap();
        std::fs::create_dir_all(b.join("h")).unwrap();
        std::fs::write(b.join("h/a.log"), b"x\n").unwrap();
        std::fs::hard_link(b.join("h/a.log"), b.join("h/b.log")).unwrap();
        symlink("..", b.join("releases/42/up")).unwrap();
        let r = b.display();
        let found = discover(
            &[
                format!("{r}/*/app.log"),
                format!("{r}/releases/*/app.log"),
                format!("{r}/releases/../releases/42/app.log"),
                format!("{r}/h/*.log"),
                format!("{r}/**/app.log"),
            ],
            &[],
            &any(),
        )
        .unwrap();
        let lives = names(&b, found.groups.iter().map(|g| g.live.clone()));
        assert_eq!(lives, ["current/app.log", "h/a.log"], "{found:?}");
        assert_eq!(found.groups[0].rotated.len(), 1);
        let dups: Vec<(String, String)> = found
            .duplicates
            .iter()
            .map(|d| {
                (
                    d.path.strip_prefix(&b).unwrap().display().to_string(),
                    d.same_as.strip_prefix(&b).unwrap().display().to_string(),
                )
            })
            .collect();
        assert_eq!(
            dups,
            [
                // Through `current`, then up the loop once (then it ends).
                ("current/up/42/app.log".into(), "current/app.log".into()),
                ("h/b.log".into(), "h/a.log".into()),
                (
                    "releases/../releases/42/app.log".into(),
                    "current/app.log".into()
                ),
                ("releases/42/app.log".into(), "current/app.log".into()),
            ]
        );
        // `**` does not go around the loop (`up` leads back to `releases`).
        let loops: Vec<PathBuf> = found.loops.iter().map(|l| l.path.clone()).collect();
        assert_eq!(
            loops,
            [b.join("current/up/42/up"), b.join("releases/42/up")]
        );

        // A group already being read keeps its path even when another sorts first.
        let known = HashSet::from([b.join("releases/42/app.log")]);
        let found = discover_preferring(
            &[format!("{r}/*/app.log"), format!("{r}/releases/*/app.log")],
            &[],
            &any(),
            &known,
        )
        .unwrap();
        let lives = names(&b, found.groups.iter().map(|g| g.live.clone()));
        assert_eq!(lives, ["releases/42/app.log"]);
        assert_eq!(found.duplicates[0].path, b.join("current/app.log"));
    }

    /// Regression (issue 10 §6): a FIFO or device matched by a glob was skipped
    /// without a word. It is listed (the caller warns), and never opened.
    #[test]
    fn a_fifo_matched_by_a_glob_is_listed_not_opened() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::write(b.join("a.log"), b"x\n").unwrap();
        let fifo = b.join("p.log");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::os::unix::fs::symlink("/dev/null", b.join("null.log")).unwrap();
        let found = discover(&[format!("{}/*.log", b.display())], &[], &any()).unwrap();
        assert_eq!(found.groups.len(), 1);
        assert_eq!(
            found.not_regular,
            [
                (b.join("null.log"), "a character device"),
                (fifo, "a FIFO (named pipe)")
            ]
        );
    }
}
