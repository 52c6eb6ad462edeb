//! One big file read by every worker in a finite run (`--until-eof`).
//!
//! A file group is read by one worker in order, because its watermark decides
//! each line from the lines before it. A finite run without a state folder cuts
//! a large group's plain files into byte segments at line starts (`plan`, with
//! the replay's own cutting; a gzip file is one segment, read whole), and every
//! worker reads segments from one queue (`source`).
//!
//! # Why the result equals the sequential read's
//!
//! - Partials fold per series in (group, segment) order, the group's stream
//!   order, as a replay's do; the group's key is its live path, as a file group's.
//! - A segment is counted with the true clock — the one the sequential read has
//!   at its first byte — either because the segments before it are done when it
//!   starts, or because its speculative read is confirmed afterwards (`spec`):
//!   same decision for every line (late, outlier) and the same clock from where
//!   the two clocks meet. A read that cannot be confirmed is read again from the
//!   true clock. Nothing of a speculative read (windows, stats) is handed on
//!   before it is confirmed.
//! - No window closes too early: every worker holds its capability at the lowest
//!   window any unfinished segment may still add to (`chain`).
//!
//! # When it applies
//!
//! Only `--until-eof` without a state folder: there are no checkpoints whose
//! resume position a segment read out of order would have to keep exact, and
//! the input is the files found at start; each file's last segment reads on to
//! the file's end when it gets there, as the tailer does, so lines appended
//! during the run are read as with `-w 1`. Not with a `rate_limit` (each worker paces its own groups).

mod chain;
mod plan;
mod run;
pub(crate) mod source;
mod spec;
#[cfg(test)]
mod tests;

pub use plan::SplitPlan;
