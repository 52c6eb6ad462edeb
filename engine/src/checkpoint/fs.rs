//! The few filesystem operations a checkpoint save needs, behind a trait.
//!
//! Production code uses [`RealFs`]. The trait exists so tests can make a save fail
//! exactly where real disks fail (a write that hits ENOSPC half-way, an fsync that
//! reports EIO, a rename that fails) and check the previous checkpoint survives.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A file being written, that can be made durable.
pub trait CheckpointFile: Write + Send {
    /// Makes everything written so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
}

/// Filesystem operations used by [`super::CheckpointStore`].
pub trait CheckpointFs: Send + Sync {
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn CheckpointFile>>;
    /// Atomically replaces `to` with `from` (both in the same folder).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the folder's entries (a rename, a removal) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file; `NotFound` is reported as an error like any other.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` exists (a broken symlink counts as missing).
    fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl CheckpointFile for File {
    fn sync(&mut self) -> io::Result<()> {
        // sync_all, not sync_data: the file is new, so its size and the inode itself
        // must reach the disk before the rename makes it the checkpoint.
        self.sync_all()
    }
}

impl CheckpointFs for RealFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn CheckpointFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(f))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // On Linux a directory opened read-only can be fsynced; this is what makes a
        // rename survive a power cut.
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}
