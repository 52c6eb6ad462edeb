//! Why a checkpoint could not be loaded, used or saved, and what the user can do
//! about each (the messages end with the choices).

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::{Change, Damage};

/// What the user can do about a lost or damaged checkpoint; appended to those errors.
const CHOICES: &str = "tidemark will not silently start over. Re-run with \
    `--reset-checkpoint=beginning` to re-read every file from the start (the output is \
    rewritten; as this checkpoint can no longer say which files are the job's \
    outputs, add --overwrite to let an existing output be replaced), or with \
    `--reset-checkpoint=end` to skip to the end of each file (lines not yet processed \
    are lost; the output is kept). In a cluster, stop the job (its checkpoint is \
    forgotten), move its output file away (a job submitted again never writes over a \
    file no checkpoint names) and submit it again";

/// What the user can do about a job whose semantics changed since its checkpoint.
const SEMANTICS_CHOICES: &str = "Resuming would lose the lines of the window open at the \
    checkpoint or change what the output means from there on. Go back to the previous \
    settings, or re-run with `--reset-checkpoint=beginning` to recompute every window with \
    the new ones (the output is rewritten), or with `--reset-checkpoint=end` to keep the \
    output and start at the end of each file (lines not yet processed are lost). In a \
    cluster, stop the job (its checkpoint is forgotten), move its output file away (a \
    job submitted again never writes over a file no checkpoint names) and submit it \
    again";

/// Why a checkpoint could not be loaded, used or saved. The messages end with what
/// the user can do; [`CheckpointError::needs_reset_choice`] says which ones only a
/// `--reset-checkpoint` choice gets past.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The state folder's filesystem failed.
    #[error("{action} {}: {source} (check the state folder's path, permissions and free space)", path.display())]
    Io {
        /// What was being done, e.g. "reading checkpoint" (starts the message).
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// The filesystem's error.
        source: io::Error,
    },
    /// The checkpoint file exists but cannot be decoded or fails its checks.
    #[error("checkpoint {} is unusable: {damage}. {CHOICES}.", path.display())]
    Damaged {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        damage: Damage,
    },
    /// The state folder was used before but its checkpoint is gone: starting over
    /// silently would duplicate the output.
    #[error(
        "state folder {} was used before ({} exists) but its checkpoint {} is missing \
         (deleted, or lost by the filesystem). {CHOICES}.",
        dir.display(), marker.display(), path.display()
    )]
    Missing {
        /// The state folder.
        dir: PathBuf,
        /// Its marker file ([`MARKER_FILE`](super::MARKER_FILE)), which proves it was used.
        marker: PathBuf,
        /// Where the checkpoint should be.
        path: PathBuf,
    },
    /// The checkpoint is another job's.
    #[error(
        "checkpoint {} belongs to job {found:?}, not {expected:?}: give each job its own \
         --state-dir",
        path.display()
    )]
    WrongJob {
        /// The checkpoint file.
        path: PathBuf,
        /// The job it names.
        found: String,
        /// The job being started.
        expected: String,
    },
    /// The job's settings that decide what a window holds changed since the
    /// checkpoint ([`Semantics`](super::Semantics)): resuming would mix two meanings in one output.
    #[error(
        "checkpoint {} was written by job {job:?} with other settings: {}. {SEMANTICS_CHOICES}.",
        path.display(),
        changes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
    )]
    SemanticsChanged {
        /// The checkpoint file.
        path: PathBuf,
        /// The job's name.
        job: String,
        /// Each setting that differs, old and new value.
        changes: Vec<Change>,
    },
    /// A checkpoint could not be turned into its file's bytes (not expected: the
    /// types all serialize; kept typed rather than panicking).
    #[error("cannot encode the checkpoint of job {job:?}: {source}")]
    Encode {
        /// The job's name.
        job: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
}

impl CheckpointError {
    /// Whether the save failed only for want of a file descriptor (EMFILE/ENFILE):
    /// worth trying again once other files are closed, not a reason to fail the job.
    pub(crate) fn is_out_of_fds(&self) -> bool {
        matches!(self, CheckpointError::Io { source, .. }
            if tidemark_sources::fds::is_out_of_fds(source))
    }

    /// Whether the user must choose `--reset-checkpoint=beginning|end` to go on.
    pub fn needs_reset_choice(&self) -> bool {
        matches!(
            self,
            CheckpointError::Damaged { .. }
                | CheckpointError::Missing { .. }
                | CheckpointError::SemanticsChanged { .. }
        )
    }
}
