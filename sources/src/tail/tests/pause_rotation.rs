//! A file closed mid-read for event-time pacing (`park_paused`) and what
//! logrotate does while it is closed. Each scenario runs twice — kept open and
//! closed mid-read. Renamed, compressed or copied, the closed file gives every
//! line once, in order, as kept open. Deleted (or renamed and then deleted), its
//! unread rest is gone with it — only a descriptor could still read it — so
//! that loss is counted (`lost_while_paused`) and warned with the byte it
//! starts at; and a rotated sibling, the next file logrotate deletes, is never
//! closed mid-read (review R13c).

use super::*;
use crate::tail::TailCounters;

/// What happens to the live file while the group waits.
#[derive(Clone, Copy, Debug)]
enum Rotation {
    /// Renamed to `.1`, then `.1` deleted (`rotate 0`, a cleanup job, `maxage`).
    RenamedThenDeleted,
    /// The live file itself deleted (a host directory cleaned up).
    Deleted,
    /// Renamed to `.1`, compressed to `.1.gz`, `.1` removed (`compress`
    /// without `delaycompress`).
    RenamedThenCompressed,
    /// `copytruncate`: copied to `.1`, then truncated in place.
    CopyTruncate,
}

fn run(rotation: Rotation, pause: bool) -> (Vec<String>, Vec<String>, TailCounters, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (a, mut want) = numbered("a", 0..20_000);
    fs::write(&live, a).unwrap();
    let mut h = H::new(&live, opts(true), None);
    let mut out = Vec::new();
    // One paced turn: 100 lines, the rest of the file unread (most on disk).
    let stop = std::cell::Cell::new(false);
    let mut n = 0;
    let st = h.t.read_some_until(8 << 10, h.now, &stop, |_, l: &[u8]| {
        out.push(String::from_utf8_lossy(l).into_owned());
        n += 1;
        if n == 100 {
            stop.set(true);
        }
    });
    assert_eq!(st, ReadStatus::More);
    if pause {
        assert!(h.t.park_paused(), "{rotation:?}");
    }
    let one = sib(&live, 1);
    match rotation {
        Rotation::RenamedThenDeleted => {
            fs::rename(&live, &one).unwrap();
            fs::remove_file(&one).unwrap();
        }
        Rotation::Deleted => fs::remove_file(&live).unwrap(),
        Rotation::RenamedThenCompressed => {
            fs::rename(&live, &one).unwrap();
            gzip_to(&one, &PathBuf::from(format!("{}.gz", one.display())));
            fs::remove_file(&one).unwrap();
        }
        Rotation::CopyTruncate => {
            fs::copy(&live, &one).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&live)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    let (b, lines) = numbered("b", 0..10);
    match rotation {
        Rotation::CopyTruncate => append(&live, &b),
        _ => fs::write(&live, b).unwrap(),
    }
    want.extend(lines);
    out.extend(h.drain());
    let errors = std::iter::from_fn(|| h.t.take_error()).collect();
    (out, want, h.t.counters(), errors)
}

fn check(rotation: Rotation) {
    let (open, want, _, _) = run(rotation, false);
    let (paused, _, counters, _) = run(rotation, true);
    // What a descriptor kept open gives is the reference (it must be exact too).
    assert_eq!(open.len(), want.len(), "kept open, {rotation:?}");
    assert_eq!(open, want, "kept open, {rotation:?}");
    assert_eq!(
        paused.len(),
        want.len(),
        "closed mid-read, {rotation:?}: {} of {} lines, lost_while_parked {}",
        paused.len(),
        want.len(),
        counters.lost_while_parked
    );
    assert_eq!(paused, want, "closed mid-read, {rotation:?}");
}

/// Deleted while closed mid-read: every line delivered before it was closed,
/// then the new file's, and the unread rest between them counted as lost and
/// warned about with the byte it starts at — not silently left out as the
/// review found (a kept-open descriptor reads it; a closed file cannot).
fn check_lost(rotation: Rotation) {
    let (open, want, _, _) = run(rotation, false);
    assert_eq!(open, want, "kept open, {rotation:?}");
    let (paused, _, counters, errors) = run(rotation, true);
    let new: Vec<&String> = want.iter().filter(|l| l.starts_with("b")).collect();
    let kept = paused.len() - new.len();
    assert!(
        kept >= 100 && kept < want.len() - new.len(),
        "{rotation:?}: {kept}"
    );
    assert_eq!(paused[..kept], want[..kept], "{rotation:?}");
    assert_eq!(
        paused[kept..].iter().collect::<Vec<_>>(),
        new,
        "{rotation:?}"
    );
    assert_eq!(counters.lost_while_paused, 1, "{rotation:?}: {counters:?}");
    assert_eq!(counters.lost_while_parked, 0, "{rotation:?}: {counters:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("closed mid-read") && e.contains("unread lines from byte")),
        "{rotation:?}: {errors:?}"
    );
}

#[test]
fn paused_then_renamed_and_deleted_counts_its_unread_rest_as_lost() {
    check_lost(Rotation::RenamedThenDeleted);
}

#[test]
fn paused_then_deleted_counts_its_unread_rest_as_lost() {
    check_lost(Rotation::Deleted);
}

#[test]
fn paused_then_renamed_and_compressed_loses_nothing() {
    check(Rotation::RenamedThenCompressed);
}

#[test]
fn paused_then_copytruncated_loses_nothing() {
    check(Rotation::CopyTruncate);
}

/// Reading the rotated sibling `.1` (the live file not reached yet), a paced
/// turn ends; then the files rotate once more (`.1` → `.2`, live → `.1`, a new
/// live file) and, as with `rotate 1`, `.2` is deleted: every line once, in
/// order. `.1` is the next file logrotate deletes, so it is never closed
/// mid-read (`park_paused` refuses): its descriptor reads it to its end.
fn rotated_sibling_run(pause: bool) -> (Vec<String>, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, mut want) = numbered("old", 0..20_000);
    fs::write(sib(&live, 1), old).unwrap();
    let (cur, lines) = numbered("cur", 0..5_000);
    fs::write(&live, cur).unwrap();
    want.extend(lines);
    let mut h = H::new(&live, opts(true), None);
    let mut out = Vec::new();
    let stop = std::cell::Cell::new(false);
    let mut n = 0;
    let st = h.t.read_some_until(8 << 10, h.now, &stop, |_, l: &[u8]| {
        out.push(String::from_utf8_lossy(l).into_owned());
        n += 1;
        if n == 100 {
            stop.set(true);
        }
    });
    assert_eq!(st, ReadStatus::More);
    if pause {
        assert!(!h.t.park_paused(), "a rotated sibling was closed mid-read");
        assert!(h.t.holds_file());
    }
    fs::rename(sib(&live, 1), sib(&live, 2)).unwrap();
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::remove_file(sib(&live, 2)).unwrap();
    let (new, lines) = numbered("new", 0..10);
    fs::write(&live, new).unwrap();
    want.extend(lines);
    out.extend(h.drain());
    (out, want)
}

#[test]
fn a_rotated_sibling_is_not_closed_mid_read() {
    let (open, want) = rotated_sibling_run(false);
    assert_eq!(open, want, "kept open");
    let (paused, want) = rotated_sibling_run(true);
    assert_eq!(paused.len(), want.len(), "asked to close mid-read");
    assert_eq!(paused, want, "asked to close mid-read");
}
