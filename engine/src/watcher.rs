//! Wakes a live job's sources when its folders change (inotify, through the
//! process's one [`WatchHub`]).
//!
//! A write to a file only wakes the sources to read it ([`PokeBoard::written`],
//! coalesced there): no glob is evaluated, no folder listed. On any other change
//! (a file or folder appeared, moved or went away) the watched folders are
//! derived from the include globs again (a new host folder must be watched too),
//! then the sources are poked so they rediscover at once; a burst of such
//! changes (a rotation is several events) is one rediscovery, [`LAYOUT_DEBOUNCE`]
//! after its first event. The sources are told whether every folder is watched:
//! then their own re-evaluation of the globs is only a slow safety net; where
//! inotify does not work they poll.
//!
//! [`PokeBoard::written`]: crate::operators::source::PokeBoard::written

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tidemark_sources::watch::{watch_dirs, Change};
use tidemark_sources::watch_hub::{Subscription, WatchHub};

use crate::operators::source::Poke;

/// How long after a layout change (create, move, delete) the rediscovery runs,
/// so the other events of the same burst (a rotation is a rename and a create;
/// logrotate renames several siblings) are taken with it. New files are still
/// found within a tenth of a second; a rotated file is followed by its reader
/// whatever discovery does.
pub const LAYOUT_DEBOUNCE: Duration = Duration::from_millis(50);

/// A live job's directory watcher: a thread that pokes the job's sources when a
/// folder its globs can match changes, so a new or rotated file is found at once
/// rather than at the next poll. Stops (and joins the thread) when dropped.
pub struct JobWatcher {
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
    /// Wakes the thread (to see `done`).
    wake: mpsc::Sender<()>,
}

impl JobWatcher {
    /// Watches the folders the `include` globs can match: tells `poke` of each
    /// write, and pokes it on each other change (a burst is one poke). Where
    /// inotify cannot watch them, it warns that the sources poll every `poll`
    /// instead and tells `poke` so.
    pub fn start(include: Vec<String>, poke: Poke, poll: Duration) -> JobWatcher {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let wake = tx.clone();
        let thread = std::thread::Builder::new()
            .name("tidemark-watch".into())
            .spawn(move || {
                let written = poke.clone();
                let on_change = move |change: &Change| match change {
                    // On the notifier's thread: cheap (flags, at most one activation).
                    Change::Written(path) => written.written(path),
                    Change::Layout => {
                        let _ = tx.send(());
                    }
                };
                let mut w = WatchHub::global().subscribe_changes(&watch_dirs(&include), on_change);
                // The sources' first discovery ran before these watches existed:
                // look again for what was created in between (all are new here).
                let mut watched = Vec::new();
                settle(&mut w, &include, &mut watched);
                if let Some(warning) = w.warning() {
                    tracing::warn!("{warning}; falling back to polling every {poll:?}");
                }
                poke.set_watching(w.is_active());
                poke.poke();
                // Blocks until a change or the drop: an idle job's thread never wakes.
                while rx.recv().is_ok() && !flag.load(Ordering::SeqCst) {
                    // Coalesce a burst of events into one rescan. A drop meanwhile
                    // waits for the debounce (it is short).
                    std::thread::sleep(LAYOUT_DEBOUNCE);
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    while rx.try_recv().is_ok() {}
                    settle(&mut w, &include, &mut watched);
                    poke.set_watching(w.is_active());
                    poke.poke();
                }
                poke.set_watching(false);
            })
            .ok();
        JobWatcher { thread, done, wake }
    }
}

/// Watches the folders the globs match until listing them again finds no new one.
/// The folders are listed before their parent's watch is in place, so a folder
/// created in between is in neither (no event, not listed): the listing after
/// the watches is the one that counts.
///
/// `watched` is the set watched before; the second listing is needed only when it
/// changed, since a folder created under one that was watched already is an event
/// of its own (a busy log's writes are events too: they cost one listing, not two).
fn settle(w: &mut Subscription, include: &[String], watched: &mut Vec<PathBuf>) {
    let mut dirs = watch_dirs(include);
    // Set even when unchanged: it re-arms a folder deleted and created again.
    w.set_dirs(&dirs);
    if dirs == *watched {
        return;
    }
    // Bounded: a job whose globs gain a folder at every look stays correct (the
    // sources' discovery polls as a safety net), it just stops chasing here.
    for _ in 0..8 {
        let again = watch_dirs(include);
        if again == dirs {
            break;
        }
        dirs = again;
        w.set_dirs(&dirs);
    }
    *watched = dirs;
}

impl Drop for JobWatcher {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.wake.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
