//! A cluster member's workers: each runs a loop that applies the sequenced
//! [`Command`]s — installing a job's dataflow, stopping it, shutting down — in the
//! same order on every worker of every member.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use thiserror::Error;
use tidemark_jobs::Job;
use timely::synchronization::Sequencer;
use timely::worker::Worker;

use super::registry::{JobState, Registry};
use super::store::JobStore;
use super::Command;
use crate::install::{install_job, EngineError, JobHandle};
use crate::operators::collect::WindowOutput;
use crate::run::OutputStart;
use crate::setup::{JobSetup, SetupOptions};
use crate::stats::JobStats;
use crate::time::wall_clock_ms;

/// Opens a job's sinks (process 0 only).
pub type MakeOutput =
    Arc<dyn Fn(&Job, &OutputStart) -> Result<Box<dyn WindowOutput>, String> + Send + Sync>;
/// Validates a job's TOML on this member (its own environment, its allowed roots).
pub type Validate = Arc<dyn Fn(&str) -> Result<Job, String> + Send + Sync>;

pub struct ClusterOptions {
    /// The timely configuration: `Config::process(w)` or a cluster of processes.
    pub config: timely::Config,
    /// This member's index and its number of workers.
    pub process: usize,
    pub workers: usize,
    /// Submitted jobs and their checkpoints are kept here.
    pub state_dir: PathBuf,
    pub checkpoint_interval: Duration,
    pub make_output: MakeOutput,
    pub validate: Validate,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("a job named {0:?} is already running; stop it first or choose another name")]
    Duplicate(String),
    #[error("no job named {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
}

/// The control side of a member: what the API calls.
pub struct Cluster {
    commands: Mutex<Sender<Command>>,
    registry: Arc<Registry>,
    store: JobStore,
    /// Where jobs' checkpoints are (`STATE/jobs/`).
    jobs_dir: PathBuf,
    shutting_down: AtomicBool,
    /// Cleared when the workers end (shut down, or failed).
    running: Arc<AtomicBool>,
    // The member's lock on its state folder, held while it runs.
    _lock: std::fs::File,
}

impl Cluster {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Installs a validated job everywhere; it is kept in the state folder so a
    /// restarted cluster installs it again.
    pub fn submit(&self, job: &Job, toml: &str) -> Result<(), ControlError> {
        if !self.is_running() || self.shutting_down.load(Ordering::SeqCst) {
            return Err(ControlError::Unavailable(
                "the member is shutting down".into(),
            ));
        }
        let stats = Arc::new(Mutex::new(JobStats::default()));
        if !self.registry.add(&job.name, wall_clock_ms(), stats) {
            if self
                .registry
                .get(&job.name)
                .is_some_and(|j| j.state == JobState::Stopping)
            {
                return Err(ControlError::Unavailable(format!(
                    "job {:?} is still stopping; submit it again in a moment",
                    job.name
                )));
            }
            return Err(ControlError::Duplicate(job.name.clone()));
        }
        if let Err(e) = self.store.save(&job.name, toml) {
            self.registry.remove(&job.name);
            return Err(ControlError::Unavailable(format!(
                "cannot keep the job in the state folder: {e}"
            )));
        }
        self.send(Command::Install {
            name: job.name.clone(),
            toml: toml.to_string(),
        })
    }

    /// Stops a job: windows already written stay; it is forgotten once stopped.
    pub fn stop(&self, name: &str) -> Result<(), ControlError> {
        if !self.registry.contains(name) {
            return Err(ControlError::NotFound(name.to_string()));
        }
        self.store
            .remove(name)
            .map_err(|e| ControlError::Unavailable(format!("cannot forget the job: {e}")))?;
        if self.registry.remove_released(name) {
            // A failed job no worker holds: forget it here, checkpoint too.
            let _ = std::fs::remove_dir_all(self.jobs_dir.join(name));
            return Ok(());
        }
        self.registry.set(name, JobState::Stopping, None);
        self.send(Command::Stop {
            name: name.to_string(),
        })
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
        self.commands
            .lock()
            .map_err(|_| ControlError::Unavailable("the cluster is shutting down".into()))?
            .send(c)
            .map_err(|_| ControlError::Unavailable("the cluster has stopped".into()))
    }
}

/// The thread running a member's workers; it ends when the member does.
pub type Workers = JoinHandle<Result<(), EngineError>>;

/// A job's setup in this process (or why it cannot run here), shared by the
/// process's workers. It is made once — every worker must agree on whether the job
/// runs, or their dataflows would differ — and dropped only once every worker has
/// seen the Install and none still runs the job.
struct SetupSlot {
    setup: Result<Arc<JobSetup>, String>,
    /// Workers that have applied the Install.
    seen: usize,
    /// Workers still running the job.
    running: usize,
    /// A Stop (not a shutdown) was applied: the job is forgotten, checkpoint too.
    stopped: bool,
}

/// Starts this member's workers. Jobs kept in the state folder are installed
/// again first (process 0 sequences them). The handle ends when the member does.
pub fn start(opts: ClusterOptions) -> Result<(Arc<Cluster>, Workers), EngineError> {
    // One member per state folder: a second would install the same kept jobs and
    // delete the first one's on stop.
    let lock = crate::run::lock_state(&opts.state_dir)?;
    let store = JobStore::open(&opts.state_dir).map_err(|e| {
        EngineError::Checkpoint(format!(
            "cannot use the state folder {}: {e}",
            opts.state_dir.display()
        ))
    })?;
    let (tx, rx) = channel();
    let registry = Arc::new(Registry::default());
    if opts.process == 0 {
        let kept = store
            .load()
            .map_err(|e| EngineError::Checkpoint(format!("cannot read the kept jobs: {e}")))?;
        for (name, toml, submitted_ms) in kept {
            tracing::info!("installing kept job {name:?} again");
            registry.add(
                &name,
                submitted_ms,
                Arc::new(Mutex::new(JobStats::default())),
            );
            let _ = tx.send(Command::Install { name, toml });
        }
    }
    let cluster = Arc::new(Cluster {
        commands: Mutex::new(tx),
        registry: registry.clone(),
        store,
        jobs_dir: opts.state_dir.join("jobs"),
        shutting_down: AtomicBool::new(false),
        running: Arc::new(AtomicBool::new(true)),
        _lock: lock,
    });
    let running = cluster.running.clone();
    let shared = Arc::new(Shared {
        first_worker: opts.process * opts.workers.max(1),
        workers: opts.workers.max(1),
        process: opts.process,
        state_dir: opts.state_dir.join("jobs"),
        checkpoint_interval: opts.checkpoint_interval,
        make_output: opts.make_output,
        validate: opts.validate,
        registry,
        feed: Mutex::new(Some(rx)),
        setups: Mutex::new(HashMap::new()),
    });
    let config = opts.config;
    let thread = std::thread::Builder::new()
        .name("tidemark-cluster".into())
        .spawn(move || -> Result<(), EngineError> {
            let result = timely::execute(config, move |worker| member_loop(worker, &shared))
                .map_err(EngineError::Worker)
                .and_then(|guards| {
                    guards
                        .join()
                        .into_iter()
                        .try_for_each(|r| r.map_err(EngineError::Worker))
                });
            running.store(false, Ordering::SeqCst);
            result
        })
        .map_err(|e| EngineError::Worker(format!("cannot start the workers: {e}")))?;
    Ok((cluster, thread))
}

/// What a member's workers share.
struct Shared {
    first_worker: usize,
    workers: usize,
    process: usize,
    state_dir: PathBuf,
    checkpoint_interval: Duration,
    make_output: MakeOutput,
    validate: Validate,
    registry: Arc<Registry>,
    /// Commands from the control side, taken by this member's first worker.
    feed: Mutex<Option<Receiver<Command>>>,
    /// Per job, its setup for this process and how many workers still run it.
    setups: Mutex<HashMap<String, SetupSlot>>,
}

struct Running {
    handle: JobHandle,
    setup: Arc<JobSetup>,
}

fn member_loop(worker: &mut Worker, shared: &Shared) {
    let feed = if worker.index() == shared.first_worker {
        shared.feed.lock().ok().and_then(|mut f| f.take())
    } else {
        None
    };
    let mut seq: Sequencer<Command> = Sequencer::new(worker, Instant::now());
    let mut jobs: BTreeMap<String, Running> = BTreeMap::new();
    let mut shutting_down = false;
    loop {
        if let Some(feed) = &feed {
            while let Ok(c) = feed.try_recv() {
                seq.push(c);
            }
        }
        for cmd in seq.by_ref() {
            match cmd {
                Command::Install { name, toml } => {
                    if !shutting_down && !jobs.contains_key(&name) {
                        if let Some(r) = install(worker, shared, &name, &toml) {
                            jobs.insert(name, r);
                        }
                    }
                }
                Command::Stop { name } => {
                    if let Some(r) = jobs.get(&name) {
                        mark_stopped(shared, &name);
                        stop(&r.setup);
                    }
                }
                Command::Shutdown => {
                    shutting_down = true;
                    jobs.values().for_each(|r| stop(&r.setup));
                }
            }
        }
        let mut done = Vec::new();
        for (name, r) in &jobs {
            if r.handle.is_done(worker) {
                done.push(name.clone());
            } else if let Some(e) = r.setup.output_failed() {
                shared
                    .registry
                    .set(name, JobState::Failed, Some(format!("output failed: {e}")));
                stop(&r.setup);
            }
        }
        for name in done {
            jobs.remove(&name);
            release(shared, &name, true);
        }
        if shutting_down && jobs.is_empty() {
            break;
        }
        worker.step_or_park(Some(Duration::from_millis(50)));
    }
}

fn stop(setup: &JobSetup) {
    setup.stop.store(true, Ordering::SeqCst);
    // A source may be asleep for its poll interval: wake it to stop.
    setup.poke.poke();
}

/// Installs a job in this worker, making its per-process setup if this is the
/// process's first worker to get there. `None` if the job cannot run here (the
/// reason is in the registry; every worker of the process agrees).
fn install(worker: &mut Worker, shared: &Shared, name: &str, toml: &str) -> Option<Running> {
    let setup = {
        let mut setups = shared.setups.lock().ok()?;
        let mut first = false;
        let slot = setups.entry(name.to_string()).or_insert_with(|| {
            first = true;
            SetupSlot {
                setup: prepare(shared, name, toml),
                seen: 0,
                running: 0,
                stopped: false,
            }
        });
        slot.seen += 1;
        match &slot.setup {
            Ok(_) => slot.running += 1,
            // Recorded before any other worker can release the slot.
            Err(e) if first => {
                tracing::error!("job {name:?} cannot run: {e}");
                shared.registry.set(name, JobState::Failed, Some(e.clone()));
            }
            Err(_) => {}
        }
        slot.setup.clone()
    };
    match setup {
        Ok(setup) => {
            // `install_job` does not fail once the setup is made.
            let handle = install_job(worker, &setup.job, setup.context(worker.index())).ok()?;
            Some(Running { handle, setup })
        }
        Err(_) => {
            release(shared, name, false);
            None
        }
    }
}

fn prepare(shared: &Shared, name: &str, toml: &str) -> Result<Arc<JobSetup>, String> {
    let job = (shared.validate)(toml)?;
    if job.name != name {
        return Err(format!("the job's name is {:?}, not {name:?}", job.name));
    }
    let make = shared.make_output.clone();
    let for_sinks = job.clone();
    let output: Option<crate::run::OutputFactory> = (shared.process == 0)
        .then(|| Box::new(move |start: &OutputStart| make(&for_sinks, start)) as _);
    let setup = JobSetup::prepare(
        &job,
        SetupOptions {
            follow: true,
            state_dir: Some(shared.state_dir.clone()),
            reset: None,
            checkpoint_interval: shared.checkpoint_interval,
            stats: shared.registry.stats_of(name),
            stop: Arc::new(AtomicBool::new(false)),
            first_worker: shared.first_worker,
            workers: shared.workers,
        },
        output,
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(
        "job {name:?} installed{}",
        if setup.resumed {
            ", resuming from its checkpoint"
        } else {
            ""
        }
    );
    Ok(Arc::new(setup))
}

/// A worker is done with a job (`ran`: it had it installed). Once every worker of
/// the process has seen it and none runs it, its setup is dropped (releasing the
/// state folder's lock); a stopped job's checkpoint is deleted, so submitting it
/// again starts afresh; a failed job stays listed until it is stopped.
fn release(shared: &Shared, name: &str, ran: bool) {
    let Ok(mut setups) = shared.setups.lock() else {
        return;
    };
    let done = match setups.get_mut(name) {
        Some(slot) => {
            if ran {
                slot.running = slot.running.saturating_sub(1);
            }
            slot.seen >= shared.workers && slot.running == 0
        }
        None => false,
    };
    if !done {
        return;
    }
    let Some(slot) = setups.remove(name) else {
        return;
    };
    drop(setups);
    let stopped = slot.stopped;
    drop(slot);
    if stopped {
        let dir = shared.state_dir.join(name);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(
                "job {name:?}: cannot delete its checkpoint {}: {e}",
                dir.display()
            );
        }
    }
    let failed = shared
        .registry
        .get(name)
        .is_some_and(|j| j.state == JobState::Failed);
    if failed && !stopped {
        shared.registry.released(name);
    } else {
        shared.registry.remove(name);
        tracing::info!("job {name:?} stopped");
    }
}

/// Marks a job stopped (not just shut down) in this process.
fn mark_stopped(shared: &Shared, name: &str) {
    if let Ok(mut setups) = shared.setups.lock() {
        if let Some(slot) = setups.get_mut(name) {
            slot.stopped = true;
        }
    }
}
