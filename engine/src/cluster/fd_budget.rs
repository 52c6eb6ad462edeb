//! A member's cap on the files all its jobs keep open (`--max-open-files`): each
//! job reserves its `max_open_files` here when it is submitted or installed, and
//! gives it back when this member lets it go, so jobs together never pass the cap.

use std::collections::BTreeMap;
use std::sync::Mutex;

use thiserror::Error;

/// Why a job got no budget: what is left is below one file per worker.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "job {job:?} needs at least {minimum} open files (one per worker) but only {left} of this \
     member's cap of {cap} are left: running jobs hold {held}\n  hint: stop a job, start the \
     member with a larger --max-open-files (now {cap}), or lower the job's max_open_files"
)]
pub struct OverCap {
    /// The job that asked.
    pub job: String,
    /// The member's cap (`--max-open-files`).
    pub cap: usize,
    /// What the member's other jobs hold of it.
    pub held: usize,
    /// `cap - held`: what the job could have had.
    pub left: usize,
    /// What the job needs at least: one open file per worker.
    pub minimum: usize,
}

/// Shared by a member's control side and its workers.
#[derive(Debug)]
pub struct FdBudget {
    cap: usize,
    held: Mutex<BTreeMap<String, usize>>,
}

impl FdBudget {
    /// A budget of `cap` open files with nothing reserved (a cap of 0 is taken as 1, so a
    /// job always has a file to read).
    pub fn new(cap: usize) -> FdBudget {
        FdBudget {
            cap: cap.max(1),
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reserves `min(requested, left)` for `job`, at least `minimum`; a job that
    /// holds a reservation already keeps it (process 0 reserves at submit, then
    /// again when it installs the job). Checked under one lock, so concurrent
    /// submits cannot pass the cap.
    pub fn reserve(&self, job: &str, requested: usize, minimum: usize) -> Result<usize, OverCap> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = held.get(job) {
            return Ok(n);
        }
        let total: usize = held.values().sum();
        let left = self.cap.saturating_sub(total);
        let minimum = minimum.max(1);
        if left < minimum {
            return Err(OverCap {
                job: job.to_string(),
                cap: self.cap,
                held: total,
                left,
                minimum,
            });
        }
        let granted = requested.max(minimum).min(left);
        held.insert(job.to_string(), granted);
        Ok(granted)
    }

    /// Gives `job`'s reservation back (nothing if it holds none).
    pub fn release(&self, job: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(job);
    }

    /// What `job` holds (0: nothing).
    pub fn of(&self, job: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(job).copied().unwrap_or(0)
    }

    /// The cap, and what all jobs hold now.
    pub fn figures(&self) -> (usize, usize) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        (self.cap, held.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_pass_the_cap_and_come_back_on_release() {
        let b = FdBudget::new(40);
        assert_eq!(b.reserve("a", 16, 2), Ok(16));
        assert_eq!(b.reserve("a", 30, 2), Ok(16), "kept, not reserved twice");
        assert_eq!(b.reserve("b", 16, 2), Ok(16));
        assert_eq!(b.reserve("c", 16, 2), Ok(8), "what is left");
        let e = b.reserve("d", 16, 2).unwrap_err();
        assert_eq!((e.cap, e.held, e.left), (40, 40, 0));
        assert!(e.to_string().contains("--max-open-files (now 40)"), "{e}");
        assert_eq!(b.figures(), (40, 40));
        b.release("b");
        assert_eq!(b.of("b"), 0);
        assert_eq!(b.reserve("d", 16, 2), Ok(16));
        assert_eq!(b.figures(), (40, 40));
    }
}
