//! How often one read looks again at the content of the file it reads (an
//! `fstat` and a read of the fingerprinted bytes), and that what it guards is
//! still seen.

use super::*;

/// A follower's call checks the file once before reading (or once at its
/// start), once after each read and once at the end of the file; not again
/// before the next read of the same call when nothing was read since. Before,
/// a call that read new lines checked 4–5 times. (The check at the end of the
/// file stays even right after a read: see `rewrite_during_delivery`.)
#[test]
fn one_call_checks_the_content_once_per_read_not_again_in_a_row() {
    // Counts reads of the first bytes: no file may count as settled (a stall
    // of seconds on a loaded machine would make these settled).
    use crate::tail::stamp::{set_test_clock, TestClock};
    set_test_clock(TestClock::NeverSettled);
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (first, want_first) = numbered("a", 0..5);
    fs::write(&live, &first).unwrap();
    let mut h = H::new(&live, opts(true), None);
    let before = Tailer::content_reads();
    let (got, st) = h.read();
    assert_eq!((got, st), (want_first, ReadStatus::Idle));
    // Opened (its fingerprint read by the scan): after the read, at the end.
    assert_eq!(Tailer::content_reads() - before, 2);
    for round in 0..3 {
        let (more, want) = numbered(&format!("r{round}"), 0..3);
        append(&live, &more);
        let before = Tailer::content_reads();
        let (got, st) = h.read();
        assert_eq!((got, st), (want, ReadStatus::Idle));
        // At the call's start, after its read, at the end of the file.
        assert_eq!(Tailer::content_reads() - before, 3, "round {round}");
    }
}

/// Skipping the checks in a row does not hide a rewrite in place: a
/// copytruncate that leaves the file as long as what was read is noticed by
/// the next call, which reads the new content from its start.
#[test]
fn a_rewrite_in_place_to_the_same_length_is_still_noticed() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, want_old) = numbered("old", 0..4);
    fs::write(&live, &old).unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.read().0, want_old);
    let (new, want_new) = numbered("new", 0..4);
    assert_eq!(new.len(), old.len());
    fs::write(&live, &new).unwrap();
    assert_eq!(h.drain(), want_new);
}

/// Regression (93c52aa, reverted): skipping a call's start check where the
/// last call's last check passed at the same offset left a truncation made
/// between the calls unnoticed by a call with no budget (it reads nothing),
/// so the position taken after it was stale; the model test then lost a line
/// to a crash and a copytruncate while stopped. Fails with that commit.
#[test]
fn a_truncation_between_calls_is_noticed_by_a_call_with_no_budget() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, want_old) = numbered("old", 0..8);
    fs::write(&live, &old).unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.read(), (want_old, ReadStatus::Idle));
    let f = OpenOptions::new().write(true).open(&live).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    assert_ne!(h.t.read_some(0, h.now, |_, _| {}), ReadStatus::Finished);
    assert_eq!(h.t.counters().truncations, 1);
}

/// A rewrite in place between two calls in the middle of a file (a
/// copytruncate without its copy, the new content longer than what was read)
/// is noticed before any of its lines is taken for the rest of the old: the
/// new content is read from its start.
#[test]
fn a_rewrite_between_calls_mid_file_is_read_from_its_start() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (new, want_new) = numbered("new", 0..60);
    let (got, want_old, truncations) = read_across_a_rewrite(&live, || {
        let f = OpenOptions::new().write(true).open(&live).unwrap();
        f.set_len(0).unwrap();
        drop(f);
        fs::write(&live, &new).unwrap();
    });
    assert_old_then_new(&got, &want_old, &want_new);
    assert_eq!(truncations, 1);
}

/// Writes 40 numbered lines to `live`, reads 15 of them in three calls, lets
/// `rewrite` change the file, then reads to the end: every line read, the
/// old lines, and the truncations counted.
pub(super) fn read_across_a_rewrite(
    live: &Path,
    rewrite: impl FnOnce(),
) -> (Vec<String>, Vec<String>, u64) {
    let (old, want_old) = numbered("old", 0..40);
    fs::write(live, &old).unwrap();
    let per_line = old.len() / 40;
    let mut t = Tailer::new(live.to_path_buf(), opts(false), None);
    let mut got = Vec::new();
    let mut take = |_: LineMeta<'_>, l: &[u8]| got.push(String::from_utf8_lossy(l).into_owned());
    for _ in 0..3 {
        assert_eq!(
            t.read_some(5 * per_line, Instant::now(), &mut take),
            ReadStatus::More
        );
    }
    rewrite();
    while t.read_some(1 << 20, Instant::now(), &mut take) == ReadStatus::More {}
    (got, want_old, t.counters().truncations)
}

/// `got` is some of the old lines, in order, then every new one.
pub(super) fn assert_old_then_new(got: &[String], want_old: &[String], want_new: &[String]) {
    let read_old = got.iter().take_while(|l| l.starts_with("old")).count();
    assert!(
        read_old > 0 && read_old < want_old.len(),
        "{read_old} old lines"
    );
    assert_eq!(got[..read_old], want_old[..read_old]);
    assert_eq!(got[read_old..], want_new[..]);
}
