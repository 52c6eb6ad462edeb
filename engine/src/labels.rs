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

mod pairs;

pub use pairs::{BytePairs, LabelIter};
use pairs::{IterRepr, Src};

use crate::key::{cmp_keys, key_part, push_key_part, SeriesKey};

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
    /// the encoding of them from the key holds, and compare, hash and print as those do.
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
    #[cfg(test)]
    pub(crate) fn select_at(&self, keep: u64) -> Labels {
        let mut buf = Vec::new();
        self.write_selected_at(keep, &mut buf);
        Labels::owned(buf)
    }

    /// Appends to `buf` the encoding [`Labels::select_at`] holds: how rules
    /// look up their output series without a buffer of its own per host series.
    pub(crate) fn write_selected_at(&self, keep: u64, buf: &mut Vec<u8>) {
        // Most rules keep no label (`sum(x)`): nothing to read. Otherwise the
        // pairs up to the last one kept.
        let last = (64 - keep.leading_zeros()) as usize;
        if last == 0 {
            return;
        }
        let kept = || {
            self.byte_pairs()
                .take(last)
                .enumerate()
                .filter(move |(i, _)| keep >> i & 1 == 1)
                .map(|(_, pair)| pair)
        };
        let len: usize = kept().map(|(k, v)| 8 + k.len() + v.len()).sum();
        buf.reserve(len);
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
    }

    /// Labels from an encoding [`Labels::as_bytes`] gave (or
    /// [`Labels::write_selected_at`] wrote), in a buffer of their own.
    pub(crate) fn from_encoding(bytes: &[u8]) -> Labels {
        Labels::owned(bytes.to_vec())
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

    /// These labels in a buffer of their own, for a holder that outlives the
    /// window (an alert instance): labels read from a series key keep the whole
    /// window's key buffer alive, and encoded ones their shared chunk (review
    /// R17e: 1.2 MB a window held for as long as an instance lived).
    pub(crate) fn detached(&self) -> Labels {
        match &self.repr {
            Repr::Encoded { buf, range } if buf.as_ref().is_none_or(|b| b.len() == range.len()) => {
                self.clone()
            }
            _ => Labels::owned(self.as_bytes().into_owned()),
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
mod tests;
