//! Log sources: line parsers, file discovery and tailing, and a synthetic log
//! generator for demos, tests and benchmarks.

pub mod fds;
pub mod file;
pub mod parse;
pub mod rate;
pub mod replay;
pub mod sample;
pub mod tail;
pub mod watch;
pub mod watch_hub;
