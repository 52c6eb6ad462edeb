//! Allowed roots at read time: a job restricted to some folders (`tidemark cluster
//! --allow-root DIR`) reads a file only when the file's real path — symbolic links
//! resolved — lies inside one of them.
//!
//! `tidemark_jobs::check_roots` checks a job's globs when it is submitted, lexically:
//! it cannot see that `/logs/evil.log` is a link to `/etc/shadow`, that `/logs/x` is
//! a link to `/etc`, or that a rotated sibling `/logs/app.log.1` points elsewhere.
//! [`AllowedRoots`] is the half that makes the roots hold:
//!
//! - discovery leaves out matched paths whose real path is outside
//!   ([`AllowedRoots::outside`]) and reports them;
//! - every open for reading goes through [`AllowedRoots::open`], which checks the
//!   real path before opening and, again, of the file actually opened (on Linux
//!   `/proc/self/fd/N`; elsewhere its canonical path, confirmed to be the same
//!   (device, inode)). A link swapped in after discovery, or between that check and
//!   the open, is still caught, and nothing of such a file is read.
//!
//! Roots are canonicalised once, when an [`AllowedRoots`] is made; a root that does
//! not exist is kept as written, only lexically normalised (`.` and repeated `/`
//! dropped; a root with `..` then matches nothing). Containment is by whole path
//! components: `/var/logs/x` is not inside `/var/log`. With no roots every path is
//! allowed and none of this costs anything: [`AllowedRoots::open`] is `File::open`.
//!
//! Hard links are not symbolic links: a hard link inside a root to a file elsewhere
//! is inside (whoever can make one could copy the file there too).

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::EscapedPath;

/// The folders a job may read from, canonicalised; empty = any path. And the
/// paths it may never read, whatever its roots ([`AllowedRoots::denying`]).
///
/// Cheap to clone (the lists are shared).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedRoots {
    roots: Arc<[PathBuf]>,
    denied: Arc<[PathBuf]>,
}

impl AllowedRoots {
    /// No restriction: every path is allowed.
    pub fn any() -> AllowedRoots {
        AllowedRoots::default()
    }

    /// `roots` canonicalised (symlinks resolved); a root that cannot be (it does not
    /// exist) is lexically normalised instead. An empty list allows any path.
    pub fn new<P: AsRef<Path>>(roots: &[P]) -> AllowedRoots {
        AllowedRoots {
            roots: canonical(roots).into(),
            denied: Arc::new([]),
        }
    }

    /// The roots a job's source reads under: its `allowed_roots`, minus its
    /// `denied_reads`.
    pub fn of_source(source: &tidemark_jobs::Source) -> AllowedRoots {
        AllowedRoots::new(&source.allowed_roots).denying(&source.denied_reads)
    }

    /// These roots, but never a file whose real path is (or lies under) one of
    /// `denied`, whatever the roots: a cluster member's state folder and API token
    /// file, which an `--allow-root` covering them would otherwise hand to any job.
    pub fn denying<P: AsRef<Path>>(self, denied: &[P]) -> AllowedRoots {
        AllowedRoots {
            denied: canonical(denied).into(),
            ..self
        }
    }

    /// Whether every path is allowed (no roots, nothing denied).
    pub fn is_any(&self) -> bool {
        self.roots.is_empty() && self.denied.is_empty()
    }

    /// The canonical roots (empty: any path).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Whether the real (canonical) path `real` lies inside a root, by whole
    /// components, and not in a denied path. Always true without roots or denials.
    pub fn contains(&self, real: &Path) -> bool {
        (self.roots.is_empty() || self.roots.iter().any(|r| real.starts_with(r)))
            && !self.is_denied(real)
    }

    fn is_denied(&self, real: &Path) -> bool {
        self.denied.iter().any(|d| real.starts_with(d))
    }

    /// `Some` when `path` resolves (symlinks followed) to a real path outside every
    /// root. `None` when it is allowed, when there are no roots, and when it cannot
    /// be resolved right now (gone, or a dangling link: there is nothing to read,
    /// and [`AllowedRoots::open`] checks again anyway).
    pub fn outside(&self, path: &Path) -> Option<Outside> {
        if self.is_any() {
            return None;
        }
        let real = fs::canonicalize(path).ok()?;
        (!self.contains(&real)).then(|| self.escape(path, real))
    }

    /// Opens `path` for reading, if it is allowed. With roots, its real path is
    /// checked before the open (so a link to a device or FIFO outside is not even
    /// opened) and the opened file's real path after it (so a link swapped in
    /// between is caught). A file outside every root fails with an error of kind
    /// `PermissionDenied` that [`outside_error`] recognises; a path that changed
    /// while it was being opened, with `NotFound`.
    ///
    /// Never blocks: a FIFO swapped in for a file after it was listed would block
    /// an ordinary open until a writer came; this one returns at once (and the
    /// caller, finding no regular file, leaves it).
    pub fn open(&self, path: &Path) -> io::Result<File> {
        if self.is_any() {
            return open_nonblocking(path);
        }
        if let Some(o) = self.outside(path) {
            return Err(o.into_io());
        }
        let file = open_nonblocking(path)?;
        self.check_file(&file, path)?;
        Ok(file)
    }

    /// Checks an open `file` (opened as `path`): its real path, taken from the open
    /// file itself, must lie inside a root. See [`AllowedRoots::open`] for errors.
    pub fn check_file(&self, file: &File, path: &Path) -> io::Result<()> {
        if self.is_any() {
            return Ok(());
        }
        let real = real_path_of(file, path)?;
        if self.contains(&real) {
            Ok(())
        } else {
            Err(self.escape(path, real).into_io())
        }
    }

    fn escape(&self, path: &Path, real: PathBuf) -> Outside {
        Outside {
            path: path.to_path_buf(),
            denied: self.is_denied(&real),
            real,
            roots: self.roots.clone(),
        }
    }
}

/// A file that was not read because its real path is outside the allowed roots.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Outside {
    /// The path as matched or listed.
    pub path: PathBuf,
    /// What it resolves to (symlinks followed).
    pub real: PathBuf,
    /// The canonical roots.
    pub roots: Arc<[PathBuf]>,
    /// It is a denied path (the member's own state), not merely outside the roots.
    pub denied: bool,
}

impl Outside {
    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, self)
    }
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.denied {
            return write!(
                f,
                "{}: not read: it resolves to {}, the cluster member's own state (its state \
                 folder or API token file), which no job may read whatever its roots",
                EscapedPath(&self.path),
                EscapedPath(&self.real)
            );
        }
        let roots = self
            .roots
            .iter()
            .map(|r| EscapedPath(r).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        write!(
            f,
            "{}: not read: it resolves to {}, which is outside the roots this job may read \
             (--allow-root {roots}); a symbolic link may not lead out of an allowed root",
            EscapedPath(&self.path),
            EscapedPath(&self.real)
        )
    }
}

impl std::error::Error for Outside {}

/// The [`Outside`] an error from [`AllowedRoots::open`] or
/// [`AllowedRoots::check_file`] carries, if that is why it failed.
pub fn outside_error(e: &io::Error) -> Option<&Outside> {
    e.get_ref()?.downcast_ref::<Outside>()
}

/// Opens `path` for reading with `O_NONBLOCK`, which makes no difference for a
/// regular file and lets the open of a FIFO return instead of waiting for a writer.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// `paths` canonicalised (a path that cannot be: lexically normalised), sorted,
/// each once.
fn canonical<P: AsRef<Path>>(paths: &[P]) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = paths
        .iter()
        .map(|r| {
            let r = r.as_ref();
            fs::canonicalize(r).unwrap_or_else(|_| normalize(r))
        })
        .collect();
    list.sort();
    list.dedup();
    list
}

/// `p` without `.` components or repeated / trailing `/`; `..` kept.
fn normalize(p: &Path) -> PathBuf {
    p.components().filter(|c| *c != Component::CurDir).collect()
}

/// The real path of the open `file` (opened as `path`).
fn real_path_of(file: &File, path: &Path) -> io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // The kernel's name for what the descriptor refers to: no window between
        // resolving a path and opening it. Not absolute (`pipe:[..]`, unreachable
        // from this root, no /proc): fall back to the canonical path.
        if let Ok(p) = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if p.is_absolute() {
                return Ok(strip_deleted(p, file));
            }
        }
    }
    by_canonical_path(file, path)
}

/// A file unlinked since it was opened is named `PATH (deleted)` by the kernel.
#[cfg(target_os = "linux")]
fn strip_deleted(p: PathBuf, file: &File) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    const SUFFIX: &[u8] = b" (deleted)";
    let bytes = p.as_os_str().as_bytes();
    let deleted = file.metadata().is_ok_and(|m| m.nlink() == 0);
    match bytes.strip_suffix(SUFFIX) {
        Some(stem) if deleted => PathBuf::from(std::ffi::OsStr::from_bytes(stem)),
        _ => p,
    }
}

/// The canonical path of `path`, confirmed to be the open `file` (same device and
/// inode); `NotFound` if `path` names another file by now.
pub(crate) fn by_canonical_path(file: &File, path: &Path) -> io::Result<PathBuf> {
    let real = fs::canonicalize(path)?;
    let (opened, named) = (file.metadata()?, fs::metadata(&real)?);
    if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} changed while it was being opened", EscapedPath(path)),
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        _dir: tempfile::TempDir,
        /// Canonical: the allowed root.
        root: PathBuf,
        /// Canonical: a folder outside it.
        out: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let (root, out) = (base.join("root"), base.join("out"));
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::create_dir_all(&out).unwrap();
        fs::write(root.join("in.log"), b"in\n").unwrap();
        fs::write(root.join("sub/deep.log"), b"deep\n").unwrap();
        fs::write(out.join("secret"), b"secret\n").unwrap();
        symlink(out.join("secret"), root.join("evil.log")).unwrap();
        symlink(&out, root.join("outdir")).unwrap();
        symlink(root.join("sub/deep.log"), root.join("ok.log")).unwrap();
        symlink(root.join("sub"), root.join("subdir")).unwrap();
        Tree {
            _dir: dir,
            root,
            out,
        }
    }

    #[test]
    fn no_roots_allow_everything() {
        let t = tree();
        let any = AllowedRoots::new::<PathBuf>(&[]);
        assert!(any.is_any());
        assert_eq!(any, AllowedRoots::any());
        assert_eq!(any.outside(&t.root.join("evil.log")), None);
        assert!(any.open(&t.root.join("evil.log")).is_ok());
    }

    #[test]
    fn links_out_of_the_root_are_refused() {
        let t = tree();
        let roots = AllowedRoots::new(&[&t.root]);
        for p in ["evil.log", "outdir/secret"] {
            let p = t.root.join(p);
            let o = roots.outside(&p).unwrap_or_else(|| panic!("{p:?} allowed"));
            assert_eq!(o.real, t.out.join("secret"));
            let e = roots.open(&p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            let o = outside_error(&e).expect("an Outside error");
            assert_eq!(o.path, p);
            let msg = o.to_string();
            assert!(msg.contains("evil.log") || msg.contains("outdir"), "{msg}");
            assert!(
                msg.contains(&t.out.join("secret").display().to_string()),
                "{msg}"
            );
            assert!(msg.contains("--allow-root"), "{msg}");
        }
        // A file opened some other way is checked by what it is.
        let f = File::open(t.root.join("evil.log")).unwrap();
        let e = roots.check_file(&f, &t.root.join("evil.log")).unwrap_err();
        assert!(outside_error(&e).is_some(), "{e}");
        // The root as a path into it does not matter: a root given through a link
        // is its target.
        let via_link = AllowedRoots::new(&[t.root.join("subdir")]);
        assert_eq!(via_link.roots(), [t.root.join("sub")]);
        assert!(via_link.open(&t.root.join("ok.log")).is_ok());
        assert!(via_link.open(&t.root.join("in.log")).is_err());
    }

    #[test]
    fn denied_files_are_never_read_whatever_the_roots() {
        let t = tree();
        fs::write(t.root.join("token"), b"secret-token\n").unwrap();
        symlink(t.root.join("token"), t.root.join("token.log")).unwrap();
        fs::create_dir(t.root.join("state")).unwrap();
        fs::write(t.root.join("state/checkpoint"), b"x\n").unwrap();
        let denied = [t.root.join("token"), t.root.join("state")];
        for roots in [
            AllowedRoots::new(&[&t.root]).denying(&denied),
            AllowedRoots::any().denying(&denied),
            AllowedRoots::new(&[&t.root.parent().unwrap()]).denying(&denied),
        ] {
            assert!(!roots.is_any());
            for p in ["token", "token.log", "state/checkpoint", "subdir/../token"] {
                let p = t.root.join(p);
                let o = roots.outside(&p).unwrap_or_else(|| panic!("{p:?} allowed"));
                assert!(o.denied && o.to_string().contains("state"), "{o}");
                let e = roots.open(&p).unwrap_err();
                assert!(outside_error(&e).is_some_and(|o| o.denied), "{e}");
                let f = File::open(&p).unwrap();
                assert!(roots.check_file(&f, &p).is_err());
            }
            // Everything else is read as before.
            assert!(roots.open(&t.root.join("in.log")).is_ok());
        }
    }

    #[test]
    fn links_that_stay_inside_are_read() {
        let t = tree();
        let roots = AllowedRoots::new(&[&t.root]);
        for p in ["in.log", "ok.log", "subdir/deep.log", "sub/../in.log"] {
            let p = t.root.join(p);
            assert_eq!(roots.outside(&p), None, "{p:?}");
            roots.open(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        }
        // Gone: nothing to refuse, and opening it fails as usual.
        assert_eq!(roots.outside(&t.root.join("nope")), None);
        let e = roots.open(&t.root.join("nope")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(outside_error(&e).is_none());
    }

    #[test]
    fn roots_contain_by_component_and_missing_roots_are_lexical() {
        let roots = AllowedRoots::new(&["/nonexistent/tidemark/./log/", "/nonexistent//x/../y"]);
        assert_eq!(
            roots.roots(),
            [
                PathBuf::from("/nonexistent/tidemark/log"),
                PathBuf::from("/nonexistent/x/../y")
            ]
        );
        assert!(roots.contains(Path::new("/nonexistent/tidemark/log/a")));
        assert!(roots.contains(Path::new("/nonexistent/tidemark/log")));
        assert!(!roots.contains(Path::new("/nonexistent/tidemark/logs/a")));
        // A root with `..` (kept when it cannot be resolved) matches no real path.
        assert!(!roots.contains(Path::new("/nonexistent/y/a")));
    }

    /// The fallback used where `/proc/self/fd` is not available: the canonical
    /// path, only if it still names the opened file.
    #[test]
    fn canonical_fallback_checks_the_inode() {
        let t = tree();
        let link = t.root.join("evil.log");
        let f = File::open(&link).unwrap();
        assert_eq!(by_canonical_path(&f, &link).unwrap(), t.out.join("secret"));
        // The link now points elsewhere: the open file is not what it names.
        fs::remove_file(&link).unwrap();
        symlink(t.root.join("in.log"), &link).unwrap();
        let e = by_canonical_path(&f, &link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // And the check of the open file itself still sees where it really is.
        let roots = AllowedRoots::new(&[&t.root]);
        assert!(roots.check_file(&f, &link).is_err());
        assert!(roots.open(&link).is_ok());
    }

    /// A FIFO in place of a file (swapped in after a scan) must not block the
    /// reader: the open returns, and the caller sees it is no regular file.
    #[test]
    fn opening_a_fifo_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("p.log");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for roots in [AllowedRoots::any(), AllowedRoots::new(&[d.path()])] {
            let f = roots.open(&fifo).unwrap();
            assert!(!f.metadata().unwrap().is_file());
        }
    }
}
