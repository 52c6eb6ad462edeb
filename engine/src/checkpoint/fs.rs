//! The few filesystem operations a checkpoint save needs, behind a trait.
//!
//! Production code uses [`RealFs`]. The trait exists so tests can make a save fail
//! exactly where real disks fail (a write that hits ENOSPC half-way, an fsync that
//! reports EIO, a rename that fails) and check the previous checkpoint survives.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A file being written, that can be made durable.
pub trait CheckpointFile: Write + Send {
    /// Makes everything written so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
}

/// Filesystem operations used by [`super::CheckpointStore`].
pub trait CheckpointFs: Send + Sync {
    /// Creates `path` anew for writing (a stale file there is replaced).
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
        Ok(Box::new(create_temp_file(path)?))
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

/// Creates a temporary file `path` (mode 0600) that is then renamed into place.
///
/// Opening with plain create/truncate writes through whatever is at the name: a
/// symlink planted there sends the write to any file this user can write. So it
/// is opened `O_EXCL | O_NOFOLLOW` (never an existing entry, never a link), after
/// a leftover of a crash is removed: a regular file of this user, or a link
/// (removing a link removes the link, not its target). Anything else there is an
/// error, not removed.
pub fn create_temp_file(path: &Path) -> io::Result<File> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let ours = meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw();
            if meta.file_type().is_symlink() || ours {
                std::fs::remove_file(path)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is in the way of a temporary file and was not made by this member's user; remove it",
                        path.display()
                    ),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_at_the_checkpoint_temp_name_is_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "precious\n").unwrap();
        let tmp = d.path().join("checkpoint.tmp");
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        let mut f = RealFs.create(&tmp).unwrap();
        f.write_all(b"checkpoint").unwrap();
        f.sync().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "checkpoint");
        assert!(!std::fs::symlink_metadata(&tmp)
            .unwrap()
            .file_type()
            .is_symlink());
        // A stale temp file of ours is replaced.
        let mut f = RealFs.create(&tmp).unwrap();
        f.write_all(b"again").unwrap();
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "again");
    }
}
