//! An output series' labels: `(name, value)` pairs sorted by name, encoded in one
//! run of bytes (each part a little-endian `u32` length and its bytes) rather than a
//! `Vec` of `String` pairs — a window of a high-cardinality job holds one of these
//! per output record until it is written. A window's host series share one buffer
//! for all their labels ([`Labels::for_keys`]): one allocation per window, not one
//! per record.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::{cmp_keys, key_part, push_key_part};

/// Label pairs sorted by name. Compare and sort like the `Vec<(String, String)>`
/// they stand for.
#[derive(Clone, Default)]
pub struct Labels {
    /// The encoding is `buf[range]`; `None`: no labels.
    buf: Option<Arc<Vec<u8>>>,
    range: Range<usize>,
}

impl Labels {
    /// Labels encoded in `buf` alone.
    fn owned(buf: Vec<u8>) -> Labels {
        let range = 0..buf.len();
        Labels {
            buf: (!buf.is_empty()).then(|| Arc::new(buf)),
            range,
        }
    }

    /// Host series' labels from their series keys, sharing buffers of about
    /// [`SHARED_CHUNK`] bytes: `keys` gives, per series, its labels' names and
    /// key (see [`write_from_key`]), or `None` for no labels.
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
                buf: (!range.is_empty()).then(|| shared.clone()),
                range: if range.is_empty() { 0..0 } else { range },
            }));
        };
        for k in keys {
            let start = buf.len();
            if let Some((names, key)) = k {
                let len = encoded_len(names, key);
                if buf.capacity() == 0 {
                    buf.reserve_exact(SHARED_CHUNK.max(len));
                }
                buf.reserve(len);
                write_from_key(names, key, &mut buf);
            }
            pending.push(start..buf.len());
            if buf.len() >= SHARED_CHUNK {
                flush(&mut buf, &mut pending, &mut out);
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

    /// A host series' labels from its series key, in a buffer of their own
    /// (see [`write_from_key`]; a window's are made by [`Labels::for_keys`]).
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

    /// The pairs, sorted by name.
    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter {
            bytes: self.as_bytes(),
            // One check of the whole encoding instead of one per part (sinks read
            // every output series' labels): lengths below 128 are ASCII bytes, so
            // it usually passes, and then each part is a slice of it.
            text: std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            at: 0,
        }
    }

    /// The pairs as their bytes, sorted by name, for a sink that writes bytes:
    /// no UTF-8 check, which [`Labels::iter`] makes once per set. Each part is
    /// the bytes of a `&str` the labels were built from, except in labels made
    /// from a series key received from another process (checked by no one):
    /// a writer that must not emit invalid UTF-8 checks what is not ASCII, and
    /// reads a part that is invalid as empty, as [`Labels::iter`] does.
    pub fn byte_pairs(&self) -> BytePairs<'_> {
        BytePairs {
            bytes: self.as_bytes(),
            at: 0,
        }
    }

    /// The length of their encoding: the text of every name and value, and 4
    /// bytes per part (room enough to write them out in most formats).
    pub fn encoded_len(&self) -> usize {
        self.as_bytes().len()
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether there are no labels (e.g. the output of a rule grouped by no label).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The encoding (for hashing).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        let buf = self.buf.as_deref().map_or(&[][..], Vec::as_slice);
        // Always in range: every constructor takes it from the buffer it made.
        buf.get(self.range.clone()).unwrap_or_default()
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
pub struct LabelIter<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when the whole encoding was valid UTF-8 (else empty).
    text: &'a str,
    /// Where the next part's length is.
    at: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let k = self.part()?;
        let v = self.part()?;
        Some((k, v))
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
    bytes: &'a [u8],
    /// Where the next part's length is.
    at: usize,
}

impl<'a> Iterator for BytePairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let k = part_at(self.bytes, self.at)?;
        let v = part_at(self.bytes, k.end)?;
        self.at = v.end;
        Some((&self.bytes[k], &self.bytes[v]))
    }
}

impl<'a> LabelIter<'a> {
    /// The next part. Built only from `&str`s, so a part is valid UTF-8; a
    /// damaged one (impossible short of memory corruption) reads as empty.
    #[inline]
    fn part(&mut self) -> Option<&'a str> {
        let Range { start, end } = part_at(self.bytes, self.at)?;
        self.at = end;
        // A slice of the checked text is these bytes, already known to be
        // UTF-8; at an index that is not a char boundary (or with no checked
        // text), check the part alone.
        Some(match self.text.get(start..end) {
            Some(part) => part,
            None => std::str::from_utf8(&self.bytes[start..end]).unwrap_or_default(),
        })
    }
}

/// About how many bytes of labels [`Labels::for_keys`] puts in one buffer: one
/// buffer for a whole window (~1.5 MB for 25k series) fragmented the heap (a
/// 2,000-host run's peak RSS +7 MiB); chunks of this size do not.
const SHARED_CHUNK: usize = 64 * 1024;

/// The bytes `names` and `key` give in [`write_from_key`].
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

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h);
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        // Parts alternate name, value: comparing them in order is comparing the
        // pairs as tuples, and the lists lexicographically.
        cmp_keys(self.as_bytes(), other.as_bytes())
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
}
