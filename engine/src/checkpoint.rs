//! Durable job state: what a restarted job needs to produce exactly the output an
//! uninterrupted run would have.
//!
//! Following the recovery model (docs/design.md, *4. Recovery model and checkpoints*),
//! window state is never snapshotted: a checkpoint records, for each file group, where
//! to resume reading (the first line of a window not yet closed) and, for each sink,
//! how many bytes of output are committed. On restart sinks roll back to their
//! committed length and open windows are recomputed from the files.
//!
//! A state folder holds:
//! - `checkpoint`: the latest checkpoint (format in [`mod@format`]);
//! - `checkpoint.tmp`: a save in progress (removed on failure, ignored on load);
//! - `tidemark-state`: a marker written with the first checkpoint. It is what lets
//!   [`CheckpointStore::load`] tell a first run (start from the beginning) from a
//!   state folder whose checkpoint was lost (an error: starting over silently
//!   would re-ingest everything and duplicate the output).
//!
//! Each checkpoint also records what its windows mean ([`Semantics`]: window size,
//! metrics, rules, parsing…) and, for each file sink, which file it wrote
//! ((device, inode), and a checksum of the last committed bytes, [`TailCheck`]). A
//! store made with [`CheckpointStore::for_job`] refuses to resume a job whose
//! semantics differ, and the sinks refuse to cut back a file that is not the one
//! the checkpoint names.

pub mod format;
pub mod fs;
pub mod semantics;

use std::fmt;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tidemark_sources::tail::Position;

mod error;
pub use error::CheckpointError;
pub use format::Damage;
pub use fs::{create_temp_file, CheckpointFile, CheckpointFs, RealFs};
pub use semantics::{Change, Semantics};

/// The latest checkpoint's file name inside a job's state folder.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// A save in progress: written whole, synced, then renamed over [`CHECKPOINT_FILE`];
/// removed when the save fails and ignored on load.
pub const TEMP_FILE: &str = "checkpoint.tmp";
/// The marker written with a state folder's first checkpoint: its presence without
/// a [`CHECKPOINT_FILE`] means the checkpoint was lost, not that this is a first run.
pub const MARKER_FILE: &str = "tidemark-state";
const MARKER_TEMP_FILE: &str = "tidemark-state.tmp";

/// One saved state of a job: enough to restart it and produce the output an
/// uninterrupted run would have. Written by the committer once every sink has
/// synced the windows below `frontier_ms`; read by [`CheckpointStore::load`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The job's name: a checkpoint of another job is refused
    /// ([`CheckpointError::WrongJob`]), so two jobs cannot share a state folder.
    pub job: String,
    /// All windows with start < frontier_ms are durably in every sink (event time,
    /// ms since the Unix epoch).
    pub frontier_ms: i64,
    /// The committed output of each sink that has a commit point (the file sinks),
    /// in the job file's sink order.
    pub sinks: Vec<SinkCommit>,
    /// Each file group's resume point, sorted by live path.
    pub groups: Vec<GroupCheckpoint>,
    /// When it was written (wall clock, ms since the Unix epoch): for people and
    /// tools reading the checkpoint; never used to decide where to resume.
    pub written_unix_ms: i64,
    /// What the windows mean: the job's settings that decide what a window holds.
    /// `None` only in checkpoints written before fingerprints existed (format 1).
    #[serde(default)]
    pub semantics: Option<Semantics>,
    /// Groups without a resume point here start at the end of their files, not at
    /// their beginning: set in the checkpoint a run writes as it starts after
    /// `--reset-checkpoint=end` (and as a restart of it starts), until a regular
    /// checkpoint records every group's position.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_at_end: bool,
    /// Windows below `frontier_ms` that lost series to `max_series`: a finite run
    /// resumed after them must still say its output is incomplete (exit 3).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limited_windows: u64,
    /// The alert evaluator's state after exactly the windows below `frontier_ms`
    /// (`[[alert]]`): absent for a job without alerts, and in checkpoints
    /// written before alerts existed (a resume then starts them fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::AlertsCheckpoint>,
    /// A `kind = "kafka"` job's read offsets and streams' resume points (absent
    /// for a file job, whose checkpoints are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<crate::kafka_source::resume::KafkaCheckpoint>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How much of one sink's output is committed: on restart the sink is truncated
/// back to `committed_len` bytes, dropping output of windows the checkpoint does
/// not cover (they are recomputed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SinkCommit {
    /// The sink's file path.
    pub path: PathBuf,
    /// Bytes of the file covered by the checkpoint: every window below the
    /// frontier, and nothing of a later one.
    pub committed_len: u64,
    /// The file the sink wrote: only this file is ever cut back. `None` in
    /// checkpoints written before identities were recorded (format 1).
    #[serde(default)]
    pub file: Option<FileIdentity>,
    /// A checksum of the committed bytes' end: the output restored from a backup,
    /// or on a device whose number changed, is still known as the job's own.
    /// `None` in checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<TailCheck>,
}

/// The CRC-32 of the last `len` bytes before a sink's committed length (at most
/// [`TailCheck::MAX_LEN`]): the file's own bytes, wherever the file now lives.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailCheck {
    /// How many bytes were checked: fewer than [`TailCheck::MAX_LEN`] only when
    /// the committed length itself is shorter.
    pub len: u32,
    /// The CRC-32 (IEEE) of those bytes.
    pub crc32: u32,
}

impl TailCheck {
    /// How many bytes before the committed length are checked.
    pub const MAX_LEN: u32 = 4096;

    /// The check of `bytes`, the last ones before the committed length.
    pub fn of(bytes: &[u8]) -> TailCheck {
        TailCheck {
            len: bytes.len() as u32,
            crc32: crc32fast::hash(bytes),
        }
    }
}

/// A file's identity on its filesystem: the same file under any path (and not
/// another file put at the same path).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// The device number (`st_dev`).
    pub dev: u64,
    /// The inode number (`st_ino`).
    pub ino: u64,
}

impl FileIdentity {
    /// The identity of the file whose metadata `meta` is.
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where one file group resumes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GroupCheckpoint {
    /// The group's live path (its key: groups are matched to discovery by it).
    pub live: PathBuf,
    /// The safe offset: the first line of a window not yet closed. `None` = nothing
    /// read yet (start at the beginning of the group).
    pub resume: Option<Position>,
    /// Max event time seen before `resume`, so the watermark restarts where it was.
    pub max_seen_ms: Option<i64>,
    /// How far idleness or discovery had raised the watermark at `resume`: lines
    /// below it were dropped as late and must be again after a restart.
    #[serde(default)]
    pub floor_ms: Option<i64>,
    /// A line that had jumped more than `max_jump` ahead at `resume` and was
    /// waiting for the next line to confirm it (see `crate::watermark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect_ms: Option<i64>,
    /// `resume` is where reading had got to, with no window open (see
    /// `crate::resume::Resume::at_tail`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_tail: bool,
    /// Lines that jumped ahead, kept whole rather than holding `resume` back
    /// (see `crate::resume::KeptLine`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<crate::resume::KeptLine>,
}

/// The `--reset-checkpoint` choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetChoice {
    /// Re-read every file from its start, rewriting the output.
    Beginning,
    /// Skip to the end of each file; what was not yet processed is lost.
    End,
}

/// A `--reset-checkpoint` value that is neither choice (the text given).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("--reset-checkpoint must be `beginning` or `end`, not {0:?}")]
pub struct BadResetChoice(pub String);

impl FromStr for ResetChoice {
    type Err = BadResetChoice;
    fn from_str(s: &str) -> Result<ResetChoice, BadResetChoice> {
        match s {
            "beginning" => Ok(ResetChoice::Beginning),
            "end" => Ok(ResetChoice::End),
            other => Err(BadResetChoice(other.to_string())),
        }
    }
}

impl fmt::Display for ResetChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResetChoice::Beginning => "beginning",
            ResetChoice::End => "end",
        })
    }
}

/// A job's checkpoint in its state folder.
pub struct CheckpointStore {
    dir: PathBuf,
    job: String,
    path: PathBuf,
    temp: PathBuf,
    marker: PathBuf,
    fs: Box<dyn CheckpointFs>,
    /// The marker is known to exist, so saves need not write it again.
    marked: bool,
    /// The job's semantics: stamped on every save, and a loaded checkpoint with
    /// other semantics is refused. `None`: not checked (a store opened by name).
    semantics: Option<Semantics>,
}

impl fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("job", &self.job)
            .field("path", &self.path)
            .field("marked", &self.marked)
            .finish_non_exhaustive()
    }
}

impl CheckpointStore {
    /// `dir` = the job's state folder (created if missing).
    pub fn open(dir: &Path, job: &str) -> Result<CheckpointStore, CheckpointError> {
        CheckpointStore::open_with_fs(dir, job, Box::new(RealFs))
    }

    /// The store of `job`: like [`CheckpointStore::open`], and every checkpoint it
    /// saves records the job's [`Semantics`]; [`CheckpointStore::load`] refuses one
    /// written with other semantics. `tidemark run` and every cluster member load
    /// checkpoints through this.
    pub fn for_job(
        dir: &Path,
        job: &tidemark_jobs::Job,
    ) -> Result<CheckpointStore, CheckpointError> {
        let mut store = CheckpointStore::open(dir, &job.name)?;
        store.semantics = Some(Semantics::of(job));
        Ok(store)
    }

    /// The semantics this store checks and stamps, if any.
    pub fn semantics(&self) -> Option<&Semantics> {
        self.semantics.as_ref()
    }

    /// Like [`CheckpointStore::open`], with the filesystem operations of saves and
    /// loads going through `fs` (tests inject failures this way).
    pub fn open_with_fs(
        dir: &Path,
        job: &str,
        fs: Box<dyn CheckpointFs>,
    ) -> Result<CheckpointStore, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
            action: "creating state folder",
            path: dir.to_path_buf(),
            source,
        })?;
        let store = CheckpointStore {
            dir: dir.to_path_buf(),
            job: job.to_string(),
            path: dir.join(CHECKPOINT_FILE),
            temp: dir.join(TEMP_FILE),
            marker: dir.join(MARKER_FILE),
            fs,
            marked: false,
            semantics: None,
        };
        // A temp file left by a crash mid-save is never a valid checkpoint (the
        // rename did not happen); removing it keeps the folder tidy.
        for leftover in [&store.temp, &dir.join(MARKER_TEMP_FILE)] {
            store.remove_if_present(leftover, "removing leftover temp file")?;
        }
        let marked = store.marker_exists()?;
        Ok(CheckpointStore { marked, ..store })
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ok(None) = first run (no state yet). A used state folder without a
    /// checkpoint, or a damaged checkpoint, is an error that names the file, what is
    /// wrong, and the `--reset-checkpoint` choices: never a silent start-over.
    /// So is, for a store made with [`CheckpointStore::for_job`], a checkpoint whose
    /// semantics differ from the job's (naming each setting that changed). One
    /// without semantics (written before they were recorded) loads: the caller
    /// warns, and the run's first save (as it starts) records them.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let bytes = match self.fs.read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return if self.marker_exists()? {
                    Err(CheckpointError::Missing {
                        dir: self.dir.clone(),
                        marker: self.marker.clone(),
                        path: self.path.clone(),
                    })
                } else {
                    Ok(None)
                };
            }
            Err(source) => {
                return Err(CheckpointError::Io {
                    action: "reading checkpoint",
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let cp = format::decode(&bytes).map_err(|damage| CheckpointError::Damaged {
            path: self.path.clone(),
            damage,
        })?;
        if cp.job != self.job {
            return Err(CheckpointError::WrongJob {
                path: self.path.clone(),
                found: cp.job,
                expected: self.job.clone(),
            });
        }
        if let (Some(old), Some(now)) = (&cp.semantics, &self.semantics) {
            let changes = old.changes(now);
            if !changes.is_empty() {
                return Err(CheckpointError::SemanticsChanged {
                    path: self.path.clone(),
                    job: cp.job,
                    changes,
                });
            }
        }
        Ok(Some(cp))
    }

    /// The outputs the checkpoint names, whatever its semantics: what
    /// `--reset-checkpoint=beginning` may replace. Empty when there is no
    /// checkpoint, it cannot be decoded, or it belongs to another job.
    pub fn named_outputs(&self) -> Vec<SinkCommit> {
        match self.fs.read(&self.path).ok().map(|b| format::decode(&b)) {
            Some(Ok(cp)) if cp.job == self.job => cp.sinks,
            _ => Vec::new(),
        }
    }

    /// Atomically replaces the checkpoint: temp file in the same folder, fsync,
    /// rename over the checkpoint, fsync the folder. On any error the previous
    /// checkpoint stays intact and readable and the temp file is removed.
    pub fn save(&mut self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        if cp.job != self.job {
            return Err(CheckpointError::WrongJob {
                path: self.path.clone(),
                found: cp.job.clone(),
                expected: self.job.clone(),
            });
        }
        let stamped;
        let cp = match &self.semantics {
            Some(s) if cp.semantics.as_ref() != Some(s) => {
                stamped = Checkpoint {
                    semantics: Some(s.clone()),
                    ..cp.clone()
                };
                &stamped
            }
            _ => cp,
        };
        let bytes = format::encode(cp).map_err(|source| CheckpointError::Encode {
            job: self.job.clone(),
            source,
        })?;
        self.replace(&self.temp, &self.path, &bytes)?;
        // The marker goes in *after* the first checkpoint: a crash in between leaves
        // a checkpoint without a marker, which loads fine. The other order could
        // leave a marker without a checkpoint, a false "checkpoint missing" error
        // after a crash during the very first save.
        if !self.marked {
            let text = format!(
                "tidemark state folder of job {:?}. Its checkpoint is `{CHECKPOINT_FILE}`. \
                 Do not delete one without the other: use --reset-checkpoint.\n",
                self.job
            );
            self.replace(
                &self.dir.join(MARKER_TEMP_FILE),
                &self.marker,
                text.as_bytes(),
            )?;
            self.marked = true;
        }
        Ok(())
    }

    /// Removes the checkpoint and the marker (for `--reset-checkpoint`): the next
    /// [`CheckpointStore::load`] reports a first run.
    pub fn reset(&mut self) -> Result<(), CheckpointError> {
        // Checkpoint first: if we crash in between, the marker without a checkpoint
        // makes the next start ask again rather than resume from the old state.
        self.remove_if_present(&self.path, "removing checkpoint")?;
        self.remove_if_present(&self.temp, "removing temp file")?;
        self.remove_if_present(&self.marker, "removing state marker")?;
        self.marked = false;
        self.sync_dir()
    }

    /// Writes `bytes` to `temp`, makes it durable and renames it over `target`.
    fn replace(&self, temp: &Path, target: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
        let written = (|| {
            let mut f = self.fs.create(temp)?;
            f.write_all(bytes)?;
            f.sync()?;
            drop(f);
            self.fs.rename(temp, target)
        })();
        if let Err(source) = written {
            // Best effort: the error that matters is the write's. A temp file that
            // cannot be removed now is removed by the next open.
            let _ = self.fs.remove_file(temp);
            return Err(CheckpointError::Io {
                action: "writing checkpoint (the previous checkpoint is kept)",
                path: temp.to_path_buf(),
                source,
            });
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), CheckpointError> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|source| CheckpointError::Io {
                action: "syncing state folder",
                path: self.dir.clone(),
                source,
            })
    }

    fn marker_exists(&self) -> Result<bool, CheckpointError> {
        self.fs
            .exists(&self.marker)
            .map_err(|source| CheckpointError::Io {
                action: "checking state marker",
                path: self.marker.clone(),
                source,
            })
    }

    fn remove_if_present(&self, path: &Path, action: &'static str) -> Result<(), CheckpointError> {
        match self.fs.remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CheckpointError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}
