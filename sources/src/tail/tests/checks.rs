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
