//! The job's dataflow stages, one operator per file.

pub mod collect;
pub mod host_merge;
pub mod per_window;
pub mod rollup;
pub mod series_limit;
pub mod source;
