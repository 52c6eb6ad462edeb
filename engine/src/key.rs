//! Series keys: a per-host series' host and label values packed into one
//! allocation, and the order in which keys compare. Shared by the series records
//! ([`crate::series`]) and output labels ([`crate::labels`]), which use the same
//! packing, so it lives apart from both.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A per-host series' identity within its metric: the host, then the label values in
/// the metric's label order, each as a little-endian `u32` length and its bytes, so
/// no label value can forge another key.
///
/// Its bytes are a range of a shared buffer: a drained window's keys of one metric
/// stay in the one buffer its aggregation built them in (one allocation per
/// window and metric, freed with the last of its keys), not one allocation per
/// series. Reads as the bytes (`Deref<Target = [u8]>`); compares, prints and
/// serializes as a `Box<[u8]>` of them would.
#[derive(Clone)]
pub struct SeriesKey {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl SeriesKey {
    /// The key at `range` of `buf` (an empty key if the range is not in it).
    pub(crate) fn in_buffer(buf: &Arc<Vec<u8>>, range: Range<usize>) -> SeriesKey {
        let ok = range.start <= range.end && range.end <= buf.len();
        let (start, end) = if ok { (range.start, range.end) } else { (0, 0) };
        SeriesKey {
            buf: buf.clone(),
            start,
            end,
        }
    }
}

impl Deref for SeriesKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // Always in range: `in_buffer` checks it, and the buffer is never changed.
        self.buf.get(self.start..self.end).unwrap_or_default()
    }
}

impl From<Vec<u8>> for SeriesKey {
    fn from(bytes: Vec<u8>) -> SeriesKey {
        let end = bytes.len();
        SeriesKey {
            buf: Arc::new(bytes),
            start: 0,
            end,
        }
    }
}

impl From<&[u8]> for SeriesKey {
    fn from(bytes: &[u8]) -> SeriesKey {
        SeriesKey::from(bytes.to_vec())
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &SeriesKey) -> bool {
        **self == **other
    }
}

impl Eq for SeriesKey {}

impl fmt::Debug for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for SeriesKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // As the `Box<[u8]>` it was: a sequence of bytes (a cluster's members
        // exchange keys with bincode).
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SeriesKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeriesKey, D::Error> {
        Vec::<u8>::deserialize(d).map(SeriesKey::from)
    }
}

/// Appends one part (the host or a label value) to a key being built.
pub(crate) fn push_key_part(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The first part of `key` and the rest; `None` at its end.
pub(crate) fn split_key_part(key: &[u8]) -> Option<(&[u8], &[u8])> {
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
///
/// Every window sorts its series by this, so it first finds where the two keys'
/// bytes differ (8 bytes at a time): the parts before that are equal, and a
/// difference inside a part's text (its length the same in both) is decided by
/// that byte. Only a difference in a length (or a key's end) compares the parts
/// themselves, from the first part that differs.
pub(crate) fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    let d = first_difference(a, b);
    if d == a.len() && d == b.len() {
        return Ordering::Equal;
    }
    // `at`: where the part holding byte `d` starts; every part before it is the
    // same in both keys, so both keys lay it out alike up to `d`.
    let mut at = 0;
    while at < d {
        let Some(len) = a[at..].first_chunk::<4>() else {
            break;
        };
        let text = at + 4;
        let end = text.saturating_add(u32::from_le_bytes(*len) as usize);
        if d < text {
            break; // the lengths differ
        }
        if d < end {
            if end <= a.len() && end <= b.len() {
                return a[d].cmp(&b[d]);
            }
            break; // a damaged key: the part-wise comparison decides
        }
        at = end;
    }
    cmp_parts(&a[at.min(d)..], &b[at.min(d)..])
}

/// From this many keys on, [`sorted_order`] sorts their numbers by radix: below,
/// its 16 tables of 256 counts cost more than comparisons.
const RADIX_SORT: usize = 512;

/// Up to this many keys, [`sorted_order`] compares keys directly.
const SMALL_SORT: usize = 24;

/// The order of a window's series of one metric by key ([`cmp_keys`]): the
/// indices `0..n`, sorted by `key(i)`. The keys are unique (a map's), so an
/// unstable sort gives the one order.
///
/// Each key gets a number that orders as its first bytes do, in an encoding
/// that compares as the parts do (see [`order_prefix`]), taken after the host
/// when every key has the same one (a file group's keys usually do): most pairs
/// are then told apart by one integer comparison, and only ties compare keys.
/// What is sorted is that number and an index, not the series.
pub(crate) fn sorted_order<'k>(n: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<u32> {
    if n <= SMALL_SORT {
        // A few series (one host's window among thousands): making prefixes
        // would cost more than comparing the keys.
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| cmp_keys(key(a as usize), key(b as usize)));
        return order;
    }
    let skip = shared_host_len((0..n).map(&key));
    order_by_numbers(n, skip, key)
}

/// The indices of the `n` keys sorted by the number of each key past its
/// first `skip` bytes ([`order_prefix`]) alone first (no key read, no
/// comparison: a radix sort), then each run of equal numbers by its keys,
/// equal keys in index order.
fn order_by_numbers<'k>(n: usize, skip: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<u32> {
    let mut keyed: Vec<(u128, u32)> = (0..n)
        .map(|i| {
            (
                order_prefix(key(i).get(skip..).unwrap_or_default()),
                i as u32,
            )
        })
        .collect();
    // (number, index) pairs are unique: either sort gives equal numbers in
    // index order.
    if keyed.len() >= RADIX_SORT {
        radix_sort(&mut keyed);
    } else {
        keyed.sort_unstable();
    }
    let mut start = 0;
    while let Some(&(prefix, _)) = keyed.get(start) {
        let run = keyed[start..].iter().take_while(|e| e.0 == prefix).count();
        if run > 1 {
            keyed[start..start + run].sort_unstable_by(|a, b| {
                cmp_keys(key(a.1 as usize), key(b.1 as usize)).then(a.1.cmp(&b.1))
            });
        }
        start += run;
    }
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// [`sorted_order`] for keys that may repeat: equal keys keep their order (what
/// a stable sort gives), and the numbers start past the leading whole parts
/// every key shares ([`shared_parts_len`]): labels encoded as keys all begin
/// with the same name. A window's records of one name sorted by their labels.
pub(crate) fn stable_sorted_order<'k>(n: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<u32> {
    let skip = shared_parts_len((0..n).map(&key));
    if let Some(order) = order_within_sorted_heads(n, skip, &key) {
        return order;
    }
    order_by_numbers(n, skip, key)
}

/// Longest run of keys with one head that [`order_within_sorted_heads`]
/// sorts by comparisons: past it the numbers' radix sort is cheaper.
const HEAD_RUN: usize = 32;

/// [`stable_sorted_order`] of keys that come sorted by their first two parts
/// past the `skip` bytes all share (their head), in short runs of one head: each
/// run sorted by the whole keys, stably. A window's records of one name come so
/// when the labels they are sorted by begin with the host and the metric's key
/// orders its other labels differently (`status` before `method`): host by
/// host, a few records each. `None` where a head is below the one before it or
/// a run is longer than [`HEAD_RUN`] (after at most `n` comparisons).
fn order_within_sorted_heads<'k>(
    n: usize,
    skip: usize,
    key: impl Fn(usize) -> &'k [u8],
) -> Option<Vec<u32>> {
    let head = |i: usize| {
        let rest = key(i).get(skip..).unwrap_or_default();
        let after = split_key_part(rest)
            .and_then(|(_, r)| split_key_part(r))
            .map_or(&[][..], |(_, r)| r);
        &rest[..rest.len() - after.len()]
    };
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut start = 0;
    while start < n {
        let first = head(start);
        let mut end = start + 1;
        while end < n {
            match cmp_keys(first, head(end)) {
                Ordering::Equal => end += 1,
                Ordering::Less => break,
                Ordering::Greater => return None,
            }
        }
        if end - start > HEAD_RUN {
            return None;
        }
        // Stable; at this length its scratch space is on the stack.
        order[start..end].sort_by(|&a, &b| cmp_keys(key(a as usize), key(b as usize)));
        start = end;
    }
    Some(order)
}

/// Sorts `v` by its numbers, equal numbers in the order they come (so pairs
/// made in index order come out as `sort_unstable` orders the pairs): a least
/// significant byte first radix sort, which skips the bytes every number
/// shares (the zero padding of short keys, a value's common start). A window's
/// ~30k series took ~500 instructions each in a comparison sort; this is a
/// few passes of a load and a store.
fn radix_sort(v: &mut Vec<(u128, u32)>) {
    let n = v.len();
    // How many numbers have each value of each byte (byte 0 the lowest). On the
    // stack: 16 KiB on the heap is a large allocation, zeroed by fresh pages.
    let mut counts = [[0u32; 256]; 16];
    for &(x, _) in v.iter() {
        for (d, c) in x.to_le_bytes().iter().zip(counts.iter_mut()) {
            c[*d as usize] += 1;
        }
    }
    // The second buffer is a copy, not `vec![(0, 0); n]`: jemalloc zeroes a large
    // allocation by handing its pages back to the kernel (`MADV_DONTNEED`), so a
    // zeroed one faults in every page again, window after window (~15k of the
    // ~30k page faults of issue 13's item 4); a copy reuses warm pages.
    let mut other: Vec<(u128, u32)> = Vec::new();
    for (d, c) in counts.iter().enumerate() {
        if c.iter().any(|&k| k as usize == n) {
            continue; // every number has the same byte here
        }
        let mut at = [0usize; 256];
        let mut sum = 0;
        for (slot, &k) in at.iter_mut().zip(c.iter()) {
            *slot = sum;
            sum += k as usize;
        }
        if other.len() != n {
            other = v.clone();
        }
        for &e in v.iter() {
            let b = (e.0 >> (8 * d)) as u8 as usize;
            other[at[b]] = e;
            at[b] += 1;
        }
        std::mem::swap(v, &mut other);
    }
}

/// The length of the host part (with its length) when every key has the same
/// host, else 0: where [`KeyPrefix::of`] may start, since a part all keys share
/// orders none of them.
pub(crate) fn shared_host_len<'k>(mut keys: impl Iterator<Item = &'k [u8]>) -> usize {
    let Some(first) = keys.next() else {
        return 0;
    };
    let host = split_key_part(first).map_or(0, |(part, _)| 4 + part.len());
    if keys.all(|k| k.get(..host) == first.get(..host)) {
        host
    } else {
        0
    }
}

/// The length of the leading whole parts (each with its length) every key
/// shares, 0 when none: where [`KeyPrefix::of`] may start. Labels encoded as
/// keys all begin with the same name (`host`): their prefixes from 0 tie.
pub(crate) fn shared_parts_len<'k>(mut keys: impl Iterator<Item = &'k [u8]>) -> usize {
    let Some(first) = keys.next() else {
        return 0;
    };
    // The whole parts of `first` within its first `limit` bytes (a part
    // cut short, in a damaged key, is not whole).
    let whole_within = |limit: usize| {
        let mut at = 0;
        while let Some(len) = first.get(at..).and_then(|rest| rest.first_chunk::<4>()) {
            let end = at + 4 + u32::from_le_bytes(*len) as usize;
            if end > limit.min(first.len()) {
                break;
            }
            at = end;
        }
        at
    };
    let mut len = whole_within(first.len());
    for k in keys {
        if len == 0 {
            break;
        }
        let same = first[..len]
            .iter()
            .zip(k)
            .take_while(|(a, b)| a == b)
            .count();
        if same < len {
            len = whole_within(same);
        }
    }
    len
}

/// A number that orders as a key does ([`cmp_keys`]) where two keys' numbers
/// differ (the keys' first bytes, past `skip` bytes every key shares; see
/// [`order_prefix`]); equal numbers say nothing, and the keys must be compared.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyPrefix(u128);

impl KeyPrefix {
    /// `key`'s prefix, `skip` bytes (from [`shared_host_len`]) in.
    pub(crate) fn of(key: &[u8], skip: usize) -> KeyPrefix {
        KeyPrefix(order_prefix(key.get(skip..).unwrap_or_default()))
    }
}

/// The first 16 bytes (zero-padded) of `key`'s parts written so that plain byte
/// order is part order: each part's bytes with NUL as `00 FF`, then `00 00`
/// (a part that ends sorts before any that goes on). So when two keys' prefixes
/// differ, their order is the keys' order; equal prefixes say nothing.
// `contains` calls memchr for every part; over at most 16 bytes the plain loop
// is cheaper (it ran once per series of every window).
#[allow(clippy::manual_contains)]
fn order_prefix(mut key: &[u8]) -> u128 {
    let mut out = [0u8; 16];
    let mut n = 0;
    while let Some((part, rest)) = split_key_part(key) {
        // Only the bytes that fit count: those past them are never written.
        let take = part.len().min(out.len() - n);
        if part[..take].iter().any(|&b| b == 0) {
            // A NUL is written `00 FF`, byte by byte (rare).
            for &b in part {
                let bytes: &[u8] = if b == 0 { &[0, 0xff] } else { &[b] };
                for &x in bytes {
                    if let Some(slot) = out.get_mut(n) {
                        *slot = x;
                        n += 1;
                    }
                }
                if n >= out.len() {
                    return u128::from_be_bytes(out);
                }
            }
        } else {
            // The part's bytes as they are, as many as fit.
            out[n..n + take].copy_from_slice(&part[..take]);
            n += take;
            if n >= out.len() {
                return u128::from_be_bytes(out);
            }
        }
        // Its end, `00 00`: `out` is zeros already.
        n += 2;
        if n >= out.len() {
            break;
        }
        key = rest;
    }
    u128::from_be_bytes(out)
}

/// The first index where `a` and `b` differ, or the shorter one's length.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .map_or(0, |w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
    };
    let mut i = 0;
    while i + 8 <= n {
        let diff = word(a, i) ^ word(b, i);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i == n {
        return n;
    }
    if n >= 8 {
        // The last 8 bytes both keys have, overlapping those already compared
        // (equal, so the first difference among them is past `i`): one more
        // word instead of a byte-at-a-time loop over the rest (where sorted
        // keys usually differ: "10.0.0.101" and "10.0.0.102").
        let diff = word(a, n - 8) ^ word(b, n - 8);
        return if diff == 0 {
            n
        } else {
            n - 8 + (diff.trailing_zeros() / 8) as usize
        };
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

/// [`cmp_keys`] part by part.
fn cmp_parts(mut a: &[u8], mut b: &[u8]) -> Ordering {
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
mod tests;
