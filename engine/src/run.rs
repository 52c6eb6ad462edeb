//! Running one job to completion (`tidemark run`, `tidemark demo`) in a timely
//! execution of `workers` threads, resuming from its checkpoint when it has one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidemark_jobs::Job;

use crate::checkpoint::{CheckpointStore, ResetChoice, SinkCommit};
use crate::install::{install_job, EngineError, ResumePlan, StartAt};
use crate::resume::Resume;
use crate::setup::{JobSetup, SetupOptions, StateRole};
use crate::sink::{Sink, Sinks};
use crate::stats::JobStats;
use crate::time::EventMs;

pub struct RunOptions {
    pub workers: usize,
    /// Finish at the end of every file (`--until-eof`) instead of following them.
    pub until_eof: bool,
    /// Set (e.g. by a signal handler) to stop a live run cleanly.
    pub stop: Arc<AtomicBool>,
    /// Checkpoints go to `STATE_DIR/JOB_NAME/`; `None` runs without them.
    pub state_dir: Option<PathBuf>,
    /// What to do instead of resuming (`--reset-checkpoint`).
    pub reset: Option<ResetChoice>,
    /// How often, at most, a checkpoint is written.
    pub checkpoint_interval: Duration,
    /// Where the run keeps its self-metrics, if the caller wants to watch them live.
    pub stats: Option<crate::stats::SharedStats>,
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
    Rewrite { named: Vec<SinkCommit> },
    /// Cut each file sink back to its committed length and append from there; only
    /// a file the checkpoint names by identity is ever cut. A sink the checkpoint
    /// does not name starts as under `Fresh`, from `frontier_ms` on (windows
    /// before it are in the other sinks already and are not written again).
    Resume {
        frontier_ms: EventMs,
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

/// One sink that ignores the start mode (tests, in-memory outputs).
pub fn fixed_output(out: Box<dyn Sink>) -> OutputFactory {
    Box::new(move |_| Ok(Sinks::new(vec![out])))
}

#[derive(Debug)]
pub struct RunOutcome {
    pub stats: JobStats,
    /// Whether the run resumed from a checkpoint.
    pub resumed: bool,
}

/// Runs the job; closed windows go to the output `make_output` opens.
pub fn run_job(
    job: &Job,
    opts: RunOptions,
    make_output: OutputFactory,
) -> Result<RunOutcome, EngineError> {
    run_job_file(job, None, opts, make_output)
}

/// [`run_job`] for a job read from `job_file`: no sink may write over that file.
pub fn run_job_file(
    job: &Job,
    job_file: Option<PathBuf>,
    opts: RunOptions,
    make_output: OutputFactory,
) -> Result<RunOutcome, EngineError> {
    let workers = opts.workers.max(1);
    let setup = Arc::new(JobSetup::prepare(
        job,
        SetupOptions {
            follow: !opts.until_eof,
            state_dir: opts.state_dir,
            reset: opts.reset,
            checkpoint_interval: opts.checkpoint_interval,
            stats: opts.stats,
            stop: opts.stop,
            job_file,
            cluster_state: None,
            first_worker: 0,
            workers,
            role: StateRole::Owner { expect: None },
        },
        Some(make_output),
    )?);
    let config = timely::Config::process(workers);
    let guards = {
        let setup = setup.clone();
        timely::execute(config, move |worker| -> Result<(), EngineError> {
            let handle = install_job(worker, &setup.job, setup.context(worker.index()))?;
            let mut woke_for_stop = false;
            while !handle.is_done(worker) {
                if setup.output_failed().is_some() {
                    setup.stop.store(true, Ordering::SeqCst);
                }
                if !woke_for_stop && setup.stop.load(Ordering::SeqCst) {
                    // A source may be asleep for its poll interval: wake it to stop.
                    setup.poke.poke();
                    woke_for_stop = true;
                }
                worker.step_or_park(Some(Duration::from_millis(50)));
            }
            Ok(())
        })
        .map_err(EngineError::Worker)?
    };
    for r in guards.join() {
        r.map_err(EngineError::Worker)??;
    }
    if let Some(e) = setup.output_failed() {
        return Err(EngineError::Output(e));
    }
    let stats = setup.stats.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(RunOutcome {
        stats,
        resumed: setup.resumed,
    })
}

/// Takes the job's state folder for this process: two runs sharing one would
/// overwrite each other's checkpoints and sinks.
pub(crate) fn lock_state(dir: &std::path::Path) -> Result<std::fs::File, EngineError> {
    let path = dir.join("lock");
    let file = std::fs::create_dir_all(dir)
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .map_err(|e| EngineError::Checkpoint(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Checkpoint(format!(
            "another tidemark process is running job {:?} with this state folder ({}); stop it first, or give this run its own --state-dir",
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(EngineError::Checkpoint(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Loads the job's state (or, for a `--reset-checkpoint`, what its checkpoint
/// names): the store, where groups resume, and how the sinks start.
///
/// A reset does not delete the checkpoint: the checkpoint the run writes as its
/// sinks are open replaces it. Until then it still names the job's outputs, so a
/// run that stops first (a sink refused, say) can be run again with the same
/// choice, and `--reset-checkpoint=beginning` replaces only the files it names.
pub(crate) fn prepare_state(
    dir: &std::path::Path,
    job: &Job,
    reset: Option<ResetChoice>,
) -> Result<(Option<CheckpointStore>, ResumePlan, OutputStart), EngineError> {
    let ck = |e: crate::checkpoint::CheckpointError| EngineError::Checkpoint(e.to_string());
    let store = CheckpointStore::for_job(dir, job).map_err(ck)?;
    match reset {
        Some(choice) => {
            tracing::warn!(
                "checkpoint reset ({choice}): {}",
                match choice {
                    ResetChoice::Beginning => "re-reading every file from its start",
                    ResetChoice::End => "starting at the end of every file",
                }
            );
            let (plan, start) = match choice {
                ResetChoice::Beginning => (
                    ResumePlan {
                        checkpointing: true,
                        ..ResumePlan::default()
                    },
                    OutputStart::Rewrite {
                        named: store.named_outputs(),
                    },
                ),
                ResetChoice::End => (
                    ResumePlan {
                        start_at: StartAt::End,
                        checkpointing: true,
                        ..ResumePlan::default()
                    },
                    OutputStart::Append,
                ),
            };
            Ok((Some(store), plan, start))
        }
        None => match store.load().map_err(ck)? {
            None => Ok((
                Some(store),
                ResumePlan {
                    checkpointing: true,
                    ..ResumePlan::default()
                },
                OutputStart::Fresh,
            )),
            Some(cp) => {
                if cp.job != job.name {
                    return Err(EngineError::Checkpoint(format!(
                        "{} belongs to job {:?}, not {:?}; use a state folder per job",
                        store.path().display(),
                        cp.job,
                        job.name
                    )));
                }
                if cp.semantics.is_none() {
                    tracing::warn!(
                        "{} was written by an older tidemark and does not record the job's settings (window size, metrics, rules, parsing), so this run cannot check that they are unchanged; if they changed, stop now and re-run with --reset-checkpoint. The current settings are recorded now, as this run starts, and checked on every later restart",
                        store.path().display()
                    );
                }
                let groups = resume_groups(cp.groups);
                tracing::info!("{}", resume_message(store.path(), cp.frontier_ms));
                Ok((
                    Some(store),
                    ResumePlan {
                        groups,
                        skip_below: cp.frontier_ms,
                        start_at: if cp.start_at_end {
                            StartAt::End
                        } else {
                            StartAt::Beginning
                        },
                        checkpointing: true,
                        limited_windows: cp.limited_windows,
                    },
                    OutputStart::Resume {
                        frontier_ms: cp.frontier_ms,
                        sinks: cp.sinks,
                    },
                ))
            }
        },
    }
}

/// What a run resuming from `checkpoint` says.
fn resume_message(checkpoint: &std::path::Path, frontier_ms: EventMs) -> String {
    if frontier_ms == EventMs::MIN {
        format!(
            "resuming from {}: no window written yet",
            checkpoint.display()
        )
    } else {
        format!(
            "resuming from {}: windows before {} are already written",
            checkpoint.display(),
            format_ms(frontier_ms)
        )
    }
}

/// A checkpoint's groups as resume points, by live path.
pub(crate) fn resume_groups(
    groups: Vec<crate::checkpoint::GroupCheckpoint>,
) -> HashMap<PathBuf, Resume> {
    groups
        .into_iter()
        .map(|g| {
            (
                g.live,
                Resume {
                    position: g.resume,
                    max_seen_ms: g.max_seen_ms,
                    floor_ms: g.floor_ms,
                    suspect_ms: g.suspect_ms,
                    at_tail: g.at_tail,
                    kept: g.kept,
                },
            )
        })
        .collect()
}

/// An event time (a frontier) for messages; [`EventMs::MIN`], the frontier
/// before any window is written, is "none yet".
pub(crate) fn format_ms(ms: EventMs) -> String {
    if ms == EventMs::MIN {
        return "none yet".to_string();
    }
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_before_any_window_is_shown_as_none_yet() {
        // Not "windows before -9223372036854775808 are already written".
        assert_eq!(format_ms(EventMs::MIN), "none yet");
        assert_eq!(format_ms(60_000), "1970-01-01T00:01:00Z");
        let m = resume_message(std::path::Path::new("/s/checkpoint"), EventMs::MIN);
        assert_eq!(m, "resuming from /s/checkpoint: no window written yet");
    }
}
