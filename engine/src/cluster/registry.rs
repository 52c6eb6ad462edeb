//! The jobs of a cluster member as the control API sees them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_jobs::Job;

use crate::stats::{JobStats, MemberStats, SharedStats};

/// Where a job is in its life on this member, as the control API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Installed on every member and reading.
    Running,
    /// Asked to stop; its workers are finishing.
    Stopping,
    /// It could not be installed or its sink failed; see `error`.
    Failed,
}

/// One job as this member last saw it: a copy, so the control API can read it
/// without holding the registry's lock.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// The job's name (unique among the member's jobs).
    pub name: String,
    /// Where the job is in its life.
    pub state: JobState,
    /// When it was submitted (ms since the epoch).
    pub submitted_ms: i64,
    /// This process's own self-metrics.
    pub stats: JobStats,
    /// What the other members last reported, by process index.
    pub members: BTreeMap<usize, MemberStats>,
    /// Why it failed, with its causes (set with [`JobState::Failed`]).
    pub error: Option<String>,
    /// The job as this member validated it, once its install was prepared here.
    pub job: Option<Arc<Job>>,
}

impl JobInfo {
    /// Lines, bytes and errors of every member together.
    pub fn cluster_stats(&self) -> MemberStats {
        let mut total = MemberStats::from(&self.stats);
        self.members.values().for_each(|m| total.add(m));
        total
    }

    /// What the cluster's `/metrics` shows of the job: every member's counters
    /// over this process's stats ([`MemberStats::over`]), and each member's
    /// groups under its own `member` label.
    pub fn cluster_view(&self) -> JobStats {
        let mut view = self.cluster_stats().over(&self.stats);
        view.member_index = Some(0);
        for (process, m) in &self.members {
            view.member_groups.insert(*process, m.groups.clone());
            view.member_groups_left_out += m.groups_left_out;
        }
        view
    }
}

struct Entry {
    state: JobState,
    submitted_ms: i64,
    stats: SharedStats,
    members: BTreeMap<usize, MemberStats>,
    error: Option<String>,
    job: Option<Arc<Job>>,
}

/// Why [`Registry::add_within`] did not add a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAdded {
    /// A job of that name is listed.
    Taken,
    /// `limit` jobs are listed already.
    Full { limit: usize },
}

/// Shared by a member's workers and its control side.
#[derive(Default)]
pub struct Registry {
    jobs: Mutex<BTreeMap<String, Entry>>,
    /// When each other member was last heard from (process 0 only).
    heard: Mutex<BTreeMap<usize, Instant>>,
    /// Set once every member has connected and the workers run.
    connected: AtomicBool,
    connected_at: Mutex<Option<Instant>>,
}

impl Registry {
    /// Adds a job (or returns false if the name is taken).
    pub(crate) fn add(&self, name: &str, submitted_ms: i64, stats: SharedStats) -> bool {
        self.add_within(name, submitted_ms, stats, usize::MAX)
            .is_ok()
    }

    /// Adds a job unless its name is taken or `limit` jobs (in any state: a
    /// failed or stopping job still holds its name and state) are listed already.
    /// Checked under one lock, so concurrent submits cannot pass the limit.
    pub(crate) fn add_within(
        &self,
        name: &str,
        submitted_ms: i64,
        stats: SharedStats,
        limit: usize,
    ) -> Result<(), NotAdded> {
        let Ok(mut jobs) = self.jobs.lock() else {
            return Err(NotAdded::Taken);
        };
        if jobs.contains_key(name) {
            return Err(NotAdded::Taken);
        }
        if jobs.len() >= limit {
            return Err(NotAdded::Full { limit });
        }
        jobs.insert(
            name.to_string(),
            Entry {
                state: JobState::Running,
                submitted_ms,
                stats,
                members: BTreeMap::new(),
                error: None,
                job: None,
            },
        );
        Ok(())
    }

    /// Records the job as this member validated it (for its status).
    pub(crate) fn set_job(&self, name: &str, job: Arc<Job>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            if let Some(e) = jobs.get_mut(name) {
                e.job = Some(job);
            }
        }
    }

    pub(crate) fn stats_of(&self, name: &str) -> Option<SharedStats> {
        self.jobs.lock().ok()?.get(name).map(|e| e.stats.clone())
    }

    pub(crate) fn set(&self, name: &str, state: JobState, error: Option<String>) {
        if let Ok(mut jobs) = self.jobs.lock() {
            if let Some(e) = jobs.get_mut(name) {
                e.state = state;
                if error.is_some() {
                    e.error = error;
                }
            }
        }
    }

    pub(crate) fn remove(&self, name: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(name);
        }
    }

    /// A member's report: its stats for the jobs it runs (it is alive).
    pub(crate) fn member_report(&self, process: usize, jobs: Vec<(String, MemberStats)>) {
        if let Ok(mut heard) = self.heard.lock() {
            heard.insert(process, Instant::now());
        }
        if let Ok(mut all) = self.jobs.lock() {
            for (name, stats) in jobs {
                if let Some(e) = all.get_mut(&name) {
                    e.members.insert(process, stats);
                }
            }
        }
    }

    /// How many other members were heard from within `within`.
    pub fn members_heard(&self, within: Duration) -> usize {
        self.heard
            .lock()
            .map(|h| h.values().filter(|t| t.elapsed() <= within).count())
            .unwrap_or(0)
    }

    pub(crate) fn set_connected(&self) {
        if let Ok(mut at) = self.connected_at.lock() {
            at.get_or_insert_with(Instant::now);
        }
        self.connected.store(true, Ordering::SeqCst);
    }

    /// How long ago every member connected (`None`: not yet).
    pub fn connected_for(&self) -> Option<Duration> {
        self.connected_at.lock().ok()?.map(|t| t.elapsed())
    }

    /// Whether every member has connected and the workers run.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Whether a job of this name is listed, in any state (a stopping job, and a failed
    /// one until it is stopped, keep their name).
    pub fn contains(&self, name: &str) -> bool {
        self.jobs.lock().is_ok_and(|j| j.contains_key(name))
    }

    /// A copy of the job's info as of now, if it is known.
    pub fn get(&self, name: &str) -> Option<JobInfo> {
        let jobs = self.jobs.lock().ok()?;
        jobs.get(name).map(|e| info(name, e))
    }

    /// Every known job's info as of now, by name.
    pub fn list(&self) -> Vec<JobInfo> {
        match self.jobs.lock() {
            Ok(jobs) => jobs.iter().map(|(n, e)| info(n, e)).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn info(name: &str, e: &Entry) -> JobInfo {
    JobInfo {
        name: name.to_string(),
        state: e.state,
        submitted_ms: e.submitted_ms,
        stats: e.stats.lock().map(|s| s.clone()).unwrap_or_default(),
        members: e.members.clone(),
        error: e.error.clone(),
        job: e.job.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_limit_counts_every_listed_job_and_frees_a_slot_on_remove() {
        let r = Registry::default();
        let stats = || Arc::new(Mutex::new(crate::stats::JobStats::default()));
        assert_eq!(r.add_within("a", 0, stats(), 2), Ok(()));
        assert_eq!(r.add_within("a", 0, stats(), 2), Err(NotAdded::Taken));
        assert_eq!(r.add_within("b", 0, stats(), 2), Ok(()));
        r.set("b", JobState::Failed, Some("x".into()));
        assert_eq!(
            r.add_within("c", 0, stats(), 2),
            Err(NotAdded::Full { limit: 2 })
        );
        r.remove("b");
        assert_eq!(r.add_within("c", 0, stats(), 2), Ok(()));
    }
}
