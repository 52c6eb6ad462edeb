//! The job's dataflow stages, one operator per file.
//!
//! As in timely, a stage that maps a stream to a stream is an extension trait on
//! [`timely::dataflow::Stream`] ([`per_window::PerWindow`],
//! [`host_merge::HostMerge`], [`series_limit::SeriesLimit`], [`rollup::Rollup`],
//! [`collect::CollectWindows`]), so the job's dataflow reads as a chain of method
//! calls in the order records flow. The file source (`source`) is crate-private:
//! only the engine's own job setup builds it.

pub mod collect;
pub mod host_merge;
pub mod per_window;
mod permute;
pub(crate) mod poke;
mod record_order;
pub mod rollup;
mod rule_fold;
pub mod series_limit;
pub(crate) mod source;
