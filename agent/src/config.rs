//! The agent file as written (TOML): serde structs only, no I/O, no validation
//! ([`crate::validate`] turns an [`AgentFile`] into a checked [`crate::Agent`]).
//!
//! An agent file is told from a job file by its top-level `[agent]` table (a job
//! file has none: its keys are denied). `[source]` is the job file's own table
//! ([`SourceFile`]), with the keys a job spells the same way.

use std::collections::BTreeMap;

use serde::Deserialize;
use tidemark_jobs::model::SourceFile;
pub use toml::Spanned;

/// The whole agent file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// Where lines go, and the agent's own settings.
    pub agent: Spanned<AgentTable>,
    /// The files to read: a job's `[source]` with `kind = "file"`. The agent uses
    /// include, exclude, poll_interval, read_chunk, max_line_bytes,
    /// fingerprint_bytes, rotated_tail_wait and rate_limit; host, archive,
    /// split_from and max_open_files are refused (see `docs/agent.md`).
    pub source: Spanned<SourceFile>,
    /// Which lines are sent. Default: every line.
    #[serde(default)]
    pub filter: Option<Spanned<FilterFile>>,
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTable {
    /// The host name every record carries (`tm-host`, and the key `host/group`).
    /// `${NAME}` is an environment variable. Default: the machine's host name.
    pub host: Option<Spanned<String>>,
    /// The folder of the agent's checkpoint (sequence numbers and read positions);
    /// relative to the agent file's folder. Required.
    pub state_dir: Spanned<String>,
    /// Kafka bootstrap servers, `host:port[,host:port…]`. Required.
    pub brokers: Spanned<String>,
    /// The topic lines are produced to (it must exist). Required.
    pub topic: Spanned<String>,
    /// An idle group (at its end, every line acknowledged) sends a heartbeat this
    /// often. Default "5s".
    pub heartbeat_interval: Option<Spanned<String>>,
    /// Lines sent but not yet acknowledged by the broker, over all groups; reading
    /// pauses at this bound (memory stays bounded while the broker is away).
    /// Default 10000.
    pub max_in_flight: Option<Spanned<i64>>,
    /// A group none of whose files has existed for this long is forgotten: its
    /// sequence and checkpoint entry are dropped (hosts whose pods churn would
    /// otherwise keep every group ever seen). Files seen again later start a new
    /// epoch. Default "24h".
    pub group_retention: Option<Spanned<String>>,
    /// `host:port` to serve `GET /metrics` on. Default: not served.
    pub metrics_addr: Option<Spanned<String>>,
    /// librdkafka options passed through (TLS, SASL, linger.ms, …), values as
    /// strings. The producer's guarantees (idempotence, acks, message timeout) and
    /// the brokers are not options. Default: none.
    #[serde(default)]
    pub options: BTreeMap<String, Spanned<String>>,
}

/// `[filter]`: a line is sent when it matches an include (or there is none) and
/// no exclude. Keywords are plain substrings (bytes), regexes are matched
/// against the line as text (invalid UTF-8 replaced).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    /// Keywords; a line containing any of them is included. Default: none.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Regexes; a line matching any of them is included. Default: none.
    #[serde(default)]
    pub include_regex: Vec<Spanned<String>>,
    /// Keywords; a line containing any of them is left out. Default: none.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Regexes; a line matching any of them is left out. Default: none.
    #[serde(default)]
    pub exclude_regex: Vec<Spanned<String>>,
}
