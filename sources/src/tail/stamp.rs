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

use std::fs::Metadata;
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
        let settled = before
            .duration_since(changed)
            .is_ok_and(|age| age > RACY_MARGIN);
        settled.then(|| Stamp::of(m))
    }
}

/// The wall clock, read before an `fstat` whose status may become a [`Stamp`].
pub(crate) fn clock() -> SystemTime {
    match CLOCK_AHEAD.with(std::cell::Cell::get) {
        Some(ahead) => SystemTime::now() + ahead,
        None => SystemTime::now(),
    }
}

thread_local! {
    /// Tests: the clock runs this far ahead on this thread, so files they just
    /// wrote count as settled. Compiled in (not `cfg(test)`) for the model
    /// test under `tests/`; nothing else sets it.
    static CLOCK_AHEAD: std::cell::Cell<Option<Duration>> = const { std::cell::Cell::new(None) };
}

/// Tests only: on this thread, files changed less than `ahead` ago count as
/// settled (`None`: the real clock). Sound only for changes made once the
/// clock has left the tick of a file's last change, which a test must wait
/// for (the real margin is what guarantees it otherwise).
#[doc(hidden)]
pub fn set_clock_ahead(ahead: Option<Duration>) {
    CLOCK_AHEAD.with(|c| c.set(ahead));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_changed_just_now_is_not_settled_and_one_changed_long_ago_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"one\n").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let now = SystemTime::now();
        assert_eq!(Stamp::settled(&m, now), None, "changed just now");
        assert_eq!(
            Stamp::settled(&m, now + RACY_MARGIN / 2),
            None,
            "changed within the margin"
        );
        let later = now + RACY_MARGIN + Duration::from_secs(1);
        assert_eq!(Stamp::settled(&m, later), Some(Stamp::of(&m)));
        // A clock behind the file's change time (set back since): not settled.
        assert_eq!(Stamp::settled(&m, now - Duration::from_secs(3600)), None);
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
