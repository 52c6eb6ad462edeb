//! The agent's checkpoint: per file group, its sequence epoch, its partition, the
//! last line the broker acknowledged and the read position just after it.
//!
//! Written as one JSON file, atomically (a temporary file written and fsynced, renamed
//! over the old one, then the folder fsynced), so a `kill -9` or a power cut at any
//! instruction leaves either the old checkpoint or the new one. A checkpoint never
//! names a line the broker has not acknowledged ([`crate::group`]): after a restart
//! the lines after it are sent again with the same sequence numbers, and a consumer
//! drops those it already has — or, if the files no longer continue there, under a
//! new epoch ([`crate::group`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tidemark_sources::tail::Position;

/// The checkpoint's file name in the state folder.
pub const FILE: &str = "agent-checkpoint.json";
const LOCK: &str = "agent.lock";
const FORMAT: u32 = 1;

/// What the checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub format: u32,
    /// The host and topic the sequences belong to.
    pub host: String,
    /// See `host`.
    pub topic: String,
    /// Per group (its live path).
    pub groups: BTreeMap<PathBuf, GroupCheckpoint>,
}

/// One group's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCheckpoint {
    /// The sequence's epoch.
    pub epoch: u64,
    /// The partition the group's records go to (fixed for the epoch, so a topic
    /// given more partitions does not split a group over two).
    pub partition: i32,
    /// The last line acknowledged (0: none).
    pub seq: u64,
    /// Where the line after it starts (`None`: the group's oldest file, from 0).
    pub position: Option<Position>,
    /// The numbering settings the epoch's lines were numbered under
    /// ([`crate::validate::numbering`]); `None` in a checkpoint written before
    /// they were kept (taken as unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbering: Option<u64>,
}

/// The checkpoint cannot be read or written.
#[derive(Debug, Error)]
pub enum StateError {
    /// An I/O error on a file of the state folder.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another agent holds the state folder.
    #[error(
        "{0}: another tidemark agent uses this state folder. hint: give each agent its own \
         state_dir"
    )]
    Locked(PathBuf),
    /// The checkpoint is not one this agent wrote.
    #[error("{path}: not a tidemark agent checkpoint ({why}). hint: move it away to start over (every line is then sent again under a new epoch)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The checkpoint is for another host or topic.
    #[error(
        "{path}: the checkpoint is for host {had_host:?}, topic {had_topic:?}, not host \
         {host:?}, topic {topic:?}. hint: restore the agent file's host and topic, or give \
         this configuration its own state_dir"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The checkpoint's host.
        had_host: String,
        /// The checkpoint's topic.
        had_topic: String,
        /// The configured host.
        host: String,
        /// The configured topic.
        topic: String,
    },
}

/// The state folder, locked for this process (released when dropped).
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Creates the folder if needed and locks it against a second agent.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| StateError::Locked(dir.to_path_buf()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The checkpoint, or an empty one for `host` and `topic` if there is none yet.
    pub fn load(&self, host: &str, topic: &str) -> Result<Checkpoint, StateError> {
        let path = self.dir.join(FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Checkpoint {
                    format: FORMAT,
                    host: host.to_string(),
                    topic: topic.to_string(),
                    groups: BTreeMap::new(),
                })
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let cp: Checkpoint = serde_json::from_slice(&text).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if cp.format != FORMAT {
            return Err(StateError::Corrupt {
                path,
                why: format!("format {} (this agent writes {FORMAT})", cp.format),
            });
        }
        if cp.host != host || cp.topic != topic {
            return Err(StateError::Mismatch {
                path,
                had_host: cp.host,
                had_topic: cp.topic,
                host: host.to_string(),
                topic: topic.to_string(),
            });
        }
        Ok(cp)
    }

    /// Replaces the checkpoint atomically and durably.
    pub fn save(&self, cp: &Checkpoint) -> Result<(), StateError> {
        let path = self.dir.join(FILE);
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        let body = serde_json::to_vec(cp).map_err(|e| StateError::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_and_refuses_another_host_or_a_second_agent() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let mut cp = state.load("h", "t").unwrap();
        assert!(cp.groups.is_empty());
        cp.groups.insert(
            PathBuf::from("/l/a.log"),
            GroupCheckpoint {
                epoch: 7,
                partition: 2,
                seq: 41,
                position: None,
                numbering: Some(3),
            },
        );
        state.save(&cp).unwrap();
        assert_eq!(state.load("h", "t").unwrap(), cp);
        assert!(matches!(
            state.load("other", "t"),
            Err(StateError::Mismatch { .. })
        ));
        assert!(matches!(
            StateDir::open(dir.path()),
            Err(StateError::Locked(_))
        ));
        drop(state);
        assert!(StateDir::open(dir.path()).is_ok());
    }
}
