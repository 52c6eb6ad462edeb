//! A long-lived cluster member (`tidemark cluster`): jobs are installed into and
//! stopped in every worker while it runs, in one order that all workers of all
//! members agree on through timely's [`Sequencer`].
//!
//! - [`registry`]: what the control side sees — each job's state and self-metrics.
//! - [`store`]: the submitted jobs kept in the state folder, re-installed on restart.
//! - [`member`]: the worker loop that applies sequenced [`Command`]s.
//!
//! Each member validates a job's TOML itself, so `${NAME}` in paths expands from
//! its own environment, and reads the files on its own machine
//! ([`crate::setup::JobSetup`] splits them over its own workers). Process 0 writes
//! the sinks and the checkpoint. Exactly-once across a restart is what `run`
//! guarantees for one process; across several processes it needs a commit
//! protocol that is not built yet, so a checkpointing cluster has one process.
//!
//! [`Sequencer`]: timely::synchronization::Sequencer

pub mod member;
pub mod registry;
pub mod store;

use serde::{Deserialize, Serialize};

pub use member::{start, Cluster, ClusterOptions, MakeOutput, Validate};
pub use registry::{JobInfo, JobState, Registry};

/// What the control side asks every worker to do, in sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Install a job from its TOML (each member validates it with its own environment).
    Install { name: String, toml: String },
    /// Stop a job: its sources stop, windows already written stay; then it is dropped.
    Stop { name: String },
    /// Stop every job and end the member.
    Shutdown,
}
