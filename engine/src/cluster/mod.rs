//! A long-lived cluster member (`tidemark cluster`): jobs are installed into and
//! stopped in every worker while it runs, in one order that all workers of all
//! members agree on through timely's [`Sequencer`].
//!
//! - `fd_budget`: the member's cap on open files, reserved job by job.
//! - `registry`: what the control side sees — each job's state and self-metrics.
//! - [`store`]: the submitted jobs kept in the state folder, re-installed on restart.
//! - [`state_folder`]: the state folder's ownership, mode and lock, checked first.
//! - [`member`]: the control side, and starting a member.
//! - `options`: what a member is started with.
//! - `peers`: the connections between members, this member's port bound first.
//! - `worker`: the worker loop; `apply`: how it applies each sequenced `Command`;
//!   `shared`: what a member's workers share, and this process's job setups.
//!
//! Each member validates a job's TOML itself, so `${NAME}` in paths expands from
//! its own environment, and reads the files on its own machine
//! (the crate-private `setup::JobSetup` splits them over its own workers). Rollups span
//! every member: the dataflow exchanges partials between processes.
//!
//! Exactly-once across processes: process 0 writes the sinks and the checkpoint
//! (sinks fsynced first, as in `run`), then sequences `Committed { F }`; each other
//! member then saves its own groups' read positions for `F`. So a member's saved
//! positions are always for a frontier at or below process 0's. On restart the
//! install carries process 0's frontier `F0`: members resume from their positions
//! (re-reading at most one checkpoint interval more) and every process drops
//! windows below `F0`, which are in the sinks already.
//!
//! [`Sequencer`]: timely::synchronization::Sequencer

mod apply;
pub(crate) mod fd_budget;
pub(crate) mod hello;
pub mod member;
mod options;
mod peer_error;
pub(crate) mod peers;
pub(crate) mod registry;
mod shared;
mod size;
pub mod state_folder;
pub mod store;
mod worker;

use serde::{Deserialize, Serialize};

use crate::stats::MemberStats;
use crate::time::EventMs;

pub use fd_budget::{FdBudget, OverCap};
pub use member::{start, Cluster};
pub use options::{ClusterOptions, MakeOutput, Validate};
pub use peers::{PeerError, Peers};
pub use registry::{JobInfo, JobState, Registry};
pub use size::{check_cluster_size, ClusterSizeError, MAX_CLUSTER_WORKERS};
pub use state_folder::{lock_state_folder, StateFolderError, StateLock};

/// What every worker of every member applies, in the one order the [`Sequencer`]
/// gives. A job's life: `Install` → one `Prepared` per member (all must succeed,
/// or it runs on none) → running, with `Committed` after each checkpoint →
/// `Finished` once its output is final → one `Released` per member once none of
/// its workers holds the job. Only then may the name be installed again.
///
/// [`Sequencer`]: timely::synchronization::Sequencer
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Install a job from its TOML (each member validates it with its own
    /// environment). `committed`: the frontier of process 0's checkpoint when the
    /// install was sequenced (`None`: none).
    Install {
        name: String,
        toml: String,
        committed: Option<EventMs>,
    },
    /// A member's vote on an install: its setup is ready, or why it cannot be.
    Prepared {
        name: String,
        process: usize,
        result: Result<(), String>,
    },
    /// Stop a job and forget it (its checkpoint too); windows already written stay.
    Stop { name: String },
    /// Stop a job's sources everywhere but keep its checkpoint (its sink failed).
    Halt { name: String },
    /// Sequenced by worker 0 once process 0 has stopped a job (Stop, Halt or
    /// Shutdown): now the other members stop its sources.
    StopSources { name: String },
    /// Process 0 checkpointed the job: windows below `frontier_ms` are durable.
    /// Each other member then records its read positions for that frontier.
    Committed { name: String, frontier_ms: EventMs },
    /// Process 0's output of the job is final (its dataflow is complete there).
    Finished { name: String },
    /// No worker of member `process` holds the job any more.
    Released { name: String, process: usize },
    /// A member's stats for the jobs it runs; also says it is alive.
    Report {
        process: usize,
        jobs: Vec<(String, MemberStats)>,
    },
    /// Stop every job (each checkpoints what is written); then `Exit`.
    Shutdown,
    /// Every job has been released after a shutdown: the workers end.
    Exit,
}
