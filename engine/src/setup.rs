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

use crate::backpressure::ReadGate;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, ResetChoice};
use crate::commit::{group_checkpoints, groups_of, Committer};
use crate::error::EngineError;
use crate::error::FailureSlot;
use crate::groupset::{balance, initial_discovery};
use crate::install::InstallContext;
use crate::operators::collect::Collector;
use crate::operators::source::{Poke, PokeBoard};
use crate::output_guard::Protected;
use crate::resume::ResumeBoard;
use crate::split::SplitPlan;
use crate::start::{OutputFactory, OutputStart, ResumePlan, StartAt};
use crate::state::{lock_state, prepare_member_state, prepare_state};
use crate::stats::{JobStats, SharedStats};
use crate::time::{wall_clock_ms, EventMs};
use crate::watcher::JobWatcher;

/// Where a cluster's jobs write by default, inside its state folder.
pub const CLUSTER_OUTPUT_DIR: &str = "output";

/// How a job starts in this process.
pub struct SetupOptions {
    /// Follow live files (live mode) rather than finish at end of input.
    pub follow: bool,
    /// Checkpoints go to `STATE_DIR/JOB_NAME/`; `None` runs without them.
    pub state_dir: Option<PathBuf>,
    /// What to do instead of resuming (`--reset-checkpoint`).
    pub reset: Option<ResetChoice>,
    /// How often, at most, a checkpoint is written.
    pub checkpoint_interval: Duration,
    /// The caller's self-metrics to count into (to watch them live); `None`: new ones.
    pub stats: Option<SharedStats>,
    /// Set to stop the job cleanly.
    pub stop: Arc<AtomicBool>,
    /// The job file, if the job came from one: no sink may write over it.
    pub job_file: Option<PathBuf>,
    /// A cluster's state folder (the job's own is inside it): no sink may write
    /// under it — kept jobs, the member's identity, the API token, checkpoints —
    /// except in the job's output roots or the default `output/` there.
    pub cluster_state: Option<PathBuf>,
    /// This process's workers: global indices `first_worker..first_worker + workers`.
    pub first_worker: usize,
    /// How many workers this process runs (0 counts as 1).
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

/// A job prepared in one process ([`JobSetup::prepare`]): what its workers share.
/// Each worker installs the job with [`JobSetup::context`].
pub struct JobSetup {
    /// The validated job.
    pub job: Arc<Job>,
    /// Where each group resumes, and the windows already written.
    pub resume: Arc<ResumePlan>,
    /// Every group's resume marks, published by the sources for checkpoints.
    pub board: Arc<ResumeBoard>,
    /// The job's self-metrics in this process.
    pub stats: SharedStats,
    /// Set to stop the job cleanly.
    pub stop: Arc<AtomicBool>,
    /// Why the job failed while it ran, once an operator says so.
    pub output_error: FailureSlot,
    /// Wakes the job's sources (from the directory watcher, or to stop).
    pub poke: Poke,
    /// Pauses the job's sources while one of its sinks here is backlogged.
    pub read_gate: Arc<ReadGate>,
    /// Follow live files rather than finish at end of input.
    pub follow: bool,
    /// Whether the job resumed from a checkpoint.
    pub resumed: bool,
    initial: Arc<Vec<(FileGroup, usize)>>,
    /// The groups this process's workers read as segments.
    split: Arc<SplitPlan>,
    /// Which group reads each file, and discovery, shared by this process's workers.
    files: Arc<crate::groupset::ProcessFiles>,
    /// Worker 0's (global) output side; taken by the first [`JobSetup::context`] for it.
    collector: Mutex<Option<Collector>>,
    /// Where the input ends (`--until-eof`): raised by the sources.
    input_end: Arc<crate::input_end::InputEnd>,
    /// Each worker's slowest group, so the workers read in step by event time.
    pace: Arc<crate::pacing::PaceBoard>,
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
            Some(dir) => Some(lock_state(&dir.join(&job.name)).map_err(EngineError::StateLock)?),
        };
        let mut member_store = None;
        let (store, plan, start) = match (&opts.state_dir, opts.role) {
            (None, _) => (None, ResumePlan::default(), OutputStart::Fresh),
            (Some(dir), StateRole::Owner { expect }) => {
                let state = prepare_state(&dir.join(&job.name), job, opts.reset)
                    .map_err(EngineError::Checkpoint)?;
                let found =
                    matches!(state.2, OutputStart::Resume { .. }).then_some(state.1.skip_below);
                if let Some(expect) = expect.filter(|&e| e != found) {
                    return Err(EngineError::CheckpointMoved {
                        job: job.name.clone(),
                        found,
                        expected: expect,
                    });
                }
                state
            }
            (Some(dir), StateRole::Member { committed }) => {
                let (store, plan) = prepare_member_state(&dir.join(&job.name), job, committed)
                    .map_err(EngineError::Checkpoint)?;
                member_store = Some(Mutex::new(store));
                (None, plan, OutputStart::Fresh)
            }
        };
        let resumed = matches!(start, OutputStart::Resume { .. });
        if let Some(k) = &plan.kafka {
            // Streams not read again yet keep their checkpointed resume points.
            board.kafka.restore(k);
        }
        if plan.limited_windows > 0 {
            if let Ok(mut s) = stats.lock() {
                s.series_limited_windows += plan.limited_windows;
                s.limited_windows = crate::limit::LimitedWindows::resumed(plan.limited_windows);
            }
        }
        let (mut groups, start_report) = initial_discovery(job, &plan)?;
        if make_output.is_some() {
            // Before any sink is opened: a sink path that is one of the job's
            // inputs, its job file or its state would be destroyed by the open.
            let mut protected =
                Protected::of_run(opts.job_file.as_deref(), opts.state_dir.as_deref());
            protected.inputs(job, &groups);
            if let Some(state) = &opts.cluster_state {
                let mut outputs = job.output_roots.clone();
                outputs.push(state.join(CLUSTER_OUTPUT_DIR));
                protected.folder_except(state, "the cluster's state folder", &outputs);
            }
            // `tidemark run` checked the job file and the state folder before
            // starting (exit 2); the inputs are checked only here, with the
            // groups this run will read, and all of it for a cluster's jobs.
            protected.check(job).map_err(EngineError::SinkPath)?;
        }
        let workers = opts.workers.max(1);
        // Only where no checkpoint must keep a group's resume position, the input
        // is what is there now, and one rate limit paces every read (crate::split).
        let splittable = !opts.follow
            && opts.state_dir.is_none()
            && job.source.rate_limit.is_none()
            && matches!(opts.role, StateRole::Owner { .. });
        let (split, split_groups) = if splittable {
            SplitPlan::take(job, &mut groups, workers)
        } else {
            (SplitPlan::default(), Vec::new())
        };
        if let Ok(mut s) = stats.lock() {
            s.file_groups += split_groups.len() as u64;
            s.files_discovered += split_groups
                .iter()
                .map(|g| 1 + g.rotated.len() as u64)
                .sum::<u64>();
        }
        let owners = balance(&groups, workers)
            .into_iter()
            .map(|w| opts.first_worker + w);
        // A split group has no owner among the workers' file groups (no worker
        // reads it as one) but is known to discovery, which must not add it again.
        let split_owned = split_groups.into_iter().map(|g| (g, usize::MAX));
        let initial = Arc::new(
            groups
                .into_iter()
                .zip(owners)
                .chain(split_owned)
                .collect::<Vec<_>>(),
        );
        board.expect(initial.iter().map(|(g, _)| g.live.clone()));
        if initial.is_empty() && job.source.kafka.is_none() {
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
        let input_end = Arc::new(crate::input_end::InputEnd::default());
        if let Ok(mut s) = stats.lock() {
            s.metric_names = job.metrics.iter().map(|m| m.name.clone()).collect();
        }
        let mut read_gate = ReadGate::open();
        let collector = match make_output {
            Some(make) => {
                let mut output = make(&start).map_err(EngineError::OpenOutput)?;
                output.watch_stop(&opts.stop);
                read_gate = ReadGate::new(output.meters());
                if let Ok(mut s) = stats.lock() {
                    s.sinks = output.describe();
                    s.sink_meters = output.meters();
                }
                // Alerts continue from the checkpoint's state (windows below its
                // frontier are not handed over again), or start fresh.
                let alerts = crate::alerts::AlertEvaluator::for_job(job).map(|mut e| {
                    if resumed {
                        e.restore(plan.alerts.as_ref(), plan.skip_below);
                    }
                    e
                });
                // What fires after the restored windows goes to the sinks now
                // (no change: a transcript writes nothing), so that Alertmanager
                // hears it again before it expires it, not only once the first
                // window of this run closes.
                if let Some(u) = alerts.as_ref().and_then(|e| e.firing_update()) {
                    output
                        .write_alerts(&u)
                        .map_err(|e| EngineError::OpenOutput(Box::new(e)))?;
                }
                let mut committer = store.map(|s| {
                    Committer::new(
                        s,
                        board.clone(),
                        &job.name,
                        opts.checkpoint_interval,
                        plan.skip_below,
                        stats.clone(),
                    )
                });
                // From here on the outputs are named by a checkpoint, whatever
                // happens next; after `--reset-checkpoint=end` it also says the
                // files start at their end (their positions are known only once
                // read), so a crash before the next checkpoint does not make the
                // restart refuse the kept output or read every file into it.
                if let Some(c) = &mut committer {
                    c.record_start(
                        &mut output,
                        groups_of(&plan.groups),
                        plan.start_at == StartAt::End,
                        alerts.as_ref().map(crate::alerts::AlertEvaluator::save),
                    )
                    .map_err(EngineError::StartCheckpoint)?;
                }
                Some(Collector {
                    output,
                    committer,
                    alerts,
                    input_end: input_end.clone(),
                    print_from: EventMs::MIN,
                })
            }
            None => None,
        };
        let files = crate::groupset::ProcessFiles::new(job.source.fingerprint_bytes);
        files.keep_start_report(start_report);
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
            read_gate,
            follow: opts.follow,
            resumed,
            initial,
            split: Arc::new(split),
            files,
            collector: Mutex::new(collector),
            input_end,
            pace: crate::pacing::PaceBoard::new(workers),
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
    pub fn write_member_checkpoint(&self, frontier_ms: EventMs) -> Result<bool, CheckpointError> {
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
            written_unix_ms: wall_clock_ms(),
            semantics: None, // stamped by the store
            start_at_end: false,
            // Process 0's checkpoint keeps the count: only it sees whole windows.
            limited_windows: 0,
            alerts: None,
            // This member's partitions: without them a restart reads them again
            // from their first kept record (exact, but slower).
            kafka: (!self.board.kafka.is_empty()).then(|| self.board.kafka.checkpoint(frontier_ms)),
        };
        // A panic in another save cannot have left a half-written checkpoint (a
        // save replaces the file by rename), so the store stays usable.
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .save(&cp)?;
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
            files: self.files.clone(),
            input_end: self.input_end.clone(),
            pace: self.pace.clone(),
            publish_groups: self.stats.lock().is_ok_and(|s| s.groups_wanted),
            read_gate: self.read_gate.clone(),
            split: self.split.clone(),
        }
    }

    /// The sinks' error, if one failed.
    /// Whether the job failed while it ran (see [`FailureSlot`]).
    pub fn has_failed(&self) -> bool {
        self.output_error
            .lock()
            .map(|e| e.is_some())
            .unwrap_or(false)
    }

    /// Takes the reason the job failed while it ran, if it did.
    pub fn take_failure(&self) -> Option<crate::error::JobFailure> {
        self.output_error.lock().ok().and_then(|mut e| e.take())
    }

    /// The reason the job failed, with its causes, as a job's status shows it.
    pub fn failure_text(&self) -> Option<String> {
        let slot = self.output_error.lock().ok()?;
        slot.as_ref().map(|e| crate::error::full_message(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_jobs::nowhere_nginx as job;
    use std::path::Path;

    /// A sink that says it wrote file (1, 2), for the checkpoint to record.
    struct Named;

    impl crate::sink::Sink for Named {
        fn describe(&self) -> String {
            "named".to_string()
        }
        fn write_window(
            &mut self,
            _: &crate::series::ClosedWindow,
        ) -> Result<(), crate::sink::BoxError> {
            Ok(())
        }
        fn commit_point(&self) -> Option<crate::checkpoint::SinkCommit> {
            Some(crate::checkpoint::SinkCommit {
                path: "/out/j.jsonl".into(),
                committed_len: 0,
                file: Some(crate::checkpoint::FileIdentity { dev: 1, ino: 2 }),
                tail: None,
            })
        }
    }

    #[test]
    fn the_outputs_are_named_by_a_checkpoint_before_any_window_is_written() {
        // Otherwise a crash before the first regular checkpoint leaves an output
        // no checkpoint names, which the restart must refuse to touch.
        let d = tempfile::tempdir().unwrap();
        let _setup = JobSetup::prepare(
            &job(),
            SetupOptions {
                follow: false,
                state_dir: Some(d.path().to_path_buf()),
                reset: None,
                checkpoint_interval: Duration::from_secs(1),
                stats: None,
                stop: Arc::new(AtomicBool::new(false)),
                job_file: None,
                cluster_state: None,
                first_worker: 0,
                workers: 1,
                role: StateRole::Owner { expect: None },
            },
            Some(crate::start::fixed_output(Box::new(Named))),
        )
        .unwrap();
        let cp = CheckpointStore::for_job(&d.path().join("j"), &job())
            .unwrap()
            .load()
            .unwrap()
            .expect("a checkpoint at start");
        assert_eq!(cp.frontier_ms, EventMs::MIN);
        assert_eq!(
            cp.sinks[0].file,
            Some(crate::checkpoint::FileIdentity { dev: 1, ino: 2 })
        );
        assert!(cp.semantics.is_some());
    }

    fn options(state: &Path, reset: Option<ResetChoice>) -> SetupOptions {
        SetupOptions {
            follow: false,
            state_dir: Some(state.to_path_buf()),
            reset,
            checkpoint_interval: Duration::from_secs(1),
            stats: None,
            stop: Arc::new(AtomicBool::new(false)),
            job_file: None,
            cluster_state: None,
            first_worker: 0,
            workers: 1,
            role: StateRole::Owner { expect: None },
        }
    }

    #[test]
    fn a_crash_right_after_reset_end_resumes_instead_of_refusing_the_kept_output() {
        // `--reset-checkpoint=end`, then a crash before the first regular
        // checkpoint: the restart must know the output is the job's (so it is not
        // refused as someone else's file) and that its files start at their end
        // (so they are not all read again into the kept output).
        let d = tempfile::tempdir().unwrap();
        let first = JobSetup::prepare(
            &job(),
            options(d.path(), Some(ResetChoice::End)),
            Some(crate::start::fixed_output(Box::new(Named))),
        )
        .unwrap();
        drop(first);
        let again = JobSetup::prepare(
            &job(),
            options(d.path(), None),
            Some(crate::start::fixed_output(Box::new(Named))),
        )
        .unwrap();
        assert!(
            again.resumed,
            "the kept output is not named by a checkpoint"
        );
        assert_eq!(again.resume.start_at, StartAt::End);
        drop(again);
        // And the restart's own start checkpoint keeps saying so.
        let again = JobSetup::prepare(
            &job(),
            options(d.path(), None),
            Some(crate::start::fixed_output(Box::new(Named))),
        )
        .unwrap();
        assert_eq!(again.resume.start_at, StartAt::End);
    }

    #[test]
    fn a_refused_sink_path_keeps_its_error_type() {
        let d = tempfile::tempdir().unwrap();
        let state = std::fs::canonicalize(d.path()).unwrap();
        let text = format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/nowhere/*.log\"]\n\
             [parse]\nformat = \"nginx\"\n[window]\nsize = \"1m\"\n\
             [[metric]]\nname = \"reqs\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"jsonl\"\npath = \"{}\"\nseries = \"hosts\"\n",
            state.join("j/checkpoint").display()
        );
        let job = tidemark_jobs::from_str(&text, "j.toml", Path::new("/")).unwrap();
        let err = JobSetup::prepare(
            &job,
            options(&state, None),
            Some(crate::start::fixed_output(Box::new(Named))),
        )
        .err()
        .expect("a sink in the state folder");
        match err {
            EngineError::SinkPath(e) => assert!(e.what.starts_with("inside"), "{e}"),
            other => panic!("flattened: {other:?}"),
        }
    }
}

#[cfg(test)]
mod error_tests;
