//! How long the allocator keeps pages a finite run has freed.
//!
//! jemalloc gives freed pages back to the system once they have been unused for a
//! while (its "dirty decay"). The binary's default is ~1 s (.cargo/config.toml), right
//! for what runs for days: a live `run` or a cluster member returns what a burst took.
//! A finite run (`run --until-eof`, `replay`) ends soon and frees everything then. Giving
//! pages back while it runs only makes the kernel hand it new, zeroed ones for the next
//! windows, a page fault each: on issue 13's item 2 (2,000 hosts, 2.16 M lines) a third
//! of its page faults (58k → 40k) and a quarter of its system time, for the same peak
//! RSS (benches/README.md, "Issue 13: item 2, seventh pass"). Its freed pages are
//! reused instead, as the windows that follow need as much again.

use tikv_jemalloc_ctl::{arenas, raw};

/// Keeps every freed page for reuse until the process exits: from now on in the
/// arenas already made, and in those made later (each thread's, as it first allocates).
/// What it could not set is logged; memory is then given back as usual, no result
/// changes.
pub fn keep_freed_pages() {
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
    for i in 0..arenas::narenas::read()? {
        let name = format!("arena.{i}.dirty_decay_ms\0");
        // SAFETY: as above. An arena not made yet answers EFAULT: it will take
        // the default just set.
        let _ = unsafe { raw::write(name.as_bytes(), ms) };
    }
    Ok(())
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
