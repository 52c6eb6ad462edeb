//! `tidemark agent AGENT.toml`: the light process on a business host. It tails log
//! files with the same file source as jobs (globs, file identity, every rotation
//! kind, the rotation merge, rate limit, max line bytes), parses nothing, optionally
//! filters lines, and produces each line to Kafka in tidemark's record format
//! ([`tidemark_kafka::wire`]), one partition per file group, exactly once as the
//! cluster's `kafka` source reads it: a group's read position is checkpointed only
//! once the broker acknowledged every line before it, and lines sent again after a
//! restart keep their sequence numbers, so a consumer drops the copies. Lines after
//! a discontinuity of the files (a resume miss, a truncation without a copy) are
//! numbered in a new epoch instead, checkpointed before any is sent
//! ([`group`]); groups whose files are gone are forgotten after
//! `group_retention` ([`run`](mod@run)).
//!
//! - [`config`]: the agent file as written; [`validate`]: checked into an [`Agent`];
//! - [`run`](mod@run): the loop (discovery, reading, producing, delivery reports, heartbeats,
//!   checkpoints); [`group`]: one group's sequence and lines in flight;
//! - [`state`]: the checkpoint file; [`filter`]; [`stats`]: `/metrics`.
//!
//! No timely here: the agent does not compute.
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod filter;
pub mod group;
pub mod producer;
pub mod run;
pub mod state;
pub mod stats;
pub mod validate;

pub use error::AgentError;
pub use run::{run, Outcome};
pub use validate::{is_agent_file, load, Agent};
