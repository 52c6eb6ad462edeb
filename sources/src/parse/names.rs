//! Finding a key among the names a job asks for, in time independent of how many
//! it asks for: a job may name thousands of fields, and a line may carry
//! thousands of keys, so a scan per key would cost keys × names.

use std::collections::HashMap;

/// Up to this many names a scan beats hashing every key of every line.
const SCAN_UP_TO: usize = 8;

/// The names' positions, by name.
pub(crate) enum NameIndex {
    Few(Vec<Box<str>>),
    Many(HashMap<Box<str>, usize>),
}

impl NameIndex {
    /// `names` are distinct.
    pub(crate) fn new(names: &[String]) -> NameIndex {
        if names.len() <= SCAN_UP_TO {
            NameIndex::Few(names.iter().map(|n| n.as_str().into()).collect())
        } else {
            NameIndex::Many(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.as_str().into(), i))
                    .collect(),
            )
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<usize> {
        match self {
            NameIndex::Few(names) => names.iter().position(|n| &**n == key),
            NameIndex::Many(map) => map.get(key).copied(),
        }
    }
}
