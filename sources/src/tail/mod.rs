//! Tailing a file group with file identity: every kind of rotation, truncation and
//! deletion, resumable from a [`Position`].
//!
//! A group is a live path (`/logs/web-1/access.log`) plus its rotated siblings
//! (`NAME.1`, `NAME.2.gz`, …; higher is older). Its lines form one stream: oldest
//! file first, each drained to its end before the next newer one, the live file last.
//!
//! # Identity
//!
//! A file is `(device, inode)` plus a fingerprint of its first `fingerprint_bytes`
//! bytes (decompressed for gzip) — [`FileId`]. A file shorter than that is
//! fingerprinted over what it has, and the fingerprint is extended as it grows
//! (positions taken meanwhile still match: matching uses the stored length). A
//! reused inode with different first bytes is a different file. A compressed
//! sibling (new inode) is recognised by its content alone, as is the copy a
//! copytruncate makes. Files whose first `fingerprint_bytes` are identical (a fixed
//! banner) can then be told apart only by inode: give them a larger fingerprint.
//!
//! # Rotation (follow mode)
//!
//! Checks happen once per [`Tailer::read_some`] (an `fstat` and a read of the first
//! bytes) and at end of file (plus a `stat` of the live path), never per line. A
//! file whose status (`fstat`: size, change and modification times) is unchanged
//! since a check that read its first bytes, and whose last change was already
//! seconds old then, is checked by its status alone: any change to it moves its
//! change time (see `stamp.rs`, git's "racy" rule).
//!
//! - **rename + create**: at EOF, the live path no longer names our file. We keep
//!   reading through the open handle; we leave it (and close it) once a newer file has
//!   data — until then the writer may still append through its old handle — and the
//!   newer files follow from offset 0.
//! - **copytruncate**: our file became shorter than what we read, or its first bytes
//!   changed. A sibling with the old first bytes is the copy: we continue in it from
//!   the line where we were, to its end, then read the live file from 0. The old
//!   content is recorded as read up to that line, so a copy that the next rotation
//!   renames (or compresses) before we open it is still continued from there when a
//!   later scan finds it, never read again from its start.
//! - **plain truncation** (no copy found): the file is read again from 0; counted and
//!   reported.
//! - **delete**: the open handle is read to its end, then closed (the space is
//!   freed); a file created later at the live path is read from 0.
//! - A rotated or deleted file's unterminated last line is delivered once nothing was
//!   appended for `unterminated_wait`; the live file's never is in follow mode (in
//!   non-follow mode it is, at the end). A compressed file's at once.
//!
//! # Positions and resuming
//!
//! [`Tailer::position`] is the start of the next line not yet delivered; each line
//! lends its own start in [`LineMeta::position`]. Resuming finds the position's file
//! among the live file and its siblings — by inode and fingerprint, by fingerprint
//! alone once compressed (`NAME.1` → `NAME.2.gz`: the offset is then skipped in
//! decompressed bytes) or copied — reads it from the offset, skips older files and
//! continues with the newer ones in order. A file shorter than the offset was
//! truncated while stopped: its copy is used if there is one, else it is read from 0.
//! A directory listing taken while a rotation renames siblings can miss one (listed
//! as `NAME.2`, renamed or compressed before the scan looks at it). Every scan is
//! therefore repeated until two in a row agree (same names and inodes): the next file
//! is never chosen from a scan that missed an older one, which would be read after a
//! newer one, out of order, and a resume plan never misplaces its position. A scan
//! takes each file's inode and first bytes from one open file, never a `stat` of
//! the path and a later read of it.
//!
//! If the file is nowhere (**resume miss**: counted, reported by `take_error`): if
//! its inode now holds other content, that file is read from 0 (older files count as
//! read); else if it was the live file, it was deleted or replaced while stopped, so
//! the live file is read from 0 and the siblings — older than it when the position
//! was taken — count as read (if tidemark was stopped across more rotations than are
//! kept, that skips files: the message says to replay them); else (it was a rotated
//! sibling, aged out) every remaining file is newer, so all are read from the oldest.
//!
//! A position taken after a file was truncated in place but before the tailer
//! noticed (its next `read_some`, even with no budget) still points into the old
//! content. Resuming from it reads the file from 0, as a file rewritten in place;
//! if the file was also copytruncated before the restart, that copy counts as
//! already read and its lines are lost.
//!
//! While nothing of the current file has been delivered, the position is the end of
//! the newest file already read that still exists, or `None` if none does; so a
//! position never names a deleted file the tailer knows about.
//!
//! A live file with nothing consumed is scanned for again after its first read:
//! a copy that a copytruncate made between the scan that chose the file and that
//! read holds older lines, and is read first (the read is taken back). Not when
//! the file's status is as it was at its open and was settled before that scan
//! began: a copytruncate would have changed it.
//!
//! # Files that cannot be read
//!
//! A file of the group that cannot be opened or read (permissions, too many open
//! files, an I/O error), or a folder that cannot be listed, is never skipped
//! silently: in follow mode the group waits for it
//! ([`ReadStatus::Blocked`]: not idle), otherwise it is reported and listed in
//! [`Tailer::unreadable`]. A compressed file whose data ends early is read up to
//! its last complete line; a newer file with the same first bytes continues from
//! that line, and if none does the loss is reported.
//!
//! # Allowed roots
//!
//! A tailer made with [`Tailer::with_allowed_roots`] reads only files whose real path
//! (symlinks resolved) lies inside one of the roots ([`crate::file::roots`]). A scan
//! opens every file it lists through [`AllowedRoots::open`](crate::file::AllowedRoots::open),
//! which checks the file actually opened, and lists a cached (already checked) file
//! only while its path still resolves inside; a file refused is left out of the
//! scan, as if it did not exist: never read, counted once in
//! [`TailCounters::outside_roots`] and reported once through
//! [`Tailer::take_error`]. The open that follows a scan goes through the same
//! check, so a link swapped in between (a sibling replaced by a link to
//! `/etc/passwd`) makes the tailer scan again rather than read it.

mod done;
mod fd_backoff;
mod identity;
pub mod position;
mod resume;
mod source;
mod stamp;
mod state;
mod tailer;
#[cfg(test)]
mod tests;
mod unreadable;

use std::path::Path;
use std::time::Duration;

/// Lines beyond this are skipped and counted rather than buffered.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;

/// What a [`Tailer::read_some`] call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Budget used up; more may be readable right away.
    More,
    /// At the end of the live file; in follow mode, try again later.
    Idle,
    /// Every file of the group is read (never in follow mode).
    Finished,
    /// Follow mode: waiting for a file of the group that cannot be opened or read
    /// (tried again on every call; see [`Tailer::unreadable`]). Not idle: its lines
    /// are still to come.
    Blocked,
}
pub use fd_backoff::FD_RETRY_MAX;
pub use identity::{id_of, identify, starts_like};
pub use position::{FileId, HeldInodes, Left, Position};
#[cfg(feature = "test-clock")]
pub use stamp::{set_test_clock, TestClock};
pub use tailer::Tailer;
pub use unreadable::{hint as unreadable_hint, Unreadable, REPORT_EVERY};

/// How a [`Tailer`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailOptions {
    /// Live mode: follow the live file as it grows. `false` (`--until-eof`, replay):
    /// read every file once, deliver final unterminated lines, then `Finished`.
    pub follow: bool,
    /// Longer lines are skipped and counted, never held whole.
    pub max_line_bytes: usize,
    /// How many first bytes identify a file.
    pub fingerprint_bytes: usize,
    /// How long a rotated or deleted file's unterminated last line waits for the rest
    /// of it before being delivered as it is.
    pub unterminated_wait: Duration,
    /// How long a group that found no file descriptor (EMFILE/ENFILE) waits before
    /// trying again; the wait doubles at each failed try, up to [`FD_RETRY_MAX`].
    /// The engine gives the job's `poll_interval`.
    pub fd_retry: Duration,
}

impl Default for TailOptions {
    fn default() -> TailOptions {
        TailOptions {
            follow: true,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            fingerprint_bytes: 1024,
            unterminated_wait: Duration::from_secs(1),
            fd_retry: Duration::from_millis(250),
        }
    }
}

/// Where a delivered line is.
#[derive(Debug, Clone, Copy)]
pub struct LineMeta<'a> {
    /// The start of this line (clone it to keep it: a checkpoint can resume here).
    pub position: &'a Position,
    /// The file's path as last seen.
    pub path: &'a Path,
    /// 1-based line number within the file, or 0 if unknown (read began mid-file).
    pub line_no: u64,
    /// [`TailCounters::discontinuities`] as this line is delivered: a line whose
    /// count differs from the previous line's comes after a discontinuity.
    pub discontinuities: u64,
}

/// What a tailer counted; the engine folds these into its self-metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailCounters {
    /// Bytes read (decompressed for gzip).
    pub bytes: u64,
    /// Lines delivered.
    pub lines: u64,
    /// Lines longer than `max_line_bytes`, skipped.
    pub oversize_lines: u64,
    /// Unterminated last lines delivered (rotated, deleted or finished files).
    pub unterminated_lines: u64,
    pub files_opened: u64,
    /// The live file renamed away (rename + create rotation).
    pub rotations: u64,
    /// Truncations whose old content was recovered from a copy.
    pub copytruncates: u64,
    /// Truncations without a copy: read again from 0.
    pub truncations: u64,
    /// Files deleted while open (read to their end, then closed).
    pub deletions: u64,
    pub open_errors: u64,
    /// Files not read because their real path (symlinks resolved) is outside the
    /// allowed roots ([`Tailer::with_allowed_roots`]); each counted once.
    pub outside_roots: u64,
    pub read_errors: u64,
    /// Compressed files whose data ended early or was corrupt: read up to the
    /// damage (see the module docs).
    pub damaged_gzip: u64,
    /// Resume positions whose file was not found (see the module docs).
    pub resume_misses: u64,
    /// Files closed to stay within the budget of open files: live files idle
    /// at their end ([`Tailer::park`]) and live files closed mid-read for
    /// event-time pacing ([`Tailer::park_paused`]); opened again by identity.
    pub parks: u64,
    pub reopens: u64,
    /// Reopens of a parked file that found no file descriptor (EMFILE/ENFILE)
    /// and waited.
    pub reopen_waits: u64,
    /// Parked files deleted or moved out of their folder before they were
    /// reopened: lines written to them after parking, if any, could not be read.
    pub lost_while_parked: u64,
    /// Files closed mid-read for event-time pacing ([`Tailer::park_paused`])
    /// and deleted or moved out of their folder before they were reopened:
    /// their unread lines (on disk when closed) could not be read.
    pub lost_while_paused: u64,
    /// Times a group out of file descriptors put its next try off (backing off
    /// from the poll interval to [`FD_RETRY_MAX`]).
    pub fd_backoffs: u64,
    /// Times the stream of lines stopped being the continuation of what was read
    /// before it — a resume miss, a truncation without a copy (at a resume or
    /// while reading), a copy shorter than the place read in its file, the lost
    /// rest of a damaged compressed file, a file lost while parked or paused, an
    /// unreadable file skipped (without follow): the lines after
    /// may repeat earlier ones or follow lost ones. Each is also counted under its
    /// own name above and reported. A reader that numbers lines (the agent) starts
    /// a new numbering there ([`LineMeta::discontinuities`] tells it where).
    pub discontinuities: u64,
}
