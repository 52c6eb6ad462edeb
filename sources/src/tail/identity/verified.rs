//! Heads already hashed: the same file is checked again and again (after each
//! read, at each reopen of a parked file), and FNV-1a is a dependent multiply
//! per byte, ~1.3 µs for the default 1 KiB; 2,000 paced hosts check ~50k times
//! in issue 13's item 2 (2% of its CPU, benches/README.md, "seventh pass"). A
//! head equal to bytes that hashed to the fingerprint hashes to it too; any
//! other head is hashed as before. So the answers are the hash's, exactly.

use std::cell::RefCell;
use std::collections::HashMap;

/// Bytes of heads remembered per thread (a worker checks its own groups'
/// files), past which the memory starts afresh: 8,192 heads of the default
/// 1 KiB. A file shorter than `fingerprint_bytes` has a longer head at each
/// check as it grows, each remembered once (review R19b).
const MAX_BYTES: usize = 8 << 20;

/// (fingerprint, length) to the bytes that hashed to it, and their total.
#[derive(Default)]
struct Heads {
    by_fp: HashMap<(u64, usize), Box<[u8]>>,
    bytes: usize,
}

thread_local! {
    static HEADS: RefCell<Heads> = RefCell::new(Heads::default());
}

/// Whether `head` hashes to `fp` (`hash` computes it), remembering a head
/// that does. (Hashed, as before, while the thread is being torn down.)
pub(super) fn matches(head: &[u8], fp: u64, hash: impl FnOnce() -> u64) -> bool {
    let key = (fp, head.len());
    let known = HEADS
        .try_with(|h| h.borrow().by_fp.get(&key).is_some_and(|b| **b == *head))
        .unwrap_or(false);
    if known {
        return true;
    }
    if hash() != fp {
        return false;
    }
    let _ = HEADS.try_with(|h| {
        let mut h = h.borrow_mut();
        if h.bytes + head.len() > MAX_BYTES {
            h.by_fp.clear();
            h.bytes = 0;
        }
        if let Some(old) = h.by_fp.insert(key, head.into()) {
            h.bytes -= old.len();
        }
        h.bytes += head.len();
    });
    true
}

/// Bytes remembered on this thread.
#[cfg(test)]
pub(super) fn remembered() -> usize {
    HEADS.with(|h| h.borrow().bytes)
}

#[cfg(test)]
pub(super) fn forget() {
    HEADS.with(|h| *h.borrow_mut() = Heads::default());
}
