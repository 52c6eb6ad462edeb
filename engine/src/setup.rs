//! One job's share of one process: its state folder (locked), checkpoint store and
//! resume plan, the groups found at start (split over this process's workers), the
//! resume board, and — in the process that writes them — the sinks and the
//! checkpoint committer. Made once per process and handed to each of its workers
//! as an [`InstallContext`]; `tidemark run` and a cluster member both use it.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_jobs::Job;
use tidemark_sources::file::FileGroup;

use crate::checkpoint::ResetChoice;
use crate::commit::Committer;
use crate::groupset::{balance, initial_groups};
use crate::install::{EngineError, InstallContext, ResumePlan};
use crate::operators::collect::{Collector, OutputError};
use crate::operators::source::{Poke, PokeBoard};
use crate::resume::ResumeBoard;
use crate::run::{lock_state, prepare_state, OutputFactory, OutputStart};
use crate::stats::{JobStats, SharedStats};
use crate::watcher::JobWatcher;

/// How a job starts in this process.
pub struct SetupOptions {
    /// Follow live files (live mode) rather than finish at end of input.
    pub follow: bool,
    /// Checkpoints go to `STATE_DIR/JOB_NAME/`; `None` runs without them.
    pub state_dir: Option<PathBuf>,
    pub reset: Option<ResetChoice>,
    pub checkpoint_interval: Duration,
    pub stats: Option<SharedStats>,
    pub stop: Arc<AtomicBool>,
    /// This process's workers: global indices `first_worker..first_worker + workers`.
    pub first_worker: usize,
    pub workers: usize,
}

pub struct JobSetup {
    pub job: Arc<Job>,
    pub resume: Arc<ResumePlan>,
    pub board: Arc<ResumeBoard>,
    pub stats: SharedStats,
    pub stop: Arc<AtomicBool>,
    pub output_error: OutputError,
    pub poke: Poke,
    pub follow: bool,
    /// Whether the job resumed from a checkpoint.
    pub resumed: bool,
    initial: Arc<Vec<(FileGroup, usize)>>,
    /// Worker 0's (global) output side; taken by the first [`JobSetup::context`] for it.
    collector: Mutex<Option<Collector>>,
    first_worker: usize,
    workers: usize,
    // Held for the job's life: the state folder's lock (the kernel releases it
    // even after kill -9) and the directory watcher.
    _lock: Option<File>,
    _watcher: Option<JobWatcher>,
}

impl JobSetup {
    /// `make_output`: `Some` in the process whose worker 0 writes the sinks.
    pub fn prepare(
        job: &Job,
        opts: SetupOptions,
        make_output: Option<OutputFactory>,
    ) -> Result<JobSetup, EngineError> {
        let board = ResumeBoard::new();
        let stats = opts
            .stats
            .clone()
            .unwrap_or_else(|| Arc::new(Mutex::new(JobStats::default())));
        let lock = match &opts.state_dir {
            None => None,
            Some(dir) => Some(lock_state(&dir.join(&job.name))?),
        };
        let (store, plan, start) = match &opts.state_dir {
            None => (None, ResumePlan::default(), OutputStart::Fresh),
            Some(dir) => prepare_state(&dir.join(&job.name), job, opts.reset)?,
        };
        let resumed = matches!(start, OutputStart::Resume(_));
        let groups = initial_groups(job, &plan)?;
        let workers = opts.workers.max(1);
        let owners = balance(&groups, workers)
            .into_iter()
            .map(|w| opts.first_worker + w);
        let initial = Arc::new(groups.into_iter().zip(owners).collect::<Vec<_>>());
        board.expect(initial.iter().map(|(g, _)| g.live.clone()));
        if initial.is_empty() {
            tracing::warn!(
                "job {:?}: no file matches the include globs {:?}{}",
                job.name,
                job.source.include,
                if opts.follow {
                    " yet; waiting for one"
                } else {
                    "; nothing to read"
                }
            );
        }
        let collector = match make_output {
            Some(make) => {
                let output = make(&start).map_err(EngineError::Output)?;
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
                Some(Collector { output, committer })
            }
            None => None,
        };
        let poke: Poke = Arc::new(PokeBoard::default());
        // inotify where it works; otherwise the sources just poll (poll_interval).
        let watcher = opts.follow.then(|| {
            JobWatcher::start(
                job.source.include.clone(),
                poke.clone(),
                job.source.poll_interval,
            )
        });
        Ok(JobSetup {
            job: Arc::new(job.clone()),
            resume: Arc::new(plan),
            board,
            stats,
            stop: opts.stop,
            output_error: Arc::new(Mutex::new(None)),
            poke,
            follow: opts.follow,
            resumed,
            initial,
            collector: Mutex::new(collector),
            first_worker: opts.first_worker,
            workers,
            _lock: lock,
            _watcher: watcher,
        })
    }

    /// What worker `index` (global) of this process installs the job with.
    pub fn context(&self, index: usize) -> InstallContext {
        let collector = if index == 0 {
            self.collector.lock().ok().and_then(|mut c| c.take())
        } else {
            None
        };
        InstallContext {
            follow: self.follow,
            resume: self.resume.clone(),
            board: self.board.clone(),
            stop: self.stop.clone(),
            stats: self.stats.clone(),
            collector,
            output_error: self.output_error.clone(),
            poke: self.poke.clone(),
            initial_groups: self.initial.clone(),
            process_workers: (self.first_worker, self.workers),
        }
    }

    /// The sinks' error, if one failed.
    pub fn output_failed(&self) -> Option<String> {
        self.output_error.lock().ok().and_then(|e| e.clone())
    }
}
