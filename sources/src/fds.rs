//! Running out of file descriptors: a resource error to wait out, never a reason
//! to fail a job (issue 10: one job's open files must not fail another's checkpoint).

use std::io;

/// What to do when a read or a checkpoint write finds no file descriptor left.
pub const OUT_OF_FDS_HINT: &str = "raise the member's file limit (ulimit -n / LimitNOFILE) \
                                   or lower max_open_files";

/// Whether `e` is EMFILE (this process's limit) or ENFILE (the system's): both pass
/// once files are closed, so the operation is worth trying again.
pub fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emfile_and_enfile_are_out_of_fds_other_errors_not() {
        assert!(is_out_of_fds(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_out_of_fds(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_out_of_fds(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_out_of_fds(&io::Error::other("x")));
    }
}
