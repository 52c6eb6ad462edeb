//! Change notification for discovery: wake the file source as soon as a file
//! appears, grows, moves or disappears in a watched folder, instead of waiting for
//! the next poll.
//!
//! Notification is an optimisation, never a requirement: inotify may be missing,
//! out of watches (`fs.inotify.max_user_watches`) or unsupported by the filesystem
//! (NFS, some FUSE mounts). Then [`DirWatcher::is_active`] is false, the reason is
//! in [`DirWatcher::warning`], and the caller polls.
//!
//! Usage, so no file is missed: when `on_change` fires, recompute
//! [`watch_dirs`], call [`DirWatcher::set_dirs`] (a new per-host folder gets
//! watched), and only then re-run discovery: anything created before the new watch
//! took effect is found by that discovery.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use notify::event::{MetadataKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// At most this many failed folders are named in a warning; the rest are counted.
const MAX_NAMED: usize = 5;

pub struct DirWatcher {
    /// `None` when the notification mechanism itself could not be started.
    watcher: Option<RecommendedWatcher>,
    startup_error: Option<String>,
    /// Folders being watched.
    watched: BTreeSet<PathBuf>,
    /// Folders that could not be watched, with the reason.
    failed: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("active", &self.is_active())
            .field("watched", &self.watched)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl DirWatcher {
    /// Watches each of `dirs` (not recursively). `on_change` runs on the watcher's
    /// own thread for every create, modify, remove or rename in them, and when
    /// events were lost (queue overflow): keep it cheap (set a flag, unpark).
    /// Never fails: see [`DirWatcher::is_active`].
    pub fn new(dirs: &[PathBuf], on_change: impl Fn() + Send + 'static) -> DirWatcher {
        let handler = move |res: notify::Result<Event>| {
            // An error means events may have been lost: a rescan is the safe answer.
            if res.as_ref().is_ok_and(|ev| !is_interesting(&ev.kind)) {
                return;
            }
            on_change();
        };
        let (watcher, startup_error) = match notify::recommended_watcher(handler) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let mut w = DirWatcher {
            watcher,
            startup_error,
            watched: BTreeSet::new(),
            failed: Vec::new(),
        };
        w.set_dirs(dirs);
        w
    }

    /// Makes `dirs` the watched set: new folders are added, folders no longer
    /// listed are dropped, and folders that failed before are retried. Folders
    /// already watched are added again, which is cheap and re-arms a folder that
    /// was deleted and recreated under the same name (inotify drops the watch of
    /// a deleted folder).
    pub fn set_dirs(&mut self, dirs: &[PathBuf]) {
        let wanted: BTreeSet<PathBuf> = dirs.iter().cloned().collect();
        self.failed.clear();
        let Some(watcher) = self.watcher.as_mut() else {
            self.failed = wanted.into_iter().map(|d| (d, String::new())).collect();
            return;
        };
        for gone in self.watched.difference(&wanted) {
            // The folder may have been deleted, which already removed the watch.
            let _ = watcher.unwatch(gone);
        }
        self.watched.clear();
        for dir in wanted {
            if !dir.is_dir() {
                let why = if dir.exists() {
                    "not a folder"
                } else {
                    "it does not exist (yet)"
                };
                self.failed.push((dir, why.to_string()));
                continue;
            }
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(dir);
                }
                Err(e) => self.failed.push((dir, e.to_string())),
            }
        }
    }

    /// True when every folder is watched, so polling is not needed for prompt
    /// discovery. When false, poll (the folders that are watched still notify).
    pub fn is_active(&self) -> bool {
        self.watcher.is_some() && self.failed.is_empty()
    }

    /// Why notification is not (fully) active, for the caller to log; `None` when
    /// it is.
    pub fn warning(&self) -> Option<String> {
        failure_warning(self.startup_error.as_deref(), &self.failed)
    }

    /// The folders currently watched.
    pub fn watched(&self) -> impl Iterator<Item = &Path> {
        self.watched.iter().map(PathBuf::as_path)
    }
}

/// Why notification is not (fully) active: it could not start, or some folders
/// could not be watched. `None` when it is.
pub(crate) fn failure_warning(
    startup_error: Option<&str>,
    failed: &[(PathBuf, String)],
) -> Option<String> {
    if let Some(e) = startup_error {
        return Some(format!(
            "file change notification (inotify) is unavailable ({e}); finding new \
                 files by polling instead"
        ));
    }
    if failed.is_empty() {
        return None;
    }
    let mut named: Vec<String> = failed
        .iter()
        .take(MAX_NAMED)
        .map(|(d, why)| format!("{} ({why})", crate::file::EscapedPath(d)))
        .collect();
    if failed.len() > MAX_NAMED {
        named.push(format!("and {} more", failed.len() - MAX_NAMED));
    }
    Some(format!(
        "cannot watch {} for new files: {}; polling instead",
        if failed.len() == 1 {
            "a folder"
        } else {
            "some folders"
        },
        named.join(", ")
    ))
}

/// What a change notification tells its subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Bytes were written to (or cut from) this file: whoever reads it has
    /// something to read, but no file appeared, moved or went away, so the globs
    /// need not be evaluated again (a busy log makes hundreds of these a second).
    Written(PathBuf),
    /// A file or folder appeared, moved, went away or changed attributes, or
    /// events may have been lost: evaluate the globs again.
    Layout,
}

/// What an event (or an error, after which events may have been lost) tells a
/// subscriber; `None` for an event that cannot mean a change (see
/// [`is_interesting`]).
pub(crate) fn classify(event: &notify::Result<Event>) -> Option<Change> {
    match event {
        Ok(ev) if !is_interesting(&ev.kind) => None,
        // IN_MODIFY (a write or a truncation): one path, the file itself.
        Ok(ev) if matches!(ev.kind, EventKind::Modify(ModifyKind::Data(_))) => {
            match ev.paths.as_slice() {
                [path] => Some(Change::Written(path.clone())),
                _ => Some(Change::Layout),
            }
        }
        _ => Some(Change::Layout),
    }
}

/// Whether an event can mean a file appeared, changed, moved or went away.
pub(crate) fn is_interesting(kind: &EventKind) -> bool {
    match kind {
        // Opens and closes happen every time *we* open a file to read it: reacting
        // to them would make discovery wake itself up forever.
        EventKind::Access(_) => false,
        // Reading a file can update its access time.
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

/// The folders to watch so every file an `include` glob can match is noticed:
/// the deepest folder of each glob without pattern characters, plus every
/// existing folder matched by the glob's folder levels (for
/// `/var/log/nginx/*/access.log`: `/var/log/nginx` and `/var/log/nginx/web-1`, …).
/// A new per-host folder shows up as a change in its parent, after which the
/// caller's next `watch_dirs` includes it. Sorted, without duplicates; folders
/// that do not exist yet are included (the watcher reports them).
pub fn watch_dirs(include_globs: &[String]) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    for g in include_globs {
        let comps: Vec<Component> = Path::new(g).components().collect();
        let Some(first) = comps.iter().position(|c| is_pattern(c.as_os_str())) else {
            // A plain path: its folder.
            out.insert(dir_or_dot(Path::new(g).parent()));
            continue;
        };
        let base: PathBuf = comps[..first].iter().collect();
        out.insert(dir_or_dot(Some(&base)));
        for k in first..comps.len() {
            // Levels below the first pattern: the folder levels, and a trailing
            // `**` (which matches files in every subfolder).
            let is_dir_level = k + 1 < comps.len() || comps[k].as_os_str() == "**";
            if !is_dir_level {
                continue;
            }
            let prefix: PathBuf = comps[..=k].iter().collect();
            let Some(pattern) = prefix.to_str() else {
                continue; // non-UTF-8 patterns cannot be globbed; the base still is watched
            };
            // An invalid pattern is reported by discovery; here it just adds nothing.
            // The walk stops at symbolic link loops (discovery reports them).
            if let Ok(walked) = crate::file::walk::walk_glob(pattern) {
                out.extend(walked.paths.into_iter().filter(|p| p.is_dir()));
            }
        }
    }
    out.into_iter().collect()
}

/// Whether a path component contains glob pattern characters.
fn is_pattern(c: &std::ffi::OsStr) -> bool {
    c.to_string_lossy().contains(['*', '?', '['])
}

fn dir_or_dot(dir: Option<&Path>) -> PathBuf {
    match dir {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Waits up to 1 s for `count` to exceed `before`.
    fn fired_within_1s(count: &AtomicUsize, before: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if count.load(Ordering::SeqCst) > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        count.load(Ordering::SeqCst) > before
    }

    fn counting_watcher(dirs: &[PathBuf]) -> (DirWatcher, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let w = DirWatcher::new(dirs, move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        (w, count)
    }

    #[test]
    fn a_new_file_fires_within_1s() {
        let tmp = tempfile::tempdir().unwrap();
        let (w, count) = counting_watcher(&[tmp.path().to_path_buf()]);
        assert!(w.is_active(), "{:?}", w.warning());
        assert_eq!(w.warning(), None);
        let before = count.load(Ordering::SeqCst);
        std::fs::write(tmp.path().join("access.log"), b"line\n").unwrap();
        assert!(fired_within_1s(&count, before));

        // A rename (rotation) fires too.
        let before = count.load(Ordering::SeqCst);
        std::fs::rename(
            tmp.path().join("access.log"),
            tmp.path().join("access.log.1"),
        )
        .unwrap();
        assert!(fired_within_1s(&count, before));
    }

    #[test]
    fn opening_and_reading_files_does_not_fire() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("access.log");
        std::fs::write(&f, b"line\n").unwrap();
        let (w, count) = counting_watcher(&[tmp.path().to_path_buf()]);
        assert!(w.is_active());
        for _ in 0..20 {
            let _ = std::fs::read(&f).unwrap();
        }
        // Changes are delivered in order: once this marker file's event arrived,
        // any event from the reads above would have too.
        std::fs::write(tmp.path().join("marker"), b"").unwrap();
        assert!(fired_within_1s(&count, 0));
        std::thread::sleep(Duration::from_millis(50));
        assert!(count.load(Ordering::SeqCst) <= 3, "reads woke discovery");
    }

    #[test]
    fn missing_folder_falls_back_to_polling_then_recovers() {
        let tmp = tempfile::tempdir().unwrap();
        let later = tmp.path().join("nginx");
        let (mut w, count) = counting_watcher(&[tmp.path().to_path_buf(), later.clone()]);
        assert!(!w.is_active());
        let warning = w.warning().unwrap();
        assert!(warning.contains("nginx"), "{warning}");
        assert!(warning.contains("polling"), "{warning}");

        std::fs::create_dir(&later).unwrap();
        w.set_dirs(&[tmp.path().to_path_buf(), later.clone()]);
        assert!(w.is_active(), "{:?}", w.warning());
        let before = count.load(Ordering::SeqCst);
        std::fs::write(later.join("access.log"), b"x\n").unwrap();
        assert!(fired_within_1s(&count, before));
    }

    #[test]
    fn a_recreated_folder_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("web-1");
        std::fs::create_dir(&d).unwrap();
        let (mut w, count) = counting_watcher(std::slice::from_ref(&d));
        std::fs::remove_dir(&d).unwrap();
        std::fs::create_dir(&d).unwrap();
        w.set_dirs(std::slice::from_ref(&d));
        assert!(w.is_active());
        // Let the removal's own events arrive before taking the baseline.
        std::thread::sleep(Duration::from_millis(50));
        let before = count.load(Ordering::SeqCst);
        std::fs::write(d.join("access.log"), b"x\n").unwrap();
        assert!(fired_within_1s(&count, before));
    }

    #[test]
    fn per_host_folders_are_watched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("nginx");
        std::fs::create_dir_all(root.join("web-1")).unwrap();
        std::fs::create_dir_all(root.join("web-2")).unwrap();
        std::fs::write(root.join("web-2/access.log"), b"").unwrap();
        let glob = format!("{}/*/access.log", root.display());
        let dirs = watch_dirs(std::slice::from_ref(&glob));
        assert_eq!(
            dirs,
            vec![root.clone(), root.join("web-1"), root.join("web-2")]
        );

        let (w, count) = counting_watcher(&dirs);
        assert!(w.is_active());
        let before = count.load(Ordering::SeqCst);
        std::fs::write(root.join("web-1/access.log"), b"x\n").unwrap();
        assert!(fired_within_1s(&count, before));
    }

    #[test]
    fn watch_dirs_of_plain_and_relative_globs() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        let none = "/nonexistent-tidemark-test";
        assert_eq!(
            watch_dirs(&s(&[&format!("{none}/nginx/*/access.log")])),
            p(&[&format!("{none}/nginx")])
        );
        assert_eq!(
            watch_dirs(&s(&[
                &format!("{none}/app.log"),
                &format!("{none}/*.log"),
                &format!("{none}/[ab]pp.log"),
            ])),
            p(&[none])
        );
        assert_eq!(
            watch_dirs(&s(&["logs/*.log", "*.log", "app.log"])),
            p(&[".", "logs"])
        );
        assert!(watch_dirs(&[]).is_empty());
        // A malformed pattern yields its base folder, no panic.
        assert_eq!(
            watch_dirs(&s(&[&format!("{none}/x/[/a.log")])),
            p(&[&format!("{none}/x")])
        );
    }

    #[test]
    fn watch_dirs_with_double_star_covers_every_subfolder() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c")).unwrap();
        for glob in [
            format!("{}/**/access.log", root.display()),
            format!("{}/**", root.display()),
        ] {
            let dirs = watch_dirs(std::slice::from_ref(&glob));
            for d in [
                root.to_path_buf(),
                root.join("a"),
                root.join("a/b"),
                root.join("c"),
            ] {
                assert!(dirs.contains(&d), "{glob}: {d:?} missing from {dirs:?}");
            }
        }
    }
}
