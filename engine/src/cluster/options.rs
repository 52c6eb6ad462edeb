//! What a member is started with ([`super::start`]), shared by the control side
//! and the workers it hands the job hooks to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tidemark_jobs::Job;

use super::peers::Peers;
use super::state_folder::StateLock;
use crate::sink::Sinks;
use crate::start::{OutputOpenError, OutputStart};

/// Opens a job's sinks (process 0 only); the sinks' own error is kept.
pub type MakeOutput =
    Arc<dyn Fn(&Job, &OutputStart) -> Result<Sinks, OutputOpenError> + Send + Sync>;
/// Validates a job's TOML on this member (its own environment, its allowed roots).
pub type Validate = Arc<dyn Fn(&str) -> Result<Job, String> + Send + Sync>;

/// Everything [`super::start`] needs to start a member; the CLI builds it from `tidemark
/// cluster`'s flags.
pub struct ClusterOptions {
    /// The other members (`None`: a cluster of one process), this member's own
    /// address already bound.
    pub peers: Option<Peers>,
    /// This member's index (`-p`): 0 writes the sinks and checkpoints.
    pub process: usize,
    /// How many members the cluster has (`-n`).
    pub processes: usize,
    /// Worker threads per member (`-w`); every member runs the same number.
    pub workers: usize,
    /// Submitted jobs and their checkpoints are kept here.
    pub state_dir: PathBuf,
    /// How often process 0 checkpoints each job (sinks synced first).
    pub checkpoint_interval: Duration,
    /// Opens a job's sinks on process 0.
    pub make_output: MakeOutput,
    /// Validates a submitted job's TOML on this member.
    pub validate: Validate,
    /// Most jobs a submit may bring the member to (jobs kept in the state folder
    /// are installed again even past it).
    pub max_jobs: usize,
    /// `--max-open-files`: what all jobs together may keep open on this member;
    /// each reserves its `max_open_files` from it ([`super::FdBudget`]).
    pub max_open_files: usize,
    /// The member's lock on `state_dir` ([`super::lock_state_folder`]), taken
    /// before anything (the API token included) is written there.
    pub state_lock: StateLock,
}
