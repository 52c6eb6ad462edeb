use super::*;
use std::io::Write;

fn file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("f.log");
    std::fs::write(&p, bytes).unwrap();
    (d, p)
}

fn all(r: &mut RangeReader, budget: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !r
        .read_some(budget, |n, l| out.push((n, l.to_vec())))
        .unwrap()
    {}
    out
}

#[test]
fn reader_is_send() {
    fn send<T: Send>() {}
    send::<RangeReader>();
}

#[test]
fn lines_of_a_whole_file_with_numbers() {
    let (_d, p) = file(b"a\r\n\nbb\ncc\r");
    let mut r = RangeReader::plain(&p, 0, 10, 100).unwrap();
    let got = all(&mut r, 1);
    let want: Vec<(u64, Vec<u8>)> = vec![
        (1, b"a".to_vec()),
        (2, b"".to_vec()),
        (3, b"bb".to_vec()),
        (4, b"cc".to_vec()),
    ];
    assert_eq!(got, want);
    assert_eq!(r.progress_bytes(), 10);
    assert_eq!(r.bytes_read(), 10);
    assert!(r.read_some(10, |_, _| panic!("after the end")).unwrap());
}

#[test]
fn a_line_of_exactly_max_bytes_with_crlf_is_kept() {
    // max_line + '\r' fills the buffer up to its limit before the '\n' comes.
    let max = BUFFER + 10;
    let mut bytes = vec![b'x'; max];
    bytes.extend_from_slice(b"\r\n");
    bytes.extend(std::iter::repeat_n(b'y', max + 1));
    bytes.extend_from_slice(b"\nz");
    let (_d, p) = file(&bytes);
    let mut r = RangeReader::plain(&p, 0, bytes.len() as u64, max).unwrap();
    let got = all(&mut r, 1 << 20);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1.len()), (1, max));
    assert_eq!(got[1], (3, b"z".to_vec()));
    assert_eq!(r.oversize_lines(), 1);
}

#[test]
fn a_range_to_eof_reads_what_was_appended_and_fails_when_cut_short() {
    let (_d, p) = file(b"a\nb\n");
    let mut r = RangeReader::plain(&p, 0, 4, 100).unwrap().to_eof();
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"c\nd").unwrap();
    let got: Vec<Vec<u8>> = all(&mut r, 1).into_iter().map(|l| l.1).collect();
    assert_eq!(
        got,
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    // Without to_eof the range ends where it was planned.
    let mut r = RangeReader::plain(&p, 0, 4, 100).unwrap();
    assert_eq!(all(&mut r, 1).len(), 2);
    // Shorter than the planned range: still an error.
    let mut r = RangeReader::plain(&p, 0, 7, 100).unwrap().to_eof();
    f.set_len(3).unwrap();
    assert!(r.read_some(100, |_, _| {}).is_err());
}

#[test]
fn an_empty_range_is_finished_at_once() {
    let (_d, p) = file(b"a\nb\n");
    let mut r = RangeReader::plain(&p, 2, 2, 100).unwrap();
    assert!(r.read_some(100, |_, _| panic!("no lines")).unwrap());
    assert_eq!(r.progress_bytes(), 0);
    assert!(RangeReader::plain(&p, 3, 2, 100).is_err());
    assert!(RangeReader::plain(&p, 0, 5, 100).is_err());
}
