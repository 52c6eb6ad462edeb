//! The process's limit on open files, raised as far as it may go at start.
//!
//! A job reads many files at once and a member runs many jobs; the soft limit
//! (often 1024) is an old default for programs that use `select`, which tidemark
//! does not. Raising it to the hard limit needs no privilege. What the limit does
//! not cover is waited out (see the README: too many open files).

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
}
