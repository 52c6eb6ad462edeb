//! When a file's status vouches for its first bytes: the "racy git" rule.
//!
//! Every content check (is the file being read still the one we started, or was
//! it truncated and rewritten in place?) reads its fingerprinted first bytes. A
//! file being caught up on — an archive, a backlog after downtime — is checked
//! after every read and did not change for hours: 2,000 such files spent ~40k
//! `pread`s and fingerprints on it (issue 13, item 2).
//!
//! Any change to a file's content moves its change time (`ctime`, which no
//! system call sets back). So while an `fstat` shows the same inode, size and
//! change and modification times as when a check last read the first bytes,
//! those bytes are the ones that check saw. One trap: times are kept with a
//! granularity (a clock tick, a second on some file systems), so a change in the
//! same tick as the one before it may leave `ctime` as it was. Git meets the
//! same trap ("racy git") and the same way out: a status is trusted only if its
//! change time was already well past when it was taken. A change after that
//! `fstat` then gets a later change time, whatever the granularity.
//!
//! Where this does not hold, statuses vouch for nothing and the first bytes are
//! read at every check, as before:
//! - File systems whose times are not this machine's clock (NFS, SMB, FUSE,
//!   Ceph, 9p, ...: the server or another client stamps them, and its clock may
//!   run ahead of ours by more than the margin): only the local file systems
//!   [`local_times`] names are trusted.
//! - A clock stepped back by more than the margin after a check: a change could
//!   then be stamped with the very change time of the last one, if it also
//!   lands in the same tick. Not guarded.
//! - Writes through a shared `mmap` move the times only when a clean page is
//!   first written: a rewrite of the first bytes through a page still dirty
//!   from an earlier write goes unseen. Log writers append with `write`; one
//!   that rewrites its file's start through `mmap` is not supported.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// How far in the past a file's last change must be, when its status is taken,
/// for that status to vouch for its content later. Above any file system's time
/// granularity (ext4 and XFS: a clock tick; ext3 and HFS+: one second; FAT: two)
/// with room for a clock adjusted under us. A file written more recently than
/// this (a live log being appended to) is read as before: its first bytes at
/// every check.
pub(crate) const RACY_MARGIN: Duration = Duration::from_secs(5);

/// A file's status as one `fstat` saw it: what a later `fstat` is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The status in `m`.
    pub fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The status in `m` if it may vouch for the content read after it: its
    /// change time is more than [`RACY_MARGIN`] before `before`, a clock reading
    /// taken before the `fstat` that gave `m`.
    pub fn settled(m: &Metadata, before: SystemTime) -> Option<Stamp> {
        let changed = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
            u64::try_from(m.ctime()).ok()?,
            u32::try_from(m.ctime_nsec()).ok()?,
        ))?;
        settled(changed, before).then(|| Stamp::of(m))
    }
}

/// Whether a file time `at` (a change, a birth) was more than [`RACY_MARGIN`]
/// before `before`, a clock reading: anything the file system stamps after
/// `before` gets a later time, whatever its granularity.
pub(crate) fn settled(at: SystemTime, before: SystemTime) -> bool {
    before.duration_since(at).is_ok_and(|age| age > RACY_MARGIN)
}

/// Whether `file` is on a local file system whose change times this
/// machine's clock stamps (one `fstatfs`): ext2/3/4, XFS, Btrfs, tmpfs,
/// ramfs, F2FS, ZFS, bcachefs, overlayfs. Elsewhere no [`Stamp`] is trusted.
pub(crate) fn local_times(file: &File) -> bool {
    const LOCAL: &[u64] = &[
        0xef53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683e, // btrfs
        0x0102_1994, // tmpfs
        0x8584_58f6, // ramfs
        0xf2f5_2010, // f2fs
        0x2fc1_2fc1, // zfs
        0xca45_1a4e, // bcachefs
        0x794c_7630, // overlayfs
    ];
    rustix::fs::fstatfs(file).is_ok_and(|fs| {
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
        LOCAL.contains(&(fs.f_type as u64))
    })
}

/// The wall clock, read before an `fstat` whose status may become a [`Stamp`].
pub(crate) fn clock() -> SystemTime {
    #[cfg(any(test, feature = "test-clock"))]
    match TEST_CLOCK.with(std::cell::Cell::get) {
        TestClock::Real => {}
        TestClock::Ahead(ahead) => return SystemTime::now() + ahead,
        TestClock::NeverSettled => return SystemTime::UNIX_EPOCH,
    }
    SystemTime::now()
}

/// Tests: the clock [`clock`] reads on a thread.
#[cfg(any(test, feature = "test-clock"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestClock {
    /// The real clock.
    Real,
    /// This far ahead: files just written count as settled. Sound only for
    /// changes made once the clock has left the tick of a file's last change,
    /// which a test must wait for (the real margin guarantees it otherwise).
    Ahead(Duration),
    /// No file counts as settled, however long ago it changed (tests that
    /// count content checks, on a machine slow enough to stall for seconds).
    NeverSettled,
}

#[cfg(any(test, feature = "test-clock"))]
thread_local! {
    static TEST_CLOCK: std::cell::Cell<TestClock> = const { std::cell::Cell::new(TestClock::Real) };
}

/// Tests: the clock this thread's tailers read (see [`TestClock`]).
#[cfg(any(test, feature = "test-clock"))]
pub fn set_test_clock(clock: TestClock) {
    TEST_CLOCK.with(|c| c.set(clock));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_changed_within_the_margin_is_not_settled_and_one_changed_before_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"one\n").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        // Times from the file's own change time: no stall of the test matters.
        let changed =
            SystemTime::UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32);
        assert_eq!(Stamp::settled(&m, changed), None, "changed just then");
        assert_eq!(Stamp::settled(&m, changed + RACY_MARGIN / 2), None);
        assert_eq!(Stamp::settled(&m, changed + RACY_MARGIN), None);
        let later = changed + RACY_MARGIN + Duration::from_millis(1);
        assert_eq!(Stamp::settled(&m, later), Some(Stamp::of(&m)));
        // A clock behind the file's change time (set back since): not settled.
        assert_eq!(
            Stamp::settled(&m, changed - Duration::from_secs(3600)),
            None
        );
    }

    #[test]
    fn a_temporary_directory_here_keeps_local_times() {
        // The tests that run the clock ahead rely on it (their files are in a
        // temporary directory); a network TMPDIR would make them vacuous.
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("a.log")).unwrap();
        assert!(
            local_times(&f),
            "TMPDIR {:?} is not a local file system",
            dir.path()
        );
        let proc_file = File::open("/proc/self/status").unwrap();
        assert!(!local_times(&proc_file));
    }

    #[test]
    fn an_append_or_a_rewrite_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"one\n").unwrap();
        let first = Stamp::of(&std::fs::metadata(&path).unwrap());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"two\n").unwrap();
        assert_ne!(Stamp::of(&std::fs::metadata(&path).unwrap()), first);
        // A rewrite to the same size: the size says nothing, the times do once
        // the clock has moved past the last change's tick.
        let before = Stamp::of(&std::fs::metadata(&path).unwrap());
        let mut tries = 0;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            std::fs::write(&path, b"ONE\nTWO\n").unwrap();
            let after = std::fs::metadata(&path).unwrap();
            assert_eq!(after.len(), 8);
            if Stamp::of(&after) != before {
                break;
            }
            tries += 1;
            assert!(tries < 100, "the change time never moved");
        }
    }
}
