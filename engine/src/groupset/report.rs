//! What discovery left out (paths outside the roots, duplicates, loops, files
//! that are not regular, folders that cannot be listed): warned once per path
//! and process, and counted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tidemark_sources::file::discover::split_rotated;
use tidemark_sources::file::{Discovered, EscapedPath};

use super::GroupSet;
use crate::stats::JobStats;

impl GroupSet {
    /// Whether this worker reports what discovery left out: the first worker of
    /// the process (every one of them discovers the same files on this machine).
    pub(super) fn reports(&self) -> bool {
        self.index == self.local.0
    }

    /// Warns about each path discovery left out, once per path and process, and
    /// counts it. Paths outside the allowed roots count as files that could not be
    /// opened (the live path and rotated siblings of a group that exists are left
    /// to the group's tailer, which refuses them too and reports them itself).
    pub(super) fn report(&mut self, d: &Discovered, stats: &mut JobStats) {
        for o in &d.outside {
            let of_group = self.known.contains(&o.path)
                || split_rotated(&o.path).is_some_and(|(base, _, _)| self.known.contains(&base));
            if !of_group && self.reported.insert(o.path.clone()) {
                tracing::warn!("{o}");
                stats.file_open_errors += 1;
            }
        }
        for dup in &d.duplicates {
            if self.reported.insert(dup.path.clone()) {
                tracing::warn!(
                    "{}: the same file as {} (same device and inode: reached through a \
                     directory link, `..` or a hard link, or its new name after a rename \
                     such as logrotate's dateext); it is read once, as {}",
                    EscapedPath(&dup.path),
                    EscapedPath(&dup.same_as),
                    EscapedPath(&dup.same_as)
                );
                stats.duplicate_paths += 1;
            }
        }
        for l in &d.loops {
            if self.reported.insert(l.path.clone()) {
                tracing::warn!(
                    "{}: a directory link back to {} (a symbolic link loop); the glob walk \
                     does not follow it. hint: remove the link, or write the glob so that it \
                     does not go through it",
                    EscapedPath(&l.path),
                    EscapedPath(&l.ancestor)
                );
                stats.symlink_loops += 1;
            }
        }
        let mut now: BTreeMap<PathBuf, String> = BTreeMap::new();
        for (path, what) in &d.not_regular {
            if self.reported.insert(path.clone()) {
                tracing::warn!(
                    "{}: matched by an include glob, but it is {what}, not a regular file; \
                     it is not read (a FIFO would block the reader; a kernel file in /proc or /sys never ends). hint: have the program \
                     log to a regular file, or leave this path out with `exclude`",
                    EscapedPath(path)
                );
                stats.not_regular_files += 1;
            }
            now.insert(path.clone(), format!("{what}: only regular files are read"));
        }
        for (dir, error) in &d.unlistable {
            if self.reported.insert(dir.clone()) {
                tracing::warn!(
                    "{}: cannot list this folder ({error}), so files in it that the include \
                     globs match cannot be found. hint: give the user tidemark runs as read \
                     and search (x) permission on it, or narrow the glob",
                    EscapedPath(dir)
                );
            }
            now.insert(dir.clone(), format!("folder cannot be listed: {error}"));
        }
        if now != self.unreadable {
            for gone in self.unreadable.keys().filter(|k| !now.contains_key(*k)) {
                stats.unreadable_files.insert(gone.clone(), Vec::new());
            }
            for (path, error) in &now {
                stats
                    .unreadable_files
                    .insert(path.clone(), vec![(path.clone(), error.clone())]);
            }
            self.unreadable = now;
        }
    }
}
