//! Whole-file questions a replay plan asks before any search: is the file
//! compressed (then it cannot be searched), and may a file spanning these
//! times hold lines of the range.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether a file whose [`time_span`](super::search::time_span) is `span` may hold a line with time in
/// `[from_ms, to_ms)`, given the disorder bound `d_ms`: every line of it lies in
/// `[first − d, last + d]` (see (A) and (B) in the [search docs](super::search)). A file for
/// which this is false can be skipped.
pub fn span_overlaps(span: (i64, i64), from_ms: i64, to_ms: i64, d_ms: i64) -> bool {
    let d = d_ms.max(0);
    let (first, last) = span;
    from_ms < to_ms && first.saturating_sub(d) < to_ms && last.saturating_add(d) >= from_ms
}

/// Whether the file at `path` starts with the gzip magic bytes (an empty or
/// one-byte file does not).
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    is_gzip_file(&File::open(path)?)
}

/// [`is_gzip`] of a file already open (positioned reads: its offset is untouched).
pub fn is_gzip_file(file: &File) -> io::Result<bool> {
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got == 2 && head == GZIP_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_overlap_rules() {
        // Lines lie in [first - d, last + d].
        assert!(span_overlaps((100, 200), 150, 160, 0));
        assert!(!span_overlaps((100, 200), 201, 300, 0));
        assert!(span_overlaps((100, 200), 201, 300, 1));
        assert!(!span_overlaps((100, 200), 0, 100, 0));
        assert!(span_overlaps((100, 200), 0, 101, 0));
        assert!(span_overlaps((100, 200), 0, 100, 1));
        assert!(!span_overlaps((100, 200), 150, 150, 10));
        assert!(span_overlaps((i64::MIN, i64::MAX), 0, 1, i64::MAX));
    }
}
