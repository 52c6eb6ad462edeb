//! Replaying a past time range (`tidemark replay`): the job's files — live,
//! rotated, compressed and archived — cut into segments by binary search on
//! timestamps and read in parallel by every worker, into the same dataflow stages
//! as a live run, so a replayed window is byte-identical to the live one.
//!
//! - [`plan`]: which files and byte ranges hold the range ([`ReplayPlan`]), reading
//!   only the first and last lines of the files outside it.
//! - `segment`: reading one segment into per-window partials, with its own
//!   watermark.
//! - `source`: the source operator; workers take segments from a shared queue in
//!   time order, so the frontier — and the first window — moves early.
//! - `lanes`: a worker's segments read in step by event time ([`crate::pacing`]),
//!   so that a replay of many hosts keeps only a few windows of each alive.
//! - [`failure`]: [`ReplayFailure`], why a replay stopped early (with its cause).
//! - [`run`]: [`run_replay`], the whole replay in a timely execution.
//!
//! # Why the result equals the live run's
//!
//! A window's value is a fold of exact, order-independent accumulators ([`crate::acc`])
//! over the lines stamped in it; partials of one series fold in (group, segment)
//! order, which is the group's stream order. A segment can start reading in the
//! middle of a stream because the job's disorder bound `d` (`max_out_of_orderness`)
//! says every line is at least the largest time before it minus `d`: reading from
//! the first line `P` of a cut, no later line is below `τ(P) − d`, and the search
//! ([`tidemark_sources::replay::search`]) places cuts so that no line of the range
//! lies outside the segments. For input that keeps the bound, no line is late in
//! either run. A line beyond the bound may be judged late differently near a cut (a
//! segment's watermark starts at its first line): such lines are counted either way.

pub mod failure;
pub(crate) mod lanes;
pub mod plan;
pub mod progress;
pub mod range;
pub mod run;
pub(crate) mod segment;
pub(crate) mod shared;
pub(crate) mod source;

pub use failure::ReplayFailure;
pub use plan::{plan_replay, ReplayPlan, Segment};
pub use progress::ReplayProgress;
pub use range::ReplayRange;
pub use run::{run_replay, run_replay_from, ReplayOptions, ReplayOutcome};
