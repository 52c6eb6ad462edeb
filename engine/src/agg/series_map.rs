//! One metric's series in one window, every key in one buffer: a window of ~30k
//! series costs a few allocations, not one per key, and a line's lookup reads
//! keys laid out one after the other instead of scattered over the heap.

use std::sync::Arc;

use hashbrown::hash_table::HashTable;

use crate::acc::Acc;
use crate::key::{sorted_order, SeriesKey};

/// Hashes a series key. One per [`super::OpenWindows`], shared by its maps: a
/// key's hash is only ever compared within one map.
pub(super) type KeyHasher = ahash::RandomState;

/// Series keys ([`crate::key::SeriesKey`] encoding) and their states, by index
/// (the order they were made in, until a cut).
#[derive(Default)]
pub(super) struct SeriesMap {
    /// Each series' index, by its key's hash.
    table: HashTable<u32>,
    /// Every key, one after the other.
    keys: Vec<u8>,
    /// Where series `i`'s key ends in `keys` (it starts where `i - 1`'s ends).
    ends: Vec<usize>,
    accs: Vec<Acc>,
}

/// The key of series `i`.
#[inline]
fn key_at<'k>(keys: &'k [u8], ends: &[usize], i: usize) -> &'k [u8] {
    let start = i.checked_sub(1).map_or(0, |p| ends[p]);
    &keys[start..ends[i]]
}

impl SeriesMap {
    /// Room for `series` series of `bytes` key bytes in all.
    pub(super) fn with_capacity(series: usize, bytes: usize) -> Self {
        SeriesMap {
            table: HashTable::with_capacity(series),
            keys: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(series),
            accs: Vec::with_capacity(series),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.accs.len()
    }

    /// Bytes of all keys.
    pub(super) fn key_bytes(&self) -> usize {
        self.keys.len()
    }

    /// The key of series `i`.
    pub(super) fn key(&self, i: usize) -> &[u8] {
        key_at(&self.keys, &self.ends, i)
    }

    /// Every series' state, by index.
    pub(super) fn accs(&self) -> &[Acc] {
        &self.accs
    }

    pub(super) fn acc_mut(&mut self, i: usize) -> Option<&mut Acc> {
        self.accs.get_mut(i)
    }

    /// The index of `key`'s series and `false`, or, if there is none, the index
    /// of a new one holding what `make` gives and `true`; `None` if `make`
    /// gives nothing (the series is not created).
    #[inline]
    pub(super) fn find_or_make(
        &mut self,
        hasher: &KeyHasher,
        key: &[u8],
        make: impl FnOnce() -> Option<Acc>,
    ) -> Option<(u32, bool)> {
        let hash = hasher.hash_one(key);
        let SeriesMap {
            table,
            keys,
            ends,
            accs,
        } = self;
        // Found: one probe (most lines). Made: the hash is reused to insert.
        if let Some(&i) = table.find(hash, |&i| key_at(keys, ends, i as usize) == key) {
            return Some((i, false));
        }
        let acc = make()?;
        let i = accs.len() as u32;
        keys.extend_from_slice(key);
        ends.push(keys.len());
        accs.push(acc);
        table.insert_unique(hash, i, |&j| {
            hasher.hash_one(key_at(keys, ends, j as usize))
        });
        Some((i, true))
    }

    /// Keeps only the series `keep` says (by index), renumbered in their order.
    pub(super) fn retain(&mut self, hasher: &KeyHasher, keep: &[bool]) {
        let old = std::mem::take(self);
        let kept = keep.iter().filter(|&&k| k).count();
        *self = SeriesMap::with_capacity(kept, old.keys.len());
        let SeriesMap {
            table,
            keys,
            ends,
            accs,
        } = self;
        for (i, acc) in old.accs.into_iter().enumerate() {
            if !keep.get(i).copied().unwrap_or(false) {
                continue;
            }
            let key = key_at(&old.keys, &old.ends, i);
            let n = accs.len() as u32;
            keys.extend_from_slice(key);
            ends.push(keys.len());
            accs.push(acc);
            table.insert_unique(hasher.hash_one(key), n, |&j| {
                hasher.hash_one(key_at(keys, ends, j as usize))
            });
        }
    }

    /// Every series in key order ([`crate::key::cmp_keys`]): `emit` gets each
    /// key and state. The keys stay in this map's buffer, now shared by them.
    pub(super) fn drain_sorted(self, mut emit: impl FnMut(SeriesKey, Acc)) {
        let SeriesMap {
            keys,
            ends,
            mut accs,
            ..
        } = self;
        let order = sorted_order(ends.len(), |i| key_at(&keys, &ends, i));
        let keys = Arc::new(keys);
        for i in order {
            let i = i as usize;
            let start = i.checked_sub(1).map_or(0, |p| ends[p]);
            // Taken out in key order; a count of 0 (no heap) is left behind.
            if let Some(acc) = accs.get_mut(i) {
                let acc = std::mem::replace(acc, Acc::Count(0));
                emit(SeriesKey::in_buffer(&keys, start..ends[i]), acc);
            }
        }
    }
}
