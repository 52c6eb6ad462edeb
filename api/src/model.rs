//! The JSON bodies of the control API. Times are RFC 3339 strings in UTC
//! (e.g. `"2026-11-20T10:01:00Z"`), as [`jiff::Timestamp`] serializes them.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What a job is doing, as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Installed on every worker and processing lines.
    Running,
    /// Installed but stopped by an error; `last_error` in [`JobStatus`] says which.
    Failed,
    /// A stop was agreed on; workers are dropping the job's dataflow.
    Stopping,
}

impl JobState {
    /// The wire name: `"running"`, `"failed"` or `"stopping"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Failed => "failed",
            JobState::Stopping => "stopping",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job in `GET /jobs`, and the answer to a successful `POST /jobs` (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job's `name` from its TOML; unique in the cluster.
    pub name: String,
    /// What the job is doing now.
    pub state: JobState,
    /// When the cluster accepted the job (kept across cluster restarts).
    pub submitted_at: Timestamp,
}

/// A window's bounds: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedWindow {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

/// `GET /jobs/{name}`: a job's summary plus its progress and error counts.
///
/// The summary's fields (`name`, `state`, `submitted_at`) appear at the top level of
/// the JSON object, next to the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The job's watermark (minimum over its sources), or `null` before any line
    /// carried a timestamp.
    pub watermark: Option<Timestamp>,
    /// The most recent window whose output was emitted, or `null` before the first.
    pub last_closed_window: Option<ClosedWindow>,
    /// Lines read per second, averaged over a recent interval the cluster chooses.
    /// Always finite (JSON has no NaN).
    pub lines_per_sec: f64,
    /// Lines read since the job was installed, summed over all members.
    #[serde(default)]
    pub lines_read: u64,
    /// Lines read by each member (by process index), as last reported: a member
    /// reading nothing usually has the wrong paths (`${LOG_ROOT}`) on its machine.
    #[serde(default)]
    pub lines_read_by_member: BTreeMap<u32, u64>,
    /// Lines that could not be used, by reason, summed over all members. Keys:
    /// `"late"`, `"oversize"`, `"invalid_utf8"`, `"outlier"`, `"clock_behind_groups"`
    /// (a number of file groups), and `"malformed:<reason>"` for each
    /// parse-error reason (see [`JobStatus::malformed_key`]). Reasons with a zero
    /// count may be left out.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// The last error the job hit (e.g. why it is `failed`), if any.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Things that look wrong though the job runs, one sentence each, e.g. an
    /// include glob that matches no file on a member. Empty when there are none.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Its files and file descriptors, summed over all members.
    #[serde(default)]
    pub open_files: OpenFiles,
}

/// A job's use of file descriptors (`max_open_files`; issue 10).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFiles {
    /// Files held open now.
    pub open: u64,
    /// Live files closed while idle to keep within `max_open_files`; reopened by
    /// identity when they change.
    pub parked: u64,
    /// Reopens of a parked file that found no file descriptor and waited.
    pub reopen_waits: u64,
    /// Checkpoint writes that found no file descriptor and were tried again.
    pub checkpoint_waits: u64,
    /// Parked files deleted or moved out of their folder before they were
    /// reopened: lines written to them after parking, if any, were not read.
    #[serde(default)]
    pub lost_while_parked: u64,
    /// Tries to open a file that found no file descriptor; after each, the group
    /// waited longer before the next (from `poll_interval` up to 5 s).
    #[serde(default)]
    pub fd_backoffs: u64,
    /// What the job reserved of process 0's `--max-open-files` cap: its
    /// `max_open_files`, lowered to what other jobs left. 0 once it holds none.
    #[serde(default)]
    pub reserved: u64,
}

impl JobStatus {
    /// Key in [`JobStatus::errors`] for late lines.
    pub const LATE: &'static str = "late";
    /// Key in [`JobStatus::errors`] for lines longer than `max_line_bytes`.
    pub const OVERSIZE: &'static str = "oversize";
    /// Key in [`JobStatus::errors`] for lines that were not valid UTF-8.
    pub const INVALID_UTF8: &'static str = "invalid_utf8";
    /// Key in [`JobStatus::errors`] for lines stamped further ahead of their file
    /// group than `max_jump` that the next line did not confirm (kept in their
    /// windows, ignored by the watermark).
    pub const OUTLIER: &'static str = "outlier";
    /// Key in [`JobStatus::errors`]: file groups (not lines) whose clock trails the
    /// wall clock by more than `max_clock_lag` while they keep writing, so they no
    /// longer hold windows open and their lines are late.
    pub const CLOCK_BEHIND_GROUPS: &'static str = "clock_behind_groups";

    /// Key in [`JobStatus::errors`] for lines that failed to parse for `reason`.
    pub fn malformed_key(reason: &str) -> String {
        format!("malformed:{reason}")
    }
}

/// The one-word summary of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every member is connected and no job has failed.
    Ok,
    /// Every member is connected, but some jobs have failed (`failed_jobs`).
    Degraded,
    /// A member is missing or the workers stopped (`ok` is false; 503).
    Unavailable,
}

/// `GET /healthz`. Answered with 200 when `ok`, else 503 (same body). Anyone who
/// can reach the port may ask, so it says how many, never which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// True when every expected member is connected and the API can install jobs.
    pub ok: bool,
    /// `ok`, `degraded` (failed jobs) or `unavailable` (same as `ok: false`).
    /// Missing in answers of older members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HealthStatus>,
    /// Cluster members (processes) currently connected, this one included.
    pub members: u32,
    /// Members the cluster was started with (`-n`).
    #[serde(default)]
    pub expected_members: u32,
    /// Jobs installed (any state).
    #[serde(default)]
    pub jobs: u32,
    /// Jobs in state `failed`. Only counted: `/healthz` needs no token, so it names
    /// no job (`GET /jobs` does).
    #[serde(default)]
    pub failed_jobs: u32,
    /// Why the cluster is not ok, or other detail worth showing. Names no job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// This member's `--max-open-files` and what its jobs reserve of it (the rest
    /// is left for new jobs). Missing in answers of older members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<OpenFilesCap>,
}

/// A member's cap on the files its jobs keep open (`--max-open-files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFilesCap {
    pub cap: u64,
    /// What running jobs reserve of it.
    pub reserved: u64,
    /// `cap - reserved`: what a new job may get.
    pub left: u64,
}

/// `DELETE /jobs/{name}` (200): the stop was accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The job that is being stopped.
    pub name: String,
    /// Always true.
    pub stopped: bool,
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// For an invalid job (400 on `POST /jobs`): the text `tidemark validate` prints,
    /// one `FILE:LINE:COL: error: ...` per problem, each followed by its hint line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
}
