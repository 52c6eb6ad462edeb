//! Real paths (symbolic links resolved) of many paths at once, each folder on
//! the way looked at once: the output guard resolves every input file of a
//! job, the change notifier every watched folder every 2 s.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// `p` without `.` components, and `..` applied lexically.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// The real path of `p` as far as it exists (symbolic links resolved, by the
/// file system: `a/link/..` is the folder above the link's target), with the part
/// that does not exist yet appended (its `.` and `..` applied lexically: no link
/// can be in it).
pub fn real_path(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let parts: Vec<Component> = p.components().collect();
    for existing in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..existing].iter().collect();
        if let Ok(mut out) = std::fs::canonicalize(&head) {
            for c in &parts[existing..] {
                match c {
                    Component::CurDir => {}
                    Component::ParentDir => {
                        out.pop();
                    }
                    c => out.push(c),
                }
            }
            return out;
        }
    }
    normalize(&p)
}

/// [`real_path`] for many paths at once: each existing component on the way is
/// looked at once (one `lstat`) and remembered by its path, where
/// `std::fs::canonicalize` reads every component of every path again (a
/// `readlink` each: 10 per input file of a 2,000-host fleet, twice per run).
/// A component that is a link is resolved by `canonicalize` itself, so links,
/// `..` after a link and dangling links mean exactly what they mean to
/// [`real_path`]. Meant for one batch (the inputs of one check): a folder
/// replaced by a link later is not seen by a batch that already resolved it.
#[derive(Debug, Default)]
pub struct RealPaths {
    /// By absolute lexical prefix (`..` kept): its real path and whether it is
    /// a folder, `None` if it does not exist (or cannot be resolved).
    known: HashMap<PathBuf, Option<(PathBuf, bool)>>,
    /// Components looked at on the file system (for the tests that count).
    looked: usize,
}

impl RealPaths {
    /// [`RealPaths::of`] of a file, with its metadata (links followed) if it
    /// exists: for a file that is not a link, the one `lstat` of its name gives
    /// both.
    pub fn of_file(&mut self, p: &Path) -> (PathBuf, Option<std::fs::Metadata>) {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        // With `..` the kernel may not reach what the real path names (a
        // missing folder before it): then asked as it is.
        let plain = !p.components().any(|c| c == Component::ParentDir);
        let (Some(parent), Some(Component::Normal(name)), true) =
            (p.parent(), p.components().next_back(), plain)
        else {
            return (self.of(&p), std::fs::metadata(&p).ok());
        };
        let at = self.of(parent).join(name);
        self.looked += 1;
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = std::fs::canonicalize(&at).unwrap_or(at);
                (real, std::fs::metadata(&p).ok())
            }
            Ok(m) => (at, Some(m)),
            // Not there (or the parent is no folder): named lexically, as `of`.
            Err(_) => (at, None),
        }
    }

    /// The real path of `p`, as [`real_path`] gives it.
    pub fn of(&mut self, p: &Path) -> PathBuf {
        self.resolve(p).0
    }

    /// What `std::fs::canonicalize(p).ok()` gives: the real path of `p` if
    /// every component exists (and each followed by `..` is a folder).
    pub fn canonical(&mut self, p: &Path) -> Option<PathBuf> {
        let ends_in_slash = p.as_os_str().as_encoded_bytes().last() == Some(&b'/');
        if ends_in_slash && p.as_os_str().len() > 1 {
            return std::fs::canonicalize(p).ok(); // "name/" must be a folder
        }
        match self.resolve(p) {
            (real, true) => Some(real),
            (_, false) => None,
        }
    }

    /// The real path as [`real_path`] gives it, and whether the whole path
    /// exists as `canonicalize` sees it.
    fn resolve(&mut self, p: &Path) -> (PathBuf, bool) {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut lexical = PathBuf::new();
        let mut real = PathBuf::new();
        let mut is_dir = true;
        let mut exists = true;
        let mut parts = p.components();
        while let Some(c) = parts.next() {
            match c {
                Component::Prefix(_) | Component::RootDir => {
                    lexical.push(c);
                    real.push(c);
                }
                Component::CurDir => {}
                // `real` names an existing file without links: its parent is the
                // real path of `real/..` (and of a file's `..`, which
                // `real_path` applies lexically past the existing part, while
                // `canonicalize` fails).
                Component::ParentDir => {
                    lexical.push(c);
                    real.pop();
                    exists &= is_dir;
                    is_dir = true;
                }
                Component::Normal(name) => {
                    lexical.push(name);
                    let next = real.join(name);
                    let looked = &mut self.looked;
                    let resolved = self
                        .known
                        .entry(lexical.clone())
                        .or_insert_with(|| {
                            *looked += 1;
                            match std::fs::symlink_metadata(&next) {
                                Ok(m) if m.file_type().is_symlink() => {
                                    let real = std::fs::canonicalize(&next).ok()?;
                                    let dir = std::fs::metadata(&real).is_ok_and(|m| m.is_dir());
                                    Some((real, dir))
                                }
                                Ok(m) => Some((next, m.is_dir())),
                                Err(_) => None,
                            }
                        })
                        .clone();
                    match resolved {
                        Some((r, dir)) => {
                            real = r;
                            is_dir = dir;
                        }
                        None => {
                            // The rest does not exist: lexically, as `real_path`.
                            real.push(name);
                            for c in parts.by_ref() {
                                match c {
                                    Component::CurDir => {}
                                    Component::ParentDir => {
                                        real.pop();
                                    }
                                    c => real.push(c),
                                }
                            }
                            return (real, false);
                        }
                    }
                }
            }
        }
        (real, exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn real_paths_resolved_once_per_folder_are_the_real_paths() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        for host in 0..20 {
            let dir = base.join(format!("logs/web-{host}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("access.log"), b"x\n").unwrap();
        }
        std::os::unix::fs::symlink(base.join("logs/web-3"), base.join("logs/cur")).unwrap();
        std::os::unix::fs::symlink("../web-4/access.log", base.join("logs/web-5/rel.log")).unwrap();
        std::os::unix::fs::symlink(base.join("gone"), base.join("logs/dangling")).unwrap();
        std::os::unix::fs::symlink(base.join("logs/web-6"), base.join("to6")).unwrap();
        let mut paths: Vec<PathBuf> = (0..20)
            .map(|h| base.join(format!("logs/web-{h}/access.log")))
            .collect();
        for odd in [
            "logs/cur/access.log",
            "logs/cur/../web-7/access.log",
            "logs/web-5/rel.log",
            "logs/dangling",
            "logs/dangling/x.jsonl",
            "logs/web-1/access.log/../new.jsonl",
            "logs/./web-2/../web-2/access.log",
            "logs/missing/../web-8/access.log",
            "to6/../logs/web-9/access.log",
            "to6/new/../x.jsonl",
            "nowhere/at/all.jsonl",
        ] {
            paths.push(base.join(odd));
        }
        let mut real = RealPaths::default();
        for p in &paths {
            assert_eq!(real.of(p), real_path(p), "{}", p.display());
        }
        let identity = |m: &std::fs::Metadata| (m.dev(), m.ino());
        for p in &paths {
            let (at, meta) = RealPaths::default().of_file(p);
            assert_eq!(at, real_path(p), "{}", p.display());
            let want = std::fs::metadata(p).ok();
            assert_eq!(
                meta.as_ref().map(identity),
                want.as_ref().map(identity),
                "{}",
                p.display()
            );
        }
        for p in &paths {
            let dir = p.parent().unwrap();
            for q in [p.as_path(), dir, &dir.join("..")] {
                let want = std::fs::canonicalize(q).ok();
                assert_eq!(real.canonical(q), want, "{}", q.display());
            }
        }
        // Asked again, nothing is looked at again.
        let looked = real.looked;
        for p in &paths {
            assert_eq!(real.of(p), real_path(p), "{}", p.display());
        }
        assert_eq!(real.looked, looked);
        // Each folder and file once: the 20 hosts' files cost a look at their own
        // folder and file each (2 per file), plus the shared prefix once.
        let mut fleet = RealPaths::default();
        for p in &paths[..20] {
            fleet.of(p);
        }
        let prefix = base.join("logs").components().count() - 1;
        assert_eq!(fleet.looked, prefix + 40, "components looked at");
    }
}
