//! An output series' labels: `(name, value)` pairs sorted by name, kept in one
//! allocation (each part a little-endian `u32` length and its bytes) rather than a
//! `Vec` of `String` pairs — a window of a high-cardinality job holds one of these
//! per output record until it is written.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::{cmp_keys, push_key_part};

/// Label pairs sorted by name. Compare and sort like the `Vec<(String, String)>`
/// they stand for.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Box<[u8]>);

impl Labels {
    /// From pairs already sorted by name.
    pub(crate) fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let mut buf = Vec::new();
        for (k, v) in pairs {
            push_key_part(&mut buf, k);
            push_key_part(&mut buf, v);
        }
        Labels(buf.into())
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
        LabelIter(&self.0)
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether there are no labels (e.g. the output of a rule grouped by no label).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The encoding (for hashing).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
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
pub struct LabelIter<'a>(&'a [u8]);

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let (k, rest) = part(self.0)?;
        let (v, rest) = part(rest)?;
        self.0 = rest;
        Some((k, v))
    }
}

/// One part of the encoding. Built only from `&str`s, so a part is valid UTF-8; a
/// damaged one (impossible short of memory corruption) reads as empty.
fn part(buf: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let (bytes, rest) = rest.split_at((u32::from_le_bytes(*len) as usize).min(rest.len()));
    Some((std::str::from_utf8(bytes).unwrap_or_default(), rest))
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        // Parts alternate name, value: comparing them in order is comparing the
        // pairs as tuples, and the lists lexicographically.
        cmp_keys(&self.0, &other.0)
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
}
