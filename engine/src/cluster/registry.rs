//! The jobs of a cluster member as the control API sees them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::stats::{JobStats, SharedStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    /// Asked to stop; its workers are finishing.
    Stopping,
    /// It could not be installed or its sink failed; see `error`.
    Failed,
}

/// One job as last seen.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub name: String,
    pub state: JobState,
    /// When it was submitted (ms since the epoch).
    pub submitted_ms: i64,
    pub stats: JobStats,
    pub error: Option<String>,
}

struct Entry {
    state: JobState,
    /// No worker holds it any more (a failed job, kept listed until stopped).
    released: bool,
    submitted_ms: i64,
    stats: SharedStats,
    error: Option<String>,
}

/// Shared by a member's workers and its control side.
#[derive(Default)]
pub struct Registry {
    jobs: Mutex<BTreeMap<String, Entry>>,
}

impl Registry {
    /// Adds a job (or returns false if the name is taken).
    pub(crate) fn add(&self, name: &str, submitted_ms: i64, stats: SharedStats) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else {
            return false;
        };
        if jobs.contains_key(name) {
            return false;
        }
        jobs.insert(
            name.to_string(),
            Entry {
                state: JobState::Running,
                released: false,
                submitted_ms,
                stats,
                error: None,
            },
        );
        true
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

    pub(crate) fn released(&self, name: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            if let Some(e) = jobs.get_mut(name) {
                e.released = true;
            }
        }
    }

    /// Removes a job no worker holds (a failed one); false if workers still do.
    pub(crate) fn remove_released(&self, name: &str) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else {
            return false;
        };
        if jobs.get(name).is_some_and(|e| e.released) {
            jobs.remove(name);
            return true;
        }
        false
    }

    pub(crate) fn remove(&self, name: &str) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.remove(name);
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.jobs.lock().is_ok_and(|j| j.contains_key(name))
    }

    pub fn get(&self, name: &str) -> Option<JobInfo> {
        let jobs = self.jobs.lock().ok()?;
        jobs.get(name).map(|e| info(name, e))
    }

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
        error: e.error.clone(),
    }
}
