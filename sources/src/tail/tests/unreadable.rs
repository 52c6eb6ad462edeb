//! Files that cannot be opened (issue 10 §2a): waited for in follow mode, skipped
//! and listed otherwise; never silently. The open error is injected (root reads
//! any file whatever its permissions).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::tail::FD_RETRY_MAX;

use super::*;

/// Makes opening any path in `paths` fail with `errno` until `paths` is emptied.
pub(super) fn fail_opens(t: &mut Tailer, errno: i32) -> Arc<Mutex<Vec<PathBuf>>> {
    let failing: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let f = failing.clone();
    t.scanner.fail_open = Some(Box::new(move |p: &Path| {
        f.lock()
            .unwrap()
            .iter()
            .any(|x| x == p)
            .then(|| io::Error::from_raw_os_error(errno))
    }));
    failing
}

fn errors(t: &mut Tailer) -> Vec<String> {
    std::iter::from_fn(|| t.take_error()).collect()
}

/// Regression: a live file that could not be opened was left out of the scan
/// without a word; the group was idle (its windows closed without it).
#[test]
fn unreadable_file_is_not_skipped_silently() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(&live, b"a\nb\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    let failing = fail_opens(&mut h.t, 13);
    failing.lock().unwrap().push(live.clone());
    let (lines, st) = h.read();
    assert!(lines.is_empty());
    assert_eq!(st, ReadStatus::Blocked, "waiting, not idle");
    let errs = errors(&mut h.t);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains(&live.display().to_string()), "{errs:?}");
    assert!(errs[0].contains("Permission denied"), "{errs:?}");
    assert!(errs[0].contains("hint: give the user tidemark runs as read permission"));
    assert_eq!(h.t.unreadable().len(), 1);
    assert_eq!(h.t.unreadable()[0].path, live);
    assert_eq!(h.t.counters().open_errors, 1);
    // Tried again at every read, reported once (rate-limited), counted once.
    for _ in 0..5 {
        assert_eq!(h.later().1, ReadStatus::Blocked);
    }
    assert!(errors(&mut h.t).is_empty());
    assert_eq!(h.t.counters().open_errors, 1);
    // Reported again after a while.
    h.now += crate::tail::REPORT_EVERY;
    assert_eq!(h.read().1, ReadStatus::Blocked);
    let errs = errors(&mut h.t);
    assert!(
        errs.len() == 1 && errs[0].contains("still cannot be read"),
        "{errs:?}"
    );
    // Readable again: every line, nothing waits any more.
    failing.lock().unwrap().clear();
    let (lines, st) = h.read();
    assert_eq!(lines, strs(&["a", "b"]));
    assert_eq!(st, ReadStatus::Idle);
    assert!(h.t.unreadable().is_empty());
    let changes = h.t.unreadable_changes();
    assert_eq!(h.read().1, ReadStatus::Idle);
    assert_eq!(h.t.unreadable_changes(), changes);
}

/// An older file that cannot be opened comes first in the stream: nothing after
/// it is read until it can be (its lines would be late), in order afterwards.
#[test]
fn an_unreadable_rotated_file_holds_back_the_newer_ones() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(sib(&live, 1), b"old\n").unwrap();
    fs::write(&live, b"new\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    let failing = fail_opens(&mut h.t, 24);
    failing.lock().unwrap().push(sib(&live, 1));
    let (lines, st) = h.read();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(st, ReadStatus::Blocked);
    let errs = errors(&mut h.t);
    assert!(errs[0].contains("too many open files"), "{errs:?}");
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["old", "new"]));
}

/// A rename rotation whose new live file cannot be opened: the group waits for
/// it once it has data (the old file is drained first).
#[test]
fn a_new_live_file_that_cannot_be_opened_blocks_its_group() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(&live, b"one\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    let failing = fail_opens(&mut h.t, 13);
    assert_eq!(h.drain(), strs(&["one"]));
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"two\n").unwrap();
    failing.lock().unwrap().push(live.clone());
    let mut st = ReadStatus::Idle;
    for _ in 0..5 {
        st = h.later().1;
    }
    assert_eq!(st, ReadStatus::Blocked);
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["two"]));
    assert_eq!(h.t.counters().rotations, 1);
}

/// Without follow there is no later: skipped, reported, listed.
#[test]
fn an_unreadable_file_is_listed_when_not_following() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(sib(&live, 2), b"oldest\n").unwrap();
    fs::write(sib(&live, 1), b"old\n").unwrap();
    fs::write(&live, b"new\n").unwrap();
    let mut h = H::new(&live, opts(false), None);
    let failing = fail_opens(&mut h.t, 5);
    failing.lock().unwrap().push(sib(&live, 1));
    assert_eq!(h.drain(), strs(&["oldest", "new"]));
    assert_eq!(h.t.unreadable().len(), 1);
    assert_eq!(h.t.unreadable()[0].path, sib(&live, 1));
    assert!(h.t.unreadable()[0].error.contains("os error 5"));
    let errs = errors(&mut h.t);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("ends with an error"), "{errs:?}");
    assert!(errs[0].contains("I/O error"), "{errs:?}");
    assert_eq!(h.t.counters().open_errors, 1);
}

/// A checkpointed live file that cannot be opened after a restart is waited for,
/// not taken for a rewritten file and read again from 0.
#[test]
fn a_resume_waits_for_an_unreadable_file() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(&live, b"a\nb\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.drain(), strs(&["a", "b"]));
    append(&live, b"c\n");
    h.restart(&live, opts(true));
    let failing = fail_opens(&mut h.t, 13);
    failing.lock().unwrap().push(live.clone());
    assert_eq!(h.read().1, ReadStatus::Blocked);
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["c"]));
    assert_eq!(h.t.counters().resume_misses, 0);
}

/// A folder that cannot be listed (too many open files) must not make the
/// group's rotated files seem gone, nor let a new tailer start without them.
#[test]
fn a_folder_that_cannot_be_listed_is_waited_for() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(sib(&live, 1), b"old\n").unwrap();
    fs::write(&live, b"new\n").unwrap();
    // A new tailer that cannot list the folder waits, then reads in order.
    let mut h = H::new(&live, opts(true), None);
    let failing = fail_opens(&mut h.t, 24);
    failing.lock().unwrap().push(d.path().to_path_buf());
    let (lines, st) = h.read();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(st, ReadStatus::Blocked);
    let errs = errors(&mut h.t);
    assert!(errs[0].contains("too many open files"), "{errs:?}");
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["old", "new"]));
    assert!(h.t.unreadable().is_empty());
    // Listed once: while it cannot be listed again, the last listing stands in
    // (the live file deleted: its scan still sees `app.log.1`, read already).
    failing.lock().unwrap().push(d.path().to_path_buf());
    append(&live, b"newer\n");
    fs::remove_file(&live).unwrap();
    let (lines, st) = h.later();
    assert_eq!(lines, strs(&["newer"]));
    assert_eq!(st, ReadStatus::Blocked);
    assert_eq!(h.t.unreadable()[0].path, d.path());
    failing.lock().unwrap().clear();
    assert!(h.drain().is_empty());
    assert!(h.t.unreadable().is_empty());
}

/// Regression (issue 10): without follow, a file that hit EMFILE/ENFILE was
/// skipped and its lines missing from the run, though the shortage passes once
/// other groups finish and close their files. Now the group waits for it.
#[test]
fn a_finite_run_waits_out_too_many_open_files_and_reads_every_line() {
    for errno in [24, 23] {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("app.log");
        fs::write(sib(&live, 2), b"oldest\n").unwrap();
        fs::write(sib(&live, 1), b"old\n").unwrap();
        fs::write(&live, b"new\n").unwrap();
        let mut h = H::new(&live, opts(false), None);
        let failing = fail_opens(&mut h.t, errno);
        failing.lock().unwrap().push(sib(&live, 1));
        let mut lines = Vec::new();
        for _ in 0..3 {
            let (l, st) = h.read();
            lines.extend(l);
            assert_eq!(st, ReadStatus::Blocked, "errno {errno}");
        }
        assert_eq!(lines, strs(&["oldest"]), "nothing newer before it");
        assert_eq!(h.t.unreadable().len(), 1);
        let errs = errors(&mut h.t);
        assert!(errs[0].contains("too many open files"), "{errs:?}");
        failing.lock().unwrap().clear();
        lines.extend(h.drain());
        assert_eq!(lines, strs(&["oldest", "old", "new"]), "errno {errno}");
        assert!(h.t.unreadable().is_empty(), "errno {errno}");
        assert!(!errs.iter().any(|e| e.contains("missing")), "{errs:?}");
    }
}

/// Without follow, a folder that cannot be listed for want of descriptors is
/// waited for too, not taken as an empty group.
#[test]
fn a_finite_run_waits_for_a_folder_it_cannot_list_for_too_many_open_files() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(sib(&live, 1), b"old\n").unwrap();
    fs::write(&live, b"new\n").unwrap();
    let mut h = H::new(&live, opts(false), None);
    let failing = fail_opens(&mut h.t, 24);
    failing.lock().unwrap().push(d.path().to_path_buf());
    let (lines, st) = h.read();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(st, ReadStatus::Blocked);
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["old", "new"]));
    assert!(h.t.unreadable().is_empty());
}

/// Regression: a rotated file read to its end is deleted, and at the next
/// rotation the new live file, which cannot be opened, takes its inode (a
/// freed inode is reused at once on ext4). It was taken for the old file by
/// inode alone and dropped as already read, without a word; it is waited for
/// and reported like any file that cannot be opened.
#[test]
fn an_unreadable_new_file_on_a_reused_inode_is_not_dropped_as_read() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(&live, b"a\nb\n").unwrap();
    let ino = fs::metadata(&live).unwrap().ino();
    let mut h = H::new(&live, opts(true), None);
    let failing = fail_opens(&mut h.t, 13);
    assert_eq!(h.drain(), strs(&["a", "b"]));
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"c\n").unwrap();
    assert_eq!(h.drain(), strs(&["c"]));
    // `rotate 1`: the file first read goes, `app.log` becomes `app.log.1`, and
    // the new `app.log` takes the freed inode.
    fs::remove_file(sib(&live, 1)).unwrap();
    assert!(h.drain().is_empty());
    fs::rename(&live, sib(&live, 1)).unwrap();
    let reused = (0..100).find_map(|n| {
        let p = d.path().join(format!("new-{n}"));
        // Not as long as the old file: its content cannot be read to compare.
        fs::write(&p, b"d\ne\nf\n").unwrap();
        (fs::metadata(&p).unwrap().ino() == ino).then_some(p)
    });
    let reused = reused.expect("the filesystem reused no inode in 100 files: cannot test");
    failing.lock().unwrap().push(live.clone());
    fs::rename(&reused, &live).unwrap();
    let mut st = ReadStatus::Idle;
    for _ in 0..5 {
        st = h.later().1;
    }
    assert_eq!(st, ReadStatus::Blocked, "waited for, not dropped as read");
    assert_eq!(h.t.unreadable().len(), 1, "listed");
    assert_eq!(h.t.unreadable()[0].path, live);
    failing.lock().unwrap().clear();
    assert_eq!(h.drain(), strs(&["d", "e", "f"]));
}

/// Regression (issue 10): a group waiting for a file descriptor tried to open its
/// file (and scanned its folder) at every poll, however long the shortage lasted:
/// with many groups waiting, that is the most work when the process can least
/// afford it. Now the tries back off, doubling from the poll interval to 5 s, and
/// the first success resets the wait.
#[test]
fn a_group_out_of_file_descriptors_backs_off_instead_of_retrying_every_poll() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    fs::write(&live, b"a\n").unwrap();
    let poll = WAIT; // `opts`' fd_retry
    let mut h = H::new(&live, opts(true), None);
    let failing = Arc::new(AtomicBool::new(true));
    let opens = Arc::new(AtomicU64::new(0));
    let (f, o, path) = (failing.clone(), opens.clone(), live.clone());
    h.t.scanner.fail_open = Some(Box::new(move |p: &Path| {
        (p == path && f.load(Ordering::SeqCst)).then(|| {
            o.fetch_add(1, Ordering::SeqCst);
            io::Error::from_raw_os_error(24)
        })
    }));
    // 10 s of polls.
    let mut tries = Vec::new();
    for k in 0..100u32 {
        let before = opens.load(Ordering::SeqCst);
        let (lines, st) = h.read();
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(st, ReadStatus::Blocked, "poll {k}");
        if opens.load(Ordering::SeqCst) > before {
            tries.push(k);
        }
        h.now += poll;
    }
    // Tries at 0, 0.1, 0.3, 0.7, 1.5, 3.1 and 6.3 s (the wait capped at 5 s).
    assert_eq!(tries, [0, 1, 3, 7, 15, 31, 63], "polls that tried to open");
    assert_eq!(h.t.counters().fd_backoffs, tries.len() as u64);
    assert_eq!(h.t.unreadable().len(), 1, "still waiting, and said so");
    // A descriptor is free: the file is read within the 5 s wait.
    failing.store(false, Ordering::SeqCst);
    let mut waited = Duration::ZERO;
    let lines = loop {
        let (lines, _) = h.read();
        if !lines.is_empty() {
            break lines;
        }
        assert!(
            waited <= FD_RETRY_MAX,
            "not read {waited:?} after the shortage ended"
        );
        h.now += poll;
        waited += poll;
    };
    assert_eq!(lines, strs(&["a"]));
    assert!(h.t.unreadable().is_empty());
    // Success reset the wait: a new shortage starts again at the poll interval.
    h.now += poll;
    append(&live, b"b\n");
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"c\n").unwrap();
    failing.store(true, Ordering::SeqCst);
    let before = opens.load(Ordering::SeqCst);
    let (lines, _) = h.read();
    assert_eq!(lines, strs(&["b"]));
    assert!(
        opens.load(Ordering::SeqCst) > before,
        "tried the new live file"
    );
    h.now += poll;
    let before = opens.load(Ordering::SeqCst);
    h.read();
    assert!(
        opens.load(Ordering::SeqCst) > before,
        "tried again one poll later"
    );
}
