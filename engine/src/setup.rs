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

use crate::checkpoint::{Checkpoint, CheckpointStore, ResetChoice};
use crate::commit::{group_checkpoints, unix_ms_now, Committer};
use crate::groupset::{balance, initial_groups};
use crate::install::{EngineError, InstallContext, ResumePlan, StartAt};
use crate::operators::collect::{Collector, OutputError};
use crate::operators::source::{Poke, PokeBoard};
use crate::resume::ResumeBoard;
use crate::run::{format_ms, lock_state, prepare_state, resume_groups, OutputFactory, OutputStart};
use crate::stats::{JobStats, SharedStats};
use crate::time::EventMs;
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
    /// Whose checkpoint this process keeps.
    pub role: StateRole,
}

/// Whose checkpoint a process keeps for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRole {
    /// `tidemark run`, or process 0 of a cluster: it writes the sinks and the
    /// checkpoint, and resumes from its own. In a cluster, `expect` is the frontier
    /// the control side read before sequencing the install (`Some(None)`: no
    /// checkpoint); the checkpoint must still say so.
    Owner { expect: Option<Option<EventMs>> },
    /// Another cluster member: it keeps only its own groups' read positions, each
    /// written for a frontier process 0 had already committed, so they never run
    /// ahead of the sinks. `committed` is process 0's frontier at install: windows
    /// below it are in the sinks already.
    Member { committed: Option<EventMs> },
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
    /// A member's own read positions (not process 0's checkpoint).
    member_store: Option<Mutex<CheckpointStore>>,
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
        let mut member_store = None;
        let (store, plan, start) = match (&opts.state_dir, opts.role) {
            (None, _) => (None, ResumePlan::default(), OutputStart::Fresh),
            (Some(dir), StateRole::Owner { expect }) => {
                let state = prepare_state(&dir.join(&job.name), job, opts.reset)?;
                let found = matches!(state.2, OutputStart::Resume(_)).then_some(state.1.skip_below);
                if let Some(expect) = expect.filter(|&e| e != found) {
                    return Err(EngineError::Checkpoint(format!(
                        "job {:?}: its checkpoint changed while it was being installed (frontier {} instead of {}); submit it again",
                        job.name,
                        found.map_or("none".into(), format_ms),
                        expect.map_or("none".into(), format_ms),
                    )));
                }
                state
            }
            (Some(dir), StateRole::Member { committed }) => {
                let (store, plan) = prepare_member_state(&dir.join(&job.name), job, committed)?;
                member_store = Some(Mutex::new(store));
                (None, plan, OutputStart::Fresh)
            }
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
            member_store,
            _lock: lock,
            _watcher: watcher,
        })
    }

    /// A member other than process 0 records its groups' read positions for a
    /// frontier process 0 has committed. `Ok(false)`: nothing written (not a member,
    /// or some group has not published yet; the previous positions stay, which is
    /// safe: they are for an earlier committed frontier).
    pub fn write_member_checkpoint(&self, frontier_ms: EventMs) -> Result<bool, String> {
        let Some(store) = &self.member_store else {
            return Ok(false);
        };
        if frontier_ms <= self.board.committed() || !self.board.ready() {
            return Ok(false);
        }
        let cp = Checkpoint {
            job: self.job.name.clone(),
            frontier_ms,
            sinks: Vec::new(),
            groups: group_checkpoints(&self.board, frontier_ms),
            written_unix_ms: unix_ms_now(),
        };
        store
            .lock()
            .map_err(|_| "the checkpoint store is poisoned".to_string())?
            .save(&cp)
            .map_err(|e| e.to_string())?;
        // Only now may the sources forget the marks below it.
        self.board.set_committed(frontier_ms);
        if let Ok(mut s) = self.stats.lock() {
            s.checkpoints_written += 1;
        }
        Ok(true)
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

/// A member's resume plan: its own read positions if they are for a frontier at or
/// below process 0's, else (none, lost, or ahead of the sinks) its files from the
/// start. Either way windows below process 0's frontier are not sent again.
fn prepare_member_state(
    dir: &std::path::Path,
    job: &Job,
    committed: Option<EventMs>,
) -> Result<(CheckpointStore, ResumePlan), EngineError> {
    let ck = |e: crate::checkpoint::CheckpointError| EngineError::Checkpoint(e.to_string());
    let mut store = CheckpointStore::open(dir, &job.name).map_err(ck)?;
    let from_start = ResumePlan {
        skip_below: committed.unwrap_or(EventMs::MIN),
        start_at: StartAt::Beginning,
        checkpointing: true,
        ..ResumePlan::default()
    };
    let loaded = match store.load() {
        Ok(cp) => cp,
        Err(e) => {
            tracing::warn!(
                "job {:?}: {e} This member re-reads its files from the start instead; windows already written are not written again",
                job.name
            );
            store.reset().map_err(ck)?;
            None
        }
    };
    let plan = match (loaded, committed) {
        (Some(cp), Some(f0)) if cp.frontier_ms <= f0 => {
            tracing::info!(
                "job {:?}: resuming this member's files from windows before {}",
                job.name,
                format_ms(cp.frontier_ms)
            );
            ResumePlan {
                groups: resume_groups(cp.groups),
                ..from_start
            }
        }
        (Some(cp), committed) => {
            tracing::warn!(
                "job {:?}: this member's read positions (windows before {}) are ahead of what process 0 has written ({}); re-reading its files from the start",
                job.name,
                format_ms(cp.frontier_ms),
                committed.map_or("nothing".into(), format_ms)
            );
            store.reset().map_err(ck)?;
            from_start
        }
        (None, _) => from_start,
    };
    Ok((store, plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::GroupCheckpoint;
    use std::path::Path;

    fn job() -> Job {
        let text = r#"
name = "j"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "all:reqs"
expr = "sum(reqs)"
"#;
        tidemark_jobs::from_str(text, "j.toml", Path::new("/")).unwrap()
    }

    /// Saves a member checkpoint for `frontier_ms` with one group.
    fn saved(dir: &Path, frontier_ms: EventMs) {
        let mut store = CheckpointStore::open(dir, "j").unwrap();
        store
            .save(&Checkpoint {
                job: "j".into(),
                frontier_ms,
                sinks: Vec::new(),
                groups: vec![GroupCheckpoint {
                    live: "/nowhere/a.log".into(),
                    resume: None,
                    max_seen_ms: Some(frontier_ms + 5),
                    floor_ms: None,
                    suspect_ms: None,
                }],
                written_unix_ms: 0,
            })
            .unwrap();
    }

    #[test]
    fn a_member_resumes_from_positions_at_or_below_process_0s_frontier() {
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 60_000);
        for committed in [60_000, 180_000] {
            let (_, plan) = prepare_member_state(d.path(), &job(), Some(committed)).unwrap();
            assert_eq!(plan.groups.len(), 1);
            // Windows below process 0's frontier are in the sinks: skipped.
            assert_eq!(plan.skip_below, committed);
        }
    }

    #[test]
    fn a_member_never_resumes_from_positions_ahead_of_the_sinks() {
        // Positions for 3 minutes, sinks only at 2: resuming from them would lose
        // the lines of 10:02–10:03; so this member reads from the start.
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 180_000);
        let (store, plan) = prepare_member_state(d.path(), &job(), Some(120_000)).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, 120_000);
        assert_eq!(store.load().unwrap(), None, "the stale positions are gone");
        // Nothing committed by process 0 (its state was lost or is new): same.
        saved(d.path(), 60_000);
        let (_, plan) = prepare_member_state(d.path(), &job(), None).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, EventMs::MIN);
    }

    #[test]
    fn a_member_with_damaged_positions_reads_from_the_start() {
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 60_000);
        std::fs::write(d.path().join(crate::checkpoint::CHECKPOINT_FILE), b"junk").unwrap();
        let (_, plan) = prepare_member_state(d.path(), &job(), Some(60_000)).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, 60_000);
    }
}
