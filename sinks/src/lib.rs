//! Sinks: where closed windows go. `jsonl` files (the schema in docs/design.md, *3.
//! Output schema*), a readable `stdout` table and, for `replay --format
//! openmetrics`, an OpenMetrics text file ([`openmetrics`]), all implementations of the
//! engine's [`Sink`] interface. [`open`] opens a job's sinks, rolled back to a
//! checkpoint's commit points on a resume, as one [`Sinks`] fan-out.

pub mod alertmanager;
mod claim;
pub mod drop_behind;
pub mod format;
mod http_error;
pub mod jsonl;
pub mod kafka;
pub mod openmetrics;
pub mod remote_write;
pub mod roots;
pub mod secret;
pub mod table;

use std::path::{Path, PathBuf};

use thiserror::Error;
use tidemark_engine::checkpoint::{FileIdentity, SinkCommit};
use tidemark_engine::{Origin, OutputStart, Series};
use tidemark_jobs::{Job, SeriesChoice, SinkKind};

pub use jsonl::{Existing, JsonlSink};
pub use kafka::{KafkaSink, KafkaSinkError};
pub use openmetrics::{OpenMetricsError, OpenMetricsOptions, OpenMetricsSink};
pub use remote_write::RemoteWriteSink;
pub use roots::OutputRoots;
pub use table::TableSink;
pub use tidemark_engine::sink::{BoxError, Sink, SinkFailure, Sinks};

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{}: {source} (check the sink's path, permissions and free space)", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: cannot read the sink's {key}: {source}. hint: the file holds the secret \
         alone, on one line; check its path and permissions",
        path.display()
    )]
    Secret {
        key: &'static str,
        path: PathBuf,
        source: secret::SecretError,
    },
    #[error(transparent)]
    RemoteWrite(#[from] remote_write::OpenError),
    #[error("cannot start the sender thread of the sink {sink}: {source}")]
    Thread {
        sink: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kafka(#[from] kafka::KafkaSinkError),
    #[error("writing to standard output failed: {0}")]
    Stdout(#[source] std::io::Error),
    #[error(
        "{} already exists ({len} bytes) and no checkpoint of this job names it as its \
         output; tidemark does not overwrite a file it did not write. hint: move it away or \
         give the sink another path{hint}",
        path.display()
    )]
    Exists {
        path: PathBuf,
        len: u64,
        hint: ExistsHint,
    },
    #[error(
        "{} is {what}, not a regular file: a jsonl sink writes, cuts back and syncs a file \
         of its own. hint: give the sink the path of a regular file, or use kind = \"stdout\" \
         to print the windows",
        path.display()
    )]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "{} is being written by another tidemark job or process (it holds the lock on \
         it): two writers would overwrite each other's windows and cut each other back on \
         restart. hint: give each job its own output path, or stop the other one first",
        path.display()
    )]
    Busy { path: PathBuf },
    #[error(
        "the jsonl sinks {} and {} are the same file (a link, or another spelling of its \
         path): two sinks writing one file would overwrite each other's windows. hint: give \
         each jsonl sink its own file",
        first.display(), path.display()
    )]
    SameFile { path: PathBuf, first: PathBuf },
    #[error(
        "{} is the file this job's checkpoint names, but its first {committed} bytes are \
         not the ones the job wrote: the output was deleted and its inode reused by another \
         file, or it was edited; tidemark does not cut back a file it did not write. hint: \
         put the job's own output back at this path; or move this file away and re-run with \
         --reset-checkpoint=beginning to rewrite the output from the start",
        path.display()
    )]
    Rewritten { path: PathBuf, committed: u64 },
    #[error(
        "{}: not written: a job with output roots (--output-root) may not have `..` in a \
         sink path (after a linked folder it leads elsewhere than it reads). hint: write the \
         path without `..`",
        path.display()
    )]
    ParentDir { path: PathBuf },
    #[error(
        "{} is not the file this job's checkpoint names as its output (that one is \
         (device, inode) ({}, {}), this one is ({}, {}) with {len} bytes): it was replaced, \
         moved or restored after the checkpoint was written, and tidemark does not cut back \
         a file it did not write. hint: put the job's own output back at this path; or move \
         this file away and re-run with --reset-checkpoint=beginning to rewrite the output \
         from the start",
        path.display(), named.dev, named.ino, found.dev, found.ino
    )]
    NotTheFile {
        path: PathBuf,
        named: FileIdentity,
        found: FileIdentity,
        len: u64,
    },
    #[error(
        "{}: not written: it resolves to {}, which is outside the folders this job may \
         write in (--output-root {roots}); a symbolic link may not lead out of an output root",
        path.display(), real.display()
    )]
    OutsideRoots {
        path: PathBuf,
        real: PathBuf,
        roots: String,
    },
    #[error(
        "{}: not written: it is a symbolic link, and a job with output roots \
         (--output-root) opens only the file itself. hint: give the sink the real path",
        path.display()
    )]
    Symlink { path: PathBuf },
}

impl SinkError {
    /// Whether the user must act on what is at a sink path (move a file, choose
    /// another path or kind): a usage problem, exit 2. Others are failures (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SinkError::Exists { .. }
                | SinkError::NotAFile { .. }
                | SinkError::SameFile { .. }
                | SinkError::NotTheFile { .. }
                | SinkError::Rewritten { .. }
                | SinkError::OutsideRoots { .. }
                | SinkError::Symlink { .. }
                | SinkError::ParentDir { .. }
                | SinkError::Secret { .. }
        )
    }
}

/// What the user can do about a file at a new sink's path ([`SinkError::Exists`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistsHint {
    /// `tidemark run` or `replay`: `--overwrite` replaces it.
    Overwrite,
    /// `tidemark run` resuming from a checkpoint at `frontier`: `--overwrite`
    /// replaces it, but windows before the frontier are not written again.
    Resumed { frontier: String },
    /// `--reset-checkpoint=beginning`, whose checkpoint does not name this file.
    NotNamed,
    /// A job submitted to a cluster: there is no `--overwrite`.
    Submitted,
}

impl std::fmt::Display for ExistsHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExistsHint::Overwrite => {
                f.write_str("; or, if it may go, re-run with --overwrite to replace it")
            }
            ExistsHint::Resumed { frontier } => write!(
                f,
                "; or, if it may go, re-run with --overwrite to replace it, knowing that \
                 this run resumes from its checkpoint: windows before {frontier} are not \
                 written again, so the new file holds only the windows from {frontier} on \
                 (to write every window, re-run with --reset-checkpoint=beginning \
                 --overwrite)"
            ),
            ExistsHint::NotNamed => f.write_str(
                "; --reset-checkpoint=beginning replaces only the outputs the checkpoint \
                 names by (device, inode), and it does not name this one (or could not be \
                 read); if this file may go, re-run with --overwrite as well",
            ),
            ExistsHint::Submitted => f.write_str(
                ", then submit the job again (a submitted job never replaces an existing \
                 file)",
            ),
        }
    }
}

/// Whether a sink configured with `choice` prints `s`.
pub fn wanted(choice: SeriesChoice, s: &Series) -> bool {
    match choice {
        SeriesChoice::All => true,
        SeriesChoice::Rules => s.origin == Origin::Rule,
        SeriesChoice::Hosts => s.origin == Origin::Host,
        SeriesChoice::None => false,
    }
}

/// Opens a submitted job's sinks (a cluster's): fresh, cut back to a checkpoint's
/// committed lengths, or appending to what is there. A non-empty file that no
/// checkpoint names is refused ([`SinkError::Exists`]), with a hint that fits `job
/// submit` (which has no `--overwrite`).
pub fn open(job: &Job, start: &OutputStart) -> Result<Sinks, SinkError> {
    open_as(job, start, Existing::Refuse, true)
}

/// [`open`] for `tidemark run` and `replay`, with what to do about a non-empty file
/// at a new sink's path: `Existing::Replace` for `--overwrite`. Sinks open inside
/// the job's output roots only ([`OutputRoots`]); each file is taken by one sink of
/// one job at a time.
pub fn open_with(job: &Job, start: &OutputStart, existing: Existing) -> Result<Sinks, SinkError> {
    open_as(job, start, existing, false)
}

/// The job's sinks: its file sinks first, then the others, each kind in the order
/// of its job file. Files first, as before the one sink layer: a window reaches
/// the files that can roll back before a stdout pipe that closes (`| head`)
/// fails the job. A file sink rolls back to its commit point here, when opened on
/// [`OutputStart::Resume`].
fn open_as(
    job: &Job,
    start: &OutputStart,
    existing: Existing,
    submitted: bool,
) -> Result<Sinks, SinkError> {
    let roots = OutputRoots::new(&job.output_roots);
    let mut sinks = Sinks::default();
    // The files already taken, by identity, to name the first of two sinks
    // that reach one file.
    let mut files: Vec<(FileIdentity, PathBuf)> = Vec::new();
    let mut after_files: Vec<Box<dyn Sink>> = Vec::new();
    for s in &job.sinks {
        match &s.kind {
            SinkKind::Jsonl(path) => {
                // Before opening: the file another sink of this job took
                // would otherwise only show as "locked by another process".
                if let Some(first) = same_file(path, &files) {
                    return Err(SinkError::SameFile {
                        path: path.clone(),
                        first: first.to_path_buf(),
                    });
                }
                let hint = exists_hint(start, submitted);
                let fresh = |existing| {
                    JsonlSink::create(path, s.series, existing, &roots)
                        .map_err(|e| with_hint(e, hint.clone()))
                };
                let sink = match start {
                    OutputStart::Fresh => fresh(existing)?,
                    // Only a file the old checkpoint names by identity is
                    // the job's to replace; anything else as under Fresh.
                    OutputStart::Rewrite { named } => {
                        let id = std::fs::metadata(path).ok().map(|m| FileIdentity::of(&m));
                        match (existing, id) {
                            (Existing::Refuse, Some(id))
                                if named.iter().any(|c| c.file == Some(id)) =>
                            {
                                fresh(Existing::ReplaceFile(id))?
                            }
                            _ => fresh(existing)?,
                        }
                    }
                    OutputStart::Resume { sinks: commits, .. } => {
                        match commit_for(path, commits) {
                            Some(c) => JsonlSink::open_at(path, s.series, c, &roots)?,
                            // A sink the checkpoint does not know is new to the job.
                            None => fresh(existing)?,
                        }
                    }
                    OutputStart::Append => JsonlSink::append(path, s.series, &roots)?,
                };
                let sink = sink.with_alerts(s.alerts);
                files.push((sink.identity(), sink.path().to_path_buf()));
                sinks.push(Box::new(sink));
            }
            SinkKind::Stdout => {
                after_files.push(Box::new(TableSink::new(std::io::stdout(), s.series)))
            }
            SinkKind::RemoteWrite(rw) => {
                let resumed = matches!(start, OutputStart::Resume { .. });
                after_files.push(Box::new(RemoteWriteSink::open(
                    rw,
                    s.series,
                    &job.source,
                    resumed,
                )?))
            }
            SinkKind::Alertmanager(am) => after_files.push(Box::new(open_alertmanager(job, am)?)),
            SinkKind::Kafka(k) => {
                // Only a resume reads the topic back: a new output writes every
                // window (docs/kafka.md, "Kafka sink").
                let resume_from = match start {
                    OutputStart::Resume { frontier_ms, .. } => Some(*frontier_ms),
                    _ => None,
                };
                after_files.push(Box::new(KafkaSink::open(
                    k,
                    s.series,
                    &job.name,
                    resume_from,
                )?))
            }
        }
    }
    for sink in after_files {
        sinks.push(sink);
    }
    Ok(sinks)
}

/// The commit of a checkpoint that names the file at `path`: by path, or by the
/// identity of the file there (the job file reached by another path spells its
/// sink paths otherwise; a link to the output is the output).
fn commit_for<'a>(path: &Path, commits: &'a [SinkCommit]) -> Option<&'a SinkCommit> {
    if let Some(c) = commits.iter().find(|c| c.path == path) {
        return Some(c);
    }
    let id = FileIdentity::of(&std::fs::metadata(path).ok()?);
    commits.iter().find(|c| c.file == Some(id))
}

/// The path of an already opened sink whose file `path` reaches, if any.
fn same_file<'a>(path: &Path, opened: &'a [(FileIdentity, PathBuf)]) -> Option<&'a Path> {
    let id = std::fs::metadata(path).ok().map(|m| FileIdentity::of(&m));
    opened
        .iter()
        .find(|(f, _)| Some(*f) == id)
        .map(|(_, p)| p.as_path())
}

/// What the user can do about an existing file at a new sink's path, given how
/// the sinks start.
fn exists_hint(start: &OutputStart, submitted: bool) -> ExistsHint {
    match start {
        _ if submitted => ExistsHint::Submitted,
        OutputStart::Rewrite { .. } => ExistsHint::NotNamed,
        OutputStart::Resume { frontier_ms, .. } if *frontier_ms != i64::MIN => {
            ExistsHint::Resumed {
                frontier: format::rfc3339(*frontier_ms),
            }
        }
        _ => ExistsHint::Overwrite,
    }
}

fn with_hint(e: SinkError, hint: ExistsHint) -> SinkError {
    match e {
        SinkError::Exists { path, len, .. } => SinkError::Exists { path, len, hint },
        e => e,
    }
}

/// An alertmanager sink for `job`, its secret read now (never again: a token
/// rotated on disk takes a restart).
fn open_alertmanager(
    job: &Job,
    am: &tidemark_jobs::Alertmanager,
) -> Result<alertmanager::AlertmanagerSink, SinkError> {
    use alertmanager::Credentials;
    use tidemark_jobs::RemoteWriteAuth;
    let auth = match &am.auth {
        None => None,
        Some(RemoteWriteAuth::BearerTokenFile(p)) => Some(Credentials::Bearer(read_secret(
            job,
            "bearer_token_file",
            p,
        )?)),
        Some(RemoteWriteAuth::Basic {
            username,
            password_file,
        }) => Some(Credentials::Basic {
            username: username.clone(),
            password: read_secret(job, "basic_auth password_file", password_file)?,
        }),
    };
    alertmanager::AlertmanagerSink::start(alertmanager::AlertmanagerConfig {
        url: am.url.clone(),
        resend_interval: am.resend_interval,
        eval_interval: job.window.size,
        timeout: am.timeout,
        generator_url: am
            .generator_url
            .clone()
            .unwrap_or_else(|| alertmanager::default_generator_url(&job.name)),
        auth,
    })
    .map_err(|source| SinkError::Thread {
        sink: format!("alertmanager {}", am.url),
        source,
    })
}

/// The secret in the file at `path` (the sink's `key`), without a leading byte
/// order mark and one trailing newline; a `bearer_token_file` must hold visible
/// ASCII only (it goes as it is into a header). Read like the job's logs: inside its read roots only, never a path
/// its cluster denies (the API token file), since it is sent to a URL the job
/// names.
pub fn read_secret(job: &Job, key: &'static str, path: &Path) -> Result<String, SinkError> {
    let err = |source| SinkError::Secret {
        key,
        path: path.to_path_buf(),
        source,
    };
    let roots = tidemark_sources::file::AllowedRoots::of_source(&job.source);
    let secret = secret::read_secret_file(&roots, path).map_err(err)?;
    if key == "bearer_token_file" {
        secret::check_bearer_token(&secret).map_err(err)?;
    }
    Ok(secret)
}
