//! The line buffer between turns ([`super::super::source::LineBuf::release`]):
//! a group waiting for its next turn holds only its unread bytes — none at the
//! end of its file — and reads on exactly as if it had kept its buffer.

use std::cell::Cell;

use super::super::source::INITIAL_BUFFER;
use super::*;

type Meta = (String, u64, u64, PathBuf);

/// One turn that stops after `every` lines (never, if 0); appends its lines.
fn turn(t: &mut Tailer, now: Instant, every: usize, out: &mut Vec<Meta>) -> ReadStatus {
    let stop = Cell::new(false);
    let mut n = 0;
    t.read_some_until(1 << 20, now, &stop, |m: LineMeta<'_>, l: &[u8]| {
        out.push((
            String::from_utf8_lossy(l).into_owned(),
            m.position.offset,
            m.line_no,
            m.path.to_path_buf(),
        ));
        n += 1;
        if n == every {
            stop.set(true);
        }
    })
}

/// A file shorter than the buffer is read by one `fill`: after a paced stop
/// the buffer holds the bytes from the next line to the end of the file
/// (compacted again once that halves it), and nothing once the file is read.
#[test]
fn a_paced_group_holds_only_its_unread_bytes() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (bytes, want) = numbered("l", 0..500);
    assert!(bytes.len() < INITIAL_BUFFER / 2);
    fs::write(&live, &bytes).unwrap();
    for follow in [false, true] {
        let mut t = Tailer::new(live.clone(), opts(follow), None);
        let now = Instant::now() + WAIT * 4;
        let mut out = Vec::new();
        let mut stops = 0;
        let st = loop {
            let st = turn(&mut t, now, 7, &mut out);
            if st != ReadStatus::More {
                break st;
            }
            stops += 1;
            // Moved to an allocation of their size when that halves it: at
            // most twice the bytes still unread, exactly them at first.
            let held = bytes.len() - t.position().unwrap().offset as usize;
            let a = t.line_buffer_allocated();
            assert!(held <= a && a <= 2 * held, "after {}: {a}", out.len());
            if stops == 1 {
                assert_eq!(a, held);
            }
        };
        let want_st = if follow {
            ReadStatus::Idle
        } else {
            ReadStatus::Finished
        };
        assert_eq!(st, want_st);
        assert!(stops >= 500 / 7, "{stops}");
        let lines: Vec<String> = out.into_iter().map(|m| m.0).collect();
        assert_eq!(lines, want);
        assert_eq!(t.line_buffer_allocated(), 0, "at the end of the file");
    }
}

/// A follower idle at the end of its file holds no buffer; lines appended
/// later are read as before.
#[test]
fn an_idle_follower_frees_its_buffer() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (a, mut want) = numbered("a", 0..100);
    fs::write(&live, a).unwrap();
    let mut h = H::new(&live, opts(true), None);
    assert_eq!(h.read(), (want.clone(), ReadStatus::Idle));
    assert_eq!(h.t.line_buffer_allocated(), 0);
    let (b, lines) = numbered("b", 0..100);
    append(&live, &b);
    append(&live, b"part");
    assert_eq!(h.read(), (lines.clone(), ReadStatus::Idle));
    // An unterminated line waits in an allocation of its size.
    assert_eq!(h.t.line_buffer_allocated(), 4);
    want.extend(lines);
    append(&live, b"ial\n");
    assert_eq!(h.read(), (strs(&["partial"]), ReadStatus::Idle));
    assert_eq!(h.t.line_buffer_allocated(), 0);
}

/// Lines, offsets and line numbers of a read stopped every 1, 7 or 64 lines
/// are those of an unstopped read — across a rotated sibling, lines longer
/// than the buffer (grown for them), oversize lines (dropped) and an
/// unterminated last line — and stopped groups give memory back.
#[test]
fn a_released_buffer_reads_on_exactly() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let mut o = opts(false);
    o.max_line_bytes = 100 * 1024;
    let (old, _) = numbered("old", 0..3000);
    fs::write(sib(&live, 1), old).unwrap();
    let mut new = Vec::new();
    for i in 0..3000u32 {
        let len = match i % 500 {
            17 => 40 * 1024,   // grows the buffer
            250 => 150 * 1024, // oversize: dropped
            _ => (i % 97) as usize,
        };
        new.extend_from_slice(format!("n{i}:").as_bytes());
        new.extend_from_slice(&vec![b'x'; len]);
        new.push(b'\n');
    }
    new.extend_from_slice(b"last");
    fs::write(&live, new).unwrap();
    let now = Instant::now() + WAIT * 4;
    let mut all = Vec::new();
    let mut t = Tailer::new(live.clone(), o.clone(), None);
    while turn(&mut t, now, 0, &mut all) == ReadStatus::More {}
    assert_eq!(all.len(), 6000 - 6 + 1);
    let unstopped = t.counters();
    for every in [1, 7, 64] {
        let mut t = Tailer::new(live.clone(), o.clone(), None);
        let mut out = Vec::new();
        let mut small = 0;
        while turn(&mut t, now, every, &mut out) == ReadStatus::More {
            if t.line_buffer_allocated() < INITIAL_BUFFER {
                small += 1;
            }
        }
        assert!(out == all, "every {every}");
        let c = t.counters();
        assert_eq!(
            (c.lines, c.oversize_lines, c.unterminated_lines, c.bytes),
            (
                unstopped.lines,
                unstopped.oversize_lines,
                unstopped.unterminated_lines,
                unstopped.bytes
            ),
            "every {every}"
        );
        assert!(small > 6000 / every / 4, "every {every}: {small} stops");
        assert_eq!(t.line_buffer_allocated(), 0);
    }
}

/// A group's refill after a release takes the working-size buffer the last
/// group released on this thread (the spare), not a new zeroed allocation.
#[test]
fn a_refill_takes_the_buffer_another_group_released() {
    let d = tempfile::tempdir().unwrap();
    let (one, two) = (d.path().join("one.log"), d.path().join("two.log"));
    let (a, _) = numbered("a", 0..10);
    fs::write(&one, &a).unwrap();
    fs::write(&two, &a).unwrap();
    let now = Instant::now() + WAIT * 4;
    let mut out = Vec::new();
    let mut t1 = Tailer::new(one.clone(), opts(true), None);
    assert_eq!(turn(&mut t1, now, 0, &mut out), ReadStatus::Idle);
    let mut t2 = Tailer::new(two, opts(true), None);
    let released = t2.line_buffer_addr();
    assert_eq!(turn(&mut t2, now, 0, &mut out), ReadStatus::Idle);
    assert_eq!(t2.line_buffer_allocated(), 0);
    // Were t2's buffer freed, this allocation of its size could take its place.
    let other = vec![1u8; INITIAL_BUFFER];
    // More than a buffer of lines: a turn stopped after one keeps it whole.
    let (b, _) = numbered("b", 0..(INITIAL_BUFFER as u32 / 6));
    append(&one, &b);
    out.clear();
    assert_eq!(turn(&mut t1, now, 1, &mut out), ReadStatus::More);
    assert_eq!(out.len(), 1);
    assert_eq!(t1.line_buffer_allocated(), INITIAL_BUFFER);
    assert_eq!(t1.line_buffer_addr(), released, "t2's released buffer");
    assert_ne!(other.as_ptr() as usize, released);
}
