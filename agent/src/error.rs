//! Why the agent stops.

use thiserror::Error;

use crate::state::StateError;

/// An error that stops the agent. Its checkpoint stays at the last line acknowledged
/// with every line before it, so a restart sends the rest again.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The state folder or its checkpoint.
    #[error(transparent)]
    State(#[from] StateError),
    /// The producer's settings.
    #[error(transparent)]
    Settings(#[from] tidemark_kafka::SettingsError),
    /// librdkafka could not make the producer.
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[source] rdkafka::error::KafkaError),
    /// A record could not be queued (not for a full queue, which is waited out).
    #[error("cannot queue a record for Kafka: {0}. hint: a line longer than message.max.bytes is refused; lower [source] max_line_bytes")]
    Send(#[source] rdkafka::error::KafkaError),
    /// The broker refused a record for good (a retriable error is retried for ever).
    #[error(
        "the broker refused line {seq} of {group}: {error}. The checkpoint stays before \
         it; the agent stops so that a restart sends it, and the lines after it, again \
         in order"
    )]
    Delivery {
        /// The group's live path.
        group: String,
        /// The line's sequence number.
        seq: u64,
        /// librdkafka's error.
        #[source]
        error: rdkafka::error::KafkaError,
    },
    /// The include globs cannot be evaluated.
    #[error(transparent)]
    Discover(#[from] tidemark_sources::file::discover::DiscoverError),
    /// `/metrics` cannot be served.
    #[error("cannot serve /metrics on {addr}: {source}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// No random number for a new group's epoch.
    #[error("cannot draw a sequence epoch: {0}")]
    Random(String),
}
