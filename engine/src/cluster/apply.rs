//! How a worker applies one sequenced [`Command`], and the state of each job it
//! keeps while doing so. Everything here changes only on sequenced commands (but
//! `running` and `let_go`), so it is the same on every worker.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use timely::synchronization::Sequencer;
use timely::worker::Worker;

use super::registry::JobState;
use super::shared::{
    forget_checkpoint, forget_in_registry, mark_stopped, prepare_slot, slot_setup, Shared,
};
use super::Command;
use crate::install::{install_job, JobHandle};
use crate::setup::JobSetup;
use crate::time::EventMs;

/// A job whose dataflow this worker installed.
pub(super) struct Running {
    pub(super) handle: JobHandle,
    pub(super) setup: Arc<JobSetup>,
}

/// A job as this worker knows it, from its `Install` until every member has
/// released it. Everything but `running` and `let_go` changes only on sequenced
/// commands, so it is the same on every worker.
#[derive(Default)]
pub(super) struct Active {
    /// One per member; all in means decided.
    pub(super) votes: BTreeMap<usize, Result<(), String>>,
    pub(super) running: Option<Running>,
    /// Its output is final (`Finished`), or it never ran.
    pub(super) finished: bool,
    /// This worker has let go of it.
    pub(super) let_go: bool,
    /// A `Stop` asked to forget it.
    pub(super) stop_requested: bool,
    pub(super) released: BTreeSet<usize>,
    // Worker 0's announcements.
    pub(super) announced: Option<EventMs>,
    pub(super) finish_sent: bool,
    pub(super) halt_sent: bool,
}

/// What applying a command may change: this worker's dataflows and jobs, and the
/// commands it sequences in answer.
pub(super) struct Apply<'a> {
    pub(super) worker: &'a mut Worker,
    pub(super) shared: &'a Shared,
    pub(super) seq: &'a mut Sequencer<Command>,
    pub(super) active: &'a mut BTreeMap<String, Active>,
    pub(super) shutting_down: &'a mut bool,
}

impl Apply<'_> {
    fn first(&self) -> bool {
        self.worker.index() == self.shared.first_worker
    }

    /// Applies one sequenced command; true on `Exit`.
    pub(super) fn apply(&mut self, cmd: Command) -> bool {
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
