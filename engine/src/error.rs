//! Why a job could not start or run: each cause a variant of its own, with the
//! error that caused it kept as its source, so the binary can tell a checkpoint
//! that needs the user's choice from a held lock or a failed disk, and pick the
//! exit code and hint for each.

use std::path::PathBuf;

use thiserror::Error;
use tidemark_sources::file::discover::DiscoverError;
use tidemark_sources::parse::BuildError;

use crate::checkpoint::CheckpointError;
use crate::cluster::peers::PeerError;
use crate::cluster::store::IdentityError;
use crate::commit::CommitError;
use crate::output_guard::SinkPathError;
use crate::replay::failure::ReplayFailure;
use crate::start::OutputOpenError;
use crate::time::{format_ms, EventMs};

/// An error from a component whose own error type the engine does not name (a
/// sink behind `WindowOutput`): kept whole as a source.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot build the line parser")]
    Parser(#[source] BuildError),
    /// The include, exclude or archive globs cannot be searched.
    #[error("cannot look for the job's files")]
    Discover(#[source] DiscoverError),
    /// A file a replay must read (to plan its range) cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A sink failed while the job ran (the sinks' own error).
    #[error("output failed")]
    Output(#[source] BoxedError),
    /// A replay's source stopped reading. Its message already ends with its
    /// cause's, so it is shown whole rather than chained as a source (which
    /// would print the cause twice); the typed failure is kept here.
    #[error("the replay stopped: {0}")]
    Replay(ReplayFailure),
    /// A jsonl sink path is an input, the job file or state: refused before any
    /// sink is opened.
    #[error("a jsonl sink path is refused")]
    SinkPath(#[source] SinkPathError),
    /// The sinks could not be opened; the source is the sinks' own error (for
    /// `tidemark run`, a `tidemark_sinks::SinkError`).
    #[error("cannot open the job's sinks")]
    OpenOutput(#[source] OutputOpenError),
    #[error("cannot start the job's checkpoints")]
    StartCheckpoint(#[source] CommitError),
    /// The checkpoint cannot be read or used: damaged, missing, of another job, of
    /// other settings ([`CheckpointError::needs_reset_choice`] says whether the
    /// user must choose `--reset-checkpoint`), or the disk failed.
    #[error(transparent)]
    Checkpoint(CheckpointError),
    /// The job's state folder is locked by another process, or cannot be locked.
    #[error(transparent)]
    StateLock(StateLockError),
    /// A cluster member's state folder belongs to another member.
    #[error(transparent)]
    Identity(IdentityError),
    /// A cluster's kept jobs cannot be opened or read.
    #[error("cannot {action} {}", path.display())]
    JobStore {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cluster job's checkpoint moved between the control side reading it and
    /// the install: submitting again reads it afresh.
    #[error(
        "job {job:?}: its checkpoint changed while it was being installed (frontier {} instead of {}); submit it again",
        frontier(*found),
        frontier(*expected)
    )]
    CheckpointMoved {
        job: String,
        found: Option<EventMs>,
        expected: Option<EventMs>,
    },
    /// A cluster member cannot connect to the others.
    #[error("cannot connect to the other cluster members")]
    Peers(#[source] PeerError),
    /// The worker threads could not be started.
    #[error("cannot start the workers")]
    SpawnWorkers(#[source] std::io::Error),
    /// timely refused to start or a worker thread panicked: timely reports both
    /// only as text.
    #[error("{}: {message}", match worker {
        Some(w) => format!("worker {w} failed"),
        None => "cannot start the workers".to_string(),
    })]
    Timely {
        worker: Option<usize>,
        message: String,
    },
}

fn frontier(f: Option<EventMs>) -> String {
    f.map_or("none".into(), format_ms)
}

/// Why the job's state folder could not be locked.
#[derive(Debug, Error)]
pub enum StateLockError {
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock: two runs sharing one folder would
    /// overwrite each other's checkpoints and sinks.
    #[error(
        "another tidemark process is running job {job:?} with this state folder ({}); stop it first, or give this run its own --state-dir",
        dir.display()
    )]
    Held { job: String, dir: PathBuf },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes, joined as `anyhow`'s `{:#}` prints them: for errors
/// that travel as text (a cluster job's status).
pub fn full_message(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_failure_names_the_worker_and_keeps_timelys_text() {
        let e = EngineError::Timely {
            worker: Some(3),
            message: "panicked".into(),
        };
        assert_eq!(e.to_string(), "worker 3 failed: panicked");
    }

    #[test]
    fn a_moved_checkpoint_says_both_frontiers() {
        let e = EngineError::CheckpointMoved {
            job: "j".into(),
            found: None,
            expected: Some(60_000),
        };
        assert!(
            e.to_string()
                .contains("(frontier none instead of 1970-01-01T00:01:00Z)"),
            "{e}"
        );
    }

    #[test]
    fn a_replay_failure_says_its_cause_once() {
        let e = EngineError::Replay(ReplayFailure::Open {
            path: "/logs/a.log".into(),
            source: std::io::Error::other("boom"),
            hint: "",
        });
        assert_eq!(
            full_message(&e),
            "the replay stopped: cannot open /logs/a.log: boom"
        );
    }
}
