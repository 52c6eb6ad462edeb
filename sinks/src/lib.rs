//! Sinks: where closed windows go. `jsonl` files (the schema in DESIGN.md) and a
//! readable `stdout` table. [`Outputs`] fans a job's windows out to its sinks.

pub mod format;
pub mod jsonl;
pub mod table;

use std::path::PathBuf;

use thiserror::Error;
use tidemark_engine::{ClosedWindow, Origin, Series, WindowOutput};
use tidemark_jobs::{Job, SeriesChoice, SinkKind};

pub use jsonl::JsonlSink;
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
}

pub trait Sink: Send {
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), SinkError>;
    /// Flushes (and for files, syncs) everything written.
    fn finish(&mut self) -> Result<(), SinkError>;
    fn describe(&self) -> String;
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
}

impl Outputs {
    /// Opens the job's sinks (creating JSONL files).
    pub fn open(job: &Job) -> Result<Outputs, SinkError> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        for s in &job.sinks {
            match &s.kind {
                SinkKind::Jsonl(path) => sinks.push(Box::new(JsonlSink::create(path, s.series)?)),
                SinkKind::Stdout => {
                    sinks.push(Box::new(TableSink::new(std::io::stdout(), s.series)))
                }
            }
        }
        Ok(Outputs { sinks })
    }
}

impl WindowOutput for Outputs {
    fn window(&mut self, w: &ClosedWindow) -> Result<(), String> {
        for s in &mut self.sinks {
            s.write_window(w).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        for s in &mut self.sinks {
            s.finish().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
