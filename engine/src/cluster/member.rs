//! A cluster member's control side: what the API calls ([`Cluster`]), and
//! [`start`], which runs the member's workers (`super::worker`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use thiserror::Error;
use tidemark_jobs::Job;

use super::fd_budget::{FdBudget, OverCap};
use super::options::ClusterOptions;
use super::registry::{JobState, NotAdded, Registry};
use super::shared::Shared;
use super::state_folder::StateLock;
use super::store::{self, JobStore};
use super::worker::member_loop;
use super::Command;
use crate::checkpoint::CheckpointStore;
use crate::error::EngineError;
use crate::stats::JobStats;
use crate::time::{wall_clock_ms, EventMs};

/// Why the cluster refused a control request (submit, stop). The API maps each
/// variant to its own HTTP status, so a client can tell "change the request" from
/// "try again later".
#[derive(Debug, Error)]
pub enum ControlError {
    /// A submit named a job the cluster already runs (job names are unique).
    #[error("a job named {job:?} is already running; stop it first or choose another name")]
    Duplicate {
        /// The submitted job's name.
        job: String,
    },
    /// A stop named a job the cluster does not run.
    #[error("no job named {job:?}")]
    NotFound {
        /// The name asked for.
        job: String,
    },
    /// A submit while the cluster runs its maximum number of jobs (the member's
    /// `--max-jobs`), which this carries.
    #[error("the cluster already has {0} jobs, its limit")]
    JobLimit(usize),
    /// What is left of the member's cap on open files is too little for the job.
    #[error(transparent)]
    OpenFilesCap(#[from] OverCap),
    /// A submit while the member stops.
    #[error("the member is shutting down")]
    MemberShuttingDown,
    /// The command queue was poisoned by a panic: the cluster is going down.
    #[error("the cluster is shutting down")]
    ClusterShuttingDown,
    /// The workers are gone: nothing takes commands any more.
    #[error("the cluster has stopped")]
    Stopped,
    /// A job of that name is still being stopped on some member.
    #[error("job {job:?} is still stopping; submit it again in a moment")]
    StillStopping {
        /// The submitted job's name.
        job: String,
    },
    /// The state folder cannot keep (or forget) the job.
    #[error("cannot {action}: {source}")]
    KeptJobs {
        /// What the member was doing, e.g. "forget the job".
        action: &'static str,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The control side of a member: what the API calls.
pub struct Cluster {
    commands: Mutex<Sender<Command>>,
    registry: Arc<Registry>,
    store: JobStore,
    /// Where jobs' checkpoints are (`STATE/jobs/`).
    jobs_dir: PathBuf,
    shutting_down: AtomicBool,
    max_jobs: usize,
    fd_budget: Arc<FdBudget>,
    /// Workers per member: a job needs one open file per worker at least.
    workers: usize,
    /// Cleared when the workers end (shut down, or failed).
    running: Arc<AtomicBool>,
    // The member's lock on its state folder, held while it runs.
    _lock: StateLock,
}

impl Cluster {
    /// Every job this member knows, with its state and stats: what the control API lists
    /// and reports.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The member's cap on open files and what its jobs reserve of it.
    pub fn fd_budget(&self) -> &FdBudget {
        &self.fd_budget
    }

    /// Installs a validated job everywhere; it is kept in the state folder so a
    /// restarted cluster installs it again.
    pub fn submit(&self, job: &Job, toml: &str) -> Result<(), ControlError> {
        if !self.is_running() || self.shutting_down.load(Ordering::SeqCst) {
            return Err(ControlError::MemberShuttingDown);
        }
        // Held until the Install is queued (see `stop`).
        let commands = self.lock_commands()?;
        let stats = Arc::new(Mutex::new(JobStats::default()));
        let added = self
            .registry
            .add_within(&job.name, wall_clock_ms(), stats, self.max_jobs);
        if let Err(NotAdded::Full { limit }) = added {
            return Err(ControlError::JobLimit(limit));
        }
        if added.is_err() {
            if self
                .registry
                .get(&job.name)
                .is_some_and(|j| j.state == JobState::Stopping)
            {
                return Err(ControlError::StillStopping {
                    job: job.name.clone(),
                });
            }
            return Err(ControlError::Duplicate {
                job: job.name.clone(),
            });
        }
        // Refused here, not failed later: the submitter learns what to change.
        if let Err(e) = self
            .fd_budget
            .reserve(&job.name, job.source.max_open_files, self.workers)
        {
            self.registry.remove(&job.name);
            return Err(e.into());
        }
        if let Err(e) = self.store.save(&job.name, toml) {
            self.registry.remove(&job.name);
            self.fd_budget.release(&job.name);
            return Err(ControlError::KeptJobs {
                action: "keep the job in the state folder",
                source: e,
            });
        }
        commands
            .send(Command::Install {
                name: job.name.clone(),
                toml: toml.to_string(),
                committed: committed_frontier(&self.jobs_dir, &job.name),
            })
            .map_err(|_| ControlError::Stopped)
    }

    /// Stops a job: windows already written stay; it is forgotten once stopped.
    pub fn stop(&self, name: &str) -> Result<(), ControlError> {
        // Held until the command is queued, so a submit and a stop of one name
        // reach the sequencer in the order the registry saw them.
        let commands = self.lock_commands()?;
        if !self.registry.contains(name) {
            return Err(ControlError::NotFound {
                job: name.to_string(),
            });
        }
        self.store
            .remove(name)
            .map_err(|source| ControlError::KeptJobs {
                action: "forget the job",
                source,
            })?;
        // The entry stays (Stopping) until every member has let the job go, or for a
        // failed job no worker holds, until worker 0 applied the Stop.
        self.registry.set(name, JobState::Stopping, None);
        commands
            .send(Command::Stop {
                name: name.to_string(),
            })
            .map_err(|_| ControlError::Stopped)
    }

    /// Stops every job (checkpointing what is written) and ends the member.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.send(Command::Shutdown);
    }

    /// Whether the member's workers are still running.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn send(&self, c: Command) -> Result<(), ControlError> {
        self.lock_commands()?
            .send(c)
            .map_err(|_| ControlError::Stopped)
    }

    fn lock_commands(&self) -> Result<std::sync::MutexGuard<'_, Sender<Command>>, ControlError> {
        self.commands
            .lock()
            .map_err(|_| ControlError::ClusterShuttingDown)
    }
}

/// The thread running a member's workers; it ends when the member does.
pub type Workers = JoinHandle<Result<(), EngineError>>;

/// The frontier of process 0's checkpoint of a job, read before its install is
/// sequenced (nothing else writes it then: the name is free). `None` if there is
/// none or it cannot be read — process 0's own setup then reports why.
fn committed_frontier(jobs_dir: &Path, name: &str) -> Option<EventMs> {
    let dir = jobs_dir.join(name);
    if !dir.join(crate::checkpoint::CHECKPOINT_FILE).exists() {
        return None;
    }
    CheckpointStore::open(&dir, name)
        .ok()?
        .load()
        .ok()
        .flatten()
        .map(|cp| cp.frontier_ms)
}

/// Starts this member's workers. Jobs kept in the state folder are installed
/// again first (process 0 sequences them). With several processes this waits in
/// the background until every member has connected. The handle ends when the
/// member does.
pub fn start(opts: ClusterOptions) -> Result<(Arc<Cluster>, Workers), EngineError> {
    let processes = opts.processes.max(1);
    store::claim_identity(&opts.state_dir, opts.process, processes)
        .map_err(EngineError::Identity)?;
    // One member per state folder (the caller took the lock): a second would
    // install the same kept jobs and delete the first one's on stop.
    let lock = opts.state_lock;
    let store = JobStore::open(&opts.state_dir).map_err(|source| EngineError::JobStore {
        action: "use the state folder",
        path: opts.state_dir.clone(),
        source,
    })?;
    let jobs_dir = opts.state_dir.join("jobs");
    let (tx, rx) = channel();
    let registry = Arc::new(Registry::default());
    let fd_budget = Arc::new(FdBudget::new(opts.max_open_files));
    if opts.process == 0 {
        let kept = store.load().map_err(|source| EngineError::JobStore {
            action: "read the kept jobs in",
            path: opts.state_dir.clone(),
            source,
        })?;
        if kept.len() > opts.max_jobs {
            tracing::warn!(
                "the state folder keeps {} jobs, more than --max-jobs {}: every one is installed again, and no new job is accepted until fewer than {} remain",
                kept.len(),
                opts.max_jobs,
                opts.max_jobs
            );
        }
        for (name, toml, submitted_ms) in kept {
            tracing::info!("installing kept job {name:?} again");
            // Before the API takes new jobs: a kept job's files come first.
            if let Ok(job) = (opts.validate)(&toml) {
                if let Err(e) =
                    fd_budget.reserve(&name, job.source.max_open_files, opts.workers.max(1))
                {
                    tracing::warn!("kept job {name:?}: {e}");
                }
            }
            registry.add(
                &name,
                submitted_ms,
                Arc::new(Mutex::new(JobStats::default())),
            );
            let committed = committed_frontier(&jobs_dir, &name);
            let _ = tx.send(Command::Install {
                name,
                toml,
                committed,
            });
        }
    }
    let cluster = Arc::new(Cluster {
        commands: Mutex::new(tx),
        registry: registry.clone(),
        store,
        jobs_dir: jobs_dir.clone(),
        shutting_down: AtomicBool::new(false),
        max_jobs: opts.max_jobs,
        fd_budget: fd_budget.clone(),
        workers: opts.workers.max(1),
        running: Arc::new(AtomicBool::new(true)),
        _lock: lock,
    });
    let running = cluster.running.clone();
    let shared = Arc::new(Shared {
        first_worker: opts.process * opts.workers.max(1),
        workers: opts.workers.max(1),
        process: opts.process,
        processes,
        state_dir: jobs_dir,
        checkpoint_interval: opts.checkpoint_interval,
        make_output: opts.make_output,
        validate: opts.validate,
        registry,
        fd_budget,
        feed: Mutex::new(Some(rx)),
        setups: Mutex::new(HashMap::new()),
        released: Mutex::new(Vec::new()),
    });
    let peers = opts.peers;
    let workers = opts.workers.max(1);
    let thread = std::thread::Builder::new()
        .name("tidemark-cluster".into())
        .spawn(move || -> Result<(), EngineError> {
            // Connecting waits for every member: here, in the background.
            let timely = |message| EngineError::Timely {
                worker: None,
                message,
            };
            let result = match peers {
                None => timely::CommunicationConfig::Process(workers)
                    .try_build()
                    .map_err(timely),
                Some(peers) => peers.connect(workers).map_err(EngineError::Peers),
            }
            .and_then(|(builders, others)| {
                timely::execute::execute_from(
                    builders,
                    others,
                    timely::WorkerConfig::default(),
                    move |worker| member_loop(worker, &shared),
                )
                .map_err(timely)
            })
            .and_then(|guards| {
                guards
                    .join()
                    .into_iter()
                    .enumerate()
                    .try_for_each(|(worker, r)| {
                        r.map_err(|message| EngineError::Timely {
                            worker: Some(worker),
                            message,
                        })
                    })
            });
            running.store(false, Ordering::SeqCst);
            result
        })
        .map_err(EngineError::SpawnWorkers)?;
    Ok((cluster, thread))
}
