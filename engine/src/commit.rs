//! Worker 0's half of recovery: make the sinks durable, then record how far.
//!
//! Order matters: a checkpoint is written only after the output it describes has
//! been synced, so a crash at any instant leaves a checkpoint whose sink lengths are
//! on disk. On restart the sinks are cut back to those lengths and every group
//! re-reads from its resume point, recomputing the windows that were not committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::alerts::{AlertEvaluator, AlertsCheckpoint};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, GroupCheckpoint};
use crate::resume::Resume;
use crate::resume::ResumeBoard;
use crate::sink::{SinkFailure, Sinks};
use crate::stats::SharedStats;
use crate::time::{wall_clock_ms, EventMs};
use tidemark_sources::fds::OUT_OF_FDS_HINT;
use tidemark_sources::file::EscapedPath;

/// Why a checkpoint could not be written.
#[derive(Debug, Error)]
pub enum CommitError {
    /// A sink could not make its output durable: no checkpoint may claim it.
    #[error("cannot sync the job's outputs")]
    Sync(#[source] SinkFailure),
    /// The checkpoint a run writes as it starts.
    #[error("cannot write the checkpoint that names the job's outputs")]
    Save(#[source] CheckpointError),
    /// A checkpoint of the running job.
    #[error("cannot save the checkpoint")]
    Write(#[source] CheckpointError),
}

/// Writes a job's checkpoints, on worker 0 beside the sinks: syncs the sinks, then
/// saves where each group resumes and how much of each sink is committed — at most
/// once per checkpoint interval and only when the frontier moved, except for the
/// forced saves at the end of input or a clean stop.
pub struct Committer {
    store: CheckpointStore,
    board: Arc<ResumeBoard>,
    job: String,
    interval: Duration,
    last_write: Option<Instant>,
    last_frontier: Option<EventMs>,
    /// The frontier of the checkpoint this run resumed from. Windows below it are
    /// already in the sinks, so no checkpoint of this run may claim less — or the
    /// next restart would emit those windows a second time.
    floor: EventMs,
    stats: SharedStats,
    /// Saves that found no file descriptor left (see [`FdWait`]).
    fd_wait: FdWait,
    /// A checkpoint is due but waits for the sinks to settle: the collector
    /// hands no further window over meanwhile (see [`Committer::holds_windows`]).
    waiting_for_sinks: bool,
}

/// How soon a checkpoint waiting for unsettled sinks is offered again.
pub const SINK_POLL: Duration = Duration::from_millis(20);

/// A checkpoint save that hit EMFILE/ENFILE waits and is tried again: the files
/// are most likely held by another job of the member, and the previous checkpoint
/// stays intact meanwhile, so failing this job would punish the wrong one.
#[derive(Debug, Default)]
struct FdWait {
    /// The delay before the next try, once a save failed; `None` after a success.
    backoff: Option<Duration>,
    last_log: Option<Instant>,
}

/// First delay after a save found no file descriptor; doubled per failure up to
/// [`FD_BACKOFF_MAX`].
const FD_BACKOFF_MIN: Duration = Duration::from_millis(50);
const FD_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A final save (end of input, stop) tries this long before the job fails: the
/// run cannot end with its last windows uncommitted, nor wait forever.
const FD_FINAL_SAVE_PATIENCE: Duration = Duration::from_secs(30);
const FD_LOG_EVERY: Duration = Duration::from_secs(10);

impl FdWait {
    /// Counts and (rate-limited) logs a failed save; returns the delay before the
    /// next try.
    fn failed(&mut self, err: &CheckpointError, stats: &SharedStats) -> Duration {
        let next = self
            .backoff
            .map_or(FD_BACKOFF_MIN, |b| (b * 2).min(FD_BACKOFF_MAX));
        self.backoff = Some(next);
        let waits = match stats.lock() {
            Ok(mut s) => {
                s.checkpoint_fd_waits += 1;
                s.checkpoint_fd_waits
            }
            Err(_) => 0,
        };
        if self.last_log.is_none_or(|t| t.elapsed() >= FD_LOG_EVERY) {
            self.last_log = Some(Instant::now());
            // The error's Display names the path with `display()`; the path
            // itself is an operator's choice (--state-dir), not a file name from
            // the logs, but it is escaped here like every other path we log.
            let path = match err {
                CheckpointError::Io { path, .. } => path.as_path(),
                _ => std::path::Path::new(""),
            };
            tracing::warn!(
                "checkpoint not written, no file descriptor left ({}; {} so far): \
                 trying again in {:?}, the previous checkpoint is kept. {} ({})",
                EscapedPath(path),
                waits,
                next,
                OUT_OF_FDS_HINT,
                err_source(err),
            );
        }
        next
    }
}

fn err_source(err: &CheckpointError) -> String {
    match err {
        CheckpointError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl Committer {
    /// A committer saving to `store` the resume points the groups publish on
    /// `board`, for the job named `job`. `interval` is the least wall-clock time
    /// between two checkpoints (`Duration::ZERO`: every time the frontier moves);
    /// `resumed_from` is the frontier of the checkpoint this run resumed from
    /// (`EventMs::MIN` for a first run), below which no checkpoint may go.
    pub fn new(
        store: CheckpointStore,
        board: Arc<ResumeBoard>,
        job: &str,
        interval: Duration,
        resumed_from: EventMs,
        stats: SharedStats,
    ) -> Committer {
        Committer {
            store,
            board,
            job: job.to_string(),
            interval,
            last_write: None,
            last_frontier: None,
            floor: resumed_from,
            stats,
            fd_wait: FdWait::default(),
            waiting_for_sinks: false,
        }
    }

    /// Records the outputs just opened, before any window is written: a checkpoint
    /// at the frontier this run starts from, with `groups` (the resume points it
    /// starts from) and each file sink's identity and length. So from its creation
    /// on, every output file is named by a checkpoint: a crash before the first
    /// regular checkpoint finds it cut back to what the checkpoint says, rather
    /// than an unknown file a restart would refuse to touch. `start_at_end`: the
    /// groups without a resume point start at the end of their files
    /// (`--reset-checkpoint=end`), and a restart before the next checkpoint must
    /// too. This save also replaces the checkpoint a `--reset-checkpoint` gave up.
    pub(crate) fn record_start(
        &mut self,
        sinks: &mut Sinks,
        groups: Vec<GroupCheckpoint>,
        start_at_end: bool,
        alerts: Option<AlertsCheckpoint>,
    ) -> Result<(), CommitError> {
        let began = Instant::now();
        let cp = Checkpoint {
            job: self.job.clone(),
            frontier_ms: self.floor,
            sinks: sinks.sync(self.floor).map_err(CommitError::Sync)?,
            groups,
            written_unix_ms: wall_clock_ms(),
            semantics: None, // stamped by the store
            start_at_end,
            limited_windows: self.limited_windows(None),
            alerts,
            kafka: self.kafka_checkpoint(self.floor),
        };
        self.save_patiently(&cp).map_err(CommitError::Save)?;
        self.count_save(began);
        Ok(())
    }

    /// Commits if windows below `frontier_ms` are newly complete and the interval
    /// has passed, or always when `force` (end of input, clean stop). Returns how
    /// long until a deferred commit falls due: the caller must come back then, or
    /// an idle job would leave its last windows uncommitted indefinitely.
    pub fn offer(
        &mut self,
        sinks: &mut Sinks,
        frontier_ms: EventMs,
        force: bool,
    ) -> Result<Option<Duration>, CommitError> {
        self.offer_with(sinks, frontier_ms, force, None)
    }

    /// [`Committer::offer`] for a job with alerts: a checkpoint written also
    /// records `alerts`' state, which must be the state after exactly the
    /// windows below `frontier_ms` (the collector advances it there first).
    pub fn offer_with(
        &mut self,
        sinks: &mut Sinks,
        frontier_ms: EventMs,
        force: bool,
        alerts: Option<&AlertEvaluator>,
    ) -> Result<Option<Duration>, CommitError> {
        self.waiting_for_sinks = false;
        let frontier_ms = frontier_ms.max(self.floor);
        let advanced = self.last_frontier.is_none_or(|f| frontier_ms > f);
        let wait = self.last_write.map_or(Duration::ZERO, |t| {
            self.interval.saturating_sub(t.elapsed())
        });
        if !force && !advanced {
            return Ok(None);
        }
        if !force && !wait.is_zero() {
            return Ok(Some(wait));
        }
        if !self.board.ready() {
            // Some worker has not read its groups yet; a checkpoint now would
            // leave them out. A stop this early keeps the previous checkpoint.
            return Ok((!force).then_some(Duration::from_millis(50)));
        }
        if !force && !sinks.settled() {
            // Never block worker 0 on a sink (it runs every job's collector
            // in a cluster, and the commands that stop them): come back once
            // the sinks acknowledged what they hold; the collector holds the
            // next windows meanwhile so that this checkpoint is not starved.
            self.waiting_for_sinks = true;
            return Ok(Some(SINK_POLL));
        }
        let began = Instant::now();
        let commits = sinks.sync(frontier_ms).map_err(CommitError::Sync)?;
        let cp = Checkpoint {
            job: self.job.clone(),
            frontier_ms,
            sinks: commits,
            groups: group_checkpoints(&self.board, frontier_ms),
            written_unix_ms: wall_clock_ms(),
            semantics: None, // stamped by the store
            start_at_end: false,
            limited_windows: self.limited_windows(Some(frontier_ms)),
            alerts: alerts.map(AlertEvaluator::save),
            kafka: self.kafka_checkpoint(frontier_ms),
        };
        if force {
            self.save_patiently(&cp).map_err(CommitError::Write)?;
        } else {
            match self.store.save(&cp) {
                Ok(()) => self.fd_wait.backoff = None,
                Err(e) if e.is_out_of_fds() => {
                    // Windows below the frontier are in the sinks already; the
                    // next try commits them (or a later frontier) all the same.
                    return Ok(Some(self.fd_wait.failed(&e, &self.stats)));
                }
                Err(e) => return Err(CommitError::Write(e)),
            }
        }
        self.board.set_committed(frontier_ms);
        self.last_write = Some(Instant::now());
        self.last_frontier = Some(frontier_ms);
        self.count_save(began);
        Ok(None)
    }

    /// A kafka source's part of a checkpoint for `frontier_ms` (none for a file job).
    fn kafka_checkpoint(
        &self,
        frontier_ms: EventMs,
    ) -> Option<crate::kafka_source::resume::KafkaCheckpoint> {
        (!self.board.kafka.is_empty()).then(|| self.board.kafka.checkpoint(frontier_ms))
    }

    /// Whether the last offer found a checkpoint due but the sinks not settled:
    /// the collector then hands no window over until it is written.
    pub fn holds_windows(&self) -> bool {
        self.waiting_for_sinks
    }

    /// Counts a checkpoint saved now, begun (sinks' sync included) at `began`.
    fn count_save(&self, began: Instant) {
        let took = began.elapsed().as_micros().min(u64::MAX as u128) as u64;
        if let Ok(mut s) = self.stats.lock() {
            s.checkpoints_written += 1;
            s.last_checkpoint = Some((wall_clock_ms(), took));
        }
    }
}

impl Committer {
    /// Saves `cp`, waiting out EMFILE/ENFILE for up to [`FD_FINAL_SAVE_PATIENCE`]:
    /// for saves the run cannot go on (or end) without.
    fn save_patiently(&mut self, cp: &Checkpoint) -> Result<(), CheckpointError> {
        let start = Instant::now();
        loop {
            match self.store.save(cp) {
                Ok(()) => {
                    self.fd_wait.backoff = None;
                    return Ok(());
                }
                Err(e) if e.is_out_of_fds() && start.elapsed() < FD_FINAL_SAVE_PATIENCE => {
                    std::thread::sleep(self.fd_wait.failed(&e, &self.stats));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The limited windows below `frontier_ms` (`None`: the frontier resumed from).
    fn limited_windows(&self, frontier_ms: Option<EventMs>) -> u64 {
        self.stats.lock().map_or(0, |mut s| match frontier_ms {
            Some(f) => s.limited_windows.commit(f),
            None => s.limited_windows.committed(),
        })
    }
}

/// Resume points (by live path) as a checkpoint's groups, sorted by live path.
pub(crate) fn groups_of(
    resume: &std::collections::HashMap<std::path::PathBuf, Resume>,
) -> Vec<GroupCheckpoint> {
    let mut groups: Vec<GroupCheckpoint> = resume
        .iter()
        .map(|(live, r)| GroupCheckpoint {
            live: live.clone(),
            resume: r.position.clone(),
            max_seen_ms: r.max_seen_ms,
            floor_ms: r.floor_ms,
            suspect_ms: r.suspect_ms,
            at_tail: r.at_tail,
            kept: r.kept.clone(),
        })
        .collect();
    groups.sort_by(|a, b| a.live.cmp(&b.live));
    groups
}

/// Every published group's resume point for a committed `frontier_ms`.
pub(crate) fn group_checkpoints(board: &ResumeBoard, frontier_ms: EventMs) -> Vec<GroupCheckpoint> {
    board
        .resume_points(frontier_ms)
        .into_iter()
        .map(|(live, r)| GroupCheckpoint {
            live,
            resume: r.position,
            max_seen_ms: r.max_seen_ms,
            floor_ms: r.floor_ms,
            suspect_ms: r.suspect_ms,
            at_tail: r.at_tail,
            kept: r.kept,
        })
        .collect()
}
