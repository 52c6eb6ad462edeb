//! The process's limit on open files, raised as far as it may go at start.
//!
//! A job reads many files at once and a member runs many jobs; the soft limit
//! (often 1024) is an old default for programs that use `select`, which tidemark
//! does not. Raising it to the hard limit needs no privilege. What the limit does
//! not cover is waited out (see docs/files.md: too many open files).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in
/// force (`None`: unlimited). Never fails the run: a refusal is logged.
pub fn raise() -> Option<u64> {
    let lim = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (lim.current, lim.maximum) else {
        // An unlimited hard limit: Linux still caps at fs.nr_open, which we do
        // not guess; the soft limit stays as it is.
        return lim.current;
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    ) {
        Ok(()) => {
            tracing::debug!("limit on open files raised from {soft} to {hard}");
            Some(hard)
        }
        Err(e) => {
            tracing::warn!(
                "could not raise the limit on open files from {soft} to {hard}: {e}; \
                 raise it with `ulimit -n` or LimitNOFILE"
            );
            Some(soft)
        }
    }
}

/// The soft limit on open files now (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Descriptors a member keeps for its own use (API connections, checkpoints,
/// sinks, the watcher) besides 1/8 of the limit.
const RESERVE: u64 = 64;

/// The default `--max-open-files`: the soft limit less a reserve of 64 and 1/8
/// of it; at least 1. Unlimited counts as 1 << 20 (Linux's usual fs.nr_open).
pub fn default_cap(soft: Option<u64>) -> usize {
    let soft = soft.unwrap_or(1 << 20);
    let cap = soft.saturating_sub(RESERVE + soft / 8).max(1);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// What one job may keep open under a member's `cap`: half of it, at least 1.
pub fn per_job(cap: usize) -> usize {
    (cap / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soft limit ends at the hard one (the test process's own limits: raising
    /// the soft limit of a test binary is harmless).
    #[test]
    fn the_soft_file_limit_is_raised_to_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let now = raise();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.maximum, before.maximum);
        if before.maximum.is_some() {
            assert_eq!(after.current, before.maximum);
        }
        assert_eq!(now, after.current);
    }

    #[test]
    fn the_default_cap_keeps_a_reserve() {
        assert_eq!(default_cap(Some(1024)), 1024 - 64 - 128);
        assert_eq!(default_cap(Some(160)), 160 - 64 - 20);
        assert_eq!(default_cap(Some(65536)), 65536 - 64 - 8192);
        // A limit below the reserve still lets a job open a file.
        assert_eq!(default_cap(Some(32)), 1);
        assert_eq!(per_job(default_cap(Some(160))), 38);
        assert_eq!(per_job(1), 1);
    }
}
