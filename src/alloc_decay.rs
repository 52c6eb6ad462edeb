//! How long the allocator keeps pages a finite run has freed.
//!
//! jemalloc gives freed pages back to the system once they have been unused for a
//! while (its "dirty decay"). The binary's default is ~1 s (.cargo/config.toml), right
//! for what runs for days: a live `run` or a cluster member returns what a burst took.
//! A finite run (`run --until-eof`, `replay`) ends soon and frees everything then. Giving
//! pages back while it runs only makes the kernel hand it new, zeroed ones for the next
//! windows, a page fault each: on issue 13's item 2 (2,000 hosts, 2.16 M lines) a third
//! of its page faults (58k → 40k) and ~4% of its CPU, for the same peak RSS
//! (benches/README.md, "Issue 13: item 2, seventh pass"). Its freed pages are reused
//! instead, as the windows that follow need as much again. The cost: each arena (one
//! per worker thread, and jemalloc's arena for blocks of 8 MiB and more, which
//! otherwise gives them back at once) stays at its own high-water mark until the run
//! ends, where it would have shrunk between peaks.

use tikv_jemalloc_ctl::{arenas, raw};

/// Keeps every freed page for reuse until the process exits: from now on in the
/// arenas already made, and in those made later (each thread's, as it first allocates).
/// What it could not set is logged; memory is then given back as usual, no result
/// changes.
///
/// A decay the user set at run time (`_RJEM_MALLOC_CONF=dirty_decay_ms:…`) is
/// left as it is.
pub fn keep_freed_pages() {
    let conf = std::env::var("_RJEM_MALLOC_CONF").unwrap_or_default();
    if conf.contains("dirty_decay_ms") {
        tracing::debug!("dirty_decay_ms from _RJEM_MALLOC_CONF kept");
        return;
    }
    if let Err(e) = set_all(NEVER) {
        tracing::debug!("freed memory is given back as usual: jemalloc refused a setting ({e})");
    }
}

/// jemalloc's decay time meaning "never".
const NEVER: isize = -1;

/// The dirty decay of every arena, and the default of those not made yet.
/// (tikv-jemalloc-ctl has typed, safe accessors for many settings, not for this
/// one: its untyped `raw` calls are unsafe because the type must match.)
#[allow(unsafe_code)]
fn set_all(ms: isize) -> Result<(), tikv_jemalloc_ctl::Error> {
    // SAFETY: both settings are `ssize_t`s (jemalloc's manual), which `isize` is.
    unsafe { raw::write(b"arenas.dirty_decay_ms\0", ms)? };
    let mut refused = Ok(());
    for i in 0..arenas::narenas::read()? {
        let name = format!("arena.{i}.dirty_decay_ms\0");
        // SAFETY: as above. An arena not made yet cannot be read (EFAULT): it
        // will take the default just set.
        if unsafe { raw::read::<isize>(name.as_bytes()) }.is_err() {
            continue;
        }
        // SAFETY: as above.
        if let Err(e) = unsafe { raw::write(name.as_bytes(), ms) } {
            refused = Err(e);
        }
    }
    refused
}

/// The dirty decay of arena `i`, `None` if it has not been made.
#[cfg(test)]
#[allow(unsafe_code)]
fn decay_of(i: u32) -> Option<isize> {
    let name = format!("arena.{i}.dirty_decay_ms\0");
    // SAFETY: an `ssize_t` (see `set_all`).
    unsafe { raw::read::<isize>(name.as_bytes()) }.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn arenas_made_before_and_after_keep_their_pages() {
        // Arena 0 exists: this process has allocated already. (Its setting
        // before is not asserted: another test may have run a finite job.)
        keep_freed_pages();
        assert_eq!(decay_of(0), Some(NEVER));
        // SAFETY: an `ssize_t` (see `set_all`).
        let default = unsafe { raw::read::<isize>(b"arenas.dirty_decay_ms\0") };
        assert_eq!(default.ok(), Some(NEVER), "arenas made later");
    }
}
