//! tidemark's Kafka pieces shared by the agent, the `kafka` source and the `kafka` sink:
//!
//! - [`wire`]: what an agent's record carries (headers for host, group, sequence;
//!   heartbeats) and how a consumer reads it back, telling resends from new lines;
//! - [`partition`]: the Java-compatible murmur2 partitioner, so a file group's lines go
//!   to one partition that any Kafka client would pick for the same key;
//! - [`client`]: librdkafka settings — the user's options passed through, with the few
//!   that tidemark's guarantees rest on (idempotence, `acks=all`, manual offsets) fixed;
//! - `testing` (feature `test-support`): a real broker (tansu) for integration tests.
#![warn(missing_docs)]

pub mod client;
pub mod partition;
pub mod wire;

#[cfg(feature = "test-support")]
pub mod testing;

pub use client::{client_config, Role, SettingsError};
pub use partition::{murmur2, partition_for};
pub use wire::{AgentRecord, GroupId, WireError};
