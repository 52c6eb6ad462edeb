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
use crate::operators::collect::WindowOutput;
use crate::resume::Resume;
use crate::setup::{JobSetup, SetupOptions, StateRole};
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
    /// No previous state: create the outputs afresh.
    Fresh,
    /// Cut each file sink back to its committed length and append from there.
    Resume(Vec<SinkCommit>),
    /// Keep what is there and append (after `--reset-checkpoint=end`).
    Append,
}

/// Opens the job's outputs for a start mode (the binary opens its sinks here).
pub type OutputFactory =
    Box<dyn FnOnce(&OutputStart) -> Result<Box<dyn WindowOutput>, String> + Send>;

/// An output that ignores the start mode (tests, in-memory outputs).
pub fn fixed_output(out: Box<dyn WindowOutput>) -> OutputFactory {
    Box::new(move |_| Ok(out))
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

/// Loads (or resets) the job's state: the store, where groups resume, and how the
/// sinks start.
pub(crate) fn prepare_state(
    dir: &std::path::Path,
    job: &Job,
    reset: Option<ResetChoice>,
) -> Result<(Option<CheckpointStore>, ResumePlan, OutputStart), EngineError> {
    let ck = |e: crate::checkpoint::CheckpointError| EngineError::Checkpoint(e.to_string());
    let mut store = CheckpointStore::open(dir, &job.name).map_err(ck)?;
    match reset {
        Some(choice) => {
            store.reset().map_err(ck)?;
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
                    OutputStart::Fresh,
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
                let groups = resume_groups(cp.groups);
                tracing::info!(
                    "resuming from {}: windows before {} are already written",
                    store.path().display(),
                    format_ms(cp.frontier_ms)
                );
                Ok((
                    Some(store),
                    ResumePlan {
                        groups,
                        skip_below: cp.frontier_ms,
                        start_at: StartAt::Beginning,
                        checkpointing: true,
                    },
                    OutputStart::Resume(cp.sinks),
                ))
            }
        },
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
                },
            )
        })
        .collect()
}

pub(crate) fn format_ms(ms: EventMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
