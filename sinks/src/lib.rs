//! Sinks: where closed windows go. `jsonl` files (the schema in DESIGN.md) and a
//! readable `stdout` table. [`Outputs`] fans a job's windows out to its sinks.

pub mod format;
pub mod jsonl;
pub mod roots;
pub mod table;

use std::path::PathBuf;

use thiserror::Error;
use tidemark_engine::checkpoint::{FileIdentity, SinkCommit};
use tidemark_engine::{ClosedWindow, Origin, OutputStart, Series, WindowOutput};
use tidemark_jobs::{Job, SeriesChoice, SinkKind};

pub use jsonl::{Existing, JsonlSink};
pub use roots::OutputRoots;
pub use table::TableSink;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{}: {source} (check the sink's path, permissions and free space)", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing to standard output failed: {0}")]
    Stdout(String),
    #[error(
        "{} already exists ({len} bytes) and no checkpoint of this job names it as its \
         output; tidemark does not overwrite a file it did not write. hint: move it away or \
         give the sink another path; or, if it may go, re-run with --overwrite to replace it",
        path.display()
    )]
    Exists { path: PathBuf, len: u64 },
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

pub trait Sink: Send {
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), SinkError>;
    /// Flushes (and for files, syncs) everything written.
    fn finish(&mut self) -> Result<(), SinkError>;
    fn describe(&self) -> String;
    /// Makes everything written so far durable (fdatasync for files), so a
    /// checkpoint written afterwards never points past the output. Sinks with
    /// nothing to make durable (standard output) keep this default.
    fn sync(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Where this sink rolls back to on restart (valid right after [`Sink::sync`]);
    /// `None` for sinks that cannot roll back (standard output).
    fn commit_point(&self) -> Option<tidemark_engine::checkpoint::SinkCommit> {
        None
    }
}

/// Whether a sink configured with `choice` prints `s`.
pub fn wanted(choice: SeriesChoice, s: &Series) -> bool {
    match choice {
        SeriesChoice::All => true,
        SeriesChoice::Rules => s.origin == Origin::Rule,
        SeriesChoice::Hosts => s.origin == Origin::Host,
    }
}

/// Every sink of a job.
pub struct Outputs {
    pub sinks: Vec<Box<dyn Sink>>,
    /// The file sinks again, for committing their lengths.
    files: Vec<JsonlSink>,
}

impl Outputs {
    /// Opens the job's sinks: fresh, cut back to a checkpoint's committed lengths,
    /// or appending to what is there. A non-empty file that no checkpoint names is
    /// refused ([`SinkError::Exists`]); see [`Outputs::open_with`].
    pub fn open(job: &Job, start: &OutputStart) -> Result<Outputs, SinkError> {
        Outputs::open_with(job, start, Existing::Refuse)
    }

    /// [`Outputs::open`], with what to do about a non-empty file at a new sink's
    /// path: `Existing::Replace` for `--overwrite`. Sinks open inside the job's
    /// output roots only ([`OutputRoots`]).
    pub fn open_with(
        job: &Job,
        start: &OutputStart,
        existing: Existing,
    ) -> Result<Outputs, SinkError> {
        let roots = OutputRoots::new(&job.output_roots);
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let mut files = Vec::new();
        for s in &job.sinks {
            match &s.kind {
                SinkKind::Jsonl(path) => {
                    let sink = match start {
                        OutputStart::Fresh => JsonlSink::create(path, s.series, existing, &roots)?,
                        OutputStart::Rewrite => {
                            JsonlSink::create(path, s.series, Existing::Replace, &roots)?
                        }
                        OutputStart::Resume(commits) => {
                            match commits.iter().find(|c| &c.path == path) {
                                Some(c) => JsonlSink::open_at(path, s.series, c, &roots)?,
                                // A sink the checkpoint does not know is new to the job.
                                None => JsonlSink::create(path, s.series, existing, &roots)?,
                            }
                        }
                        OutputStart::Append => JsonlSink::append(path, s.series, &roots)?,
                    };
                    files.push(sink);
                }
                SinkKind::Stdout => {
                    sinks.push(Box::new(TableSink::new(std::io::stdout(), s.series)))
                }
            }
        }
        Ok(Outputs { sinks, files })
    }

    fn all(&mut self) -> impl Iterator<Item = &mut dyn Sink> {
        self.files
            .iter_mut()
            .map(|f| f as &mut dyn Sink)
            .chain(self.sinks.iter_mut().map(|s| s.as_mut() as &mut dyn Sink))
    }
}

impl WindowOutput for Outputs {
    fn window(&mut self, w: &ClosedWindow) -> Result<(), String> {
        for s in self.all() {
            s.write_window(w).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<Vec<SinkCommit>, String> {
        let mut commits = Vec::new();
        for f in &mut self.files {
            f.sync().map_err(|e| e.to_string())?;
            commits.push(SinkCommit {
                path: f.path().to_path_buf(),
                committed_len: f.committed_len(),
                file: Some(f.identity()),
            });
        }
        Ok(commits)
    }

    fn finish(&mut self) -> Result<(), String> {
        for s in self.all() {
            s.finish().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
