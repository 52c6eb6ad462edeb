//! What a member's workers share, and the job setups of this process they make
//! and release together: the first worker makes a job's setup when its install is
//! sequenced, and the last worker to let go of it drops it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fd_budget::FdBudget;
use super::options::{MakeOutput, Validate};
use super::registry::{JobState, Registry};
use super::Command;
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

/// Makes this process's setup for a job; its outcome is this member's vote.
pub(super) fn prepare_slot(
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

pub(super) fn slot_setup(shared: &Shared, name: &str) -> Option<Arc<JobSetup>> {
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
        .then(|| Box::new(move |start: &OutputStart| make(&for_sinks, start)) as _);
    let role = if shared.process == 0 {
        StateRole::Owner {
            expect: Some(committed),
        }
    } else {
        StateRole::Member { committed }
    };
    // The cluster serves /metrics (process 0) with every member's groups, which
    // the members report from these stats.
    let stats = shared.registry.stats_of(name).unwrap_or_default();
    if let Ok(mut s) = stats.lock() {
        s.groups_wanted = true;
    }
    let setup = JobSetup::prepare(
        &job,
        SetupOptions {
            follow: true,
            state_dir: Some(shared.state_dir.clone()),
            reset: None,
            checkpoint_interval: shared.checkpoint_interval,
            stats: Some(stats),
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
pub(super) fn let_go(shared: &Shared, name: &str) {
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

pub(super) fn forget_checkpoint(shared: &Shared, name: &str) {
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
pub(super) fn forget_in_registry(shared: &Shared, name: &str, stop_requested: bool) {
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
pub(super) fn mark_stopped(shared: &Shared, name: &str) -> bool {
    shared
        .setups
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(name).map(|slot| slot.stopped = true))
        .is_some()
}

/// This member's stats for the jobs it holds.
pub(super) fn member_stats(shared: &Shared) -> Vec<(String, MemberStats)> {
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
