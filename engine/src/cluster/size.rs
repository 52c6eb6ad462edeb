//! How many workers a cluster may have in all. timely connects every worker of
//! every process with every other, so memory and threads grow with the square of
//! `processes × workers`; past a few hundred the member aborts while it connects
//! ("memory allocation failed") instead of saying why.

use thiserror::Error;

/// Most workers a cluster may run in all (`-n × -w`), the same bound as `-w` alone.
pub const MAX_CLUSTER_WORKERS: usize = 256;

/// Why a cluster's shape is refused before any member starts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterSizeError {
    #[error(
        "-n {processes} × -w {workers} = {total} workers in all, more than the {max} a cluster may run\n  hint: timely connects every worker with every other; use fewer processes or fewer workers per process (more workers than cores rarely helps)",
        total = processes.saturating_mul(*workers),
        max = MAX_CLUSTER_WORKERS
    )]
    /// `processes × workers` is above [`MAX_CLUSTER_WORKERS`] (or overflows).
    TooManyWorkers {
        /// Members (`-n`).
        processes: usize,
        /// Workers per member (`-w`).
        workers: usize,
    },
}

/// The cluster's total worker count, if within [`MAX_CLUSTER_WORKERS`].
pub fn check_cluster_size(processes: usize, workers: usize) -> Result<usize, ClusterSizeError> {
    match processes.checked_mul(workers) {
        Some(total) if total <= MAX_CLUSTER_WORKERS => Ok(total),
        _ => Err(ClusterSizeError::TooManyWorkers { processes, workers }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_on_the_product() {
        assert_eq!(check_cluster_size(1, 256), Ok(256));
        assert_eq!(check_cluster_size(16, 16), Ok(256));
        assert!(check_cluster_size(2, 129).is_err());
        assert!(check_cluster_size(257, 1).is_err());
        assert!(check_cluster_size(usize::MAX, 2).is_err());
    }
}
