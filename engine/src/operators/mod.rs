//! The job's dataflow stages, one operator per file.

pub mod collect;
pub mod host_merge;
pub mod rollup;
pub mod source;
