//! Submitted jobs kept in the member's state folder (`DIR/submitted/NAME.toml`),
//! written atomically, so a restarted cluster installs them again and each resumes
//! from its checkpoint.

use std::io::Write;

use crate::checkpoint::create_temp_file;
use std::path::{Path, PathBuf};

pub(crate) struct JobStore {
    dir: PathBuf,
}

impl JobStore {
    pub fn open(state_dir: &Path) -> std::io::Result<JobStore> {
        let dir = state_dir.join("submitted");
        std::fs::create_dir_all(&dir)?;
        Ok(JobStore { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Keeps a job's TOML (temp file, fsync, rename, fsync the folder).
    pub fn save(&self, name: &str, toml: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{name}.toml.tmp"));
        let mut f = create_temp_file(&tmp)?;
        f.write_all(toml.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.path(name))?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::File::open(&self.dir)?.sync_all(),
        }
    }

    /// Every kept job, by name: (name, TOML, when it was submitted in ms since
    /// the epoch — the file's modification time).
    pub fn load(&self) -> std::io::Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let submitted = std::fs::metadata(&path)?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            out.push((name.to_string(), std::fs::read_to_string(&path)?, submitted));
        }
        out.sort();
        Ok(out)
    }
}

/// Which member a state folder belongs to (`DIR/member`): process 0's holds the
/// sinks' commit points and another member's only its read positions, so starting
/// a member on another's folder would resume from the wrong state.
pub fn claim_identity(
    state_dir: &Path,
    process: usize,
    processes: usize,
) -> Result<(), IdentityError> {
    let path = state_dir.join("member");
    let mine = format!("process {process} of {processes}\n");
    match std::fs::read_to_string(&path) {
        Ok(found) if found == mine => Ok(()),
        Ok(found) => Err(IdentityError::Another {
            dir: state_dir.to_path_buf(),
            found: found.trim().to_string(),
            process,
            processes,
            path,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(state_dir)?;
                let tmp = state_dir.join(".member.tmp");
                let mut f = create_temp_file(&tmp)?;
                f.write_all(mine.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(state_dir)?.sync_all()
            };
            write().map_err(|source| IdentityError::Io {
                action: "write",
                path,
                source,
            })
        }
        Err(source) => Err(IdentityError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Why a state folder cannot be this member's.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `found` is what its `member` file says, e.g. `process 1 of 2`.
    #[error(
        "the state folder {} belongs to {found} of a cluster, not to process {process} of {processes}. Give each member its own state folder and the same -p as before; to really change the cluster's shape, stop every job first, then delete {}",
        dir.display(),
        path.display()
    )]
    Another {
        /// The state folder.
        dir: PathBuf,
        /// The folder's owner as its `member` file says.
        found: String,
        /// This member's process index (`-p`).
        process: usize,
        /// This member's cluster size (number of processes).
        processes: usize,
        /// The `member` file.
        path: PathBuf,
    },
    /// The `member` file could not be read, or (for a new folder) written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The `member` file.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_folder_refuses_another_process_index() {
        let d = tempfile::tempdir().unwrap();
        claim_identity(d.path(), 1, 2).unwrap();
        claim_identity(d.path(), 1, 2).unwrap();
        let e = claim_identity(d.path(), 0, 2).unwrap_err().to_string();
        assert!(e.contains("belongs to process 1 of 2"), "{e}");
        assert!(claim_identity(d.path(), 1, 3).is_err());
    }

    #[test]
    fn a_planted_symlink_at_a_kept_jobs_temp_name_is_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let s = JobStore::open(d.path()).unwrap();
        let target = d.path().join("victim");
        std::fs::write(&target, "precious\n").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("submitted/.a.toml.tmp")).unwrap();
        s.save("a", "name = \"a\"").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        let kept = s.load().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, "name = \"a\"");
        // The member's identity file too.
        std::os::unix::fs::symlink(&target, d.path().join(".member.tmp")).unwrap();
        claim_identity(d.path(), 0, 1).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    }

    #[test]
    fn saved_jobs_load_back_and_removed_ones_do_not() {
        let d = tempfile::tempdir().unwrap();
        let s = JobStore::open(d.path()).unwrap();
        s.save("b", "name = \"b\"").unwrap();
        s.save("a", "name = \"a\"").unwrap();
        s.save("a", "name = \"a\" # v2").unwrap();
        let kept: Vec<(String, String)> = s
            .load()
            .unwrap()
            .into_iter()
            .map(|(n, t, _)| (n, t))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("a".to_string(), "name = \"a\" # v2".to_string()),
                ("b".to_string(), "name = \"b\"".to_string())
            ]
        );
        s.remove("b").unwrap();
        s.remove("missing").unwrap();
        assert_eq!(s.load().unwrap().len(), 1);
    }
}
