//! Wakes a live job's sources when its folders change (inotify, through the
//! process's one [`WatchHub`]).
//!
//! On every change the watched folders are derived from the include globs again
//! (a new host folder must be watched too), then the sources are poked so they
//! rediscover at once. The sources are told whether every folder is watched: then
//! their own re-evaluation of the globs is only a slow safety net; where inotify
//! does not work they poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tidemark_sources::watch::watch_dirs;
use tidemark_sources::watch_hub::WatchHub;

use crate::operators::source::Poke;

pub struct JobWatcher {
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
    /// Wakes the thread (to see `done`).
    wake: mpsc::Sender<()>,
}

impl JobWatcher {
    pub fn start(include: Vec<String>, poke: Poke, poll: Duration) -> JobWatcher {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let (tx, rx) = mpsc::channel::<()>();
        let wake = tx.clone();
        let thread = std::thread::Builder::new()
            .name("tidemark-watch".into())
            .spawn(move || {
                let mut w = WatchHub::global().subscribe(&watch_dirs(&include), move || {
                    let _ = tx.send(());
                });
                if let Some(warning) = w.warning() {
                    tracing::warn!("{warning}; falling back to polling every {poll:?}");
                }
                poke.set_watching(w.is_active());
                // Blocks until a change or the drop: an idle job's thread never wakes.
                while rx.recv().is_ok() && !flag.load(Ordering::SeqCst) {
                    // Coalesce a burst of events into one rescan.
                    while rx.try_recv().is_ok() {}
                    w.set_dirs(&watch_dirs(&include));
                    poke.set_watching(w.is_active());
                    poke.poke();
                }
                poke.set_watching(false);
            })
            .ok();
        JobWatcher { thread, done, wake }
    }
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
