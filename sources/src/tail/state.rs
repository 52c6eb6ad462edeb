//! Where a [`Tailer`](super::Tailer) stands in its group's stream ([`Stream`]),
//! and the small types its parts pass to each other. Kept apart from the tailer
//! so that the files implementing it (`tailer/*.rs`) and the tailer itself
//! import them from here, not from each other.

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use super::fd_backoff::FdBackoff;
use super::position::{FileId, Position};
use super::source::Cur;

/// Where a tailer is in its group's stream; each variant owns what that state
/// holds. The transitions are the methods below, each consuming the state and
/// returning the next:
///
/// ```text
///  Tailer::new(Some(pos)) ─▶ Placing(Resume) ┐  (checkpointed file looked for; stays
///  Tailer::at_end         ─▶ Placing(End)    │   Placing while it is missing, raced
///  Tailer::new(None)      ─▶ Between         │   or blocked: `advance` puts it back)
///                                            │
///  Placing ──open (file found) ──────────────┼─▶ Reading
///  Placing ──(nothing to open: siblings read)┴─▶ Between
///  Between ──open (oldest unread file) ────────▶ Reading
///  Reading ──close (finished, truncated, gone) ▶ Between
///  Reading ──close, then set_aside(file) ──────▶ SetAside { reading: None }
///            (older unread files first: a copytruncate's copy, or an older
///             file that appeared while the live file had nothing consumed)
///  SetAside { reading: None } ──open ──────────▶ SetAside { reading: Some(older) }
///  SetAside { reading: Some } ──close ─────────▶ SetAside { reading: None }
///  SetAside ──take_back (its turn) ────────────▶ Reading(file)
///  Reading (at the end of the live file) ──close, finish ──▶ Finished
///  Placing / Between / SetAside ──finish ──────▶ Finished
///            (not in follow mode, once nothing more can be opened)
/// ```
///
/// While `Reading`, the file's descriptor may be closed to save descriptors
/// (`Tailer::park`, [`Src::Closed`](super::source::Src::Closed)) and opened
/// again by identity before the next read: a state of the file, not of the
/// stream. Waiting for an unreadable file ([`Blocked`]) is not one either: a
/// group can wait in any state.
pub(super) enum Stream {
    /// A new tailer not yet placed in its group (see [`Start`]).
    Placing(Start),
    /// No file open: the next read opens the oldest file not read yet (a new
    /// tailer without a position starts here, at the oldest sibling).
    Between,
    /// Reading one file.
    Reading(Cur),
    /// A file set aside, still open so that it survives a deletion, until older
    /// files are read: the live file after a copytruncate (rewound to 0, read
    /// after its copy), or a live file with nothing consumed when an older
    /// unread file appeared next to it. `reading` is the older file being read
    /// meanwhile (`None` between two of them).
    SetAside {
        reading: Option<Cur>,
        /// Boxed: a rare state, which would make every tailer's stream twice
        /// the size of one file.
        file: Box<Cur>,
        /// The files to finish first (used once `file` is out of the group).
        before: Vec<FileId>,
    },
    /// Every file of the group is read (never in follow mode).
    Finished,
}

/// Where a new tailer starts.
pub(super) enum Start {
    /// At a checkpointed position, not yet found.
    Resume(Resume),
    /// At the end of the live file.
    End,
}

/// A checkpointed position being looked for.
pub(super) struct Resume {
    pub pos: Position,
    /// Scans repeated because the position's file was not found (a listing
    /// taken while logrotate renames siblings may miss one).
    pub retries: u32,
    /// When the next scan after a miss is due (see `Tailer::wake_at`).
    pub retry_at: Option<Instant>,
}

impl Stream {
    /// The file being read.
    pub fn cur(&self) -> Option<&Cur> {
        match self {
            Stream::Reading(cur) => Some(cur),
            Stream::SetAside { reading, .. } => reading.as_ref(),
            Stream::Placing(_) | Stream::Between | Stream::Finished => None,
        }
    }

    pub fn cur_mut(&mut self) -> Option<&mut Cur> {
        match self {
            Stream::Reading(cur) => Some(cur),
            Stream::SetAside { reading, .. } => reading.as_mut(),
            Stream::Placing(_) | Stream::Between | Stream::Finished => None,
        }
    }

    /// The file set aside, and the files it waits for.
    pub fn set_aside_file(&self) -> Option<(&Cur, &[FileId])> {
        match self {
            Stream::SetAside { file, before, .. } => Some((file, before)),
            _ => None,
        }
    }

    pub fn set_aside_file_mut(&mut self) -> Option<&mut Cur> {
        match self {
            Stream::SetAside { file, .. } => Some(file),
            _ => None,
        }
    }

    /// Whether a file is set aside.
    pub fn has_set_aside(&self) -> bool {
        matches!(self, Stream::SetAside { .. })
    }

    /// The resume position being looked for, if the tailer is not placed yet.
    pub fn resume(&self) -> Option<&Resume> {
        match self {
            Stream::Placing(Start::Resume(r)) => Some(r),
            _ => None,
        }
    }

    /// `cur` was opened: it is the file being read (while a file is set aside,
    /// one of the older files). A file read so far is dropped, as the callers
    /// close it first.
    pub fn open(self, cur: Cur) -> Stream {
        match self {
            Stream::SetAside { file, before, .. } => Stream::SetAside {
                reading: Some(cur),
                file,
                before,
            },
            Stream::Placing(_) | Stream::Between | Stream::Reading(_) | Stream::Finished => {
                Stream::Reading(cur)
            }
        }
    }

    /// The file being read is left (finished, truncated, gone): returns it.
    pub fn close(self) -> (Stream, Option<Cur>) {
        match self {
            Stream::Reading(cur) => (Stream::Between, Some(cur)),
            Stream::SetAside {
                reading,
                file,
                before,
            } => (
                Stream::SetAside {
                    reading: None,
                    file,
                    before,
                },
                reading,
            ),
            s @ (Stream::Placing(_) | Stream::Between | Stream::Finished) => (s, None),
        }
    }

    /// `file` waits until the files `before` it are read. Called with no file
    /// being read (the caller closed it); a file already set aside is replaced,
    /// which the callers rule out.
    pub fn set_aside(self, file: Cur, before: Vec<FileId>) -> Stream {
        let reading = match self {
            Stream::Reading(cur) => Some(cur),
            Stream::SetAside { reading, .. } => reading,
            Stream::Placing(_) | Stream::Between | Stream::Finished => None,
        };
        Stream::SetAside {
            reading,
            file: Box::new(file),
            before,
        }
    }

    /// The file set aside has its turn: it is read now (an older file still
    /// being read is dropped; the callers have closed it).
    pub fn take_back(self) -> Stream {
        match self {
            Stream::SetAside { file, .. } => Stream::Reading(*file),
            s => s,
        }
    }

    /// Every file is read (not in follow mode): whatever is held is closed.
    pub fn finish(self) -> Stream {
        Stream::Finished
    }
}

/// What trying to open the next file came to.
pub(super) enum Outcome {
    Opened,
    /// The group changed between the scan and the open: scan again.
    Raced,
    Nothing,
    /// Follow mode: the next file cannot be opened; wait for it (see
    /// [`super::unreadable`]).
    Blocked,
    /// The checkpointed file was not found: scan again at the resume's `retry_at`.
    Later,
}

pub(super) enum OpenFail {
    Raced,
    Io(io::Error),
}

/// What reopening a parked (descriptor closed) file came to.
pub(super) enum Reopen {
    /// Nothing parked: the current file (if any) is open.
    NotParked,
    Reopened,
    /// The file is no longer anywhere in the group: the tailer moves on.
    Gone,
    /// It could not be opened now: the group waits (tried again next call).
    Blocked,
}

/// The file a follow-mode tailer is waiting for.
pub(super) struct Blocked {
    pub path: PathBuf,
    pub since: Instant,
    pub reported: Instant,
    /// Out of file descriptors: when to try again (`None`: at every read).
    pub retry: Option<FdBackoff>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::source::Src;

    /// A file held by the stream; only its inode matters here.
    fn file(ino: u64) -> Cur {
        Cur {
            src: Src::Closed {
                mtime: (0, 0),
                born: None,
                born_vouches: false,
                size_when_paused: None,
            },
            path: PathBuf::from(format!("f{ino}")),
            id: FileId {
                dev: 1,
                ino,
                fingerprint: 0,
                fingerprint_len: 0,
            },
            gzip: false,
            live_now: false,
            born: None,
            start_off: 0,
            read_off: 0,
            skip: 0,
            line_no: 0,
            line_no_known: true,
            pos_owned: false,
            partial_since: None,
            disk_size: 0,
            counted_deletion: false,
            settled: None,
            chosen: None,
            local_times: false,
        }
    }

    fn ino(cur: Option<&Cur>) -> Option<u64> {
        cur.map(|c| c.id.ino)
    }

    #[test]
    fn a_file_set_aside_waits_while_older_files_are_read_then_comes_back() {
        let s = Stream::Between.open(file(1));
        assert_eq!(ino(s.cur()), Some(1));
        let (s, live) = s.close();
        assert!(matches!(s, Stream::Between));
        let s = s.set_aside(live.unwrap(), Vec::new());
        assert_eq!((ino(s.cur()), s.has_set_aside()), (None, true));
        // The older files are read one by one; the set-aside file stays.
        let s = s.open(file(2));
        assert_eq!(ino(s.cur()), Some(2));
        let (s, older) = s.close();
        assert_eq!(ino(older.as_ref()), Some(2));
        assert_eq!(ino(s.set_aside_file().map(|(f, _)| f)), Some(1));
        let s = s.take_back();
        assert!(matches!(s, Stream::Reading(_)));
        assert_eq!((ino(s.cur()), s.has_set_aside()), (Some(1), false));
    }

    #[test]
    fn placing_holds_the_resume_until_a_file_opens_and_finish_drops_everything() {
        let pos = Position {
            file: file(7).id,
            path: PathBuf::from("f7"),
            offset: 3,
            gzip: false,
        };
        let s = Stream::Placing(Start::Resume(Resume {
            pos,
            retries: 2,
            retry_at: None,
        }));
        assert_eq!(s.resume().map(|r| r.retries), Some(2));
        assert_eq!(ino(s.cur()), None);
        let s = s.open(file(7));
        assert!(s.resume().is_none());
        assert_eq!(ino(s.cur()), Some(7));
        let s = s.set_aside(file(8), Vec::new()).finish();
        assert!(matches!(s, Stream::Finished));
        assert_eq!((ino(s.cur()), s.has_set_aside()), (None, false));
    }
}
