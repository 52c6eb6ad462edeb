//! The tidemark engine: a job's timely dataflow.
//!
//! `source (per file group, no exchange) → host merge (exchange by host series)
//! → max_series cut (worker 0) → rollup (exchange by rule output series)
//! → collect (worker 0) → sinks`.
//! Dataflow timestamps are window starts; a window closes when the frontier passes
//! it, which happens only once every source's watermark has passed its end.

// Every public item says what it is: the engine's surface is what other crates
// (the binary, sinks, the API) and the coming sinks build on.
#![warn(missing_docs)]

pub mod acc;
pub(crate) mod agg;
pub mod alert_event;
pub mod alerts;
pub mod backpressure;
pub mod checkpoint;
pub(crate) mod claims;
pub mod cluster;
pub mod commit;
pub mod error;
pub(crate) mod group;
pub(crate) mod groupset;
pub mod input_end;
pub(crate) mod install;
pub mod kafka_source;
pub mod key;
pub mod labels;
pub(crate) mod limit;
pub mod operators;
pub mod output_guard;
pub mod pacing;
pub mod plan;
pub mod replay;
pub mod resume;
pub mod run;
pub mod series;
pub(crate) mod setup;
pub mod sink;
pub mod split;
pub mod start;
pub mod state;
pub mod stats;
pub mod time;
pub(crate) mod watcher;
pub(crate) mod watermark;
mod worker_panic;

#[cfg(test)]
mod test_jobs;

pub use labels::Labels;
pub use run::{run_job, run_job_file, RunOptions, RunOutcome};
pub use series::{ClosedWindow, Origin, Series, Value};
pub use sink::{Sink, SinkFailure, Sinks};
pub use start::{fixed_output, OutputFactory, OutputStart};
pub use stats::JobStats;
