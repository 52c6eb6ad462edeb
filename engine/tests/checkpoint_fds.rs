//! A checkpoint save that finds no file descriptor left (EMFILE/ENFILE, most
//! likely because another job of the member holds them) is tried again later,
//! never a failure of the job whose checkpoint it is.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_engine::checkpoint::{CheckpointFile, CheckpointFs, CheckpointStore, RealFs};
use tidemark_engine::commit::Committer;
use tidemark_engine::resume::ResumeBoard;
use tidemark_engine::stats::{JobStats, SharedStats};
use tidemark_engine::Sinks;

/// Creating a file fails with EMFILE while `emfile_left` > 0 (one per try).
struct NoFds(Arc<AtomicU32>);

impl CheckpointFs for NoFds {
    fn create(&self, path: &Path) -> io::Result<Box<dyn CheckpointFile>> {
        let left = self.0.load(Ordering::SeqCst);
        if left > 0 {
            self.0.store(left - 1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc_emfile()));
        }
        RealFs.create(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        RealFs.exists(path)
    }
}

/// EMFILE on Linux (the engine crate does not depend on libc).
fn libc_emfile() -> i32 {
    24
}

fn committer(dir: &Path, emfile: Arc<AtomicU32>) -> (Committer, SharedStats) {
    let store = CheckpointStore::open_with_fs(dir, "a", Box::new(NoFds(emfile))).unwrap();
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let c = Committer::new(
        store,
        ResumeBoard::new(),
        "a",
        Duration::ZERO,
        0,
        stats.clone(),
    );
    (c, stats)
}

#[test]
fn a_checkpoint_write_out_of_file_descriptors_is_tried_again_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let emfile = Arc::new(AtomicU32::new(0));
    let (mut c, stats) = committer(tmp.path(), emfile.clone());
    let mut out = Sinks::default();
    c.offer(&mut out, 60_000, false).unwrap();
    assert_eq!(stats.lock().unwrap().checkpoints_written, 1);

    // A regular save finds no descriptor: deferred with a backoff, not an error.
    emfile.store(3, Ordering::SeqCst);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let wait = c
            .offer(&mut out, 120_000, false)
            .expect("EMFILE is not fatal");
        waits.push(wait.expect("a deferred save asks to be called again"));
    }
    assert!(waits.windows(2).all(|w| w[0] <= w[1]), "backoff: {waits:?}");
    assert!(
        *waits.last().unwrap() <= Duration::from_secs(2),
        "{waits:?}"
    );
    {
        let s = stats.lock().unwrap();
        assert_eq!(s.checkpoint_fd_waits, 3);
        assert_eq!(s.checkpoints_written, 1);
        assert!(s.summary().contains("no file descriptor left"));
    }
    // Descriptors are back: the next try writes the new frontier.
    assert_eq!(c.offer(&mut out, 120_000, false).unwrap(), None);
    assert_eq!(stats.lock().unwrap().checkpoints_written, 2);
    let store = CheckpointStore::open(tmp.path(), "a").unwrap();
    assert_eq!(store.load().unwrap().unwrap().frontier_ms, 120_000);

    // The final save (end of input, stop) waits it out in place.
    emfile.store(2, Ordering::SeqCst);
    assert_eq!(c.offer(&mut out, 180_000, true).unwrap(), None);
    assert_eq!(stats.lock().unwrap().checkpoint_fd_waits, 5);
    assert_eq!(store.load().unwrap().unwrap().frontier_ms, 180_000);
}

#[test]
fn a_checkpoint_write_failing_otherwise_still_fails_the_job() {
    struct Eio;
    impl CheckpointFs for Eio {
        fn create(&self, _: &Path) -> io::Result<Box<dyn CheckpointFile>> {
            Err(io::Error::from_raw_os_error(5))
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            RealFs.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            RealFs.sync_dir(dir)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            RealFs.remove_file(path)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            RealFs.read(path)
        }
        fn exists(&self, path: &Path) -> io::Result<bool> {
            RealFs.exists(path)
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = CheckpointStore::open_with_fs(tmp.path(), "a", Box::new(Eio)).unwrap();
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let mut c = Committer::new(store, ResumeBoard::new(), "a", Duration::ZERO, 0, stats);
    assert!(c.offer(&mut Sinks::default(), 60_000, false).is_err());
}
