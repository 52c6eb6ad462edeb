//! Damaged compressed siblings (issue 10 §6).

use super::*;

/// Like `assert_eq!`, but shows only the first difference.
fn same_lines(got: &[String], want: &[String]) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "line {i} of {}: got {:?}, want {:?} (then {:?})",
            want.len(),
            got.get(i),
            want.get(i),
            got.get(i + 1)
        );
    }
}

/// `data` gzipped, then cut to `keep` of its compressed bytes.
fn truncated_gzip(data: &[u8], keep: f64) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    let full = gz.finish().unwrap();
    full[..(full.len() as f64 * keep) as usize].to_vec()
}

/// Regression: a truncated `.gz` sibling whose head matched the live file (a copy
/// of it, cut short) lost one line. Its last, incomplete line was delivered as a
/// line, and the live file was then read from the byte where the damaged copy
/// ended, in the middle of that line.
#[test]
fn a_truncated_gz_sibling_loses_no_line() {
    for follow in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("app.log");
        let (bytes, lines) = numbered("line", 0..2000);
        fs::write(&live, &bytes).unwrap();
        fs::write(
            PathBuf::from(format!("{}.1.gz", live.display())),
            truncated_gzip(&bytes, 0.5),
        )
        .unwrap();
        let mut h = H::new(&live, opts(follow), None);
        let got = h.drain();
        same_lines(&got, &lines);
        let errs: Vec<String> = std::iter::from_fn(|| h.t.take_error()).collect();
        assert!(
            errs.iter()
                .any(|e| e.contains("app.log.1.gz") && e.contains("ends early")),
            "{errs:?}"
        );
        assert_eq!(h.t.counters().damaged_gzip, 1);
        // Nothing was lost: the live file continues it.
        assert!(h.t.unreadable().is_empty(), "{:?}", h.t.unreadable());
    }
}

/// A damaged `.gz` that nothing continues: what it held up to the damage is
/// read, the rest is reported lost, and a finite read lists it.
#[test]
fn a_truncated_gz_that_nothing_continues_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("app.log");
    let (old, old_lines) = numbered("old", 0..2000);
    fs::write(
        PathBuf::from(format!("{}.1.gz", live.display())),
        truncated_gzip(&old, 0.5),
    )
    .unwrap();
    fs::write(&live, b"new\n").unwrap();
    let mut h = H::new(&live, opts(false), None);
    let got = h.drain();
    let n = got.len() - 1;
    assert!(n > 100 && n < 2000, "{n}");
    same_lines(&got[..n], &old_lines[..n]);
    assert_eq!(got[n], "new");
    assert_eq!(h.t.counters().damaged_gzip, 1);
    assert_eq!(h.t.unreadable().len(), 1);
    assert!(h.t.unreadable()[0].error.contains("ends early"));
}
