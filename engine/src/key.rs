//! Series keys: a per-host series' host and label values packed into one
//! allocation, and the order in which keys compare. Shared by the series records
//! ([`crate::series`]) and output labels ([`crate::labels`]), which use the same
//! packing, so it lives apart from both.

use std::cmp::Ordering;

/// A per-host series' identity within its metric: the host, then the label values in
/// the metric's label order, each as a little-endian `u32` length and its bytes. One
/// allocation per series, made when the series is created and kept until its window
/// is merged, so no label value can forge another key.
pub type SeriesKey = Box<[u8]>;

/// Appends one part (the host or a label value) to a key being built.
pub(crate) fn push_key_part(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The first part of `key` and the rest; `None` at its end.
fn split_key_part(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = key.split_first_chunk::<4>()?;
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    Some(rest.split_at(n))
}

/// The bytes of part `n` of `key` (0 is the host); `None` past the key's end.
pub(crate) fn key_part(mut key: &[u8], n: usize) -> Option<&[u8]> {
    for _ in 0..n {
        key = split_key_part(key)?.1;
    }
    Some(split_key_part(key)?.0)
}

/// Orders keys as `(host, label values...)` compare as strings: the order in which
/// a window's series are merged, folded into rules and admitted under `max_series`.
pub(crate) fn cmp_keys(mut a: &[u8], mut b: &[u8]) -> Ordering {
    loop {
        match (split_key_part(a), split_key_part(b)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((pa, ra)), Some((pb, rb))) => match pa.cmp(pb) {
                Ordering::Equal => (a, b) = (ra, rb),
                o => return o,
            },
        }
    }
}

/// The parts of a key: the host, then the label values. Keys are built from
/// `&str`s; a part that is not UTF-8 (impossible short of memory corruption) reads
/// as empty. (The dataflow copies parts into output labels undecoded,
/// [`crate::labels::Labels::from_key`].)
#[cfg(test)]
pub(crate) fn key_parts(mut key: &[u8]) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
        let (part, rest) = split_key_part(key)?;
        key = rest;
        Some(std::str::from_utf8(part).unwrap_or_default())
    })
}

/// The host and the label values of a key (only tests read a key back whole).
#[cfg(test)]
pub(crate) fn decode_key(key: &[u8]) -> (String, Vec<String>) {
    let mut parts = key_parts(key).map(str::to_string);
    let host = parts.next().unwrap_or_default();
    (host, parts.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for p in parts {
            push_key_part(&mut b, p);
        }
        b
    }

    #[test]
    fn keys_round_trip_even_with_separators_in_values() {
        let b = key(&["web\u{1f}1", "", "200"]);
        assert_eq!(
            decode_key(&b),
            (
                "web\u{1f}1".to_string(),
                vec![String::new(), "200".to_string()]
            )
        );
    }

    #[test]
    fn keys_sort_as_their_host_and_labels_do() {
        let parts: [&[&str]; 7] = [
            &["web", "b"],
            &["web", "ab"],
            &["we", "zz"],
            &["web", "a", "x"],
            &["web", "a"],
            &["web", ""],
            &["web\u{0}", "a"],
        ];
        let mut by_key: Vec<&[&str]> = parts.to_vec();
        by_key.sort_by(|a, b| cmp_keys(&key(a), &key(b)));
        let mut by_strings = parts.to_vec();
        by_strings.sort();
        assert_eq!(by_key, by_strings);
    }
}
