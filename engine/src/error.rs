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
use crate::sink::SinkFailure;
use crate::start::OutputOpenError;
use crate::time::{format_ms, EventMs};

/// Why a running job stopped, as its operators report it (see [`FailureSlot`]).
#[derive(Debug, Error)]
pub enum JobFailure {
    /// A sink could not take a window or finish.
    #[error(transparent)]
    Sink(SinkFailure),
    /// The sinks could not be synced or a checkpoint not saved.
    #[error("writing the checkpoint failed")]
    Commit(#[source] CommitError),
    /// A source could not look for its files again.
    #[error(transparent)]
    Discover(Box<EngineError>),
    /// A file read as segments by several workers could not be read to its end
    /// (see `crate::split`): an input's failure, which `run_job` returns as it
    /// is ([`EngineError::SplitRead`]), not as the output's.
    #[error(transparent)]
    Read(Box<EngineError>),
}

/// Where a running job's operators put the first reason it must stop; the runner
/// reads it (and stops the job) between steps. Only the first failure is kept:
/// later ones follow from it.
pub type FailureSlot = std::sync::Arc<std::sync::Mutex<Option<JobFailure>>>;

/// Records `failure` in `slot` unless one is there already.
pub(crate) fn record_failure(slot: &FailureSlot, failure: JobFailure) {
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(failure);
    }
}

/// Why a job could not start, or stopped before its input ended.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The job's parse settings do not make a line parser ([`BuildError`] says why).
    #[error("cannot build the line parser")]
    Parser(#[source] BuildError),
    /// The include, exclude or archive globs cannot be searched.
    #[error("cannot look for the job's files")]
    Discover(#[source] DiscoverError),
    /// A file a replay must read (to plan its range) cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The filesystem's error.
        #[source]
        source: std::io::Error,
    },
    /// The job failed while it ran: a sink, a checkpoint or a source's discovery.
    #[error("output failed")]
    Output(#[source] JobFailure),
    /// A replay's source stopped reading. Its message already ends with its
    /// cause's, so it is shown whole rather than chained as a source (which
    /// would print the cause twice); the typed failure is kept here.
    #[error("the replay stopped: {0}")]
    Replay(ReplayFailure),
    /// A file a finite run read as segments on several workers (`crate::split`)
    /// could not be read as planned: it shrank, vanished or was replaced while
    /// it was read. Its cause is shown whole, with what to do.
    #[error(
        "{}: {cause}; a file read as segments by several workers must keep its planned \
         bytes during the run: run again, or with `-w 1` or a larger `split_from` to read \
         it as one followed group (which counts a truncation and reads on)",
        path.display()
    )]
    SplitRead {
        /// The file as planned.
        path: PathBuf,
        /// What went wrong, and where in the file.
        cause: std::io::Error,
    },
    /// A finite run's kafka source could not read its topic: it is missing, or
    /// the brokers did not answer (or gave nothing mid-run) for its `broker_timeout`.
    #[error("the kafka source cannot read its topic")]
    KafkaSource(#[source] crate::kafka_source::consumer::ConnectError),
    /// A jsonl sink path is an input, the job file or state: refused before any
    /// sink is opened.
    #[error("a jsonl sink path is refused")]
    SinkPath(#[source] SinkPathError),
    /// The sinks could not be opened; the source is the sinks' own error (for
    /// `tidemark run`, a `tidemark_sinks::SinkError`).
    #[error("cannot open the job's sinks")]
    OpenOutput(#[source] OutputOpenError),
    /// The checkpoint a run writes as it starts (naming its outputs) failed.
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
        /// What was being done, e.g. "read the kept jobs in" (follows "cannot").
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The filesystem's error.
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
        /// The job's name.
        job: String,
        /// The frontier of the checkpoint found at install (`None`: no checkpoint).
        found: Option<EventMs>,
        /// The frontier the control side had read.
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
        /// The worker whose thread panicked; `None` when timely could not start.
        worker: Option<usize>,
        /// timely's text (the panic's message).
        message: String,
    },
}

fn frontier(f: Option<EventMs>) -> String {
    f.map_or("none".into(), format_ms)
}

/// Why the job's state folder could not be locked.
#[derive(Debug, Error)]
pub enum StateLockError {
    /// The lock file cannot be opened (created if missing).
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The filesystem's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the lock: two runs sharing one folder would
    /// overwrite each other's checkpoints and sinks.
    #[error(
        "another tidemark process is running job {job:?} with this state folder ({}); stop it first, or give this run its own --state-dir",
        dir.display()
    )]
    Held {
        /// The job's name, as the state folder's name says it.
        job: String,
        /// The state folder.
        dir: PathBuf,
    },
    /// Locking failed for another reason than another holder (e.g. a filesystem
    /// without locks).
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The operating system's error from trying the lock.
        #[source]
        source: std::io::Error,
    },
}

/// An error and its causes, joined by ": " as `anyhow`'s `{:#}` joins them, for
/// printing (the binary's `error:` line) and for errors that travel as text (a
/// job's status). A cause whose text is already there is left out: many errors
/// of the workspace (an I/O error of the checkpoint, the state lock or a sink)
/// say their cause in their own message as well as keeping it as the source, and
/// `{:#}` printed it twice.
pub fn full_message(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !out.contains(&part) {
            out.push_str(": ");
            out.push_str(&part);
        }
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

    /// Regression (issue 11 review): `tidemark run --state-dir FILE` printed
    /// "cannot open …/lock: Not a directory (os error 20): Not a directory (os
    /// error 20)": the lock error says its cause and keeps it as its source.
    #[test]
    fn a_cause_the_message_already_says_is_printed_once() {
        let e = EngineError::StateLock(StateLockError::Open {
            path: "/s/j/lock".into(),
            source: std::io::Error::from_raw_os_error(20),
        });
        let text = full_message(&e);
        assert_eq!(text.matches("(os error 20)").count(), 1, "{text}");
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
