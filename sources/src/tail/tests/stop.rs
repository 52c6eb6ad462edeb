//! Stopping a read after a line (`read_some_until`, for event-time pacing): the
//! lines after it stay unread, are delivered first by the next call, and the
//! position always names the next undelivered line.

use std::cell::Cell;

use super::*;

/// Reads everything, stopping after every `every`-th line; at each stop checks
/// that a tailer restarted from `position()` delivers exactly the lines not yet
/// delivered. Returns the lines in order.
fn read_stopping(live: &Path, every: usize, follow: bool, rest: &[String]) -> Vec<String> {
    let mut t = Tailer::new(live.to_path_buf(), opts(follow), None);
    let now = Instant::now() + WAIT * 4;
    let mut out: Vec<String> = Vec::new();
    let mut stops = 0;
    loop {
        let stop = Cell::new(false);
        let mut n = 0;
        let st = t.read_some_until(1 << 20, now, &stop, |_, l: &[u8]| {
            out.push(String::from_utf8_lossy(l).into_owned());
            n += 1;
            if n == every {
                stop.set(true);
            }
        });
        if stop.get() && out.len() < rest.len() {
            stops += 1;
            assert_eq!(st, ReadStatus::More, "a stopped read has more to read");
            assert!(
                t.parkable_since().is_none(),
                "lines are buffered: not parkable"
            );
            // Restarting from the position gives exactly what is left.
            let mut again = Tailer::new(live.to_path_buf(), opts(false), t.position());
            let left: Vec<String> = collect_meta(&mut again, now)
                .into_iter()
                .map(|(l, ..)| l)
                .collect();
            assert_eq!(left, rest[out.len()..], "after {} lines", out.len());
        }
        if st != ReadStatus::More {
            break;
        }
    }
    assert!(stops > 0);
    out
}

#[test]
fn a_stopped_read_resumes_after_its_last_line_across_siblings() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, mut want) = numbered("old", 0..300);
    fs::write(sib(&live, 1), old).unwrap();
    let (new, lines) = numbered("new", 0..500);
    fs::write(&live, new).unwrap();
    want.extend(lines);
    for every in [1, 7, 64] {
        assert_eq!(
            read_stopping(&live, every, false, &want),
            want,
            "every {every}"
        );
    }
}

#[test]
fn an_unterminated_last_line_comes_after_the_buffered_ones() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (mut bytes, mut want) = numbered("l", 0..50);
    bytes.extend_from_slice(b"last");
    want.push("last".to_string());
    fs::write(&live, bytes).unwrap();
    assert_eq!(read_stopping(&live, 3, false, &want), want);
}

#[test]
fn a_stopped_follower_keeps_its_lines_through_a_rotation() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (a, want_a) = numbered("a", 0..40);
    fs::write(&live, a).unwrap();
    let mut h = H::new(&live, opts(true), None);
    let stop = Cell::new(false);
    let mut got: Vec<String> = Vec::new();
    let st = h.t.read_some_until(1 << 20, h.now, &stop, |_, l: &[u8]| {
        got.push(String::from_utf8_lossy(l).into_owned());
        if got.len() == 10 {
            stop.set(true);
        }
    });
    assert_eq!((st, got.len()), (ReadStatus::More, 10));
    // Rotated while 30 lines sit in the buffer, then a new live file.
    fs::rename(&live, sib(&live, 1)).unwrap();
    let (b, want_b) = numbered("b", 0..20);
    fs::write(&live, b).unwrap();
    got.extend(h.drain());
    let mut want = want_a;
    want.extend(want_b);
    assert_eq!(got, want);
}

/// Reads one stopped turn of at most `every` lines.
fn turn(t: &mut Tailer, now: Instant, every: usize, out: &mut Vec<String>) -> ReadStatus {
    let stop = Cell::new(false);
    let mut n = 0;
    let mut on_line = |_: LineMeta<'_>, l: &[u8]| {
        out.push(String::from_utf8_lossy(l).into_owned());
        n += 1;
        if n == every {
            stop.set(true);
        }
    };
    if !t.holds_file() && t.has_buffered_lines() {
        return t.read_buffered_until(&stop, on_line);
    }
    t.read_some_until(8 << 10, now, &stop, &mut on_line)
}

/// Closed in the middle of its live file after every turn, a group still reads
/// every line once, in order, from buffered lines first, and finishes. The
/// rotated sibling is never closed mid-read (logrotate deletes it next).
#[test]
fn a_file_closed_mid_read_is_read_on_exactly() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, mut want) = numbered("old", 0..3000);
    fs::write(sib(&live, 1), old).unwrap();
    let (new, lines) = numbered("new", 0..4000);
    fs::write(&live, new).unwrap();
    want.extend(lines);
    let mut t = Tailer::new(live.clone(), opts(false), None);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut parks = 0;
    let mut turns = 0;
    loop {
        let st = turn(&mut t, now, 500, &mut out);
        turns += 1;
        assert!(turns < 10_000);
        if st == ReadStatus::Finished {
            break;
        }
        let in_sibling = out.last().is_some_and(|l| l.starts_with("old"));
        if t.holds_file() && in_sibling {
            assert!(!t.park_paused(), "closed mid-read in a rotated sibling");
        }
        if t.holds_file() && t.park_paused() {
            parks += 1;
            assert!(!t.holds_file());
            // The position names the next undelivered line, closed or not.
            let mut again = Tailer::new(live.clone(), opts(false), t.position());
            let left: Vec<String> = collect_meta(&mut again, now)
                .into_iter()
                .map(|(l, ..)| l)
                .collect();
            assert_eq!(left, want[out.len()..], "after {} lines", out.len());
        }
    }
    assert_eq!(out, want);
    assert!(parks > 2, "{parks}");
    assert!(t.counters().reopens > 0);
}

/// Following: closed mid-read, then rotated, the group finds its file among
/// the siblings and loses nothing.
#[test]
fn a_file_closed_mid_read_and_rotated_is_found_again() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (a, mut want) = numbered("a", 0..5000);
    fs::write(&live, a).unwrap();
    let mut h = H::new(&live, opts(true), None);
    let mut out = Vec::new();
    assert_eq!(turn(&mut h.t, h.now, 100, &mut out), ReadStatus::More);
    assert!(h.t.park_paused());
    fs::rename(&live, sib(&live, 1)).unwrap();
    let (b, lines) = numbered("b", 0..10);
    fs::write(&live, b).unwrap();
    want.extend(lines);
    out.extend(h.drain());
    assert_eq!(out, want);
}

/// Stopped inside a compressed sibling, the position still names
/// the next undelivered line (a restart delivers exactly the rest).
#[test]
fn a_stopped_read_in_a_gzip_sibling_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, mut want) = numbered("old", 0..3000);
    fs::write(sib(&live, 2), old).unwrap();
    gzip_to(
        &sib(&live, 2),
        &PathBuf::from(format!("{}.gz", sib(&live, 2).display())),
    );
    fs::remove_file(sib(&live, 2)).unwrap();
    let (mid, lines) = numbered("mid", 0..3000);
    fs::write(sib(&live, 1), mid).unwrap();
    want.extend(lines);
    let (new, lines) = numbered("new", 0..500);
    fs::write(&live, new).unwrap();
    want.extend(lines);
    for every in [1, 333] {
        assert_eq!(
            read_stopping(&live, every, false, &want),
            want,
            "every {every}"
        );
    }
}
