//! How a job starts: where its groups begin reading ([`ResumePlan`], [`StartAt`])
//! and how its sinks open ([`OutputStart`], [`OutputFactory`]) — decided from the
//! state folder before any worker runs, and read by the workers and the sinks.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::checkpoint::SinkCommit;
use crate::resume::Resume;
use crate::sink::{Sink, Sinks};
use crate::time::EventMs;

/// Where groups start when there is no resume point for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartAt {
    /// At the beginning of each group: a first run, or
    /// `--reset-checkpoint=beginning`.
    #[default]
    Beginning,
    /// At the end of each live file (`--reset-checkpoint=end`).
    End,
}

/// What a restart resumes from: per group (by live path) its resume point, and the
/// committed frontier below which windows are already in the sinks.
#[derive(Debug, Clone)]
pub struct ResumePlan {
    /// Each group's resume point from the checkpoint, by live path.
    pub groups: HashMap<PathBuf, Resume>,
    /// The checkpoint's frontier: windows starting below it are already in the
    /// sinks and are not emitted again (`EventMs::MIN` when nothing is committed).
    pub skip_below: EventMs,
    /// Where a group without a resume point (new since the checkpoint, or every
    /// group without one) starts.
    pub start_at: StartAt,
    /// Whether checkpoints are written: only then do groups track resume marks.
    pub checkpointing: bool,
    /// Windows below `skip_below` that lost series to `max_series`.
    pub limited_windows: u64,
    /// The alert evaluator's state in the checkpoint resumed from.
    pub alerts: Option<crate::alerts::AlertsCheckpoint>,
    /// A kafka source's offsets and streams in the checkpoint resumed from.
    pub kafka: Option<crate::kafka_source::resume::KafkaCheckpoint>,
}

impl Default for ResumePlan {
    fn default() -> Self {
        ResumePlan {
            groups: HashMap::new(),
            skip_below: EventMs::MIN,
            start_at: StartAt::Beginning,
            checkpointing: false,
            limited_windows: 0,
            alerts: None,
            kafka: None,
        }
    }
}

/// How the sinks start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputStart {
    /// No previous state: create the outputs. A non-empty file already at a sink
    /// path is not this job's output (no checkpoint names it): it is refused unless
    /// the user asked to overwrite it.
    Fresh,
    /// `--reset-checkpoint=beginning`: the user chose to rewrite the outputs. A
    /// file the old checkpoint names (`named`, by identity) is replaced; anything
    /// else at a sink path is treated as under `Fresh`.
    Rewrite {
        /// The old checkpoint's sinks (empty when it could not be read).
        named: Vec<SinkCommit>,
    },
    /// Cut each file sink back to its committed length and append from there; only
    /// a file the checkpoint names by identity is ever cut. A sink the checkpoint
    /// does not name starts as under `Fresh`, from `frontier_ms` on (windows
    /// before it are in the other sinks already and are not written again).
    Resume {
        /// The checkpoint's frontier.
        frontier_ms: EventMs,
        /// Each sink's committed length and identity, from the checkpoint.
        sinks: Vec<SinkCommit>,
    },
    /// Keep what is there and append (after `--reset-checkpoint=end`).
    Append,
}

/// Why the outputs could not be opened: the sinks' own error, kept for the caller
/// (`tidemark run` tells a file to move from a failure by its type).
pub type OutputOpenError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the job's outputs for a start mode (the binary opens its sinks here).
pub type OutputFactory = Box<dyn FnOnce(&OutputStart) -> Result<Sinks, OutputOpenError> + Send>;

/// An output that ignores the start mode (tests, in-memory outputs).
pub fn fixed_output(out: Box<dyn Sink>) -> OutputFactory {
    Box::new(move |_| Ok(Sinks::new(vec![out])))
}
