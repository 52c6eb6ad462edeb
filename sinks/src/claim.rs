//! Taking a file as a jsonl sink's output, before a byte of it is written or cut:
//! - it must be a regular file on a real file system. A device (`/dev/null`), a
//!   FIFO, a socket or a kernel file (`/proc`, `/sys`) reports 0 bytes and would
//!   pass for an empty output; a sink writes, cuts back and syncs a file of its
//!   own. Checked before opening (so a device is not even opened) and again on the
//!   opened descriptor (what was opened is what counts);
//! - this process holds an exclusive lock on it (`flock`) for the sink's life. Two
//!   writers — two jobs, two runs with different state folders, a replay onto a
//!   live output, two sinks of one job — would overwrite each other's windows and
//!   cut each other back on restart. The kernel drops the lock with the process,
//!   even after `kill -9`;
//! - on resume, it must be the file the checkpoint names: the same (device,
//!   inode), or — restored from a backup, or its device renumbered (LVM, NFS) — the
//!   same committed bytes, by the checksum of their end ([`TailCheck`]).

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use tidemark_engine::checkpoint::{FileIdentity, SinkCommit, TailCheck};

use crate::roots::OutputRoots;
use crate::SinkError;

/// An output file taken: opened (created if asked), regular, and locked.
pub(crate) struct Taken {
    pub file: File,
    pub meta: Metadata,
}

/// Opens `path` as an output through `roots` and takes it (see the module doc).
pub(crate) fn take(path: &Path, create: bool, roots: &OutputRoots) -> Result<Taken, SinkError> {
    if let Ok(meta) = std::fs::metadata(path) {
        regular(path, &meta)?;
    }
    let file = roots.open(path, create)?;
    let meta = file.metadata().map_err(|e| io_err(path, e))?;
    regular(path, &meta)?;
    pseudo_fs(path, &file)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(SinkError::Busy {
                path: path.to_path_buf(),
            })
        }
        // A file system without locks (rare; some FUSE ones): the sink works
        // unprotected, and says so.
        Err(std::fs::TryLockError::Error(e))
            if matches!(e.raw_os_error(), Some(libc::ENOLCK | libc::EOPNOTSUPP)) =>
        {
            tracing::warn!(
                "{}: cannot lock the output file ({e}); nothing stops another process from writing it too",
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(path, e)),
    }
    Ok(Taken { file, meta })
}

fn regular(path: &Path, meta: &Metadata) -> Result<(), SinkError> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a folder"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(SinkError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

/// Kernel file systems' files look regular but are not data: writing one
/// changes a kernel setting, and its length says nothing.
fn pseudo_fs(path: &Path, file: &File) -> Result<(), SinkError> {
    match tidemark_sources::file::kernel_fs::of_file(file) {
        Some(what) => Err(SinkError::NotAFile {
            path: path.to_path_buf(),
            what,
        }),
        None => Ok(()),
    }
}

/// The last bytes before `len` in `file` (at most [`TailCheck::MAX_LEN`]).
pub(crate) fn read_tail(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let n = len.min(TailCheck::MAX_LEN as u64);
    let mut buf = vec![0; n as usize];
    file.read_exact_at(&mut buf, len - n)?;
    Ok(buf)
}

/// Whether the file taken is the output `commit` names: `Ok(tail)` with the bytes
/// before the committed length (the sink keeps them for its next commit; empty if
/// the file is shorter than the commit, which the caller reports as damaged), or
/// why not.
pub(crate) fn named(path: &Path, taken: &Taken, commit: &SinkCommit) -> Result<Vec<u8>, SinkError> {
    let len = taken.meta.len();
    let id = FileIdentity::of(&taken.meta);
    let committed = commit.committed_len;
    let tail = if len >= committed {
        read_tail(&taken.file, committed).map_err(|e| io_err(path, e))?
    } else {
        Vec::new()
    };
    // Whether the bytes before the committed length are the ones the job wrote
    // (`None`: not known, the checkpoint has no checksum or the file is short).
    let same_bytes = match commit.tail {
        Some(check) if len >= committed => Some(
            tail.len()
                .checked_sub(check.len as usize)
                .is_some_and(|from| TailCheck::of(&tail[from..]) == check),
        ),
        _ => None,
    };
    match commit.file {
        // Format 1: no identity to compare. The file at the path is taken as the
        // output (as that release did), but not silently.
        None => {
            if len >= committed {
                tracing::warn!(
                    "{}: the checkpoint was written by an older tidemark and does not say which file it wrote; taking the file at this path ({len} bytes) as the job's output{}",
                    path.display(),
                    if len > committed {
                        format!(" and cutting it back to the {committed} bytes the checkpoint committed")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(tail)
        }
        // Nothing committed and nothing there: nothing to lose.
        Some(_) if committed == 0 && len == 0 => Ok(tail),
        // The same inode with other bytes: the output was deleted and its inode
        // number reused for someone else's file (or it was edited).
        Some(named) if named == id && committed > 0 && same_bytes == Some(false) => {
            Err(SinkError::Rewritten {
                path: path.to_path_buf(),
                committed,
            })
        }
        Some(named) if named == id => Ok(tail),
        Some(named) if committed > 0 && same_bytes == Some(true) => {
            tracing::warn!(
                "{}: the output's (device, inode) changed since the checkpoint (({}, {}), now ({}, {})) but its committed bytes are the same: restored from a backup, or its device was renumbered; resuming it",
                path.display(),
                named.dev,
                named.ino,
                id.dev,
                id.ino
            );
            Ok(tail)
        }
        Some(named) => Err(SinkError::NotTheFile {
            path: path.to_path_buf(),
            named,
            found: id,
            len,
        }),
    }
}

pub(crate) fn io_err(path: &Path, e: io::Error) -> SinkError {
    SinkError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
