//! The member's state folder, taken before anything is written in it.
//!
//! It holds the API token, the kept jobs and every job's checkpoint, so another
//! local user who can write in it (or owns it) can replace any of them: it is
//! created 0700 and refused when group or others may write it or another user
//! owns it. The lock is taken first, so that a second member started on the same
//! folder stops before it creates or rewrites anything (the token included).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file a member locks (`flock`) in its state folder while it runs.
pub(crate) const LOCK_FILE: &str = "lock";

/// This member's hold on its state folder; the kernel drops the lock with the
/// process, so a crash never leaves the folder locked.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// Why a member cannot use its state folder: checked before anything (the API token, kept
/// jobs, checkpoints) is written there. Each message names the folder and, where the user
/// can fix it, how.
#[derive(Debug, thiserror::Error)]
pub enum StateFolderError {
    #[error("cannot create the state folder {}: {source}\n  hint: create it first (`mkdir -m 700 DIR`), owned by this member's user", path.display())]
    /// The folder did not exist and could not be created.
    Create {
        /// The state folder.
        path: PathBuf,
        /// Why creating it failed.
        #[source]
        source: io::Error,
    },
    #[error("cannot use the state folder {}: {source}", path.display())]
    /// The folder's metadata could not be read.
    Inspect {
        /// The state folder.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: io::Error,
    },
    #[error("the state folder {} is not a folder", path.display())]
    /// The path exists but is a file (or another non-folder).
    NotAFolder {
        /// The state folder's path.
        path: PathBuf,
    },
    #[error("the state folder {} can be written by other users (mode {mode:04o}): they could replace the member's API token, kept jobs and checkpoints\n  hint: `chmod 700 {}`", path.display(), path.display())]
    /// Group or others may write the folder.
    WritableByOthers {
        /// The state folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    #[error("the state folder {} is owned by user id {owner}, not by this member's user (id {me}): its owner could replace the member's API token, kept jobs and checkpoints\n  hint: `chown {me} {}` (and `chmod 700`), or give the member a folder of its own", path.display(), path.display())]
    /// Another user owns the folder.
    OwnedByAnother {
        /// The state folder.
        path: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// This process's effective user id.
        me: u32,
    },
    #[error("another tidemark member is running with the state folder {}; stop it first, or give this member its own --state-dir", path.display())]
    /// Another running member holds the folder's lock.
    Locked {
        /// The state folder.
        path: PathBuf,
    },
    #[error("the output folder {} in the state folder is a symbolic link (to {}): sinks would write wherever it points\n  hint: delete the link (the member creates the folder), or give --output-root DIR", path.display(), target.display())]
    /// The default output folder inside it is a symbolic link.
    OutputLink {
        /// The output folder's path.
        path: PathBuf,
        /// Where the link points.
        target: PathBuf,
    },
    #[error("cannot create the output folder {}: {source}", path.display())]
    /// The default output folder inside it could not be created.
    Output {
        /// The output folder's path.
        path: PathBuf,
        /// Why creating it failed.
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {}: {source}", path.display())]
    /// The lock file could not be opened or locked (other than being held).
    Lock {
        /// The lock file's path.
        path: PathBuf,
        /// Why locking failed.
        #[source]
        source: io::Error,
    },
}

/// Creates the state folder `dir` (mode 0700) if it does not exist, checks that
/// only this process's user can write it, and locks it for this process.
pub fn lock_state_folder(dir: &Path) -> Result<StateLock, StateFolderError> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(source) => {
            return Err(StateFolderError::Create {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    // The folder itself may be a link (e.g. to a data disk): what counts is the
    // folder it leads to.
    let meta = std::fs::metadata(dir).map_err(|source| StateFolderError::Inspect {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(StateFolderError::NotAFolder {
            path: dir.to_path_buf(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(StateFolderError::OwnedByAnother {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateFolderError::WritableByOthers {
            path: dir.to_path_buf(),
            mode,
        });
    }
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|source| StateFolderError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateFolderError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StateFolderError::Lock { path, source }),
    }
}

/// Creates the default output root `dir` (inside the locked state folder) with
/// mode 0750 if it does not exist; refuses a symbolic link or anything else that
/// is not a folder there, which would send every sink's writes elsewhere.
pub fn create_output_folder(dir: &Path) -> Result<(), StateFolderError> {
    let output = |source| StateFolderError::Output {
        path: dir.to_path_buf(),
        source,
    };
    match DirBuilder::new().mode(0o750).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(output(e)),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(dir).map_err(output)?;
    if meta.file_type().is_symlink() {
        return Err(StateFolderError::OutputLink {
            path: dir.to_path_buf(),
            target: std::fs::read_link(dir).unwrap_or_default(),
        });
    }
    if !meta.is_dir() {
        return Err(output(io::Error::other("it exists and is not a folder")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_state_folder_is_private_and_locked_once() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("a/state");
        let lock = lock_state_folder(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let e = lock_state_folder(&state).unwrap_err();
        assert!(matches!(e, StateFolderError::Locked { .. }), "{e}");
        drop(lock);
        lock_state_folder(&state).unwrap();
    }

    #[test]
    fn a_folder_others_can_write_or_another_user_owns_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        std::fs::create_dir(&state).unwrap();
        for mode in [0o777, 0o770, 0o1777] {
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = lock_state_folder(&state).unwrap_err();
            assert!(
                matches!(e, StateFolderError::WritableByOthers { .. }),
                "{e}"
            );
            assert!(
                e.to_string().contains(&format!("{mode:04o}"))
                    && e.to_string().contains("chmod 700"),
                "{e}"
            );
        }
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(lock_state_folder(&state).unwrap());
        // Owned by another user (tests may run as root: hand it to `nobody`).
        let nobody = 65534;
        let me = rustix::process::geteuid().as_raw();
        let other = if me == nobody { 0 } else { nobody };
        if std::os::unix::fs::chown(&state, Some(other), None).is_ok() {
            let e = lock_state_folder(&state).unwrap_err();
            assert!(
                matches!(e, StateFolderError::OwnedByAnother { owner, .. } if owner == other),
                "{e}"
            );
            assert!(e.to_string().contains("chown"), "{e}");
        } else {
            eprintln!("cannot chown as user {me}: the owner check is not exercised");
        }
    }
}
