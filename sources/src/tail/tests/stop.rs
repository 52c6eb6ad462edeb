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
