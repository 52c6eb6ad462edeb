//! A group waiting for a file descriptor (EMFILE/ENFILE) backs off: trying again at
//! every poll costs an open (and a directory scan) per group per poll while the
//! process has none to give, which is when it can least afford the work. The wait
//! starts at [`TailOptions::fd_retry`](super::TailOptions::fd_retry) (the job's
//! `poll_interval`), doubles up to [`FD_RETRY_MAX`], and ends with the wait itself.

use std::time::{Duration, Instant};

/// The longest a group out of file descriptors waits between tries: a freed
/// descriptor is used within this.
pub const FD_RETRY_MAX: Duration = Duration::from_secs(5);

/// When a group waiting for a file descriptor tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FdBackoff {
    delay: Duration,
    until: Instant,
}

impl FdBackoff {
    /// The first wait after a try found no descriptor.
    pub(super) fn first(now: Instant, first: Duration) -> FdBackoff {
        let delay = first.min(FD_RETRY_MAX);
        FdBackoff {
            delay,
            until: now + delay,
        }
    }

    /// The wait after one more try found none: twice the last, at most the max.
    pub(super) fn next(self, now: Instant) -> FdBackoff {
        let delay = (self.delay * 2).min(FD_RETRY_MAX);
        FdBackoff {
            delay,
            until: now + delay,
        }
    }

    /// Whether a read at `now` should try the file again.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_poll_interval_to_five_seconds() {
        let t = Instant::now();
        let mut b = FdBackoff::first(t, Duration::from_millis(100));
        let mut delays = vec![b.delay];
        for _ in 0..8 {
            b = b.next(t);
            delays.push(b.delay);
        }
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert!(!b.due(t));
        assert!(b.due(t + FD_RETRY_MAX));
    }
}
