//! A worker's share of a job's file groups, kept up to date by discovery.
//!
//! A group found after start belongs to the worker `first + hash(live path) % count`
//! among this process's workers (each process reads the files on its own machine),
//! so ownership does not depend on discovery order and a file appearing later lands
//! on the same worker in every run. In live mode globs are re-evaluated every second (sooner when the
//! directory watcher says something changed).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_jobs::{HostFrom, Job};
use tidemark_sources::file::discover::{rotated_siblings_within, split_rotated};
use tidemark_sources::file::{discover, AllowedRoots, FileGroup, Outside};
use tidemark_sources::parse::LineParser;
use tidemark_sources::tail::ReadStatus;
use tidemark_sources::tail::TailOptions;

use crate::group::{GroupInit, GroupState};
use crate::install::{EngineError, ResumePlan};
use crate::plan::Plan;
use crate::resume::ResumeBoard;
use crate::series::path_hash;
use crate::stats::JobStats;
use crate::time::{first_open_window, EventMs, WindowTime};

/// How often live mode re-evaluates the include globs: often enough that a new file
/// is found within 1 s even where inotify does not work.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_millis(500);

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
    pub groups: Vec<GroupState>,
    /// The groups found before the workers started, each with its owning worker:
    /// computed once, so every worker agrees (file sizes change while they start).
    initial: Arc<Vec<(FileGroup, usize)>>,
    known: HashSet<PathBuf>,
    /// The job's allowed roots, canonicalised once (any path when the job has none).
    roots: AllowedRoots,
    /// Paths already reported as outside the allowed roots.
    reported_outside: HashSet<PathBuf>,
    last_discovery: Option<Instant>,
    /// Round-robin start, so a busy group cannot starve the ones after it.
    next: usize,
}

impl GroupSet {
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
    ) -> GroupSet {
        GroupSet {
            roots: AllowedRoots::new(&job.source.allowed_roots),
            reported_outside: HashSet::new(),
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
            next: 0,
        }
    }

    /// Re-evaluates the globs when due (always the first time). A group that
    /// appears after start was an idle source until then: its watermark starts at
    /// the wall clock minus `idle_timeout` — the same rule whatever worker owns it —
    /// and never below `held`, the window this worker has already moved past.
    pub fn discover_if_due(
        &mut self,
        now: Instant,
        poke: bool,
        held: EventMs,
        wall_ms: EventMs,
        stats: &mut JobStats,
    ) -> Result<(), EngineError> {
        let floor = Some(held.max(wall_ms.saturating_sub(self.plan.idle_timeout_ms)));
        let due = match self.last_discovery {
            None => true,
            Some(t) => self.follow && (poke || now.duration_since(t) >= DISCOVERY_INTERVAL),
        };
        if !due {
            return Ok(());
        }
        let first = self.last_discovery.is_none();
        self.last_discovery = Some(now);
        // The groups there at start were found once for all workers and split by
        // size; a group that appears later goes to the worker its path hashes to.
        let src = &self.job.source;
        let (found, owners, outside) = if first {
            let (groups, owners): (Vec<FileGroup>, Vec<usize>) =
                self.initial.iter().cloned().unzip();
            // The initial groups were found before the workers started: look once
            // more, only to report what was left out as outside the roots.
            let outside = if !self.roots.is_any() && self.reports_outside() {
                discover(&src.include, &src.exclude, &self.roots)
                    .map(|d| d.outside)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            (groups, Some(owners), outside)
        } else {
            match discover(&src.include, &src.exclude, &self.roots) {
                Ok(d) => (d.groups, None, d.outside),
                Err(e) => return Err(EngineError::Worker(e.to_string())),
            }
        };
        for (i, g) in found.into_iter().enumerate() {
            if self.known.contains(&g.live) {
                continue;
            }
            self.known.insert(g.live.clone());
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
                tracing::info!("new file group: {}", g.live.display());
            }
            let state = self.make(id, &g, first, floor)?;
            self.groups.push(state);
        }
        self.report_outside(&outside, stats);
        Ok(())
    }

    /// Whether this worker reports the paths discovery leaves out as outside the
    /// allowed roots: the first worker of the process (every one of them discovers
    /// the same files on this machine).
    fn reports_outside(&self) -> bool {
        self.index == self.local.0
    }

    /// Warns about each path left out as outside the allowed roots, and counts it
    /// (as a file that could not be opened), once per path and process. The live
    /// path and rotated siblings of a group that exists are left to the group's
    /// tailer, which refuses them too and reports them itself.
    fn report_outside(&mut self, outside: &[Outside], stats: &mut JobStats) {
        if !self.reports_outside() {
            return;
        }
        for o in outside {
            let of_group = self.known.contains(&o.path)
                || split_rotated(&o.path).is_some_and(|(base, _, _)| self.known.contains(&base));
            if !of_group && self.reported_outside.insert(o.path.clone()) {
                tracing::warn!("{o}");
                stats.file_open_errors += 1;
            }
        }
    }

    /// `at_start`: found by the first discovery. Only those groups start at the end
    /// of their file under `--reset-checkpoint=end`; a file that appears later is
    /// new data, read from its start (but lines below `floor` are late).
    fn make(
        &self,
        id: u64,
        g: &FileGroup,
        at_start: bool,
        floor: Option<EventMs>,
    ) -> Result<GroupState, EngineError> {
        let parser = LineParser::new(&self.job.parse, &self.plan.fields)
            .map_err(|e| EngineError::Parser(e.to_string()))?;
        let resume = self.resume.groups.get(&g.live).cloned();
        Ok(GroupState::new(
            GroupInit {
                id,
                live: g.live.clone(),
                fixed_host: group_host(&self.job.source.host, g),
                resume,
                start_at_end: at_start && self.resume.start_at == crate::install::StartAt::End,
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
        while visited < n {
            if budget == 0 {
                busy = true;
                break;
            }
            let g = &mut self.groups[(self.next + visited) % n];
            visited += 1;
            if g.is_finished() {
                continue;
            }
            let before = stats.bytes_read;
            let status = g.read(chunk.min(budget), now, wall_ms, stats);
            budget = budget.saturating_sub((stats.bytes_read - before) as usize);
            busy |= status == ReadStatus::More;
            if self.follow {
                g.apply_idle(now, wall_ms);
                g.apply_clock_lag(now, wall_ms, stats);
            }
        }
        if n > 0 {
            self.next = (self.next + visited) % n;
        }
        busy
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

/// The host label of a group whose host does not come from each line.
fn group_host(host: &HostFrom, group: &FileGroup) -> Option<String> {
    host_of_path(host, &group.live)
}

/// The host label of the lines of the file at `path` (live or archived), when it
/// does not come from each line.
pub(crate) fn host_of_path(host: &HostFrom, path: &std::path::Path) -> Option<String> {
    match host {
        HostFrom::Value(v) => Some(v.clone()),
        HostFrom::Field(_) => None,
        HostFrom::PathRegex(re) => {
            let path = path.to_string_lossy();
            match re.captures(&path).and_then(|c| c.name("host")) {
                Some(m) => Some(m.as_str().to_string()),
                None => {
                    tracing::warn!(
                        "{path}: the job's host path_regex {:?} does not match this path; its lines get host=\"\"",
                        re.as_str()
                    );
                    Some(String::new())
                }
            }
        }
    }
}

/// The job's groups at start: what the globs match, plus every group a checkpoint
/// names even if its live file is missing right now (between a rotation's rename
/// and create) — otherwise windows could close without it and all its lines would
/// then be late. Found once, before the workers start, so all agree on the list.
///
/// Files whose real path is outside the job's allowed roots are left out (the
/// workers' first discovery reports them).
pub fn initial_groups(job: &Job, resume: &ResumePlan) -> Result<Vec<FileGroup>, EngineError> {
    let roots = AllowedRoots::new(&job.source.allowed_roots);
    let mut found = discover(&job.source.include, &job.source.exclude, &roots)
        .map_err(|e| EngineError::Worker(e.to_string()))?
        .groups;
    let mut missing: Vec<&PathBuf> = resume
        .groups
        .keys()
        .filter(|live| !found.iter().any(|g| &g.live == *live))
        .collect();
    missing.sort();
    for live in missing {
        found.push(FileGroup {
            rotated: rotated_siblings_within(live, &roots, &mut Vec::new()),
            live: live.clone(),
        });
    }
    Ok(found)
}

/// Splits groups over `peers` workers by size: largest first, each to the least
/// loaded worker (ties: lower index); returns the owner of each group. Sizes are
/// read here, so call it once and share the result with every worker.
pub fn balance(groups: &[FileGroup], peers: usize) -> Vec<usize> {
    let size = |g: &FileGroup| -> u64 {
        g.files_in_order()
            .map(|(p, gzip)| {
                let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                // Compressed logs expand several times; weigh them as they read.
                if gzip {
                    len.saturating_mul(5)
                } else {
                    len
                }
            })
            .sum()
    };
    let mut order: Vec<(u64, usize)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (size(g), i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(groups[a.1].live.cmp(&groups[b.1].live)));
    let mut load = vec![0u64; peers.max(1)];
    let mut owner = vec![0usize; groups.len()];
    for (sz, i) in order {
        let w = (0..load.len()).min_by_key(|&w| (load[w], w)).unwrap_or(0);
        load[w] += sz.max(1);
        owner[i] = w;
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn balance_splits_by_size_largest_first() {
        let d = tempfile::tempdir().unwrap();
        let mut groups = Vec::new();
        for (name, len) in [("a", 100), ("b", 60), ("c", 50), ("d", 10)] {
            let p = d.path().join(name);
            std::fs::write(&p, vec![b'x'; len]).unwrap();
            groups.push(FileGroup {
                live: p,
                rotated: vec![],
            });
        }
        // a→0 (100), b→1 (60), c→1 (110), d→0 (110).
        assert_eq!(balance(&groups, 2), vec![0, 1, 1, 0]);
        assert_eq!(balance(&groups, 1), vec![0, 0, 0, 0]);
    }

    /// A json job reading `include`, limited to `roots` as the cluster sets them.
    fn job(include: &[String], roots: &[&Path]) -> Job {
        let list = include
            .iter()
            .map(|g| format!("{g:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{list}]\n\
             [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
        );
        let env = tidemark_jobs::Env::empty();
        let mut job = tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
            .unwrap_or_else(|d| panic!("{d}"));
        job.source.allowed_roots = roots.iter().map(|r| r.to_path_buf()).collect();
        job
    }

    /// Discovers and reads everything `job` reads (not following), as one worker.
    fn run(job: Job, swap: impl FnOnce()) -> (Vec<PathBuf>, JobStats) {
        let resume = Arc::new(ResumePlan::default());
        let initial = initial_groups(&job, &resume).unwrap();
        let lives = initial.iter().map(|g| g.live.clone()).collect();
        let owners = balance(&initial, 1);
        let initial = Arc::new(initial.into_iter().zip(owners).collect());
        let plan = Arc::new(Plan::new(&job));
        let tail = plan.tail.clone();
        let board = crate::resume::ResumeBoard::new();
        let mut gs = GroupSet::new(
            Arc::new(job),
            plan,
            resume,
            board,
            tail,
            initial,
            false,
            0,
            (0, 1),
        );
        let mut stats = JobStats::default();
        let wall = crate::time::wall_clock_ms();
        gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, &mut stats)
            .unwrap();
        // Files changed after discovery are caught when they are opened.
        swap();
        for _ in 0..1000 {
            gs.read_round(1 << 20, 1 << 20, Instant::now(), wall, &mut stats);
            if gs.groups.iter().all(|g| g.is_finished()) {
                break;
            }
        }
        (lives, stats)
    }

    /// The cluster sets `allowed_roots` on a job: groups are found, and files read,
    /// only where the real path is inside them.
    #[test]
    fn only_files_inside_the_allowed_roots_are_discovered_and_read() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (root, out) = (base.join("root"), base.join("out"));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let line = |n: u32| format!("{{\"time\":\"2026-01-01T00:00:{n:02}Z\"}}\n");
        std::fs::write(root.join("app.log"), line(1) + &line(2)).unwrap();
        std::fs::write(root.join("sub/x.log"), line(3)).unwrap();
        std::fs::write(out.join("secret"), line(4).repeat(10)).unwrap();
        std::fs::write(out.join("x.log"), line(5).repeat(10)).unwrap();
        symlink(out.join("secret"), root.join("evil.log")).unwrap();
        symlink(out.join("secret"), root.join("app.log.1")).unwrap();
        symlink(&out, root.join("x")).unwrap();
        let r = root.display();
        let include = [format!("{r}/*.log"), format!("{r}/*/x.log")];
        let swapped = root.join("app.log.2");

        let (lives, stats) = run(job(&include, &[&root]), || {
            symlink(out.join("secret"), &swapped).unwrap();
        });
        assert_eq!(lives, [root.join("app.log"), root.join("sub/x.log")]);
        assert_eq!(stats.file_groups, 2);
        assert_eq!(stats.lines_read, 3, "{stats:?}");
        assert_eq!(stats.files_opened, 2, "{stats:?}");
        // evil.log and x/x.log left out by discovery; app.log.1 and app.log.2
        // refused by the tailer.
        assert_eq!(stats.file_open_errors, 4, "{stats:?}");

        // Without roots the links are read.
        std::fs::remove_file(&swapped).unwrap();
        let (lives, stats) = run(job(&include, &[]), || {});
        assert_eq!(lives.len(), 4, "{lives:?}");
        assert_eq!(stats.lines_read, 3 + 10 + 10 + 10, "{stats:?}");
        assert_eq!(stats.file_open_errors, 0);
    }
}
