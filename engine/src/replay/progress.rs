//! Counters a replay's workers update and its caller reads (progress bars).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared by the workers of one replay and whoever shows its progress.
#[derive(Debug)]
pub struct ReplayProgress {
    started: Instant,
    /// File bytes of every segment (compressed bytes for gzip).
    pub bytes_total: AtomicU64,
    /// File bytes read so far, on the same scale.
    pub bytes_done: AtomicU64,
    /// Lines read so far.
    pub lines: AtomicU64,
    /// Segments in the plan.
    pub segments_total: AtomicU64,
    /// Segments read to their end so far.
    pub segments_done: AtomicU64,
    /// Windows every sink has taken so far.
    pub windows_written: AtomicU64,
    first_window: Mutex<Option<Duration>>,
    /// Every window of the range was written (the run was not cut short).
    complete: std::sync::atomic::AtomicBool,
}

impl Default for ReplayProgress {
    fn default() -> Self {
        ReplayProgress {
            started: Instant::now(),
            bytes_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            lines: AtomicU64::new(0),
            segments_total: AtomicU64::new(0),
            segments_done: AtomicU64::new(0),
            windows_written: AtomicU64::new(0),
            first_window: Mutex::new(None),
            complete: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl ReplayProgress {
    /// All counters at 0; the clock for [`ReplayProgress::elapsed`] starts now.
    pub fn new() -> ReplayProgress {
        ReplayProgress::default()
    }

    /// Time since this was created.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The current value of one of this progress' counters (e.g. `p.get(&p.lines)`), read
    /// without ordering: a display may lag the workers a little.
    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records that a window reached the sinks.
    pub(crate) fn window_written(&self) {
        if self.windows_written.fetch_add(1, Ordering::Relaxed) == 0 {
            if let Ok(mut f) = self.first_window.lock() {
                f.get_or_insert(self.started.elapsed());
            }
        }
    }

    pub(crate) fn set_complete(&self) {
        self.complete.store(true, Ordering::SeqCst);
    }

    /// Whether every window of the range reached the sinks.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::SeqCst)
    }

    /// How long after the start the first window reached the sinks.
    pub fn first_window_after(&self) -> Option<Duration> {
        self.first_window.lock().ok().and_then(|f| *f)
    }
}
