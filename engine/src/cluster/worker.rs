//! A cluster member's workers: each runs a loop that applies the sequenced
//! [`Command`]s — installing a job's dataflow, stopping it, shutting down — in the
//! same order on every worker of every member. Every decision that shapes the
//! dataflows (install or not, forget or not) is taken from sequenced commands
//! only, so all workers build the same dataflows in the same order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use timely::synchronization::Sequencer;
use timely::worker::Worker;

use super::apply::{Active, Apply};
use super::registry::JobState;
use super::shared::{let_go, member_stats, Shared};
use super::Command;
use crate::install::JobHandle;
use crate::time::EventMs;

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
            if let Some(e) = r.setup.failure_text() {
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
