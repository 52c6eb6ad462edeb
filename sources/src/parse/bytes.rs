//! Byte searches for the short fields of log lines.
//!
//! Most fields of an access log line (identity, user, status, size, method,
//! protocol, a `-` referer) are a few bytes long: shorter than what it costs to
//! set up a `memchr` call (its CPU dispatch and vector prologue; measured with
//! callgrind on the nginx scanner). So the first [`HEAD_WORDS`] × 8 bytes are
//! searched eight at a time in a plain `u64` ("SWAR"), and only what lies beyond
//! goes to `memchr`. Results are exactly `memchr`'s: the first (or last) match.

use memchr::{memchr, memchr2, memrchr};

/// Words (8 bytes each) searched before handing over to `memchr`.
const HEAD_WORDS: usize = 2;

const LO: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The high bit of exactly the bytes of `w` equal to `c`. (The exact form of
/// the "has a zero byte" trick: no carry crosses bytes, so no false matches.)
#[inline]
fn eq(w: u64, c: u8) -> u64 {
    let x = w ^ (LO * u64::from(c));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The 8 bytes of `s` at `at` as a little-endian word, if there are 8.
#[inline]
fn word(s: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = s.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// Index of the first `c` in `b` at or after `from`.
#[inline]
pub(super) fn find(b: &[u8], from: usize, c: u8) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut i = 0;
    while i < HEAD_WORDS * 8 {
        let Some(w) = word(rest, i) else { break };
        let m = eq(w, c);
        if m != 0 {
            return Some(from + i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr(c, &rest[i..]).map(|n| from + i + n)
}

/// Index of the first `c1` or `c2` in `b` at or after `from`.
#[inline]
pub(super) fn find2(b: &[u8], from: usize, c1: u8, c2: u8) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut i = 0;
    while i < HEAD_WORDS * 8 {
        let Some(w) = word(rest, i) else { break };
        let m = eq(w, c1) | eq(w, c2);
        if m != 0 {
            return Some(from + i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr2(c1, c2, &rest[i..]).map(|n| from + i + n)
}

/// Index of the last `c` in `b[lo..hi]` (`None` if the range is out of bounds).
#[inline]
pub(super) fn rfind(b: &[u8], lo: usize, hi: usize, c: u8) -> Option<usize> {
    let s = b.get(lo..hi)?;
    let mut end = s.len();
    for _ in 0..HEAD_WORDS {
        let Some(w) = end.checked_sub(8).and_then(|at| word(s, at)) else {
            break;
        };
        let m = eq(w, c);
        if m != 0 {
            return Some(lo + end - 1 - (m.leading_zeros() / 8) as usize);
        }
        end -= 8;
    }
    memrchr(c, &s[..end]).map(|n| lo + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Exactly what a plain search finds, wherever the match falls (in the
        /// words, the tail, past them) and whatever the other bytes are.
        #[test]
        fn same_as_a_plain_search(
            b in prop::collection::vec(prop::sample::select(vec![b' ', b'"', b'\\', b'a', 0x80, 0xff, 0x7f, 0x00, 0xa0, 0xa2]), 0..60),
            from in 0usize..64,
            hi in 0usize..64,
            c in prop::sample::select(vec![b' ', b'"', b'\\', 0xff, 0x00, 0x7f]),
        ) {
            let plain = |from: usize, pred: &dyn Fn(u8) -> bool| {
                b.get(from..).and_then(|r| r.iter().position(|&x| pred(x))).map(|n| from + n)
            };
            prop_assert_eq!(find(&b, from, c), plain(from, &|x| x == c));
            prop_assert_eq!(
                find2(&b, from, c, b'"'),
                plain(from, &|x| x == c || x == b'"')
            );
            let want = b.get(from..hi).and_then(|r| r.iter().rposition(|&x| x == c)).map(|n| from + n);
            prop_assert_eq!(rfind(&b, from, hi, c), want);
        }
    }
}
