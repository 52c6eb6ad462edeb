//! Files of the group that cannot be opened or read (permissions, too many open
//! files, an I/O error): never skipped silently.
//!
//! - **Follow mode** (live): the group waits for the file. It is tried again at
//!   every read; it is reported once with a hint (and again every
//!   [`REPORT_EVERY`] while it lasts); files after it in the stream are not read
//!   meanwhile (they would come before it); and [`Tailer::read_some`](super::Tailer::read_some) says
//!   [`ReadStatus::Blocked`](super::ReadStatus::Blocked): the group is not idle,
//!   so the engine keeps its windows open and its backlog is not late once the
//!   file can be read.
//! - **Without follow** (`--until-eof`, replay) there is no later: the file is
//!   reported, skipped, and listed in [`Tailer::unreadable`](super::Tailer::unreadable) so that the run can end
//!   with an error naming it. Except for too many open files (EMFILE/ENFILE): that
//!   passes as other groups finish and close theirs, so the group waits as in
//!   follow mode (issue 10: a finite run reads every group even when they do not
//!   all fit in the file limit at once).
//!
//! A file already read (same inode as one finished, or the one being read) that
//! becomes unreadable is of no concern: nothing more is needed from it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// While a group waits for a file, the report is repeated this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// A file of the group that could not be opened or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    /// The error, as the OS put it (`Permission denied (os error 13)`).
    pub error: String,
}

/// What to do about `e`, for the message.
pub fn hint(e: &io::Error) -> &'static str {
    // Linux errno values: EPERM, EIO, ENFILE, EMFILE, EACCES.
    match e.raw_os_error() {
        Some(1 | 13) => {
            "give the user tidemark runs as read permission on the file and search \
             permission on its folders (check ACLs and SELinux/AppArmor too), or leave it \
             out with `exclude`"
        }
        Some(23 | 24) => {
            "too many open files: raise the limit on open files (`ulimit -n`, \
             `LimitNOFILE=` in a systemd unit) or lower max_open_files; the group waits until one is free"
        }
        Some(5) => "an I/O error from the disk or file system: check the device and the kernel log",
        _ => "check that tidemark may read it",
    }
}
