//! One change notifier for every job of a process.
//!
//! Each [`DirWatcher`](crate::watch::DirWatcher) holds an inotify instance of its
//! own, and Linux allows 128 per user by default (`fs.inotify.max_user_instances`):
//! a cluster member with more jobs than that had the rest fall back to polling,
//! each of its workers re-reading every such job's folders twice a second. The
//! [`WatchHub`] holds one instance for the whole process. Each job subscribes with
//! its folders ([`Subscription::set_dirs`], same contract as `DirWatcher`'s); an
//! event is routed to the jobs that watch the folder it happened in (or the folder
//! itself), and an event without a path, or an error (events may have been lost),
//! reaches every job. A folder several jobs watch is watched once.
//!
//! A folder that does not exist when it is subscribed, or a folder link re-pointed
//! to another target, gives no event in any watched folder. So a retry thread
//! looks at every subscription's folders again every [`RETRY_INTERVAL`]: when a
//! missing one appeared or one now resolves elsewhere, it watches them again and
//! calls the subscription's callback (its job then rescans).
//!
//! A busy log is written hundreds of times a second, and each write is an
//! event that wakes the notifier's thread. After passing on a write the thread
//! pauses for [`WRITE_PAUSE`] ([`Throttle`]): the kernel meanwhile merges the
//! same file's further writes into one queued event, so a followed file costs a
//! few wakes per pause, whatever its number of writes. The first write after a
//! quiet spell is passed on at once; a later one waits at most the pause.
//!
//! Locking: `watcher` is held around every watch and unwatch (notify's event thread
//! never takes it), and is taken before a subscription's `state`; `routes` is held
//! only briefly, by that thread to find whom to call and by `set_dirs` to change
//! the routes, never while calling into notify, which waits for its event thread.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};

use crate::watch::{classify, failure_warning, Change};

type Callback = Arc<dyn Fn(&Change) + Send + Sync>;

/// How long the notifier's thread pauses after passing on a write (see the
/// module docs). Every job's events wait at most this long more while files
/// are being written.
pub const WRITE_PAUSE: Duration = Duration::from_millis(25);

/// Events handled within this long after a pause ended belong to the same
/// wake (the rest of the batch read before the pause, and what queued up
/// during it): they do not pause again.
const SAME_WAKE: Duration = Duration::from_micros(500);

/// Decides when the notifier's thread pauses (see the module docs).
#[derive(Debug, Default)]
struct Throttle {
    /// When the last pause ended.
    resumed: Option<Instant>,
}

impl Throttle {
    /// After a write was passed on at `now`: how long to pause, if at all.
    fn after_write(&self, now: Instant) -> Option<Duration> {
        match self.resumed {
            Some(r) if now.saturating_duration_since(r) <= SAME_WAKE => None,
            _ => Some(WRITE_PAUSE),
        }
    }

    /// The pause ended at `now`.
    fn resumed(&mut self, now: Instant) {
        self.resumed = Some(now);
    }
}

/// How often missing folders and folder links are looked at again. A job whose
/// folders are not all watched polls meanwhile, so nothing is lost in between.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// The process's notifier; see the module docs.
pub struct WatchHub {
    watcher: Mutex<Option<RecommendedWatcher>>,
    startup_error: Option<String>,
    /// Why the retry thread did not start; reported by every [`Subscription::warning`].
    retry_error: OnceLock<String>,
    routes: Arc<Mutex<Routes>>,
}

#[derive(Default)]
struct Routes {
    /// Watched folder → the subscriptions that want it.
    dirs: HashMap<PathBuf, BTreeSet<u64>>,
    subs: HashMap<u64, Sub>,
    next: u64,
}

/// A subscriber: whom to call, and its folders (shared with its [`Subscription`]).
#[derive(Clone)]
struct Sub {
    call: Callback,
    state: Arc<Mutex<SubState>>,
}

/// A subscription's folders: as given, and by real path, watched or not (why).
#[derive(Default)]
struct SubState {
    given: Vec<PathBuf>,
    watched: BTreeSet<PathBuf>,
    failed: Vec<(PathBuf, String)>,
}

impl SubState {
    /// Whether watching again would change something: a folder resolves to
    /// another real path (a link re-pointed, a folder created), or one that
    /// failed is a folder now.
    fn stale(&self) -> bool {
        let now: BTreeSet<PathBuf> = self.given.iter().map(|d| real(d)).collect();
        let had: BTreeSet<PathBuf> = self
            .watched
            .iter()
            .chain(self.failed.iter().map(|(d, _)| d))
            .cloned()
            .collect();
        now != had || self.failed.iter().any(|(d, _)| d.is_dir())
    }
}

/// By real path: inotify gives a folder reached by two paths one watch, which
/// notify then reports (and removes) under one of them only.
fn real(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

impl Routes {
    /// The callbacks an event concerns.
    fn targets(&self, event: &notify::Result<Event>) -> Vec<Callback> {
        let ids: BTreeSet<u64> = match event {
            Ok(ev) if !ev.paths.is_empty() => ev
                .paths
                .iter()
                .flat_map(|p| [Some(p.as_path()), p.parent()])
                .flatten()
                .filter_map(|d| self.dirs.get(d))
                .flatten()
                .copied()
                .collect(),
            // No path (e.g. the queue overflowed) or an error: anything may have changed.
            _ => self.subs.keys().copied().collect(),
        };
        ids.iter()
            .filter_map(|id| self.subs.get(id).map(|s| s.call.clone()))
            .collect()
    }

    /// Drops `id`'s interest in `dir`; true when nobody wants `dir` any more.
    fn leave(&mut self, dir: &Path, id: u64) -> bool {
        let Some(ids) = self.dirs.get_mut(dir) else {
            return false;
        };
        ids.remove(&id);
        if ids.is_empty() {
            self.dirs.remove(dir);
            return true;
        }
        false
    }
}

impl WatchHub {
    /// The process's hub, started on first use.
    pub fn global() -> &'static WatchHub {
        static HUB: OnceLock<WatchHub> = OnceLock::new();
        HUB.get_or_init(WatchHub::new)
    }

    fn new() -> WatchHub {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let for_events = routes.clone();
        let mut throttle = Throttle::default();
        let handler = move |event: notify::Result<Event>| {
            let Some(change) = classify(&event) else {
                return;
            };
            let targets = match for_events.lock() {
                Ok(r) => r.targets(&event),
                Err(_) => return,
            };
            for call in &targets {
                call(&change);
            }
            if matches!(change, Change::Written(_)) && !targets.is_empty() {
                if let Some(pause) = throttle.after_write(Instant::now()) {
                    std::thread::sleep(pause);
                    throttle.resumed(Instant::now());
                }
            }
        };
        let (watcher, startup_error) = match notify::recommended_watcher(handler) {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        };
        WatchHub {
            watcher: Mutex::new(watcher),
            startup_error,
            retry_error: OnceLock::new(),
            routes,
        }
    }

    /// Starts the retry thread (once, for the global hub; see the module docs).
    fn start_retrying(&'static self) {
        if self.startup_error.is_some() {
            return;
        }
        let started = std::thread::Builder::new()
            .name("tidemark-watch-retry".into())
            .spawn(move || loop {
                std::thread::sleep(RETRY_INTERVAL);
                self.retry();
            });
        if let Err(e) = started {
            let _ = self.retry_error.set(format!(
                "cannot start the folder watch retry thread ({e}): a folder created later, or a folder link re-pointed, is found by polling only"
            ));
        }
    }

    /// Watches again the folders of every subscription whose folders changed
    /// without an event, and tells it.
    fn retry(&self) {
        let subs: Vec<(u64, Sub)> = match self.routes.lock() {
            Ok(r) => r.subs.iter().map(|(id, s)| (*id, s.clone())).collect(),
            Err(_) => return,
        };
        for (id, sub) in subs {
            if !sub.state.lock().is_ok_and(|s| s.stale()) {
                continue;
            }
            let Ok(mut guard) = self.watcher.lock() else {
                return;
            };
            // Dropped meanwhile (its drop holds `watcher`): nothing to watch.
            if !self.routes.lock().is_ok_and(|r| r.subs.contains_key(&id)) {
                continue;
            }
            let (Some(watcher), Ok(mut state)) = (guard.as_mut(), sub.state.lock()) else {
                continue;
            };
            let given = state.given.clone();
            apply(self, id, &mut state, watcher, &given);
            drop(state);
            drop(guard);
            (sub.call)(&Change::Layout);
        }
    }

    /// Watches `dirs` for one job: `on_change` runs (on the notifier's thread) for
    /// every create, modify, remove or rename in them; keep it cheap.
    pub fn subscribe(
        &'static self,
        dirs: &[PathBuf],
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Subscription {
        self.subscribe_changes(dirs, move |_: &Change| on_change())
    }

    /// As [`WatchHub::subscribe`], telling `on_change` what changed: a write to
    /// one file ([`Change::Written`]) or anything else ([`Change::Layout`]), so a
    /// job can wake the reader of a file that grew without looking for new files.
    pub fn subscribe_changes(
        &'static self,
        dirs: &[PathBuf],
        on_change: impl Fn(&Change) + Send + Sync + 'static,
    ) -> Subscription {
        static RETRYING: std::sync::Once = std::sync::Once::new();
        RETRYING.call_once(|| self.start_retrying());
        let state = Arc::new(Mutex::new(SubState::default()));
        let id = match self.routes.lock() {
            Ok(mut r) => {
                r.next += 1;
                let id = r.next;
                let sub = Sub {
                    call: Arc::new(on_change),
                    state: state.clone(),
                };
                r.subs.insert(id, sub);
                id
            }
            Err(_) => 0,
        };
        let mut s = Subscription {
            hub: self,
            id,
            state,
        };
        s.set_dirs(dirs);
        s
    }
}

/// Makes `dirs` the folders `state` watches (see [`Subscription::set_dirs`]).
fn apply(
    hub: &WatchHub,
    id: u64,
    state: &mut SubState,
    watcher: &mut RecommendedWatcher,
    dirs: &[PathBuf],
) {
    state.given = dirs.to_vec();
    let wanted: BTreeSet<PathBuf> = dirs.iter().map(|d| real(d)).collect();
    state.failed.clear();
    let gone: Vec<PathBuf> = state.watched.difference(&wanted).cloned().collect();
    for dir in gone {
        if hub.routes.lock().is_ok_and(|mut r| r.leave(&dir, id)) {
            // The folder may have been deleted, which already removed the watch.
            let _ = watcher.unwatch(&dir);
        }
    }
    state.watched.clear();
    for dir in wanted {
        let why = if !dir.is_dir() {
            Some(if dir.exists() {
                "not a folder".to_string()
            } else {
                "it does not exist (yet)".to_string()
            })
        } else {
            // Routed before it is watched, so no event of the new watch is lost.
            if let Ok(mut r) = hub.routes.lock() {
                r.dirs.entry(dir.clone()).or_default().insert(id);
            }
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .err()
                .map(|e| e.to_string())
        };
        match why {
            None => {
                state.watched.insert(dir);
            }
            Some(why) => {
                if hub.routes.lock().is_ok_and(|mut r| r.leave(&dir, id)) {
                    let _ = watcher.unwatch(&dir);
                }
                state.failed.push((dir, why));
            }
        }
    }
}

/// One job's folders in the [`WatchHub`]; dropping it stops their notification.
pub struct Subscription {
    hub: &'static WatchHub,
    id: u64,
    state: Arc<Mutex<SubState>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (watched, failed) = match self.state.lock() {
            Ok(s) => (s.watched.clone(), s.failed.clone()),
            Err(_) => Default::default(),
        };
        f.debug_struct("Subscription")
            .field("active", &self.is_active())
            .field("watched", &watched)
            .field("failed", &failed)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Makes `dirs` the watched set, as [`DirWatcher::set_dirs`] does: folders
    /// already watched are added again (re-arming one deleted and recreated), failed
    /// ones are retried. Re-run discovery after it, so nothing created before a new
    /// watch took effect is missed.
    ///
    /// [`DirWatcher::set_dirs`]: crate::watch::DirWatcher::set_dirs
    pub fn set_dirs(&mut self, dirs: &[PathBuf]) {
        let hub = self.hub;
        let mut guard = hub.watcher.lock();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match guard.as_mut().ok().and_then(|g| g.as_mut()) {
            Some(watcher) => apply(hub, self.id, &mut state, watcher, dirs),
            None => {
                state.given = dirs.to_vec();
                state.failed = dirs.iter().map(|d| (real(d), String::new())).collect();
            }
        }
    }

    /// True when every folder is watched, so polling is not needed for prompt
    /// discovery.
    pub fn is_active(&self) -> bool {
        self.hub.startup_error.is_none() && self.state.lock().is_ok_and(|s| s.failed.is_empty())
    }

    /// Why notification is not (fully) active, for the caller to log.
    pub fn warning(&self) -> Option<String> {
        let failed = self
            .state
            .lock()
            .map(|s| s.failed.clone())
            .unwrap_or_default();
        let warning = failure_warning(self.hub.startup_error.as_deref(), &failed);
        match (warning, self.hub.retry_error.get()) {
            (Some(w), Some(r)) => Some(format!("{w}; {r}")),
            (w, r) => w.or_else(|| r.cloned()),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Ok(mut guard) = self.hub.watcher.lock() else {
            return;
        };
        let mut unwatch = Vec::new();
        if let Ok(mut r) = self.hub.routes.lock() {
            r.subs.remove(&self.id);
            let watched = self
                .state
                .lock()
                .map(|s| s.watched.clone())
                .unwrap_or_default();
            for dir in &watched {
                if r.leave(dir, self.id) {
                    unwatch.push(dir.clone());
                }
            }
        }
        if let Some(watcher) = guard.as_mut() {
            for dir in unwatch {
                let _ = watcher.unwatch(&dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn counting(dirs: &[PathBuf]) -> (Subscription, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let s = WatchHub::global().subscribe(dirs, move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        (s, count)
    }

    /// Waits (up to a generous 60 s, for a loaded machine) for `count` to exceed
    /// `before`.
    fn fired(count: &AtomicUsize, before: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if count.load(Ordering::SeqCst) > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Past `fs.inotify.max_user_instances` (128 by default) jobs, each job's own
    /// watcher failed (EMFILE) and the job polled. Through the hub, 300 share one.
    #[test]
    fn three_hundred_jobs_all_get_change_notification_not_just_the_first_128() {
        let tmp = tempfile::tempdir().unwrap();
        let subs: Vec<(Subscription, Arc<AtomicUsize>, PathBuf)> = (0..300)
            .map(|i| {
                let d = tmp.path().join(format!("j{i}"));
                std::fs::create_dir(&d).unwrap();
                let (s, c) = counting(std::slice::from_ref(&d));
                (s, c, d)
            })
            .collect();
        for (s, _, _) in &subs {
            assert!(s.is_active(), "{:?}", s.warning());
        }
        let (_, count, dir) = &subs[299];
        let before = count.load(Ordering::SeqCst);
        std::fs::write(dir.join("access.log"), b"x\n").unwrap();
        assert!(fired(count, before));
    }

    #[test]
    fn an_event_reaches_only_the_jobs_watching_its_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let (sa, ca) = counting(std::slice::from_ref(&a));
        let (sb, cb) = counting(&[a.clone(), b.clone()]);
        assert!(sa.is_active() && sb.is_active());

        std::fs::write(b.join("x.log"), b"x\n").unwrap();
        assert!(fired(&cb, 0));
        // Events are delivered in order: once a's marker reached job a, b's event
        // would have too.
        std::fs::write(a.join("marker"), b"").unwrap();
        assert!(fired(&ca, 0));
        let after_marker = ca.load(Ordering::SeqCst);
        assert!(after_marker <= 2, "job a woke for b's file: {after_marker}");

        // A folder both watch stays watched when one of them goes.
        drop(sa);
        let before = cb.load(Ordering::SeqCst);
        std::fs::write(a.join("y.log"), b"x\n").unwrap();
        assert!(fired(&cb, before));
    }

    #[test]
    fn two_jobs_reaching_one_folder_by_two_paths_both_hear_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("releases-42");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("current");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (sa, ca) = counting(std::slice::from_ref(&real));
        let (sb, cb) = counting(std::slice::from_ref(&link));
        assert!(sa.is_active() && sb.is_active());
        std::fs::write(real.join("x.log"), b"x\n").unwrap();
        assert!(fired(&ca, 0) && fired(&cb, 0));
        // One of them going does not silence the other.
        drop(sb);
        let before = ca.load(Ordering::SeqCst);
        std::fs::write(real.join("y.log"), b"x\n").unwrap();
        assert!(fired(&ca, before));
    }

    #[test]
    fn a_missing_folder_is_reported_then_watched_once_it_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let later = tmp.path().join("nginx");
        let dirs = [tmp.path().to_path_buf(), later.clone()];
        let (mut s, count) = counting(&dirs);
        assert!(!s.is_active());
        let warning = s.warning().unwrap();
        assert!(
            warning.contains("nginx") && warning.contains("polling"),
            "{warning}"
        );
        std::fs::create_dir(&later).unwrap();
        s.set_dirs(&dirs);
        assert!(s.is_active(), "{:?}", s.warning());
        let before = count.load(Ordering::SeqCst);
        std::fs::write(later.join("access.log"), b"x\n").unwrap();
        assert!(fired(&count, before));
    }

    /// Waits (up to a generous 60 s: the retry runs every 2 s) for `done`.
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn watched(s: &Subscription) -> BTreeSet<PathBuf> {
        s.state.lock().unwrap().watched.clone()
    }

    #[test]
    fn a_folder_missing_at_start_is_watched_once_it_appears_without_an_event() {
        let tmp = tempfile::tempdir().unwrap();
        // Neither the folder nor its parent is watched: its creation is no event.
        let later = tmp.path().join("app/nginx");
        let (s, count) = counting(std::slice::from_ref(&later));
        assert!(!s.is_active());
        std::fs::create_dir_all(&later).unwrap();
        assert!(
            eventually(|| s.is_active()),
            "never watched: {:?}",
            s.warning()
        );
        // Its job is told (to rescan) right after the watch is in place, and hears
        // of changes in it now.
        assert!(fired(&count, 0));
        let before = count.load(Ordering::SeqCst);
        std::fs::write(later.join("access.log"), b"x\n").unwrap();
        assert!(fired(&count, before));
    }

    #[test]
    fn a_re_pointed_folder_link_is_watched_at_its_new_target() {
        let tmp = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(tmp.path()).unwrap();
        let (old, new) = (base.join("releases/42"), base.join("releases/43"));
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        let link = base.join("current");
        std::os::unix::fs::symlink(&old, &link).unwrap();
        let (s, count) = counting(std::slice::from_ref(&link));
        assert!(s.is_active());
        assert_eq!(watched(&s), BTreeSet::from([old.clone()]));
        // Re-pointed as deploy tools do (a new link renamed over the old one), in a
        // folder nobody watches.
        std::os::unix::fs::symlink(&new, base.join("current.new")).unwrap();
        std::fs::rename(base.join("current.new"), &link).unwrap();
        assert!(
            eventually(|| watched(&s) == BTreeSet::from([new.clone()])),
            "still watching {:?}",
            watched(&s)
        );
        assert!(s.is_active());
        let before = count.load(Ordering::SeqCst);
        std::fs::write(new.join("access.log"), b"x\n").unwrap();
        assert!(fired(&count, before));
    }

    /// A write to a file is told as a write to that file, so its job only wakes
    /// the reader; a file created, renamed or deleted is a layout change, so
    /// its job looks for new files.
    #[test]
    fn writes_are_told_apart_from_layout_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let log = dir.join("access.log");
        std::fs::write(&log, b"").unwrap();
        let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
        let s = {
            let seen = seen.clone();
            WatchHub::global().subscribe_changes(std::slice::from_ref(&dir), move |c| {
                seen.lock().unwrap().push(c.clone())
            })
        };
        assert!(s.is_active(), "{:?}", s.warning());
        let count = || seen.lock().unwrap().len();
        let wait = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(60);
            while count() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"line\n").unwrap();
        wait(1);
        assert_eq!(seen.lock().unwrap()[0], Change::Written(log.clone()));
        let writes = count();
        std::fs::rename(&log, dir.join("access.log.1")).unwrap();
        std::fs::write(&log, b"").unwrap();
        wait(writes + 1);
        let after = seen.lock().unwrap()[writes..].to_vec();
        assert_eq!(after.first(), Some(&Change::Layout), "{after:?}");
    }

    /// The notifier pauses after passing on a write, except for the events of
    /// the same wake (those read with it, or queued during the pause): a batch
    /// pauses once, not once per event.
    #[test]
    fn the_notifier_pauses_once_per_wake_after_a_write() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.after_write(t0), Some(WRITE_PAUSE), "first write");
        let end = t0 + WRITE_PAUSE;
        t.resumed(end);
        // The rest of the wake: no second pause.
        assert_eq!(t.after_write(end), None);
        assert_eq!(t.after_write(end + SAME_WAKE), None);
        // A later write (a new wake): pauses again.
        assert_eq!(
            t.after_write(end + SAME_WAKE + Duration::from_micros(1)),
            Some(WRITE_PAUSE)
        );
    }
}
