//! How the directory watcher wakes a live job's file sources.
//!
//! Two kinds of news, two costs. A file that appeared, moved or went away
//! ([`PokeBoard::poke`]) makes every source evaluate its globs at once. A write
//! to a file ([`PokeBoard::written`]) only wakes the source whose group reads it
//! (every source when no group's live path is that file, e.g. a rotated file
//! still written through an old handle), so it reads: no glob, no discovery. A busy log is written hundreds of times a second, so
//! writes are coalesced: after a wake for a write, a source is not woken for
//! another one for [`WRITE_COALESCE`]; it comes back by itself when that ends
//! and reads everything written meanwhile in one go. A follower of a busy file
//! then wakes at most 1 / [`WRITE_COALESCE`] times a second, whatever the
//! number of writes, and a line waits at most that long more to be read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_sources::file::RealPaths;
use timely::scheduling::SyncActivator;

/// After a source woke for a write, how long further writes wait before they
/// wake it again (see the module docs). Well under the window latency the
/// issue allows (100 ms), far over the cost of one wake.
pub const WRITE_COALESCE: Duration = Duration::from_millis(25);

/// A write was reported since the source last took the news.
const WRITTEN: u8 = 1;
/// The source is inside a coalescing period: writes do not wake it (it comes
/// back by itself when the period ends).
const HOLDING: u8 = 2;

/// What one source is told.
#[derive(Default)]
struct Flags {
    /// Evaluate the globs at once.
    discover: AtomicBool,
    /// [`WRITTEN`] | [`HOLDING`].
    writes: AtomicU8,
}

/// How the directory watcher wakes the sources: every source operator has its
/// own flags (one shared flag would be consumed by whichever worker woke first,
/// while the group might belong to another) and is activated from the watcher's
/// threads.
#[derive(Default)]
pub struct PokeBoard {
    sources: Mutex<Vec<(SyncActivator, Arc<Flags>)>>,
    /// Live path of a group → the source (index in `sources`) that reads it.
    readers: Mutex<HashMap<PathBuf, usize>>,
    /// Set while the watcher sees every folder the job's globs can match.
    watching: AtomicBool,
}

impl PokeBoard {
    /// The watcher says whether it sees every folder (discovery then polls rarely).
    pub fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::SeqCst);
    }

    /// Whether the watcher sees every folder (then discovery polls rarely).
    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    /// Asks the sources to discover and read at once, and wakes them.
    pub fn poke(&self) {
        if let Ok(sources) = self.sources.lock() {
            for (act, flags) in sources.iter() {
                flags.discover.store(true, Ordering::SeqCst);
                // A dataflow that is gone cannot be woken; nothing to do then.
                let _ = act.activate();
            }
        }
    }

    /// The file at `path` was written: wakes the source that reads it (every
    /// source if none has a group of that live path), unless it was told
    /// already or is coalescing writes (see the module docs). No discovery.
    pub fn written(&self, path: &Path) {
        let reader = self.readers.lock().ok().and_then(|r| r.get(path).copied());
        if let Ok(sources) = self.sources.lock() {
            for (i, (act, flags)) in sources.iter().enumerate() {
                if reader.is_some_and(|r| r != i) {
                    continue;
                }
                if flags.writes.fetch_or(WRITTEN, Ordering::SeqCst) == 0 {
                    let _ = act.activate();
                }
            }
        }
    }

    /// Registers a source; what it is told arrives through the returned [`Wake`].
    pub(crate) fn register(&self, act: SyncActivator) -> Wake {
        let flags = Arc::new(Flags::default());
        let mut index = usize::MAX;
        if let Ok(mut sources) = self.sources.lock() {
            index = sources.len();
            sources.push((act, flags.clone()));
        }
        Wake {
            flags,
            holding_until: None,
            index,
        }
    }

    /// The source `wake` reads the group of live path `live`: writes to it wake
    /// that source only.
    ///
    /// The notifier watches folders by their real path and reports a write
    /// under it, while discovery spells the live path as the glob does: a host
    /// folder reached through a link (`current` → `releases/42`, a log volume
    /// mounted by a link) would match no reader, and every write would wake
    /// every source. So the live path is also registered with its folder
    /// resolved, and with the file itself resolved (a live file that is a link
    /// to one in another watched folder). Resolved once per group, at
    /// discovery; a folder re-pointed later is found again by discovery.
    #[cfg(test)] // the sources go through `reads_in`, one memo per discovery
    pub(crate) fn reads(&self, wake: &Wake, live: &Path) {
        self.reads_in(wake, live, &mut RealPaths::default());
    }

    /// [`PokeBoard::reads`] for one of many groups found by one discovery,
    /// resolving through `real` (one per pass): a fleet's host folders share
    /// their parents, each looked at once rather than a `readlink` per
    /// component of every path, twice per group.
    pub(crate) fn reads_in(&self, wake: &Wake, live: &Path, real: &mut RealPaths) {
        let in_real_folder = match (live.parent(), live.file_name()) {
            (Some(dir), Some(name)) => real.canonical(dir).map(|d| d.join(name)),
            _ => None,
        };
        let real_file = real.canonical(live);
        if let Ok(mut r) = self.readers.lock() {
            r.insert(live.to_path_buf(), wake.index);
            for real in [in_real_folder, real_file].into_iter().flatten() {
                r.insert(real, wake.index);
            }
        }
    }
}

/// A job's [`PokeBoard`], shared by its watcher and its workers' sources.
pub type Poke = Arc<PokeBoard>;

/// One source's end of the [`PokeBoard`].
pub(crate) struct Wake {
    flags: Arc<Flags>,
    /// The end of the current coalescing period, if any.
    holding_until: Option<Instant>,
    /// This source's place on the board.
    index: usize,
}

/// What a source learns at an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct News {
    /// Evaluate the globs now.
    pub discover: bool,
    /// Come back within this long: a coalescing period ends then, and writes
    /// reported during it are read then.
    pub within: Option<Duration>,
}

impl Wake {
    /// Takes the news at an activation at `now` (whatever woke the source: it
    /// reads all its groups anyway).
    pub(crate) fn take(&mut self, now: Instant) -> News {
        let discover = self.flags.discover.swap(false, Ordering::SeqCst);
        let writes = &self.flags.writes;
        let within = match self.holding_until {
            Some(until) if now < until => Some(until - now),
            Some(_) => {
                // The period is over. Writes during it: read them (this
                // activation does) and hold again; none: let the next one wake.
                if writes
                    .compare_exchange(HOLDING, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    self.holding_until = None;
                    None
                } else {
                    writes.store(HOLDING, Ordering::SeqCst);
                    self.hold(now)
                }
            }
            // A write woke it (or came before whatever did): this activation
            // reads it; writes from now on wait for the end of the period.
            None if writes.load(Ordering::SeqCst) & WRITTEN != 0 => {
                writes.store(HOLDING, Ordering::SeqCst);
                self.hold(now)
            }
            None => None,
        };
        News { discover, within }
    }

    fn hold(&mut self, now: Instant) -> Option<Duration> {
        self.holding_until = Some(now + WRITE_COALESCE);
        Some(WRITE_COALESCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wake() -> Wake {
        Wake {
            flags: Arc::new(Flags::default()),
            holding_until: None,
            index: 0,
        }
    }

    /// Marks a write as `PokeBoard::written` does; true when it would activate.
    fn write(w: &Wake) -> bool {
        w.flags.writes.fetch_or(WRITTEN, Ordering::SeqCst) == 0
    }

    /// A stream of writes activates a source once per coalescing period, and
    /// every write is read by the activation at the end of the period it fell
    /// in: none waits for the poll.
    #[test]
    fn writes_wake_once_per_period_and_none_is_left_for_the_poll() {
        let mut w = wake();
        let t0 = Instant::now();
        assert_eq!(
            w.take(t0),
            News {
                discover: false,
                within: None
            },
            "nothing reported"
        );
        assert!(write(&w), "the first write activates");
        assert_eq!(w.take(t0).within, Some(WRITE_COALESCE));
        // 100 writes in the period: none activates.
        for _ in 0..100 {
            assert!(!write(&w));
        }
        // Woken for something else meanwhile: still holding, back by the end.
        let mid = t0 + WRITE_COALESCE / 2;
        assert_eq!(w.take(mid).within, Some(WRITE_COALESCE / 2));
        // The period ends: the writes are read and a new period starts.
        let end = t0 + WRITE_COALESCE;
        assert_eq!(w.take(end).within, Some(WRITE_COALESCE));
        // A quiet period: released, and the next write activates at once.
        let later = end + WRITE_COALESCE;
        assert_eq!(w.take(later).within, None);
        assert!(write(&w));
    }

    #[test]
    fn a_layout_change_asks_for_discovery_once() {
        let board = PokeBoard::default();
        let mut w = board.register(dummy_activator());
        board.written(Path::new("/logs/a.log"));
        let news = w.take(Instant::now());
        assert!(!news.discover, "a write is no reason to discover");
        board.poke();
        assert!(w.take(Instant::now()).discover);
        assert!(!w.take(Instant::now()).discover);
    }

    /// An activator whose worker is gone: `activate` fails, which the board
    /// ignores.
    fn dummy_activator() -> SyncActivator {
        timely::execute_directly(|worker| worker.sync_activator_for(vec![0]))
    }

    /// A write to a group's live file wakes the source reading it, not the
    /// others; a write to a file no group has as its live path (a rotated file
    /// still written through an old handle) wakes every source.
    #[test]
    fn a_write_wakes_only_the_reader_of_the_file() {
        let board = PokeBoard::default();
        let (mut a, mut b) = (
            board.register(dummy_activator()),
            board.register(dummy_activator()),
        );
        board.reads(&a, Path::new("/logs/web-1/access.log"));
        board.reads(&b, Path::new("/logs/web-2/access.log"));
        let now = Instant::now();
        board.written(Path::new("/logs/web-1/access.log"));
        assert!(a.take(now).within.is_some(), "its reader is woken");
        assert_eq!(b.take(now).within, None, "the other source is not");
        board.written(Path::new("/logs/web-1/access.log.1"));
        let later = now + WRITE_COALESCE;
        assert!(a.take(later).within.is_some());
        assert!(b.take(later).within.is_some());
    }
}

#[cfg(test)]
mod watcher_tests;
