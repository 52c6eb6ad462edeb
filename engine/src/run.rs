//! Running one job to completion (`tidemark run`, `tidemark demo`) in a timely
//! execution of `workers` threads, resuming from its checkpoint when it has one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_jobs::Job;

use crate::checkpoint::{CheckpointStore, ResetChoice, SinkCommit};
use crate::commit::Committer;
use crate::groupset::{balance, initial_groups};
use crate::install::{install_job, EngineError, InstallContext, ResumePlan, StartAt};
use crate::operators::collect::{Collector, WindowOutput};
use crate::operators::source::{Poke, PokeBoard};
use crate::resume::{Resume, ResumeBoard};
use crate::stats::JobStats;
use crate::time::EventMs;
use crate::watcher::JobWatcher;

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
    let board = ResumeBoard::new();
    let stats = opts
        .stats
        .clone()
        .unwrap_or_else(|| Arc::new(Mutex::new(JobStats::default())));
    // Held until the run ends; the kernel releases it even after kill -9.
    let _lock = match &opts.state_dir {
        None => None,
        Some(dir) => Some(lock_state(&dir.join(&job.name))?),
    };
    let (store, plan, start) = match &opts.state_dir {
        None => (None, ResumePlan::default(), OutputStart::Fresh),
        Some(dir) => prepare_state(&dir.join(&job.name), job, opts.reset)?,
    };
    let resumed = matches!(start, OutputStart::Resume(_));
    let groups = initial_groups(job, &plan)?;
    let owners = balance(&groups, opts.workers.max(1));
    let initial = Arc::new(groups.into_iter().zip(owners).collect::<Vec<_>>());
    board.expect(initial.iter().map(|(g, _)| g.live.clone()));
    if initial.is_empty() {
        tracing::warn!(
            "no file matches the job's include globs {:?}{}",
            job.source.include,
            if opts.until_eof {
                "; nothing to read"
            } else {
                " yet; waiting for one"
            }
        );
    }
    let output = make_output(&start).map_err(EngineError::Output)?;
    let committer = store.map(|s| {
        Committer::new(
            s,
            board.clone(),
            &job.name,
            opts.checkpoint_interval,
            plan.skip_below,
            stats.clone(),
        )
    });
    let collector = Arc::new(Mutex::new(Some(Collector { output, committer })));
    let output_error = Arc::new(Mutex::new(None));
    let job = Arc::new(job.clone());
    let plan = Arc::new(plan);
    let stop = opts.stop.clone();
    // inotify where it works; otherwise the sources just poll (poll_interval).
    let poke: Poke = Arc::new(PokeBoard::default());
    let _watcher = (!opts.until_eof).then(|| {
        JobWatcher::start(
            job.source.include.clone(),
            poke.clone(),
            job.source.poll_interval,
        )
    });
    let config = timely::Config::process(opts.workers.max(1));
    let guards = {
        let (stats, output_error, stop) = (stats.clone(), output_error.clone(), stop.clone());
        timely::execute(config, move |worker| -> Result<(), EngineError> {
            let collector = if worker.index() == 0 {
                collector.lock().ok().and_then(|mut o| o.take())
            } else {
                None
            };
            let handle = install_job(
                worker,
                &job,
                InstallContext {
                    follow: !opts.until_eof,
                    resume: plan.clone(),
                    board: board.clone(),
                    stop: stop.clone(),
                    stats: stats.clone(),
                    collector,
                    output_error: output_error.clone(),
                    poke: poke.clone(),
                    initial_groups: initial.clone(),
                },
            )?;
            let mut woke_for_stop = false;
            while !handle.is_done(worker) {
                if output_error.lock().map(|e| e.is_some()).unwrap_or(false) {
                    stop.store(true, Ordering::SeqCst);
                }
                if !woke_for_stop && stop.load(Ordering::SeqCst) {
                    // A source may be asleep for its poll interval: wake it to stop.
                    poke.poke();
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
    if let Some(e) = output_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(EngineError::Output(e));
    }
    let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(RunOutcome { stats, resumed })
}

/// Takes the job's state folder for this process: two runs sharing one would
/// overwrite each other's checkpoints and sinks.
fn lock_state(dir: &std::path::Path) -> Result<std::fs::File, EngineError> {
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
fn prepare_state(
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
                let groups: HashMap<PathBuf, Resume> = cp
                    .groups
                    .into_iter()
                    .map(|g| {
                        (
                            g.live,
                            Resume {
                                position: g.resume,
                                max_seen_ms: g.max_seen_ms,
                                floor_ms: g.floor_ms,
                            },
                        )
                    })
                    .collect();
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

fn format_ms(ms: EventMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
