//! Output roots at open time: a job given output roots (a cluster's
//! `--output-root`, [`tidemark_jobs::Job::output_roots`]) opens a sink file only
//! when the file's real path lies inside one of them.
//!
//! The cluster checks each sink path lexically when a job is submitted; it cannot
//! see that `ROOT/out.jsonl` is a link to `~/.bashrc` or that `ROOT/dir` is a link
//! to `/etc`. This is the half that makes the roots hold when the file is opened:
//! - a sink path may not contain `..` (after a linked folder, `..` leads to the
//!   folder above the link's *target*, which no lexical check sees);
//! - the parent folder's real path (symbolic links resolved, as far as it exists)
//!   must be inside a root before any missing folder is created, and each missing
//!   folder is created one at a time, its real path checked before the next;
//! - the file itself is opened with `O_NOFOLLOW`, so a symbolic link as the last
//!   component is refused, not followed;
//! - the opened file's real path, taken from the open descriptor, must be inside a
//!   root: a link swapped into the parent path between the check and the open is
//!   caught before a byte is written or cut.
//!
//! In that race an empty file may be created outside the roots; nothing is
//! written to it. Without roots, files are opened as given (links followed).

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use tidemark_engine::output_guard::real_path;
use tidemark_sources::file::roots::outside_error;
use tidemark_sources::file::AllowedRoots;

use crate::SinkError;

/// The folders a job's sinks may write in; none = anywhere.
#[derive(Debug, Clone, Default)]
pub struct OutputRoots {
    roots: Option<AllowedRoots>,
}

impl OutputRoots {
    /// No restriction.
    pub fn any() -> OutputRoots {
        OutputRoots::default()
    }

    /// `roots` by their real paths (as far as they exist); empty = anywhere.
    pub fn new(roots: &[PathBuf]) -> OutputRoots {
        if roots.is_empty() {
            return OutputRoots::any();
        }
        let real: Vec<PathBuf> = roots.iter().map(|r| real_path(r)).collect();
        OutputRoots {
            roots: Some(AllowedRoots::new(&real)),
        }
    }

    /// Opens `path` for reading and writing, never truncating it. With `create`,
    /// a missing file (and its folder) is created.
    pub fn open(&self, path: &Path, create: bool) -> Result<File, SinkError> {
        let io = |e| SinkError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let mut opts = OpenOptions::new();
        // Label values can be anything the logs hold: a new output is not for
        // every user of the machine to read (the group may, e.g. a collector's).
        opts.read(true).write(true).create(create).mode(0o640);
        let Some(roots) = &self.roots else {
            if create {
                make_parent(path).map_err(io)?;
            }
            return opts.open(path).map_err(io);
        };
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(SinkError::ParentDir {
                path: path.to_path_buf(),
            });
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        let real_parent = real_path(parent);
        if !roots.contains(&real_parent) {
            return Err(self.outside(path, real_parent.join(path.file_name().unwrap_or_default())));
        }
        if create {
            self.make_parent_inside(path, roots)?;
        }
        opts.custom_flags(libc::O_NOFOLLOW);
        let file = opts.open(path).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                SinkError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                io(e)
            }
        })?;
        match roots.check_file(&file, path) {
            Ok(()) => Ok(file),
            Err(e) => match outside_error(&e) {
                Some(o) => Err(self.outside(path, o.real.clone())),
                None => Err(io(e)),
            },
        }
    }

    /// Creates the missing folders of `path`'s parent one at a time, each checked
    /// by its real path (a link swapped in is followed by no `mkdir`).
    fn make_parent_inside(&self, path: &Path, roots: &AllowedRoots) -> Result<(), SinkError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        let parent = std::path::absolute(parent).map_err(|e| SinkError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let parts: Vec<Component> = parent.components().collect();
        // The deepest folder that exists, by its real path.
        let (mut real, mut next) = (PathBuf::from("/"), 0);
        for end in (1..=parts.len()).rev() {
            let head: PathBuf = parts[..end].iter().collect();
            if let Ok(r) = std::fs::canonicalize(&head) {
                (real, next) = (r, end);
                break;
            }
        }
        for c in &parts[next..] {
            let dir = real.join(c);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(SinkError::Io {
                        path: dir,
                        source: e,
                    })
                }
            }
            real = std::fs::canonicalize(&dir).map_err(|e| SinkError::Io {
                path: dir.clone(),
                source: e,
            })?;
            if !roots.contains(&real) {
                return Err(self.outside(path, real.join(path.file_name().unwrap_or_default())));
            }
        }
        Ok(())
    }

    fn outside(&self, path: &Path, real: PathBuf) -> SinkError {
        let roots = self
            .roots
            .as_ref()
            .map(|r| {
                r.roots()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        SinkError::OutsideRoots {
            path: path.to_path_buf(),
            real,
            roots,
        }
    }
}

fn make_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => match std::fs::create_dir_all(dir) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            r => r,
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
        out: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (root, out) = (base.join("root"), base.join("elsewhere"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("bashrc"), b"precious\n").unwrap();
        symlink(out.join("bashrc"), root.join("link.jsonl")).unwrap();
        symlink(&out, root.join("outdir")).unwrap();
        Tree {
            _dir: dir,
            root,
            out,
        }
    }

    #[test]
    fn a_new_sink_file_is_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree();
        for (roots, name) in [
            (OutputRoots::any(), "any/new.jsonl"),
            (
                OutputRoots::new(std::slice::from_ref(&t.root)),
                "rooted.jsonl",
            ),
        ] {
            let path = t.root.join(name);
            let f = roots.open(&path, true).unwrap();
            let mode = f.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o007, 0, "{} is mode {mode:04o}", path.display());
            assert_eq!(mode & 0o600, 0o600, "{mode:04o}");
        }
    }

    #[test]
    fn a_sink_outside_the_output_roots_is_not_opened() {
        let t = tree();
        let roots = OutputRoots::new(std::slice::from_ref(&t.root));
        // Inside, new folders included: fine.
        roots.open(&t.root.join("a/b/x.jsonl"), true).unwrap();
        // Outside, lexically or through a linked folder: refused, nothing created.
        for (path, real) in [
            (t.out.join("x.jsonl"), t.out.join("x.jsonl")),
            (t.root.join("outdir/x.jsonl"), t.out.join("x.jsonl")),
            (t.root.join("outdir/new/x.jsonl"), t.out.join("new/x.jsonl")),
        ] {
            let err = roots.open(&path, true).unwrap_err();
            assert!(matches!(err, SinkError::OutsideRoots { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&real.display().to_string()), "{msg}");
            assert!(msg.contains("--output-root"), "{msg}");
            assert!(!real.exists(), "{} was created", real.display());
        }
        // A root that is itself reached through a link is the same root.
        let via_link = OutputRoots::new(&[t.root.join("outdir")]);
        via_link.open(&t.out.join("ok.jsonl"), true).unwrap();
    }

    #[test]
    fn a_dotdot_after_a_linked_folder_creates_nothing_outside_the_roots() {
        // `ROOT/deep/..` is, for the kernel, the folder *above* deep's target; a
        // lexical `..` would call it ROOT and let the open create a file outside.
        let t = tree();
        std::fs::create_dir_all(t.out.join("sub")).unwrap();
        symlink(t.out.join("sub"), t.root.join("deep")).unwrap();
        let roots = OutputRoots::new(std::slice::from_ref(&t.root));
        for path in [
            t.root.join("deep/../x.jsonl"),
            t.root.join("deep/../new/x.jsonl"),
        ] {
            let err = roots.open(&path, true).unwrap_err();
            assert!(err.to_string().contains(".."), "{err}");
        }
        assert!(
            !t.out.join("x.jsonl").exists(),
            "a file was created outside"
        );
        assert!(!t.out.join("new").exists(), "a folder was created outside");
    }

    #[test]
    fn a_symlinked_sink_file_is_not_followed_out_of_the_roots() {
        let t = tree();
        let roots = OutputRoots::new(std::slice::from_ref(&t.root));
        let err = roots.open(&t.root.join("link.jsonl"), true).unwrap_err();
        assert!(matches!(err, SinkError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read(t.out.join("bashrc")).unwrap(), b"precious\n");
        // Without roots a link is followed, as for `tidemark run`.
        OutputRoots::any()
            .open(&t.root.join("link.jsonl"), false)
            .unwrap();
    }
}
