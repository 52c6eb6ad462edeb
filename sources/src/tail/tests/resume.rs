//! Resuming from positions after the files changed while tidemark was stopped.

use super::*;

/// Reads everything once, keeping each line's position.
fn lines_with_positions(live: &Path) -> Vec<(String, Position)> {
    let mut t = Tailer::new(live.to_path_buf(), opts(false), None);
    let mut out = Vec::new();
    while t.read_some(7, Instant::now(), |m, l| {
        out.push((String::from_utf8_lossy(l).into_owned(), m.position.clone()))
    }) == ReadStatus::More
    {}
    out
}

#[test]
fn resuming_at_any_line_position_reads_exactly_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    let tmp = d.path().join("tmp");
    fs::write(&tmp, numbered("g", 0..6).0).unwrap();
    gzip_to(&tmp, &d.path().join("x.log.2.gz"));
    fs::write(sib(&live, 1), numbered("p", 0..5).0).unwrap();
    let mut live_bytes = numbered("l", 0..4).0;
    live_bytes.extend(b"partial");
    fs::write(&live, &live_bytes).unwrap();
    let all = lines_with_positions(&live);
    assert_eq!(all.len(), 16);
    for i in 0..all.len() {
        let mut h = H::new(&live, opts(false), Some(all[i].1.clone()));
        let want: Vec<String> = all[i..].iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(
            h.read(),
            (want, ReadStatus::Finished),
            "resuming at line {i}"
        );
        assert_eq!(h.t.counters().resume_misses, 0);
    }
}

#[test]
fn resume_after_rename_while_stopped() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"a1\na2\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    let mut t = Tailer::new(live.clone(), opts(true), None);
    t.read_some(3, h.now, |_, _| {});
    h.t = t; // stopped after a1
    append(&live, b"a3\n");
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"b1\n").unwrap();
    h.restart(&live, opts(true));
    assert_eq!(h.read().0, strs(&["a2", "a3", "b1"]));
}

#[test]
fn resume_after_compression_while_stopped() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(sib(&live, 1), b"old\n").unwrap();
    fs::write(&live, b"a1\na2\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.read().0, strs(&["old", "a1", "a2"]));
    let pos = h.t.position().unwrap();
    drop(h);
    append(&live, b"a3\n");
    // Two rotations; the file we were in becomes x.log.2.gz, the oldest x.log.3.
    fs::rename(sib(&live, 1), sib(&live, 2)).unwrap();
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"b1\n").unwrap();
    fs::rename(sib(&live, 2), sib(&live, 3)).unwrap();
    fs::rename(sib(&live, 1), sib(&live, 2)).unwrap();
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"c1\n").unwrap();
    gzip_to(&sib(&live, 2), &d.path().join("x.log.2.gz"));
    fs::remove_file(sib(&live, 2)).unwrap();
    let mut h = H::new(&live, opts(true), Some(pos));
    assert_eq!(h.read().0, strs(&["a3", "b1", "c1"]));
    assert_eq!(h.t.counters().resume_misses, 0);
}

#[test]
fn resume_after_copytruncate_while_stopped() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"a1\na2\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.read().0, strs(&["a1", "a2"]));
    let pos = h.t.position();
    drop(h);
    append(&live, b"a3\n");
    fs::copy(&live, sib(&live, 1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, b"b1 which is longer than before\n");
    let mut h = H::new(&live, opts(true), pos);
    assert_eq!(h.read().0, strs(&["a3", "b1 which is longer than before"]));
}

#[test]
fn resume_in_a_file_truncated_while_stopped_reads_it_from_the_start() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(
        &live,
        b"0123456789abcdefghijklmnopqrstuvwxyz-0123456789\nline2\n",
    )
    .unwrap();
    let mut h = H::new(&live, opts(true), None);
    h.read();
    let pos = h.t.position();
    drop(h);
    // Same inode, same first bytes, but shorter than the offset: truncated.
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(40)
        .unwrap();
    append(&live, b"\n");
    let mut h = H::new(&live, opts(true), pos);
    assert_eq!(
        h.read().0,
        strs(&["0123456789abcdefghijklmnopqrstuvwxyz-012"])
    );
    assert_eq!(h.t.counters().truncations, 1);
    assert!(h.t.take_error().unwrap().contains("truncated while"));
}

#[test]
fn inode_reuse_with_new_content_is_read_from_start() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(sib(&live, 1), b"older\n").unwrap();
    fs::write(&live, b"first file, line 1\nfirst file, line 2\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    h.read();
    let pos = h.t.position().unwrap();
    assert_eq!(pos.offset, 38);
    drop(h);
    // The same inode now holds another file, longer than the old offset: resuming at
    // byte 38 would skip its first lines.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let before = ino(&live);
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&live)
        .unwrap();
    drop(f);
    append(
        &live,
        b"second file: a brand new line 1\nsecond file, line 2\n",
    );
    assert_eq!(ino(&live), before);
    let mut h = H::new(&live, opts(true), Some(pos.clone()));
    assert_eq!(
        h.read().0,
        strs(&["second file: a brand new line 1", "second file, line 2"])
    );
    assert_eq!(h.t.counters().resume_misses, 1);
    assert!(h.t.take_error().unwrap().contains("different content"));

    // The same with the file deleted and recreated (the inode may or may not be
    // reused): read from the start either way, and the older sibling is not re-read.
    fs::remove_file(&live).unwrap();
    fs::write(&live, b"third file, a long first line here\n").unwrap();
    let mut h = H::new(&live, opts(true), Some(pos));
    assert_eq!(h.read().0, strs(&["third file, a long first line here"]));
}

#[test]
fn file_shorter_than_the_fingerprint_grows() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"a1\n").unwrap();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    let now = Instant::now();
    let got = collect_meta(&mut t, now);
    assert_eq!(got.len(), 1);
    let short = t.position().unwrap();
    assert_eq!((short.offset, short.file.fingerprint_len), (3, 3));
    // Grows past the 32-byte fingerprint: neither re-read nor skipped.
    append(&live, b"a2 is a somewhat longer line\na3\n");
    let mut fp_lens = Vec::new();
    while t.read_some(1 << 20, now, |m, _| {
        fp_lens.push(m.position.file.fingerprint_len)
    }) == ReadStatus::More
    {}
    assert_eq!(fp_lens, [32, 32]);
    let grown = t.position().unwrap();
    assert_eq!((grown.offset, grown.file.fingerprint_len), (35, 32));
    assert_eq!(
        (grown.file.dev, grown.file.ino),
        (short.file.dev, short.file.ino)
    );
    // Resuming from the position taken while it was short still finds it.
    let mut h = H::new(&live, opts(true), Some(short));
    assert_eq!(h.read().0, strs(&["a2 is a somewhat longer line", "a3"]));
    assert_eq!(h.t.counters().resume_misses, 0);
    // ... and after it is compressed.
    append(&live, b"a4\n");
    gzip_to(&live, &d.path().join("x.log.1.gz"));
    fs::remove_file(&live).unwrap();
    let mut h = H::new(&live, opts(false), Some(grown));
    assert_eq!(h.read().0, strs(&["a4"]));
}

#[test]
fn resume_miss_when_the_live_file_was_replaced() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(sib(&live, 1), b"older sibling\n").unwrap();
    fs::write(&live, b"gone 1\ngone 2\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    h.read();
    let pos = h.t.position();
    drop(h);
    // Keep the old inode alive so the new file cannot reuse it.
    let _keep = File::open(&live).unwrap();
    fs::remove_file(&live).unwrap();
    fs::write(&live, b"new 1\n").unwrap();
    let mut h = H::new(&live, opts(true), pos);
    assert_eq!(h.read().0, strs(&["new 1"]));
    assert_eq!(h.t.counters().resume_misses, 1);
    let e = h.t.take_error().unwrap();
    assert!(
        e.contains("is gone") && e.contains("1 rotated sibling"),
        "{e}"
    );
}

/// A restart whose checkpointed file was replaced by a new one while it was
/// stopped (the old one still open elsewhere, so its inode is not reused): the
/// resume misses. Returns the folder, the live path, that handle and the tailer.
fn resumed_after_a_replacement() -> (tempfile::TempDir, std::path::PathBuf, File, Tailer) {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"gone 1\n").unwrap();
    let mut h = H::new(&live, opts(true), None);
    h.read();
    let pos = h.t.position();
    drop(h);
    let keep = File::open(&live).unwrap();
    fs::remove_file(&live).unwrap();
    fs::write(&live, b"new 1\n").unwrap();
    let t = Tailer::new(live.clone(), opts(true), pos);
    (d, live, keep, t)
}

/// A scan that missed the checkpointed file was repeated after sleeping 20 ms, up
/// to 5 times, inside `read_some`: in the timely worker that calls it, every
/// other job's operators stalled meanwhile. Now each retry is a later call.
#[test]
fn a_resume_miss_is_retried_on_later_reads_without_sleeping_in_read_some() {
    let (_d, _live, _keep, mut t) = resumed_after_a_replacement();
    let mut got = Vec::new();
    let mut now = Instant::now();
    let mut read = |t: &mut Tailer, now| {
        t.read_some(1 << 20, now, |_, l: &[u8]| {
            got.push(String::from_utf8_lossy(l).into_owned())
        })
    };
    // The clock does not move: a sleeping version has retried and accepted the
    // miss by the time this returns.
    assert_eq!(read(&mut t, now), ReadStatus::Blocked);
    assert_eq!(
        t.counters().resume_misses,
        0,
        "the miss is not accepted yet"
    );
    assert_eq!(
        t.wake_at(),
        Some(now + super::super::resume::MISS_RETRY_WAIT)
    );
    // Before the retry is due nothing is scanned again.
    assert_eq!(read(&mut t, now), ReadStatus::Blocked);
    assert_eq!(t.resume_retries(), 1);
    let mut calls = 1;
    while let Some(at) = t.wake_at() {
        now = at;
        read(&mut t, now);
        calls += 1;
        assert!(calls < 20, "retries never end");
    }
    assert_eq!(calls, 6, "five retries, each its own read");
    assert_eq!(t.counters().resume_misses, 1);
    assert_eq!(got, strs(&["new 1"]));
}

/// Regression (issue 11 review): a resume retry that came due while the tailer
/// kept waiting for something else (here: the folder emptied) stayed in
/// `wake_at`, a time in the past, so its source asked to run again every
/// millisecond for as long as that lasted.
#[test]
fn a_resume_retry_that_came_due_does_not_keep_asking_for_a_wake_up() {
    let (_d, live, _keep, mut t) = resumed_after_a_replacement();
    let now = Instant::now();
    let read = |t: &mut Tailer, now| t.read_some(1 << 20, now, |_, _: &[u8]| {});
    read(&mut t, now);
    let due = t.wake_at().expect("a miss is retried later");
    // Nothing left to look at when the retry comes.
    fs::remove_file(&live).unwrap();
    for later in [10, 20] {
        let at = now + Duration::from_secs(later);
        read(&mut t, at);
        assert!(
            t.wake_at().is_none_or(|w| w > at),
            "asks to be woken at {:?}, {later} s after the retry was due at {due:?}",
            t.wake_at()
        );
    }
}

#[test]
fn resume_miss_when_a_rotated_file_aged_out() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(sib(&live, 1), b"s1\ns2\n").unwrap();
    fs::write(&live, b"l1\n").unwrap();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    t.read_some(3, Instant::now(), |_, _| {});
    let pos = t.position().unwrap();
    assert_eq!(pos.path, sib(&live, 1));
    drop(t);
    let _keep = File::open(sib(&live, 1)).unwrap();
    fs::remove_file(sib(&live, 1)).unwrap();
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"m1\n").unwrap();
    let mut h = H::new(&live, opts(true), Some(pos));
    assert_eq!(h.read().0, strs(&["l1", "m1"]));
    assert_eq!(h.t.counters().resume_misses, 1);
}

#[test]
fn at_end_starts_after_the_last_complete_line() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(sib(&live, 1), b"s1\n").unwrap();
    fs::write(&live, b"l1\nl2\npart").unwrap();
    let mut h = H::new(&live, opts(true), None);
    h.t = Tailer::at_end(live.clone(), opts(true));
    assert_eq!(h.read().0, Vec::<String>::new());
    assert_eq!(h.t.position().unwrap().offset, 6);
    append(&live, b"ial\nl4\n");
    assert_eq!(h.read().0, strs(&["partial", "l4"]));
}

/// Regression: starting at the end with an empty (just rotated) or missing live
/// file left no position, so a checkpoint held none and a restart re-read the
/// siblings that `at_end` had skipped.
#[test]
fn at_end_with_an_empty_or_missing_live_file_still_has_a_position() {
    for missing in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("x.log");
        fs::write(sib(&live, 1), b"old1\nold2\n").unwrap();
        if !missing {
            fs::write(&live, b"").unwrap();
        }
        let mut h = H::new(&live, opts(true), None);
        h.t = Tailer::at_end(live.clone(), opts(true));
        assert_eq!(h.read().0, Vec::<String>::new());
        assert!(h.t.position().is_some(), "missing={missing}: no position");
        h.restart(&live, opts(true));
        append(&live, b"new\n");
        assert_eq!(h.read().0, strs(&["new"]), "missing={missing}");
    }
}

/// Regression (torture seed 3057): the scan placing a resumed tailer ran while a
/// rotation renamed the siblings, and its listing missed the copy holding the
/// checkpointed content. The checkpointed inode, copytruncated and rewritten, was
/// taken for a file rewritten in place: read from 0, with the lines of the copy
/// after the position lost (and files older than it in the scan marked read).
#[test]
fn resume_scan_racing_a_rotation_does_not_miss_the_copy() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    let (a, want_a) = numbered("a", 0..20);
    let (b, want_b) = numbered("b", 0..10);
    fs::write(&live, &a[..a.len() / 2]).unwrap();
    let mut h = H::new(&live, opts(true), None);
    let first = h.read().0;
    let pos = h.t.position();
    drop(h);
    // While stopped: the rest of `a`, a copytruncate, then `b` in the live file.
    append(&live, &a[a.len() / 2..]);
    fs::copy(&live, sib(&live, 1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, &b);
    let mut h = H::new(&live, opts(true), pos);
    // The first scan lists `.1`, which a rotation renames to `.2` before the scan
    // looks at it.
    let (hook_live, mut once) = (live.clone(), true);
    h.t.scanner.list_hook = Some(Box::new(move || {
        if std::mem::take(&mut once) {
            fs::rename(sib(&hook_live, 1), sib(&hook_live, 2)).unwrap();
        }
    }));
    let rest = h.drain();
    let got: Vec<String> = first.into_iter().chain(rest).collect();
    let want: Vec<String> = want_a.into_iter().chain(want_b).collect();
    assert_eq!(got, want);
    assert_eq!(h.t.counters().resume_misses, 0);
    assert!(h.t.take_error().is_none());
}

/// Torture seed 9011 (traced), and likely 8020 and 1057 (a whole rotated file lost
/// after a restart, no warning): a scan looked at a sibling it had listed after a rotation had renamed
/// it and compressed it (`NAME.2` gone, now `NAME.2.gz`), so the scan missed it, and
/// the file after it was opened next. The missed file was read after that newer one,
/// out of order: its lines were then late for the engine, and dropped. Catching up
/// after a restart, when files are switched often, made this likely.
#[test]
fn scan_racing_a_rotation_never_reads_a_newer_file_before_an_older_one() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    let (a, want_a) = numbered("a", 0..20);
    let (b, want_b) = numbered("b", 0..10);
    let (c, want_c) = numbered("c", 0..10);
    let (e, want_e) = numbered("e", 0..5);
    fs::write(sib(&live, 2), &a).unwrap();
    fs::write(sib(&live, 1), &b).unwrap();
    fs::write(&live, &c).unwrap();
    let all = lines_with_positions(&live);
    // Resume at `a-0005`.
    let pos = all[5].1.clone();
    let a_rest = (a.len() as u64 - pos.offset) as usize;
    let mut h = H::new(&live, opts(false), Some(pos));
    // Armed once the rest of `a` is read: the next scan (to open the file after `a`)
    // lists `.2` (`b`), then a rotation renames every file up by one, creates a new
    // live file and compresses `.2` before the scan looks at the files.
    let armed = Arc::new(AtomicBool::new(false));
    let (hook_live, hook_armed, hook_e) = (live.clone(), armed.clone(), e.clone());
    h.t.scanner.list_hook = Some(Box::new(move || {
        if hook_armed.swap(false, Ordering::SeqCst) {
            let l = &hook_live;
            fs::rename(sib(l, 2), sib(l, 3)).unwrap();
            fs::rename(sib(l, 1), sib(l, 2)).unwrap();
            fs::rename(l, sib(l, 1)).unwrap();
            fs::write(l, &hook_e).unwrap();
            let gz = PathBuf::from(format!("{}.gz", sib(l, 2).display()));
            gzip_to(&sib(l, 2), &gz);
            fs::remove_file(sib(l, 2)).unwrap();
        }
    }));
    let mut first = Vec::new();
    let mut used = 0;
    while used < a_rest {
        let before = h.t.counters().bytes;
        h.t.read_some(a_rest - used, h.now, |_, l: &[u8]| {
            first.push(String::from_utf8_lossy(l).into_owned())
        });
        used += (h.t.counters().bytes - before) as usize;
    }
    assert_eq!(first, want_a[5..]);
    armed.store(true, Ordering::SeqCst);
    let (rest, st) = h.read();
    assert_eq!(st, ReadStatus::Finished);
    assert!(!armed.load(Ordering::SeqCst), "the rotation did not happen");
    let want: Vec<String> = [want_b, want_c, want_e].concat();
    assert_eq!(rest, want);
    assert_eq!(h.t.counters().resume_misses, 0);
}
