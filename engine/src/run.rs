//! Running one job to completion (`tidemark run`, `tidemark demo`) in a timely
//! execution of `workers` threads, resuming from its checkpoint when it has one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tidemark_jobs::Job;

use crate::checkpoint::ResetChoice;
use crate::error::{EngineError, JobFailure};
use crate::install::install_job;
use crate::setup::{JobSetup, SetupOptions, StateRole};
use crate::start::OutputFactory;
use crate::stats::JobStats;

/// How long an idle worker sleeps at most before it looks at the stop and
/// failure flags again. Its operators wake it whenever they have work (a
/// source at its poll interval or a write event, the collector for its sinks),
/// so this only bounds how soon a stop or a failure is noticed; at 50 ms its
/// 20 wakes a second were a quarter of a quiet follower's CPU (issue 13).
const IDLE_PARK: Duration = Duration::from_millis(250);

/// How [`run_job`] runs a job: set by `tidemark run` and `tidemark demo` from
/// their flags.
pub struct RunOptions {
    /// Worker threads (timely workers) the job's file groups are spread over; 0
    /// counts as 1. The output does not depend on it.
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

/// How a run that did not fail ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The job's self-metrics at the end of the run (lines read, dropped, late,
    /// windows written, …): what `tidemark run` prints and bases its exit status on.
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
    let panics = crate::worker_panic::PanicWatch::default();
    let guards = {
        let setup = setup.clone();
        timely::execute(config, move |worker| -> Result<(), EngineError> {
            let index = worker.index();
            panics
                .catching(worker, |worker| {
                    let handle = install_job(worker, &setup.job, setup.context(worker.index()))?;
                    let mut woke_for_stop = false;
                    while !handle.is_done(worker) {
                        if panics.abandon_if_panicked(worker) {
                            // The panicking worker's error is the run's.
                            return Ok(());
                        }
                        if setup.has_failed() {
                            setup.stop.store(true, Ordering::SeqCst);
                        }
                        if !woke_for_stop && setup.stop.load(Ordering::SeqCst) {
                            // A source may be asleep for its poll interval: wake it to stop.
                            setup.poke.poke();
                            woke_for_stop = true;
                        }
                        worker.step_or_park(Some(IDLE_PARK));
                    }
                    Ok(())
                })
                .unwrap_or_else(|message| {
                    Err(EngineError::Timely {
                        worker: Some(index),
                        message,
                    })
                })
        })
        .map_err(|message| EngineError::Timely {
            worker: None,
            message,
        })?
    };
    for (worker, r) in guards.join().into_iter().enumerate() {
        r.map_err(|message| EngineError::Timely {
            worker: Some(worker),
            message,
        })??;
    }
    match setup.take_failure() {
        // An input's read error, not the output's.
        Some(JobFailure::Read(e)) => return Err(*e),
        Some(e) => return Err(EngineError::Output(e)),
        None => {}
    }
    let stats = setup.stats.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(RunOutcome {
        stats,
        resumed: setup.resumed,
    })
}
