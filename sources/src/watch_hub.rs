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
//! event that wakes the notifier's thread. After passing on a write that came
//! after a gap, the thread pauses for [`WRITE_PAUSE`] ([`Throttle`]): the kernel
//! meanwhile merges the same file's further writes into one queued event, so a
//! followed file costs a few wakes per pause, whatever its number of writes. The
//! first write after a quiet spell is passed on at once; a later one waits at
//! most the pause. Events handled back to back (a batch being drained: what one
//! read returned, what queued up during the pause) never pause, however many:
//! the pause must cost each wake once, not each event, or many files written at
//! once (a fleet's host folders) drain at a few events per pause and the queue
//! never runs dry — and notify adds and removes watches on this same thread,
//! only when the queue is empty, so a backlog also holds up every job's watch
//! changes, a new host folder's watch, and a stopping job's unwatch.
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

use crate::file::RealPaths;
use crate::watch::{classify, failure_warning, Change};

type Callback = Arc<dyn Fn(&Change) + Send + Sync>;

/// How long the notifier's thread pauses after passing on a write (see the
/// module docs). Every job's events wait at most this long more while files
/// are being written.
pub const WRITE_PAUSE: Duration = Duration::from_millis(25);

/// An event handled within this long after the previous one (the end of its
/// handling, or of a pause) belongs to the same batch: it does not pause.
/// Far over the work of one event between two reads of a batch (a few µs),
/// under the time between two writes of a busy file (500 µs at 2,000 writes a
/// second), which then still pauses once per wake.
const SAME_BATCH: Duration = Duration::from_micros(200);

/// Decides when the notifier's thread pauses (see the module docs).
#[derive(Debug, Default)]
struct Throttle {
    /// When the thread was last done with an event (or a pause).
    last: Option<Instant>,
}

impl Throttle {
    /// An event was handled from `began` to `ended` (`wrote`: it passed on a
    /// write): how long to pause now, if at all.
    fn handled(&mut self, began: Instant, ended: Instant, wrote: bool) -> Option<Duration> {
        let same_batch = self
            .last
            .is_some_and(|last| began.saturating_duration_since(last) <= SAME_BATCH);
        self.last = Some(ended);
        (wrote && !same_batch).then_some(WRITE_PAUSE)
    }

    /// A pause ended at `now`: what queued up meanwhile is one batch with it.
    fn resumed(&mut self, now: Instant) {
        self.last = Some(now);
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
        let mut memo = RealPaths::default();
        let now: BTreeSet<PathBuf> = self.given.iter().map(|d| real(d, &mut memo)).collect();
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
/// notify then reports (and removes) under one of them only. Through `memo`
/// (one per pass over a job's folders): a fleet's 2,000 host folders share
/// their parents, each looked at once (std's `canonicalize` costs a `readlink`
/// per component of every folder, every 2 s).
fn real(dir: &Path, memo: &mut RealPaths) -> PathBuf {
    memo.canonical(dir).unwrap_or_else(|| dir.to_path_buf())
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
            // The gap since the previous event is measured to the start of
            // this one: its own callbacks' time must not make it look late.
            let start = Instant::now();
            let Some(change) = classify(&event) else {
                // Not news, but part of the batch being drained.
                throttle.handled(start, Instant::now(), false);
                return;
            };
            let targets = match for_events.lock() {
                Ok(r) => r.targets(&event),
                Err(_) => return,
            };
            for call in &targets {
                call(&change);
            }
            let wrote = matches!(change, Change::Written(_)) && !targets.is_empty();
            if let Some(pause) = throttle.handled(start, Instant::now(), wrote) {
                std::thread::sleep(pause);
                throttle.resumed(Instant::now());
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
    let mut memo = RealPaths::default();
    let wanted: BTreeSet<PathBuf> = dirs.iter().map(|d| real(d, &mut memo)).collect();
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
                let mut memo = RealPaths::default();
                state.failed = dirs
                    .iter()
                    .map(|d| (real(d, &mut memo), String::new()))
                    .collect();
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
mod tests;
