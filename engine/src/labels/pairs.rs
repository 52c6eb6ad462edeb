//! Reading a [`Labels`](super::Labels)' pairs: from an encoding, or from a series key
//! through its names.

use std::ops::Range;

use crate::key::{key_part, split_key_part};

/// Iterates a [`Labels`](super::Labels)' pairs.
#[derive(Clone)]
pub struct LabelIter<'a>(pub(super) IterRepr<'a>);

#[derive(Clone)]
pub(super) enum IterRepr<'a> {
    Encoded {
        bytes: &'a [u8],
        /// `bytes` as text, when the whole encoding was valid UTF-8 (else empty).
        text: &'a str,
        /// Where the next part's length is.
        at: usize,
    },
    /// A series key's pairs, each part checked on its own (the names are
    /// `String`s; a value that is not UTF-8, which only a damaged key from
    /// another process gives, reads as empty, as in an encoding).
    Key(BytePairs<'a>),
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match &mut self.0 {
            IterRepr::Encoded { bytes, text, at } => {
                let k = encoded_part(bytes, text, at)?;
                let v = encoded_part(bytes, text, at)?;
                Some((k, v))
            }
            IterRepr::Key(pairs) => {
                let (k, v) = pairs.next()?;
                let text = |p| std::str::from_utf8(p).unwrap_or_default();
                Some((text(k), text(v)))
            }
        }
    }
}

/// Where the part of `bytes` at `at` lies (its length is the 4 bytes at `at`,
/// cut at the encoding's end); `None` past the end.
#[inline]
fn part_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let len = bytes.get(at..)?.first_chunk::<4>()?;
    let start = at + 4;
    let end = start
        .saturating_add(u32::from_le_bytes(*len) as usize)
        .min(bytes.len());
    Some(start..end)
}

/// Iterates a [`Labels`](super::Labels)' pairs as bytes ([`Labels::byte_pairs`](super::Labels::byte_pairs)).
#[derive(Clone)]
pub struct BytePairs<'a> {
    pub(super) src: Src<'a>,
    /// Where the next part's length is (an encoding), or the next name's
    /// index (a series key).
    pub(super) at: usize,
}

#[derive(Clone)]
pub(super) enum Src<'a> {
    Encoded(&'a [u8]),
    Key {
        names: &'a [(String, usize)],
        key: &'a [u8],
        /// The key after its first `next` parts: names in key order (most
        /// metrics' labels) read each value from here, not from the key's
        /// start again.
        rest: &'a [u8],
        next: usize,
    },
}

impl<'a> Iterator for BytePairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        match &mut self.src {
            &mut Src::Encoded(bytes) => {
                let k = part_at(bytes, self.at)?;
                let v = part_at(bytes, k.end)?;
                self.at = v.end;
                Some((&bytes[k], &bytes[v]))
            }
            Src::Key {
                names,
                key,
                rest,
                next,
            } => {
                let (name, part) = names.get(self.at)?;
                self.at += 1;
                // As `write_from_key` encodes it (`key_part`): a missing part
                // is empty.
                let value = if *part == *next {
                    let (value, after) = split_key_part(rest).unwrap_or_default();
                    *rest = after;
                    *next += 1;
                    value
                } else {
                    key_part(key, *part).unwrap_or_default()
                };
                Some((name.as_bytes(), value))
            }
        }
    }
}

/// The next part of an encoding at `*at`. Built only from `&str`s, so a part
/// is valid UTF-8; a damaged one (impossible short of memory corruption) reads
/// as empty.
#[inline]
fn encoded_part<'a>(bytes: &'a [u8], text: &'a str, at: &mut usize) -> Option<&'a str> {
    let Range { start, end } = part_at(bytes, *at)?;
    *at = end;
    // A slice of the checked text is these bytes, already known to be
    // UTF-8; at an index that is not a char boundary (or with no checked
    // text), check the part alone.
    Some(match text.get(start..end) {
        Some(part) => part,
        None => std::str::from_utf8(&bytes[start..end]).unwrap_or_default(),
    })
}
