//! An output series' labels: `(name, value)` pairs sorted by name, encoded in one
//! run of bytes (each part a little-endian `u32` length and its bytes) rather than a
//! `Vec` of `String` pairs — a window of a high-cardinality job holds one of these
//! per output record until it is written.
//!
//! A host series' labels are not encoded at all: they are its series key and the
//! metric's label names ([`Labels::of_key`]), read pair by pair where a sink
//! writes them. Encoding them cost a copy of every name and value per record per
//! window (~340 instructions a record of item 4's 100k-value label), for sinks
//! that only read them once.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::{cmp_keys, key_part, push_key_part, split_key_part, SeriesKey};

/// Label pairs sorted by name. Compare, hash and sort like the
/// `Vec<(String, String)>` they stand for, whichever way they are held.
#[derive(Clone)]
pub struct Labels {
    repr: Repr,
}

/// How a [`Labels`] holds its pairs.
#[derive(Clone)]
enum Repr {
    /// The encoding is `buf[range]`; `None`: no labels.
    Encoded {
        buf: Option<Arc<Vec<u8>>>,
        range: Range<usize>,
    },
    /// A host series' labels: each name of `names` with the part of `key` it
    /// names (see [`KeyNames`]), encoded as [`write_from_key`] would.
    Key {
        names: Arc<KeyNames>,
        key: SeriesKey,
    },
}

impl Default for Labels {
    fn default() -> Labels {
        Labels {
            repr: Repr::Encoded {
                buf: None,
                range: 0..0,
            },
        }
    }
}

/// A metric's output label names, sorted, each with the index of the series
/// key part that holds its value (every part named once, as [`crate::plan`]
/// lays them out): what makes a series key its labels ([`Labels::of_key`]).
/// Made once per metric, shared by all its host series: a writer may render
/// the names once for all of them ([`Labels::key_names`]).
#[derive(Debug)]
pub struct KeyNames {
    names: Vec<(String, usize)>,
    /// The bytes the names take in an encoding (each with its length).
    names_len: usize,
}

impl KeyNames {
    /// From label names sorted, each with the index of the key part that
    /// holds its value (a metric's `output_labels` in the plan).
    pub fn new(names: &[(String, usize)]) -> KeyNames {
        KeyNames {
            names: names.to_vec(),
            names_len: names.iter().map(|(n, _)| 4 + n.len()).sum(),
        }
    }

    /// The names, sorted: those of every pair of labels read through them.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|(n, _)| n.as_str())
    }
}

impl Labels {
    /// Labels encoded in `buf` alone.
    fn owned(buf: Vec<u8>) -> Labels {
        let range = 0..buf.len();
        Labels {
            repr: Repr::Encoded {
                buf: (!buf.is_empty()).then(|| Arc::new(buf)),
                range,
            },
        }
    }

    /// A host series' labels: `names`' pairs read from `key` (a missing part
    /// reads as empty), without copying them. They are the labels
    /// [`write_from_key`] encodes, and compare, hash and print as those do.
    pub fn of_key(names: &Arc<KeyNames>, key: SeriesKey) -> Labels {
        Labels {
            repr: Repr::Key {
                names: names.clone(),
                key,
            },
        }
    }

    /// Host series' labels from their series keys, encoded in shared buffers
    /// of about [`SHARED_CHUNK`] bytes: `keys` gives, per series, its labels'
    /// names and key (see [`write_from_key`]), or `None` for no labels. For
    /// records that are sorted and compared before they are written (there an
    /// encoding compares faster than a key read through its names, and
    /// `sort_records` reads each one's first bytes); others are read from
    /// their keys ([`Labels::of_key`]).
    pub(crate) fn for_keys<'k>(
        keys: impl Iterator<Item = Option<(&'k [(String, usize)], &'k [u8])>>,
    ) -> Vec<Labels> {
        let mut out = Vec::with_capacity(keys.size_hint().0);
        let mut buf: Vec<u8> = Vec::new();
        // Ranges in `buf` of the labels not handed out yet.
        let mut pending: Vec<Range<usize>> = Vec::new();
        let flush = |buf: &mut Vec<u8>, pending: &mut Vec<Range<usize>>, out: &mut Vec<Labels>| {
            let shared = Arc::new(std::mem::take(buf));
            out.extend(pending.drain(..).map(|range| Labels {
                repr: Repr::Encoded {
                    buf: (!range.is_empty()).then(|| shared.clone()),
                    range: if range.is_empty() { 0..0 } else { range },
                },
            }));
        };
        for k in keys {
            if let Some((names, key)) = k {
                let len = encoded_len(names, key);
                // A set that would not fit starts the next buffer: growing a
                // full one copied it whole (a realloc per buffer).
                if !buf.is_empty() && buf.len() + len > buf.capacity() {
                    flush(&mut buf, &mut pending, &mut out);
                }
                if buf.capacity() == 0 {
                    buf.reserve_exact(SHARED_CHUNK.max(len));
                }
                let start = buf.len();
                write_from_key(names, key, &mut buf);
                pending.push(start..buf.len());
            } else {
                pending.push(0..0);
            }
        }
        flush(&mut buf, &mut pending, &mut out);
        out
    }

    /// From pairs already sorted by name. Sized in a first pass, so the one
    /// allocation is made at its final size (growing it cost a realloc or two
    /// per output series).
    pub(crate) fn from_sorted<'a, I>(pairs: I) -> Labels
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        let pairs = pairs.into_iter();
        let len = pairs.clone().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut buf = Vec::with_capacity(len);
        for (k, v) in pairs {
            push_key_part(&mut buf, k);
            push_key_part(&mut buf, v);
        }
        Labels::owned(buf)
    }

    /// The pairs whose name `keep` accepts, in a buffer of their own: each kept
    /// pair's encoding copied as it is (what [`Labels::from_sorted`] of them
    /// gives, without reading them as text first). A part that is not UTF-8
    /// (only a damaged key from another process gives one) is written as
    /// [`Labels::iter`] reads it: empty.
    pub(crate) fn select(&self, mut keep: impl FnMut(&str) -> bool) -> Labels {
        fn part_text(p: &[u8]) -> &str {
            std::str::from_utf8(p).unwrap_or_default()
        }
        let mut len = 0;
        for (k, v) in self.byte_pairs() {
            if keep(part_text(k)) {
                len += 8 + k.len() + v.len();
            }
        }
        if len == 0 {
            return Labels::default();
        }
        let mut buf = Vec::with_capacity(len);
        for (k, v) in self.byte_pairs() {
            let k = part_text(k);
            if keep(k) {
                push_key_part(&mut buf, k);
                push_key_part(&mut buf, part_text(v));
            }
        }
        Labels::owned(buf)
    }

    /// The pairs at the places `keep` has a bit set for (bit `i`: the `i`-th
    /// pair), in a buffer of their own: what [`Labels::select`] gives with a
    /// `keep` that accepts exactly those pairs' names, without reading any
    /// name as text. Rules keep the same places of every host series of a
    /// metric (its label names are the same): found once per rule and
    /// metric, not by comparing names for every series. A value that is not
    /// UTF-8 is written empty, as there.
    pub(crate) fn select_at(&self, keep: u64) -> Labels {
        // Most rules keep no label (`sum(x)`): nothing to read. Otherwise the
        // pairs up to the last one kept.
        let last = (64 - keep.leading_zeros()) as usize;
        if last == 0 {
            return Labels::default();
        }
        let kept = || {
            self.byte_pairs()
                .take(last)
                .enumerate()
                .filter(move |(i, _)| keep >> i & 1 == 1)
                .map(|(_, pair)| pair)
        };
        let len: usize = kept().map(|(k, v)| 8 + k.len() + v.len()).sum();
        if len == 0 {
            return Labels::default();
        }
        let mut buf = Vec::with_capacity(len);
        for (k, v) in kept() {
            // Names are `String`s (or parts of an encoding made of them).
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(k);
            let v = if v.is_ascii() || std::str::from_utf8(v).is_ok() {
                v
            } else {
                &[]
            };
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v);
        }
        Labels::owned(buf)
    }

    /// A host series' labels from its series key, encoded in a buffer of
    /// their own (see [`write_from_key`]).
    #[cfg(test)]
    pub(crate) fn from_key(names: &[(String, usize)], key: &[u8]) -> Labels {
        let mut buf = Vec::with_capacity(encoded_len(names, key));
        write_from_key(names, key, &mut buf);
        Labels::owned(buf)
    }

    /// From pairs in any order (sorted here).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Labels {
        let mut sorted: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        sorted.sort();
        Labels::from_sorted(sorted)
    }

    /// The names these labels are read through, when they are a series key's
    /// ([`Labels::of_key`]: host series of a job whose records reach the
    /// sinks as they are made): one metric's records share them
    /// (`Arc::ptr_eq`), so a writer may render them once and take only the
    /// values from each record's [`Labels::byte_pairs`]. `None` for labels
    /// held encoded.
    #[inline]
    pub fn key_names(&self) -> Option<&Arc<KeyNames>> {
        match &self.repr {
            Repr::Key { names, .. } => Some(names),
            Repr::Encoded { .. } => None,
        }
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter(match &self.repr {
            Repr::Encoded { .. } => {
                let bytes = self.encoded_bytes().unwrap_or_default();
                IterRepr::Encoded {
                    bytes,
                    // One check of the whole encoding instead of one per part
                    // (sinks read every output series' labels): lengths below
                    // 128 are ASCII bytes, so it usually passes, and then each
                    // part is a slice of it.
                    text: std::str::from_utf8(bytes).unwrap_or_default(),
                    at: 0,
                }
            }
            Repr::Key { .. } => IterRepr::Key(self.byte_pairs()),
        })
    }

    /// The pairs as their bytes, sorted by name, for a sink that writes bytes:
    /// no UTF-8 check, which [`Labels::iter`] makes once per set. Each part is
    /// the bytes of a `&str` the labels were built from, except in labels made
    /// from a series key received from another process (checked by no one):
    /// a writer that must not emit invalid UTF-8 checks what is not ASCII, and
    /// reads a part that is invalid as empty, as [`Labels::iter`] does.
    #[inline]
    pub fn byte_pairs(&self) -> BytePairs<'_> {
        BytePairs {
            src: match &self.repr {
                Repr::Encoded { .. } => Src::Encoded(self.encoded_bytes().unwrap_or_default()),
                Repr::Key { names, key } => Src::Key {
                    names: &names.names,
                    key,
                    rest: key,
                    next: 0,
                },
            },
            at: 0,
        }
    }

    /// The length of their encoding: the text of every name and value, and 4
    /// bytes per part (room enough to write them out in most formats). For
    /// labels read from a series key it is found without reading the key:
    /// exact for every key with a part for each name (all that aggregation
    /// makes), an estimate for a damaged one.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match &self.repr {
            Repr::Encoded { .. } => self.encoded_bytes().map_or(0, <[u8]>::len),
            Repr::Key { names, key } => names.names_len + key.len(),
        }
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether there are no labels (e.g. the output of a rule grouped by no label).
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Encoded { .. } => self.encoded_bytes().unwrap_or_default().is_empty(),
            // Every name is a pair of the encoding.
            Repr::Key { names, .. } => names.names.is_empty(),
        }
    }

    /// The encoding, where it is held as bytes (`None` for a series key's).
    #[inline]
    fn encoded_bytes(&self) -> Option<&[u8]> {
        match &self.repr {
            Repr::Encoded { buf, range } => {
                let buf = buf.as_deref().map_or(&[][..], Vec::as_slice);
                // Always in range: every constructor takes it from the buffer it made.
                Some(buf.get(range.clone()).unwrap_or_default())
            }
            Repr::Key { .. } => None,
        }
    }

    /// The encoding (for hashing and as a map key): borrowed where it is held
    /// as bytes (the labels rules make), written out for a series key's.
    #[inline]
    pub(crate) fn as_bytes(&self) -> Cow<'_, [u8]> {
        match (&self.repr, self.encoded_bytes()) {
            (_, Some(bytes)) => Cow::Borrowed(bytes),
            (Repr::Key { names, key }, None) => {
                let mut buf = Vec::with_capacity(encoded_len(&names.names, key));
                write_from_key(&names.names, key, &mut buf);
                Cow::Owned(buf)
            }
            (Repr::Encoded { .. }, None) => Cow::Borrowed(&[]),
        }
    }

    /// Every name and value in order, as bytes: the parts of the encoding.
    fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.byte_pairs().flat_map(|(k, v)| [k, v])
    }

    /// The pairs as owned strings, sorted by name.
    pub fn to_vec(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl From<Vec<(String, String)>> for Labels {
    fn from(pairs: Vec<(String, String)>) -> Labels {
        Labels::from_pairs(&pairs)
    }
}

/// Iterates a [`Labels`]' pairs.
#[derive(Clone)]
pub struct LabelIter<'a>(IterRepr<'a>);

#[derive(Clone)]
enum IterRepr<'a> {
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

/// Iterates a [`Labels`]' pairs as bytes ([`Labels::byte_pairs`]).
#[derive(Clone)]
pub struct BytePairs<'a> {
    src: Src<'a>,
    /// Where the next part's length is (an encoding), or the next name's
    /// index (a series key).
    at: usize,
}

#[derive(Clone)]
enum Src<'a> {
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

/// About how many bytes of labels [`Labels::for_keys`] puts in one buffer: one
/// buffer for a whole window (~1.5 MB for 25k series) fragmented the heap (a
/// 2,000-host run's peak RSS +7 MiB); chunks of this size do not.
const SHARED_CHUNK: usize = 64 * 1024;

/// The bytes `names` and `key` give in [`write_from_key`] (exact for a key
/// with a part for every name).
fn encoded_len(names: &[(String, usize)], key: &[u8]) -> usize {
    names.iter().map(|(n, _)| 4 + n.len()).sum::<usize>() + key.len()
}

/// Appends the encoding of a host series' labels from its series key: `names`
/// are the label names sorted, each with the index of the key part that holds
/// its value (every part named once, as [`crate::plan`] lays them out). The
/// key's parts are built from `&str`s, so each value's bytes are copied as they
/// are, without decoding them again (a missing part reads as empty).
fn write_from_key(names: &[(String, usize)], key: &[u8], buf: &mut Vec<u8>) {
    for (name, part) in names {
        push_key_part(buf, name);
        let value = key_part(key, *part).unwrap_or_default();
        buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        buf.extend_from_slice(value);
    }
}

impl Labels {
    /// The pairs of two series keys' labels under the same names: they differ
    /// only in their values.
    fn same_names<'a>(&'a self, other: &'a Labels) -> Option<(BytePairs<'a>, BytePairs<'a>)> {
        match (&self.repr, &other.repr) {
            (Repr::Key { names: a, .. }, Repr::Key { names: b, .. }) if Arc::ptr_eq(a, b) => {
                Some((self.byte_pairs(), other.byte_pairs()))
            }
            _ => None,
        }
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        if let (Some(a), Some(b)) = (self.encoded_bytes(), other.encoded_bytes()) {
            return a == b;
        }
        match self.same_names(other) {
            Some((a, b)) => a.map(|(_, v)| v).eq(b.map(|(_, v)| v)),
            None => self.parts().eq(other.parts()),
        }
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Part by part, so labels held either way hash alike when equal.
        for part in self.parts() {
            part.hash(h);
        }
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        // Parts alternate name, value: comparing them in order is comparing
        // the pairs as tuples, and the lists lexicographically (what
        // `cmp_keys` does on two encodings).
        if let (Some(a), Some(b)) = (self.encoded_bytes(), other.encoded_bytes()) {
            return cmp_keys(a, b);
        }
        match self.same_names(other) {
            Some((a, b)) => a.map(|(_, v)| v).cmp(b.map(|(_, v)| v)),
            None => self.parts().cmp(other.parts()),
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As the pairs, with their count first (bincode needs it).
        let pairs: Vec<(&str, &str)> = self.iter().collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let pairs: Vec<(String, String)> = Deserialize::deserialize(d)?;
        Ok(Labels::from_pairs(&pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_sort_read_and_round_trip_like_the_pairs_they_stand_for() {
        let lists = [
            pairs(&[("status", "200"), ("host", "web-1")]),
            pairs(&[("host", "web-1")]),
            pairs(&[]),
            pairs(&[("host", "web-1"), ("status", "2000")]),
            pairs(&[("host", "web"), ("status", "\"x\"")]),
            pairs(&[("a", ""), ("b", "")]),
        ];
        let mut sorted: Vec<Vec<(String, String)>> = lists
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.sort();
                l
            })
            .collect();
        let mut labels: Vec<Labels> = lists.iter().cloned().map(Labels::from).collect();
        sorted.sort();
        labels.sort();
        let back: Vec<Vec<(String, String)>> = labels.iter().map(Labels::to_vec).collect();
        assert_eq!(back, sorted);
        let l = &labels[labels.len() - 1];
        assert_eq!(l.get("status"), Some("2000"));
        assert_eq!(l.get("nope"), None);
        assert_eq!(format!("{l:?}"), r#"{"host": "web-1", "status": "2000"}"#);
        let bytes = bincode::serialize(l).unwrap();
        assert_eq!(bincode::deserialize::<Labels>(&bytes).unwrap(), *l);
        assert_eq!(
            serde_json::to_string(l).unwrap(),
            r#"[["host","web-1"],["status","2000"]]"#
        );
        assert!(Labels::default().is_empty());
    }

    /// Values whose lengths are not ASCII bytes (200: `C8`; 33,731: `C3 83`,
    /// which reads as "Ã") and non-ASCII values read back as they went in.
    #[test]
    fn long_and_non_ascii_labels_read_back() {
        let long = "x".repeat(200);
        let longer = format!("{}\u{e9}", "y".repeat(33_729));
        assert_eq!(longer.len(), 0x83c3);
        for p in [
            vec![("a", "\u{e9}t\u{e9}"), ("b", long.as_str()), ("c", "z")],
            vec![("a", longer.as_str()), ("b", "\u{1F600}"), ("c", "")],
            vec![("\u{e9}", long.as_str()), ("z", longer.as_str())],
        ] {
            let labels = Labels::from_pairs(&p);
            let mut sorted = p.clone();
            sorted.sort();
            assert!(labels.iter().eq(sorted.iter().copied()));
            assert_eq!(
                labels.get("c"),
                p.iter().find(|(k, _)| *k == "c").map(|(_, v)| *v)
            );
        }
    }

    /// The pairs a rule keeps, copied as bytes, are the labels made from
    /// those pairs as text, for every subset of names (none, some, all).
    #[test]
    fn selected_pairs_are_the_labels_of_those_pairs() {
        let long = "v".repeat(300);
        let labels = Labels::from_pairs(&[
            ("host", "web-1"),
            ("status", "200"),
            ("method", "\u{e9}\""),
            ("path", long.as_str()),
            ("empty", ""),
        ]);
        let names: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        for mask in 0..(1u32 << names.len()) {
            let kept = |k: &str| {
                names
                    .iter()
                    .position(|n| *n == k)
                    .is_some_and(|i| mask >> i & 1 == 1)
            };
            let got = labels.select(kept);
            let want = Labels::from_sorted(labels.iter().filter(|(k, _)| kept(k)));
            assert_eq!(got, want, "mask {mask:b}");
            // By place: bit i of the mask is the i-th pair of `names`.
            let at = (0..names.len())
                .filter(|&i| kept(names[i]))
                .fold(0u64, |m, i| m | 1 << i);
            assert_eq!(labels.select_at(at), want, "mask {mask:b}");
            assert_eq!(labels.select_at(at).as_bytes(), want.as_bytes());
            assert_eq!(got.to_vec(), want.to_vec());
            assert_eq!(got.is_empty(), mask == 0);
        }
        assert!(Labels::default().select(|_| true).is_empty());
    }

    #[test]
    fn labels_from_a_key_are_the_labels_of_its_decoded_parts() {
        let mut key = Vec::new();
        for part in ["web-1", "", "GET \"x\"", "\u{e9}t\u{e9}"] {
            push_key_part(&mut key, part);
        }
        // Names sorted, each with the key part of its value; part 4 is missing.
        let names: Vec<(String, usize)> = [("a", 2), ("host", 0), ("m", 1), ("z", 3), ("zz", 4)]
            .iter()
            .map(|(n, p)| (n.to_string(), *p))
            .collect();
        let from_key = Labels::from_key(&names, &key);
        let want = Labels::from_pairs(&[
            ("a", "GET \"x\""),
            ("host", "web-1"),
            ("m", ""),
            ("z", "\u{e9}t\u{e9}"),
            ("zz", ""),
        ]);
        assert_eq!(from_key, want);
        // A window's labels in one buffer: each set as from its own key.
        let mut other = Vec::new();
        for part in ["web-2", "x", "", "y"] {
            push_key_part(&mut other, part);
        }
        let keys = [
            Some((&names[..], &key[..])),
            None,
            Some((&names[..], &other[..])),
        ];
        let shared = Labels::for_keys(keys.iter().copied());
        assert_eq!(shared.len(), 3);
        assert_eq!(shared[0], want);
        assert_eq!(shared[0].to_vec(), want.to_vec());
        assert!(shared[1].is_empty());
        assert_eq!(shared[2], Labels::from_key(&names, &other));
        assert_eq!(shared[2].get("host"), Some("web-2"));
        assert!(shared[2] < shared[0], "a = \"\" sorts first");
        // Over several buffers: each set is still its own key's.
        let many: Vec<Vec<u8>> = (0..6000)
            .map(|i| {
                let mut k = Vec::new();
                for part in [format!("web-{i}"), format!("{}", i * 7), "x".repeat(i % 40)] {
                    push_key_part(&mut k, &part);
                }
                k
            })
            .collect();
        let sets = Labels::for_keys(
            many.iter()
                .enumerate()
                .map(|(i, k)| (i % 97 != 0).then_some((&names[..], &k[..]))),
        );
        assert_eq!(sets.len(), many.len());
        for (i, (set, k)) in sets.iter().zip(&many).enumerate() {
            if i % 97 == 0 {
                assert!(set.is_empty());
            } else {
                assert_eq!(*set, Labels::from_key(&names, k), "set {i}");
            }
        }
        assert_eq!(
            from_key.iter().collect::<Vec<_>>(),
            want.iter().collect::<Vec<_>>()
        );
    }

    /// Hashes `l` as a `HashMap` would.
    fn hash_of(l: &Labels) -> u64 {
        let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
        state.hash_one(l)
    }

    /// Labels read from a series key (not encoded) are the labels encoded
    /// from it in every way a sink or a stage reads them: pairs as text and
    /// bytes, length, emptiness, encoding, selection, serialization, and
    /// equality, order and hash against each other and against encoded
    /// labels. Values cover an empty one, a NUL, non-ASCII text, a length
    /// that is not an ASCII byte, and keys missing a part or cut short.
    #[test]
    fn labels_held_as_a_key_read_compare_and_hash_as_encoded_ones() {
        let long = "v".repeat(200);
        let values = [
            "",
            "\0",
            "a",
            "a\0",
            "10.0.1.2",
            "10.0.1.20",
            "\u{e9}t\u{e9}",
            &long,
        ];
        let layouts: Vec<Vec<(String, usize)>> = [
            &[][..],
            &[("host", 0)][..],
            &[("host", 0), ("remote_addr", 1)][..],
            &[("host", 0), ("method", 2), ("status", 1)][..],
            &[("a", 1), ("host", 0)][..],
        ]
        .iter()
        .map(|l| l.iter().map(|&(n, p)| (n.to_string(), p)).collect())
        .collect();
        let mut held: Vec<(Labels, Labels, bool)> = Vec::new();
        for names in &layouts {
            let shared = Arc::new(KeyNames::new(names));
            for (i, v) in values.iter().enumerate() {
                for w in [values[(i + 3) % values.len()], values[i]] {
                    // A part for each name, as aggregation makes keys.
                    let parts = &["web-1", v, w][..names.len()];
                    let mut key = Vec::new();
                    for part in parts {
                        push_key_part(&mut key, part);
                    }
                    // Whole, missing its last part, and cut inside a part.
                    let last = parts.last().map_or(0, |p| 4 + p.len());
                    let cuts = [key.len(), key.len() - last, key.len().saturating_sub(3)];
                    for cut in cuts {
                        let key = &key[..cut];
                        let of_key = Labels::of_key(&shared, SeriesKey::from(key));
                        held.push((of_key, Labels::from_key(names, key), cut == cuts[0]));
                    }
                }
            }
        }
        for (k, e, whole) in &held {
            let whole = *whole;
            assert_eq!(k, e);
            assert_eq!(k.cmp(e), Ordering::Equal);
            assert_eq!(hash_of(k), hash_of(e));
            assert!(k.iter().eq(e.iter()));
            assert!(k.byte_pairs().eq(e.byte_pairs()));
            if whole {
                assert_eq!(k.encoded_len(), e.encoded_len());
            }
            assert_eq!(k.is_empty(), e.is_empty());
            assert_eq!(k.as_bytes(), e.as_bytes());
            assert_eq!(k.get("host"), e.get("host"));
            assert_eq!(k.get("nope"), None);
            assert_eq!(k.select(|n| n != "host"), e.select(|n| n != "host"));
            for at in 0..8u64 {
                assert_eq!(k.select_at(at), e.select_at(at), "{at:b}");
                assert_eq!(k.select_at(at).to_vec(), e.select_at(at).to_vec());
                let want: Vec<(String, String)> = (e.to_vec().into_iter().enumerate())
                    .filter(|(i, _)| at >> i & 1 == 1)
                    .map(|(_, p)| p)
                    .collect();
                assert_eq!(k.select_at(at).to_vec(), want, "{at:b}");
            }
            assert!(matches!(k.select(|_| true).repr, Repr::Encoded { .. }));
            assert_eq!(format!("{k:?}"), format!("{e:?}"));
            let bytes = bincode::serialize(k).unwrap();
            assert_eq!(bytes, bincode::serialize(e).unwrap());
            assert_eq!(bincode::deserialize::<Labels>(&bytes).unwrap(), *e);
            let copy = k.clone();
            assert!(matches!(copy.repr, Repr::Key { .. }));
            assert_eq!(copy, *k);
        }
        // Every pair, held each way: the order and equality of the encodings.
        for (ka, ea, _) in &held {
            for (kb, eb, _) in &held {
                let want = ea.cmp(eb);
                assert_eq!(ka.cmp(kb), want, "{ea:?} vs {eb:?}");
                assert_eq!(ka.cmp(eb), want, "{ea:?} vs {eb:?}");
                assert_eq!(ea.cmp(kb), want, "{ea:?} vs {eb:?}");
                assert_eq!(ka == kb, want == Ordering::Equal);
                assert_eq!(ka == eb, want == Ordering::Equal);
            }
        }
    }
}
