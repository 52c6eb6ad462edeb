//! A cluster member's workers: each runs a loop that applies the sequenced
//! [`Command`]s — installing a job's dataflow, stopping it, shutting down — in the
//! same order on every worker of every member. Every decision that shapes the
//! dataflows (install or not, forget or not) is taken from sequenced commands
//! only, so all workers build the same dataflows in the same order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::synchronization::Sequencer;
use timely::worker::Worker;

use super::fd_budget::FdBudget;
use super::member::{MakeOutput, Validate};
use super::registry::{JobState, Registry};
use super::Command;
use crate::install::{install_job, JobHandle};
use crate::setup::{JobSetup, SetupOptions, StateRole};
use crate::start::OutputStart;
use crate::stats::MemberStats;
use crate::time::EventMs;

/// What a member's workers share.
pub(super) struct Shared {
    pub(super) first_worker: usize,
    pub(super) workers: usize,
    pub(super) process: usize,
    pub(super) processes: usize,
    pub(super) state_dir: PathBuf,
    pub(super) checkpoint_interval: Duration,
    pub(super) make_output: MakeOutput,
    pub(super) validate: Validate,
    pub(super) registry: Arc<Registry>,
    /// The member's cap on open files, reserved by each job it prepares.
    pub(super) fd_budget: Arc<FdBudget>,
    /// Commands from the control side, taken by this member's first worker.
    pub(super) feed: Mutex<Option<Receiver<Command>>>,
    /// Per job, this process's setup for it.
    pub(super) setups: Mutex<HashMap<String, SetupSlot>>,
    /// Jobs this process has let go of, to announce (by its first worker).
    pub(super) released: Mutex<Vec<String>>,
}

/// A job's setup in this process, shared by its workers: made by the process's
/// first worker when the install is sequenced (`None` if it cannot run here), and
/// dropped — releasing the job's state folder — once every worker has let go.
pub(super) struct SetupSlot {
    setup: Option<Arc<JobSetup>>,
    /// Workers of this process that have let go of the job.
    let_go: usize,
    /// A Stop (not a shutdown) was applied: the job is forgotten, checkpoint too.
    stopped: bool,
}

struct Running {
    handle: JobHandle,
    setup: Arc<JobSetup>,
}

/// A job as this worker knows it, from its `Install` until every member has
/// released it. Everything but `running` and `let_go` changes only on sequenced
/// commands, so it is the same on every worker.
#[derive(Default)]
struct Active {
    /// One per member; all in means decided.
    votes: BTreeMap<usize, Result<(), String>>,
    running: Option<Running>,
    /// Its output is final (`Finished`), or it never ran.
    finished: bool,
    /// This worker has let go of it.
    let_go: bool,
    /// A `Stop` asked to forget it.
    stop_requested: bool,
    released: BTreeSet<usize>,
    // Worker 0's announcements.
    announced: Option<EventMs>,
    finish_sent: bool,
    halt_sent: bool,
}

/// How often a member reports its jobs' stats to process 0.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How often, at most, a worker looks over all its jobs (announcements, letting
/// go), unless it just applied commands. The look is O(jobs), and a worker wakes
/// whenever any job's source does: looking on every wake made an idle member's
/// CPU grow with the square of its jobs.
const SCAN_EVERY: Duration = Duration::from_millis(20);

/// The dataflows installed in a worker, sorted: a job whose dataflow is not among
/// them is done here. Taken once per scan (timely lists them in a new Vec).
struct Installed(Vec<usize>);

impl Installed {
    fn of(worker: &Worker) -> Installed {
        let mut ids = worker.installed_dataflows();
        ids.sort_unstable();
        Installed(ids)
    }

    fn is_done(&self, handle: &JobHandle) -> bool {
        self.0.binary_search(&handle.dataflow).is_err()
    }
}

pub(super) fn member_loop(worker: &mut Worker, shared: &Shared) {
    let index = worker.index();
    let first = index == shared.first_worker;
    let feed = if first {
        shared.feed.lock().ok().and_then(|mut f| f.take())
    } else {
        None
    };
    if first {
        shared.registry.set_connected();
    }
    // Every member creates its sequencer here, just after all of them connected,
    // so their clocks (which order the commands) start within moments of each other.
    let mut seq: Sequencer<Command> = Sequencer::new(worker, Instant::now());
    let mut active: BTreeMap<String, Active> = BTreeMap::new();
    let mut shutting_down = false;
    let mut exit = false;
    let mut exit_sent = false;
    let mut last_report = Instant::now();
    let mut last_scan: Option<Instant> = None;
    let mut applied = false;
    loop {
        let scan = applied || last_scan.is_none_or(|t| t.elapsed() >= SCAN_EVERY);
        if scan {
            last_scan = Some(Instant::now());
        }
        if let Some(feed) = &feed {
            while let Ok(c) = feed.try_recv() {
                seq.push(c);
            }
        }
        if first {
            let released = shared
                .released
                .lock()
                .map(|mut r| std::mem::take(&mut *r))
                .unwrap_or_default();
            for name in released {
                seq.push(Command::Released {
                    name,
                    process: shared.process,
                });
            }
            if shared.process != 0 && last_report.elapsed() >= REPORT_EVERY {
                seq.push(Command::Report {
                    process: shared.process,
                    jobs: member_stats(shared),
                });
                last_report = Instant::now();
            }
        }
        if index == 0 {
            if scan {
                announce(&Installed::of(worker), shared, &mut seq, &mut active);
            }
            if shutting_down && active.is_empty() && !exit_sent {
                seq.push(Command::Exit);
                exit_sent = true;
            }
        }
        let commands: Vec<Command> = seq.by_ref().collect();
        applied = !commands.is_empty();
        for cmd in commands {
            let mut ctx = Apply {
                worker: &mut *worker,
                shared,
                seq: &mut seq,
                active: &mut active,
                shutting_down: &mut shutting_down,
            };
            if ctx.apply(cmd) {
                exit = true;
            }
        }
        if scan || applied {
            let installed = Installed::of(worker);
            for (name, a) in active.iter_mut() {
                let done_here = a
                    .running
                    .as_ref()
                    .is_none_or(|r| installed.is_done(&r.handle));
                if !a.let_go && a.finished && done_here {
                    a.let_go = true;
                    a.running = None;
                    let_go(shared, name);
                }
            }
        }
        if exit {
            break;
        }
        worker.step_or_park(Some(Duration::from_millis(50)));
    }
}

/// Worker 0: tells every member what process 0 committed and when a job's output
/// is final, and stops a job whose sink failed everywhere.
fn announce(
    installed: &Installed,
    shared: &Shared,
    seq: &mut Sequencer<Command>,
    active: &mut BTreeMap<String, Active>,
) {
    for (name, a) in active.iter_mut() {
        let Some(r) = &a.running else { continue };
        if !a.halt_sent {
            if let Some(e) = r.setup.output_failed() {
                // Said in the log too, not only in `job status`. The reason may hold
                // a file name: `?` escapes a newline in it, which cannot forge a line.
                tracing::error!(
                    "job {name:?} failed and stops: output failed: {e:?}; \
                     `tidemark job stop {name}` then submit it again once fixed"
                );
                shared
                    .registry
                    .set(name, JobState::Failed, Some(format!("output failed: {e}")));
                seq.push(Command::Halt { name: name.clone() });
                a.halt_sent = true;
            }
        }
        let committed = r.setup.board.committed();
        if shared.processes > 1 && committed > EventMs::MIN && a.announced < Some(committed) {
            seq.push(Command::Committed {
                name: name.clone(),
                frontier_ms: committed,
            });
            a.announced = Some(committed);
        }
        // After the last Committed: the dataflow is complete, so was its last commit.
        if !a.finish_sent && installed.is_done(&r.handle) {
            seq.push(Command::Finished { name: name.clone() });
            a.finish_sent = true;
        }
    }
}

struct Apply<'a> {
    worker: &'a mut Worker,
    shared: &'a Shared,
    seq: &'a mut Sequencer<Command>,
    active: &'a mut BTreeMap<String, Active>,
    shutting_down: &'a mut bool,
}

impl Apply<'_> {
    fn first(&self) -> bool {
        self.worker.index() == self.shared.first_worker
    }

    /// Applies one sequenced command; true on `Exit`.
    fn apply(&mut self, cmd: Command) -> bool {
        let shared = self.shared;
        match cmd {
            Command::Install {
                name,
                toml,
                committed,
            } => {
                if *self.shutting_down || self.active.contains_key(&name) {
                    return false;
                }
                self.active.insert(name.clone(), Active::default());
                if self.first() {
                    let result = prepare_slot(shared, &name, &toml, committed);
                    self.seq.push(Command::Prepared {
                        name,
                        process: shared.process,
                        result,
                    });
                }
            }
            Command::Prepared {
                name,
                process,
                result,
            } => self.vote(name, process, result),
            Command::Stop { name } => {
                let stopped_here = mark_stopped(shared, &name);
                if let Some(a) = self.active.get_mut(&name) {
                    a.stop_requested = true;
                }
                self.stop_first_in_process_0(&name);
                if !stopped_here && self.first() {
                    // Not held here (failed, or already let go): forget it now.
                    forget_checkpoint(shared, &name);
                }
                if self.worker.index() == 0 && !self.active.contains_key(&name) {
                    // A failed job no worker held: forgotten everywhere that applied
                    // this Stop before any later Install of the name.
                    shared.registry.remove(&name);
                }
            }
            Command::Halt { name } => self.stop_first_in_process_0(&name),
            Command::StopSources { name } => {
                if shared.process != 0 {
                    if let Some(r) = self.active.get(&name).and_then(|a| a.running.as_ref()) {
                        stop(&r.setup);
                    }
                }
            }
            Command::Committed { name, frontier_ms } => {
                if shared.process != 0 && self.first() {
                    if let Some(setup) = slot_setup(shared, &name) {
                        if let Err(e) = setup.write_member_checkpoint(frontier_ms) {
                            tracing::warn!(
                                "job {name:?}: cannot save this member's read positions: {e}; a restart re-reads from the previous ones"
                            );
                        }
                    }
                }
            }
            Command::Finished { name } => {
                if let Some(a) = self.active.get_mut(&name) {
                    a.finished = true;
                }
            }
            Command::Released { name, process } => {
                let Some(a) = self.active.get_mut(&name) else {
                    return false;
                };
                a.released.insert(process);
                if a.released.len() >= shared.processes {
                    let stop_requested = a.stop_requested;
                    self.active.remove(&name);
                    if self.worker.index() == 0 {
                        forget_in_registry(shared, &name, stop_requested);
                    }
                }
            }
            Command::Report { process, jobs } => {
                if self.worker.index() == 0 {
                    shared.registry.member_report(process, jobs);
                }
            }
            Command::Shutdown => {
                *self.shutting_down = true;
                let running: Vec<String> = self
                    .active
                    .iter()
                    .filter(|(_, a)| a.running.is_some())
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in running {
                    self.stop_first_in_process_0(&name);
                }
            }
            Command::Exit => return true,
        }
        false
    }

    /// Stops a running job in two steps. Process 0 stops first, and only then
    /// (`StopSources`, sequenced after this) the other members. Process 0's collector
    /// must know the job is stopping before any member's sources end: it would
    /// otherwise take their ending for progress, write windows still missing their
    /// lines, and commit past them.
    fn stop_first_in_process_0(&mut self, name: &str) {
        let Some(r) = self.active.get(name).and_then(|a| a.running.as_ref()) else {
            return;
        };
        if self.shared.process == 0 {
            stop(&r.setup);
        }
        if self.worker.index() == 0 && self.shared.processes > 1 {
            self.seq.push(Command::StopSources {
                name: name.to_string(),
            });
        }
    }

    /// Records a member's vote; once every member has voted, every worker installs
    /// the job — or, if any member cannot run it, none does.
    fn vote(&mut self, name: String, process: usize, result: Result<(), String>) {
        let shared = self.shared;
        let Some(a) = self.active.get_mut(&name) else {
            return;
        };
        if a.votes.len() >= shared.processes {
            return; // decided already
        }
        a.votes.insert(process, result);
        if a.votes.len() < shared.processes {
            return;
        }
        let failures: Vec<String> = a
            .votes
            .iter()
            .filter_map(|(p, r)| r.as_ref().err().map(|e| (p, e)))
            .map(|(p, e)| {
                if shared.processes > 1 {
                    format!("member {p}: {e}")
                } else {
                    e.clone()
                }
            })
            .collect();
        let refused = if !failures.is_empty() {
            Some(failures.join("; "))
        } else if a.stop_requested {
            Some("stopped before it started".to_string())
        } else if *self.shutting_down {
            Some("the cluster is shutting down".to_string())
        } else {
            None
        };
        let setup = slot_setup(shared, &name);
        match (refused, setup) {
            (None, Some(setup)) => {
                // `install_job` does not fail once the setup is made.
                match install_job(self.worker, &setup.job, setup.context(self.worker.index())) {
                    Ok(handle) => a.running = Some(Running { handle, setup }),
                    Err(e) => {
                        tracing::error!("job {name:?}: {e}");
                        a.finished = true;
                    }
                }
            }
            (refused, _) => {
                let why = refused.unwrap_or_else(|| "its setup is missing".into());
                if self.worker.index() == 0 && !failures.is_empty() {
                    tracing::error!("job {name:?} cannot run: {why}");
                    shared.registry.set(&name, JobState::Failed, Some(why));
                }
                a.finished = true;
            }
        }
    }
}

fn stop(setup: &JobSetup) {
    setup.stop.store(true, Ordering::SeqCst);
    // A source may be asleep for its poll interval: wake it to stop.
    setup.poke.poke();
}

/// Makes this process's setup for a job; its outcome is this member's vote.
fn prepare_slot(
    shared: &Shared,
    name: &str,
    toml: &str,
    committed: Option<EventMs>,
) -> Result<(), String> {
    let made = prepare(shared, name, toml, committed);
    let vote = match &made {
        Ok(_) => Ok(()),
        Err(e) => {
            // It will hold no file here (process 0 reserved at submit).
            shared.fd_budget.release(name);
            tracing::error!("job {name:?} cannot run on this member: {e}");
            Err(e.clone())
        }
    };
    if let Ok(mut setups) = shared.setups.lock() {
        setups.insert(
            name.to_string(),
            SetupSlot {
                setup: made.ok(),
                let_go: 0,
                stopped: false,
            },
        );
    }
    vote
}

fn slot_setup(shared: &Shared, name: &str) -> Option<Arc<JobSetup>> {
    shared.setups.lock().ok()?.get(name)?.setup.clone()
}

fn prepare(
    shared: &Shared,
    name: &str,
    toml: &str,
    committed: Option<EventMs>,
) -> Result<Arc<JobSetup>, String> {
    let mut job = (shared.validate)(toml)?;
    if job.name != name {
        return Err(format!("the job's name is {:?}, not {name:?}", job.name));
    }
    // Every worker keeps a file open to read at all: that much is reserved even
    // for a job asking less.
    let requested = job.source.max_open_files;
    let granted = shared
        .fd_budget
        .reserve(name, requested, shared.workers)
        .map_err(|e| e.to_string())?;
    job.source.max_open_files = granted.min(requested);
    if job.source.max_open_files < requested {
        let (cap, held) = shared.fd_budget.figures();
        tracing::info!(
            "job {name:?}: max_open_files {requested} lowered to {}, what other jobs leave \
             of this member's cap of {cap} (--max-open-files; {held} reserved now)",
            job.source.max_open_files
        );
    }
    shared.registry.set_job(name, Arc::new(job.clone()));
    let make = shared.make_output.clone();
    let for_sinks = job.clone();
    let output: Option<crate::start::OutputFactory> = (shared.process == 0)
        .then(|| Box::new(move |start: &OutputStart| Ok(make(&for_sinks, start)?)) as _);
    let role = if shared.process == 0 {
        StateRole::Owner {
            expect: Some(committed),
        }
    } else {
        StateRole::Member { committed }
    };
    let setup = JobSetup::prepare(
        &job,
        SetupOptions {
            follow: true,
            state_dir: Some(shared.state_dir.clone()),
            reset: None,
            checkpoint_interval: shared.checkpoint_interval,
            stats: shared.registry.stats_of(name),
            stop: Arc::new(AtomicBool::new(false)),
            // Submitted as text: the kept copy is in the protected state folder.
            job_file: None,
            cluster_state: shared.state_dir.parent().map(PathBuf::from),
            first_worker: shared.first_worker,
            workers: shared.workers,
            role,
        },
        output,
    )
    .map_err(|e| crate::error::full_message(&e))?;
    tracing::info!(
        "job {name:?} ready{}",
        if setup.resumed {
            ", resuming from its checkpoint"
        } else {
            ""
        }
    );
    Ok(Arc::new(setup))
}

/// This worker has let go of a job. Once every worker of the process has, its
/// setup is dropped (releasing the state folder's lock), a stopped job's
/// checkpoint is deleted, and the process announces the release.
fn let_go(shared: &Shared, name: &str) {
    let Ok(mut setups) = shared.setups.lock() else {
        return;
    };
    let Some(slot) = setups.get_mut(name) else {
        return;
    };
    slot.let_go += 1;
    if slot.let_go < shared.workers {
        return;
    }
    let Some(slot) = setups.remove(name) else {
        return;
    };
    drop(setups);
    let stopped = slot.stopped;
    drop(slot);
    // No worker here reads the job's files any more.
    shared.fd_budget.release(name);
    if stopped {
        forget_checkpoint(shared, name);
    }
    if let Ok(mut r) = shared.released.lock() {
        r.push(name.to_string());
    }
}

fn forget_checkpoint(shared: &Shared, name: &str) {
    let dir = shared.state_dir.join(name);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "job {name:?}: cannot delete its checkpoint {}: {e}",
            dir.display()
        ),
    }
}

/// Every member has released a job: a stopped one (or one ended by a shutdown) is
/// forgotten; a failed one stays listed, with its error, until it is stopped.
fn forget_in_registry(shared: &Shared, name: &str, stop_requested: bool) {
    let failed = shared
        .registry
        .get(name)
        .is_some_and(|j| j.state == JobState::Failed);
    if failed && !stop_requested {
        // Kept listed, with its error, until it is stopped.
    } else {
        shared.registry.remove(name);
        tracing::info!("job {name:?} stopped");
    }
}

/// Marks a job stopped (not just shut down) in this process; false if this
/// process holds no setup for it.
fn mark_stopped(shared: &Shared, name: &str) -> bool {
    shared
        .setups
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(name).map(|slot| slot.stopped = true))
        .is_some()
}

/// This member's stats for the jobs it holds.
fn member_stats(shared: &Shared) -> Vec<(String, MemberStats)> {
    let Ok(setups) = shared.setups.lock() else {
        return Vec::new();
    };
    setups
        .iter()
        .filter_map(|(name, slot)| {
            let stats = slot.setup.as_ref()?.stats.lock().ok()?;
            Some((name.clone(), MemberStats::from(&*stats)))
        })
        .collect()
}
