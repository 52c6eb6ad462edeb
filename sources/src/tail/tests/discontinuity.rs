//! `discontinuities`: counted before the first line after a resume miss or a
//! truncation without a copy, never for a stream that continues (exact resumes,
//! rotations, copytruncate with its copy).

use super::*;

/// Reads until idle; each line with the discontinuity count it was delivered under.
fn read_counted(t: &mut Tailer, now: &mut Instant) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    loop {
        let st = t.read_some(1 << 20, *now, |m, l| {
            out.push((String::from_utf8_lossy(l).into_owned(), m.discontinuities))
        });
        if let (ReadStatus::Blocked, Some(at)) = (st, t.wake_at()) {
            *now = (*now).max(at);
            continue;
        }
        if st != ReadStatus::More {
            return out;
        }
    }
}

fn counted(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(l, d)| (l.to_string(), *d)).collect()
}

#[test]
fn continuing_streams_have_none() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"a1\na2\n").unwrap();
    let mut now = Instant::now();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    assert_eq!(
        read_counted(&mut t, &mut now),
        counted(&[("a1", 0), ("a2", 0)])
    );
    // Rename rotation, then copytruncate with its copy, while reading.
    append(&live, b"a3\n");
    fs::rename(&live, sib(&live, 1)).unwrap();
    fs::write(&live, b"b1\n").unwrap();
    now += WAIT * 2;
    read_counted(&mut t, &mut now);
    now += WAIT * 2;
    assert_eq!(
        t.counters().discontinuities,
        0,
        "{:?}",
        read_counted(&mut t, &mut now)
    );
    fs::rename(sib(&live, 1), sib(&live, 2)).unwrap();
    append(&live, b"b2\n");
    fs::copy(&live, sib(&live, 1)).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, b"c1 longer than before\n");
    now += WAIT * 2;
    let mut lines = read_counted(&mut t, &mut now);
    now += WAIT * 2;
    lines.extend(read_counted(&mut t, &mut now));
    assert!(lines.iter().all(|(_, d)| *d == 0), "{lines:?}");
    assert_eq!(t.counters().copytruncates, 1);
    // An exact resume, from any position taken.
    let pos = t.position();
    append(&live, b"c2\n");
    let mut t = Tailer::new(live.clone(), opts(true), pos);
    assert_eq!(read_counted(&mut t, &mut now), counted(&[("c2", 0)]));
}

#[test]
fn a_resume_miss_counts_one_before_its_first_line() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    fs::write(&live, b"gone 1\ngone 2\n").unwrap();
    let mut now = Instant::now();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    read_counted(&mut t, &mut now);
    let pos = t.position();
    let _keep = File::open(&live).unwrap();
    fs::remove_file(&live).unwrap();
    fs::write(&live, b"new 1\nnew 2\n").unwrap();
    let mut t = Tailer::new(live.clone(), opts(true), pos);
    assert_eq!(
        read_counted(&mut t, &mut now),
        counted(&[("new 1", 1), ("new 2", 1)])
    );
    assert_eq!(t.counters().resume_misses, 1);
}

#[test]
fn truncations_without_a_copy_count_one_each() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    let head = b"0123456789abcdefghijklmnopqrstuvwxyz-0123456789\n";
    let mut bytes = head.to_vec();
    bytes.extend(b"line2\n");
    fs::write(&live, &bytes).unwrap();
    let mut now = Instant::now();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    read_counted(&mut t, &mut now);
    let pos = t.position();
    drop(t);
    // While stopped: same first bytes, shorter than the offset.
    fs::write(&live, head).unwrap();
    let mut t = Tailer::new(live.clone(), opts(true), pos);
    let first = head.strip_suffix(b"\n").unwrap();
    let first = String::from_utf8_lossy(first).into_owned();
    assert_eq!(read_counted(&mut t, &mut now), vec![(first.clone(), 1)]);
    // While reading: truncated in place, no copy.
    OpenOptions::new()
        .write(true)
        .open(&live)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&live, b"after\n");
    now += WAIT * 2;
    assert_eq!(read_counted(&mut t, &mut now), counted(&[("after", 2)]));
    assert_eq!(t.counters().truncations, 2);
}

#[test]
fn a_copy_shorter_than_the_place_read_counts_one() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("x.log");
    // A first line longer than the fingerprint (32 bytes): the copy is told by it.
    let head = format!("{}\n", "h".repeat(40));
    fs::write(&live, format!("{head}a2\na3\n")).unwrap();
    let mut now = Instant::now();
    let mut t = Tailer::new(live.clone(), opts(true), None);
    read_counted(&mut t, &mut now);
    let pos = t.position();
    drop(t);
    // While stopped: a copytruncate whose copy lacks a3 (appended between the copy
    // and the truncation), then new lines.
    fs::write(sib(&live, 1), format!("{head}a2\n")).unwrap();
    fs::write(&live, b"b1\n").unwrap();
    let mut t = Tailer::new(live.clone(), opts(true), pos);
    assert_eq!(read_counted(&mut t, &mut now), counted(&[("b1", 1)]));
}
