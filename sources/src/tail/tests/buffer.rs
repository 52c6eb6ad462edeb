//! The line buffer between turns ([`super::super::source::LineBuf::release`]):
//! a group waiting for its next turn holds one small buffer (paced) or only its
//! unread bytes — none at the end of its file — and reads on exactly as if it
//! had kept its buffer.

use std::cell::Cell;

use super::super::source::{spare_addr, INITIAL_BUFFER, MANY_GROUPS, PACED_BUFFER};
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

/// Groups not read (line buffers alive on this thread) beyond `MANY_GROUPS`.
fn many_groups(live: &Path) -> Vec<Tailer> {
    (0..MANY_GROUPS)
        .map(|_| Tailer::new(live.to_path_buf(), opts(true), None))
        .collect()
}

/// Among many groups, a file shorter than the buffer is read by one `fill`:
/// after each paced stop the group keeps one buffer of [`PACED_BUFFER`]
/// bytes, the same allocation (no moving out and back in, whose fresh pages
/// the kernel faults in), and nothing once the file is read.
#[test]
fn a_paced_group_reads_on_in_one_small_buffer() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let _many = many_groups(&live);
    let (bytes, want) = numbered("l", 0..500);
    assert!(bytes.len() < INITIAL_BUFFER / 2);
    fs::write(&live, &bytes).unwrap();
    for follow in [false, true] {
        let mut t = Tailer::new(live.clone(), opts(follow), None);
        let now = Instant::now() + WAIT * 4;
        let mut out = Vec::new();
        let mut stops = 0;
        let mut first = None;
        let st = loop {
            let st = turn(&mut t, now, 7, &mut out);
            if st != ReadStatus::More {
                break st;
            }
            stops += 1;
            assert_eq!(
                t.line_buffer_allocated(),
                PACED_BUFFER,
                "after {}",
                out.len()
            );
            let at = *first.get_or_insert(t.line_buffer_addr());
            assert_eq!(t.line_buffer_addr(), at, "after {}", out.len());
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
    // Read through (not paced): both read at full size from now on.
    let mut t1 = Tailer::new(one.clone(), opts(true), None);
    assert_eq!(turn(&mut t1, now, 0, &mut out), ReadStatus::Idle);
    let mut t2 = Tailer::new(two.clone(), opts(true), None);
    assert_eq!(turn(&mut t2, now, 0, &mut out), ReadStatus::Idle);
    append(&two, &a);
    assert_eq!(turn(&mut t2, now, 0, &mut out), ReadStatus::Idle);
    assert_eq!(t2.line_buffer_allocated(), 0);
    let released = spare_addr();
    assert_ne!(released, 0, "t2's full-size buffer, released");
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

/// Among many groups, a group not read yet holds no buffer and reads at full
/// size; a paced stop makes it read at the paced size — its unread bytes
/// moved into a paced buffer once they fit, where it then reads on — until it
/// has read all of its file, whatever ends its turns meanwhile. Among few, a
/// paced group reads at full size.
#[test]
fn a_group_reads_small_buffers_from_a_paced_stop_until_its_files_end() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let many = many_groups(&live);
    let (first, mut want) = numbered("f", 0..10);
    fs::write(&live, &first).unwrap();
    let now = Instant::now() + WAIT * 4;
    let mut t = Tailer::new(live.clone(), opts(true), None);
    assert_eq!(t.line_buffer_allocated(), 0);
    assert_eq!(t.line_buffer_working_size(), INITIAL_BUFFER);
    let mut out = Vec::new();
    assert_eq!(turn(&mut t, now, 0, &mut out), ReadStatus::Idle);
    assert_eq!(t.line_buffer_working_size(), INITIAL_BUFFER);
    assert_eq!(t.line_buffer_allocated(), 0);
    let (more, lines) = numbered("m", 0..20_000);
    want.extend(lines);
    append(&live, &more);
    // Its next fill reads a full-size buffer; the stop keeps it whole (most
    // of it unread) and makes the group's size the paced one.
    assert_eq!(turn(&mut t, now, 1, &mut out), ReadStatus::More);
    assert_eq!(t.line_buffer_allocated(), INITIAL_BUFFER);
    assert_eq!(t.line_buffer_working_size(), PACED_BUFFER);
    let mut moved = None;
    for _ in 0..INITIAL_BUFFER / 7 {
        assert_eq!(turn(&mut t, now, 1, &mut out), ReadStatus::More);
        assert_eq!(t.line_buffer_working_size(), PACED_BUFFER);
        if t.line_buffer_allocated() == PACED_BUFFER {
            let at = *moved.get_or_insert(t.line_buffer_addr());
            assert_eq!(t.line_buffer_addr(), at, "read on in place");
        }
    }
    let at = moved.expect("moved into a paced buffer");
    // A turn its byte budget stops keeps the paced buffer.
    for _ in 0..3 {
        let st = t.read_some(PACED_BUFFER / 2, now, |m: LineMeta<'_>, l: &[u8]| {
            out.push((
                String::from_utf8_lossy(l).into_owned(),
                m.position.offset,
                m.line_no,
                m.path.to_path_buf(),
            ))
        });
        assert_eq!(st, ReadStatus::More);
        assert_eq!(t.line_buffer_working_size(), PACED_BUFFER);
        assert_eq!(t.line_buffer_addr(), at);
    }
    while turn(&mut t, now, 0, &mut out) == ReadStatus::More {}
    assert_eq!(t.line_buffer_working_size(), INITIAL_BUFFER, "caught up");
    let lines: Vec<String> = out.into_iter().map(|m| m.0).collect();
    assert_eq!(lines, want);
    drop(many);
    append(&live, &more);
    let mut few = Vec::new();
    assert_eq!(turn(&mut t, now, 1, &mut few), ReadStatus::More);
    assert_eq!(t.line_buffer_working_size(), INITIAL_BUFFER, "few groups");
}
