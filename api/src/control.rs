//! What the server needs from the cluster.

use crate::model::{Health, JobStatus, JobSummary};

/// Why the cluster refused a control request. Each variant maps onto one HTTP status;
/// the server adds what the user should do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// `submit`: a job with this name is already installed (409).
    #[error("a job named `{0}` is already running")]
    Duplicate(String),
    /// `stop`: no job with this name (404).
    #[error("no job named `{0}`")]
    NotFound(String),
    /// `submit`: the cluster already has as many jobs as it allows (409).
    #[error("the cluster already has {limit} jobs, its limit")]
    JobLimit { limit: usize },
    /// `submit`: the job is valid but this cluster does not allow it, e.g. it reads
    /// outside the roots given with `--allow-root` (403). The text should name what
    /// is not allowed and what is.
    #[error("{0}")]
    NotAllowed(String),
    /// `submit`: the job cannot run within what the cluster has left, e.g. of its
    /// cap on open files (400). The text names the limit and how to change it.
    #[error("{0}")]
    OverLimit(String),
    /// The cluster cannot act right now, e.g. a member is missing or it is shutting
    /// down (503).
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500), e.g. the job could not be persisted in the state dir.
    #[error("{0}")]
    Internal(String),
}

/// The cluster, as the control API sees it.
///
/// Methods are synchronous and may block (e.g. wait until every worker has agreed on
/// an install through the Sequencer); the server calls each on tokio's blocking pool,
/// so they must not call into a tokio runtime themselves. They are called from many
/// threads at once.
pub trait JobControl: Send + Sync + 'static {
    /// Installs a job that passed validation. `toml` is the text it was parsed from,
    /// to keep in the state dir so the job can be re-installed after a restart.
    /// Returns [`ControlError::Duplicate`] when a job of that name exists, and
    /// [`ControlError::JobLimit`] when the cluster has as many jobs as it allows.
    fn submit(&self, job: tidemark_jobs::Job, toml: String) -> Result<JobSummary, ControlError>;

    /// Every job, in the order the server should show them (by name is a good one).
    fn list(&self) -> Vec<JobSummary>;

    /// One job's status, or `None` when there is no job with that name.
    fn status(&self, name: &str) -> Option<JobStatus>;

    /// Stops a job and forgets it (drops its dataflow everywhere, removes it from the
    /// state dir). Returns [`ControlError::NotFound`] for an unknown name. May return
    /// before the workers have finished dropping it; until then `list`/`status` may
    /// show it as `stopping`.
    fn stop(&self, name: &str) -> Result<(), ControlError>;

    /// The cluster's health; answered without authentication.
    fn health(&self) -> Health;

    /// `GET /metrics` (behind the token: its labels name the jobs' files): given
    /// the request's `Accept` header, the answer's content type and body. By
    /// default no metric at all.
    fn metrics(&self, accept: Option<&str>) -> (&'static str, String) {
        let _ = accept;
        ("text/plain; version=0.0.4; charset=utf-8", String::new())
    }
}
