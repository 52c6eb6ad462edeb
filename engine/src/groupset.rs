//! A worker's share of a job's file groups, kept up to date by discovery.
//!
//! A group found after start belongs to the worker `first + hash(live path) % count`
//! among this process's workers (each process reads the files on its own machine),
//! so ownership does not depend on discovery order and a file appearing later lands
//! on the same worker in every run. In live mode globs are re-evaluated every second (sooner when the
//! directory watcher says something changed).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_jobs::{HostFrom, Job};
use tidemark_sources::file::discover::discover_new;
use tidemark_sources::file::{discover, AllowedRoots, Discovered, EscapedPath, FileGroup};
use tidemark_sources::parse::LineParser;
use tidemark_sources::tail::ReadStatus;
use tidemark_sources::tail::{FileId, HeldInodes, TailOptions};

#[cfg(test)]
pub use initial::initial_groups;
pub use initial::{balance, initial_discovery};
pub use shared::ProcessFiles;

use crate::error::EngineError;
use crate::group::{GroupInit, GroupState};
use crate::pacing::{file_group_bound_ms, Horizon, Lane, PaceBoard, Pacer};
use crate::plan::Plan;
use crate::resume::ResumeBoard;
use crate::series::path_hash;
use crate::start::{ResumePlan, StartAt};
use crate::stats::JobStats;
use crate::time::{first_open_window, EventMs, WindowTime};
use descriptors::CloseAhead;
use holders::Holders;

/// How often live mode re-evaluates the include globs: often enough that a new file
/// is found within 1 s even where inotify does not work.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(500);

/// How often it does while the directory watcher sees every folder the globs can
/// match: changes then trigger discovery at once, and this is only a safety net
/// (e.g. a folder on NFS, where inotify misses changes made by other machines).
/// Every worker re-evaluates every job's globs, so an idle cluster of many jobs
/// spent most of its CPU here at the 500 ms pace.
pub const WATCHED_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// One worker's file groups of one job, read round by round by its file source,
/// and the discovery that adds the groups found later.
pub struct GroupSet {
    job: Arc<Job>,
    plan: Arc<Plan>,
    resume: Arc<ResumePlan>,
    board: Arc<ResumeBoard>,
    tail: TailOptions,
    follow: bool,
    index: usize,
    /// This process's workers: (first global index, count).
    local: (usize, usize),
    /// The groups this worker reads, in the order they were found.
    pub groups: Vec<GroupState>,
    /// The file each of `groups` was last seen reading, as claimed in `files`.
    reading: Vec<Option<FileId>>,
    /// The inodes each of `groups` holds open, as told to `files`' claims.
    held: Vec<HeldInodes>,
    /// This process's claim table and discovery, shared by its workers.
    files: Arc<ProcessFiles>,
    /// How many of the groups `files` found after start this worker has taken.
    seen: usize,
    /// The groups found before the workers started, each with its owning worker:
    /// computed once, so every worker agrees (file sizes change while they start).
    initial: Arc<Vec<(FileGroup, usize)>>,
    known: HashSet<PathBuf>,
    /// The job's allowed roots, canonicalised once (any path when the job has none).
    roots: AllowedRoots,
    /// Paths already reported by discovery (outside the roots, another path to a
    /// file already read, not a regular file, a link loop).
    reported: HashSet<PathBuf>,
    /// Folders that could not be listed and matched paths that are not regular
    /// files, as of the last discovery: what the stats list as unreadable.
    unreadable: BTreeMap<PathBuf, String>,
    last_discovery: Option<Instant>,
    /// The directory watcher sees every folder the globs can match.
    watching: bool,
    /// Times the globs were evaluated.
    discoveries: u64,
    /// Round-robin start, so a busy group cannot starve the ones after it.
    next: usize,
    /// Where the search for a group to park starts (see `park_one_other`).
    park_next: usize,
    /// Event-time pacing of the groups (see [`crate::pacing`]).
    pacer: Pacer,
    /// How each of `groups` ended its last turn, for pacing.
    turns: Vec<Turn>,
    /// The last round deferred a group that may not read yet: it waits for a
    /// slower group of another worker, so it looks again soon.
    pace_waiting: bool,
    /// Per group: `park_paused` refused to close its file this round. Its state
    /// does not change within a round, so it is not asked again (with many
    /// groups behind and every group ahead refusing, each would ask them all).
    pause_refused: Vec<bool>,
    /// The groups holding a file, kept through a round (see `holders.rs`): a
    /// group waiting for a descriptor looks for one to close among these (at
    /// most the worker's share of `max_open_files`), not among every group.
    holders: Holders,
}

/// How a group's last turn ended, as pacing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Not read yet: the furthest behind.
    Unread,
    /// It stopped with more to read, at this watermark: what a group waiting
    /// for a descriptor compares (`park_one_ahead`) without reading every
    /// holder's state, cold by then. A group's watermark moves only in its turn.
    More(Option<EventMs>),
    /// Idle at its end, waiting (for a file, a descriptor) or finished: it
    /// holds no one back.
    Quiet,
}

impl GroupSet {
    /// A worker's set, empty until the first [`GroupSet::discover_if_due`] takes
    /// this worker's share of `initial` (worker `index`; `local` is this
    /// process's workers, `(first global index, count)`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        job: Arc<Job>,
        plan: Arc<Plan>,
        resume: Arc<ResumePlan>,
        board: Arc<ResumeBoard>,
        tail: TailOptions,
        initial: Arc<Vec<(FileGroup, usize)>>,
        follow: bool,
        index: usize,
        local: (usize, usize),
        files: Arc<ProcessFiles>,
    ) -> GroupSet {
        let pacer = Pacer::new(file_group_bound_ms(plan.window_ms), PaceBoard::new(1), 0);
        GroupSet {
            pacer,
            turns: Vec::new(),
            pace_waiting: false,
            pause_refused: Vec::new(),
            holders: Holders::default(),
            reading: Vec::new(),
            held: Vec::new(),
            files,
            seen: 0,
            roots: AllowedRoots::of_source(&job.source),
            reported: HashSet::new(),
            unreadable: BTreeMap::new(),
            job,
            plan,
            resume,
            board,
            tail: TailOptions { follow, ..tail },
            follow,
            index,
            local: (local.0, local.1.max(1)),
            groups: Vec::new(),
            initial,
            known: HashSet::new(),
            last_discovery: None,
            watching: false,
            discoveries: 0,
            next: 0,
            park_next: 0,
        }
    }

    /// Paces this worker's groups with `pacer` (one whose board the job's other
    /// workers share, so they align too); by default a worker aligns its own
    /// groups only.
    pub fn with_pacer(mut self, pacer: Pacer) -> GroupSet {
        self.pacer = pacer;
        self
    }

    /// Whether the last round deferred a group that may not read yet (see
    /// `pace_waiting`): the source comes back soon rather than after its poll
    /// interval.
    pub fn pace_waiting(&self) -> bool {
        self.pace_waiting
    }

    /// Whether the directory watcher sees every folder the globs can match (then
    /// discovery polls only every [`WATCHED_DISCOVERY_INTERVAL`]).
    pub fn set_watching(&mut self, watching: bool) {
        self.watching = watching;
    }

    /// Whether the job follows its files (rather than finishing at their end).
    pub fn follows(&self) -> bool {
        self.follow
    }

    /// How many times the globs were evaluated.
    #[cfg(test)]
    pub fn discoveries(&self) -> u64 {
        self.discoveries
    }

    /// How often discovery runs without a poke: rarely while the watcher sees
    /// every folder (a safety net), often where it cannot.
    fn discovery_interval(&self) -> Duration {
        if self.watching {
            WATCHED_DISCOVERY_INTERVAL
        } else {
            DISCOVERY_INTERVAL
        }
    }

    /// How soon discovery is due again (`None` when the job does not follow its
    /// files). The source comes back by then even when its poll interval is longer:
    /// discovery's own interval is the safety net for a change no event reported.
    pub fn discovery_due_in(&self, now: Instant) -> Option<Duration> {
        if !self.follow {
            return None;
        }
        let interval = self.discovery_interval();
        Some(match self.last_discovery {
            None => Duration::ZERO,
            Some(t) => interval.saturating_sub(now.duration_since(t)),
        })
    }

    /// Runs discovery if it is due: the first call takes this worker's initial
    /// groups; in live mode later calls evaluate the globs again every
    /// [`DISCOVERY_INTERVAL`] ([`WATCHED_DISCOVERY_INTERVAL`] while watched), or
    /// at once when `poke`d, and take the new groups this worker owns. A group
    /// found later counts its lines as late below the later of `held` (what the
    /// worker's watermark holds) and `wall_ms` minus the idle timeout. Counts the
    /// groups and files found in `stats`.
    pub fn discover_if_due(
        &mut self,
        now: Instant,
        poke: bool,
        held: EventMs,
        wall_ms: EventMs,
        stats: &mut JobStats,
    ) -> Result<(), EngineError> {
        let floor = Some(held.max(wall_ms.saturating_sub(self.plan.idle_timeout_ms)));
        let interval = self.discovery_interval();
        let due = match self.last_discovery {
            None => true,
            Some(t) => self.follow && (poke || now.duration_since(t) >= interval),
        };
        if !due {
            return Ok(());
        }
        let first = self.last_discovery.is_none();
        let since = self.last_discovery.replace(now);
        // The groups there at start were found once for all workers and split by
        // size; a group that appears later goes to the worker its path hashes to.
        let src = &self.job.source;
        let (found, owners, report) = if first {
            let (groups, owners): (Vec<FileGroup>, Vec<usize>) =
                self.initial.iter().cloned().unzip();
            // The initial groups were found before the workers started: what
            // that discovery left out is reported (looked for again only when
            // it was not kept, as by a set made without a setup).
            let report = match self.reports().then(|| self.files.start_report()) {
                Some(Some(kept)) => kept,
                Some(None) => {
                    Arc::new(discover(&src.include, &src.exclude, &self.roots).unwrap_or_default())
                }
                None => Arc::new(Discovered::default()),
            };
            self.discoveries += 1;
            stats.discovery_runs += 1;
            self.files.seed(&groups, &self.roots);
            (groups, Some(owners), report)
        } else {
            // One run for the process's workers; known groups are not looked at
            // again (a new path to one of their files is told by the claim table).
            let fresh = self
                .files
                .refresh(since, now, &mut self.seen, &self.roots, |known| {
                    discover_new(&src.include, &src.exclude, &self.roots, known)
                })
                .map_err(EngineError::Discover)?;
            self.discoveries += u64::from(fresh.ran);
            stats.discovery_runs += u64::from(fresh.ran);
            (fresh.groups, None, fresh.report)
        };
        for (i, g) in found.into_iter().enumerate() {
            if !self.known.insert(g.live.clone()) {
                continue;
            }
            let id = path_hash(&g.live);
            let owner = match &owners {
                Some(o) => o[i],
                None => self.local.0 + (id % self.local.1 as u64) as usize,
            };
            if owner != self.index {
                continue;
            }
            stats.file_groups += 1;
            stats.files_discovered += 1 + g.rotated.len() as u64;
            if !first {
                tracing::info!("new file group: {}", EscapedPath(&g.live));
            }
            let state = self.make(&g, first, floor)?;
            self.groups.push(state);
            self.reading.push(None);
            self.held.push(HeldInodes::default());
            self.turns.push(Turn::Unread);
        }
        if self.reports() {
            self.report(&report, stats);
        }
        Ok(())
    }

    /// `at_start`: found by the first discovery. Only those groups start at the end
    /// of their file under `--reset-checkpoint=end`; a file that appears later is
    /// new data, read from its start (but lines below `floor` are late).
    fn make(
        &self,
        g: &FileGroup,
        at_start: bool,
        floor: Option<EventMs>,
    ) -> Result<GroupState, EngineError> {
        let parser =
            LineParser::new(&self.job.parse, &self.plan.fields).map_err(EngineError::Parser)?;
        let resume = self.resume.groups.get(&g.live).cloned();
        Ok(GroupState::new(
            GroupInit {
                live: g.live.clone(),
                fixed_host: group_host(&self.job.source.host, g),
                resume,
                start_at_end: at_start && self.resume.start_at == StartAt::End,
                skip_below: self.resume.skip_below,
                floor: if at_start { None } else { floor },
                track_resume: self.resume.checkpointing,
                roots: self.roots.clone(),
            },
            self.plan.clone(),
            parser,
            self.tail.clone(),
            self.board.clone(),
        ))
    }

    /// Reads from the groups round-robin within the budgets; true if any has more.
    /// The next round starts at the first group this one did not reach, so when the
    /// budget runs out no group is starved (a starved group holds every window open).
    pub fn read_round(
        &mut self,
        chunk: usize,
        mut budget: usize,
        now: Instant,
        wall_ms: EventMs,
        stats: &mut JobStats,
    ) -> bool {
        let n = self.groups.len();
        let mut busy = false;
        let mut visited = 0;
        let share = open_files_share(self.job.source.max_open_files, self.local.1);
        self.holders.rebuild(&self.groups);
        let horizon = self.horizon();
        // The lowest watermark among the groups this round deferred.
        let mut deferred: Option<EventMs> = None;
        self.pause_refused.clear();
        self.pause_refused.resize(n, false);
        while visited < n {
            if budget == 0 {
                busy = true;
                break;
            }
            let i = (self.next + visited) % n;
            visited += 1;
            if self.groups[i].is_finished() {
                self.turns[i] = Turn::Quiet;
                continue;
            }
            if !horizon.allows(self.groups[i].watermark()) {
                // Far enough ahead of the slowest group: it waits, so that
                // windows close before every group has read its whole backlog.
                stats.paced_turns += 1;
                if let Some(wm) = self.groups[i].watermark() {
                    deferred = Some(deferred.map_or(wm, |d: EventMs| d.min(wm)));
                }
                continue;
            }
            let held = self.groups[i].holds_file();
            // Closed mid-read with lines still buffered: those need no descriptor.
            let short = self.holders.len() >= share;
            let buffered_only = !held && short && self.groups[i].has_buffered_lines();
            if !held && !buffered_only && short {
                // Its turn waits until another group is idle at its end (or, in a
                // finite run, finished): lines are late, never lost. Waiting for
                // a descriptor, it holds no one back (those that hold one must
                // read on to free it).
                let freed = self.park_one_other(i) || {
                    match self.park_one_ahead(i) {
                        CloseAhead::Closed => true,
                        CloseAhead::NoneAhead => false,
                        CloseAhead::Refused => {
                            stats.paced_fd_waits += 1;
                            false
                        }
                    }
                };
                if !freed {
                    self.turns[i] = Turn::Quiet;
                    continue;
                }
            }
            let g = &mut self.groups[i];
            let before = stats.bytes_read;
            let status = g.read(
                chunk.min(budget),
                horizon.stop_at(),
                buffered_only,
                now,
                wall_ms,
                stats,
            );
            self.holders.update(i, held, g.holds_file());
            budget = budget.saturating_sub((stats.bytes_read - before) as usize);
            busy |= status == ReadStatus::More;
            if self.follow {
                g.apply_idle(now, wall_ms);
                g.apply_clock_lag(now, wall_ms, stats);
            }
            self.turns[i] = match status {
                ReadStatus::More => Turn::More(g.watermark()),
                ReadStatus::Idle | ReadStatus::Blocked | ReadStatus::Finished => Turn::Quiet,
            };
            self.claim_reads(i);
        }
        if n > 0 {
            self.next = (self.next + visited) % n;
        }
        // A deferred group waits for the slowest one. If that one moved on (or
        // reached its end) during this round, the deferred group may read now:
        // the round is busy, rather than a sleep of the whole poll interval.
        // Otherwise it waits for a slower group of another worker: look again
        // soon.
        self.pace_waiting = false;
        if let Some(wm) = deferred {
            if self.horizon().allows(Some(wm)) {
                busy = true;
            } else {
                self.pace_waiting = true;
            }
        }
        if n == 0 || self.turns.iter().all(|t| *t == Turn::Quiet) {
            // Nothing to read here: this worker holds no other back.
            self.pacer.release();
        }
        let parked = self.groups.iter().filter(|g| g.is_parked()).count();
        let open = self.holders.len() as u64;
        stats.open_files.insert(self.index, (open, parked as u64));
        busy
    }

    /// How far this round's turns may go: the slowest group with lines to read
    /// (of any worker) plus the bound.
    fn horizon(&self) -> Horizon {
        let lanes = self.groups.iter().zip(&self.turns).map(|(g, t)| match t {
            Turn::Unread | Turn::More(_) if !g.is_finished() => Lane::Reading(g.watermark()),
            _ => Lane::Quiet,
        });
        self.pacer.horizon(lanes)
    }

    /// Reading goes on after a pause for back-pressure: the pause was not
    /// idleness (see [`crate::backpressure`]).
    pub fn after_pause(&mut self) {
        for g in &mut self.groups {
            g.after_pause();
        }
    }

    /// The earliest window this worker may still send data for. With no group to
    /// read, a live worker is idle: it follows the wall clock like an idle group.
    pub fn first_open(&self, wall_ms: EventMs) -> WindowTime {
        let min = self.groups.iter().map(|g| g.first_open()).min();
        match min {
            Some(t) => t,
            None if self.follow => first_open_window(
                Some(wall_ms - self.plan.idle_timeout_ms),
                self.plan.window_ms,
            ),
            None => WindowTime::MAX,
        }
    }
}

/// Warns about what discovery left out besides paths outside the roots (for a
/// one-off discovery, such as replay's; a live job reports through its
/// [`GroupSet`], once per path, and counts).
pub(crate) fn warn_left_out(d: &Discovered) {
    for dup in &d.duplicates {
        tracing::warn!(
            "{}: the same file as {} (same device and inode); read once, as {}",
            EscapedPath(&dup.path),
            EscapedPath(&dup.same_as),
            EscapedPath(&dup.same_as)
        );
    }
    for l in &d.loops {
        tracing::warn!(
            "{}: a directory link back to {} (a symbolic link loop); not followed",
            EscapedPath(&l.path),
            EscapedPath(&l.ancestor)
        );
    }
    for (path, what) in &d.not_regular {
        tracing::warn!(
            "{}: {what}, not a regular file; not read. hint: leave it out with `exclude`",
            EscapedPath(path)
        );
    }
    for (dir, error) in &d.unlistable {
        tracing::warn!(
            "{}: cannot list this folder ({error}); files in it cannot be found. hint: \
             give the user tidemark runs read and search (x) permission on it",
            EscapedPath(dir)
        );
    }
}

/// The host label of a group whose host does not come from each line.
fn group_host(host: &HostFrom, group: &FileGroup) -> Option<String> {
    host_of_path(host, &group.live)
}

/// The host label of the lines of the file at `path` (live or archived), when it
/// does not come from each line.
pub(crate) fn host_of_path(host: &HostFrom, path: &std::path::Path) -> Option<String> {
    match host {
        HostFrom::Value(v) => Some(v.clone()),
        // A kafka source has no file groups (its host is each record's).
        HostFrom::Field(_) | HostFrom::Record { .. } => None,
        HostFrom::PathRegex(re) => {
            let path = path.to_string_lossy();
            match re.captures(&path).and_then(|c| c.name("host")) {
                Some(m) => Some(m.as_str().to_string()),
                None => {
                    tracing::warn!(
                        "{}: the job's host path_regex {:?} does not match this path; its lines get host=\"\"",
                        EscapedPath(std::path::Path::new(&*path)),
                        re.as_str()
                    );
                    Some(String::new())
                }
            }
        }
    }
}

mod claimed;
mod descriptors;
mod holders;
mod initial;
mod report;
mod shared;

#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod open_files_tests;
#[cfg(test)]
mod pacing_tests;
#[cfg(test)]
mod tests;

/// Each of a member's `workers` gets max(1, budget / workers) open files.
pub fn open_files_share(budget: usize, workers: usize) -> usize {
    (budget / workers.max(1)).max(1)
}
