//! Wakes a live job's sources when its folders change (inotify via `notify`).
//!
//! On every change the watched folders are derived from the include globs again
//! (a new host folder must be watched too), then the sources are poked so they
//! rediscover at once. Where inotify does not work the sources still poll.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tidemark_sources::watch::{watch_dirs, DirWatcher};

use crate::operators::source::Poke;

pub struct JobWatcher {
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl JobWatcher {
    pub fn start(include: Vec<String>, poke: Poke, poll: Duration) -> JobWatcher {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::Builder::new()
            .name("tidemark-watch".into())
            .spawn(move || {
                let (tx, rx) = mpsc::channel::<()>();
                let mut w = DirWatcher::new(&watch_dirs(&include), move || {
                    let _ = tx.send(());
                });
                if let Some(warning) = w.warning() {
                    tracing::warn!("{warning}; falling back to polling every {poll:?}");
                }
                while !flag.load(Ordering::SeqCst) {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(()) => {
                            // Coalesce a burst of events into one rescan.
                            while rx.try_recv().is_ok() {}
                            w.set_dirs(&watch_dirs(&include));
                            poke.poke();
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .ok();
        JobWatcher { thread, done }
    }
}

impl Drop for JobWatcher {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
