//! The consumer's librdkafka side that is not reading: its client context (errors
//! and partition ends), its prefetch share of the job's bound, how it is made, and
//! which partitions added later are this worker's.

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use tidemark_jobs::KafkaSource;
use tidemark_kafka::{client_config, Role};

use super::ConnectError;
#[cfg(doc)]
use super::Polled;

/// Client errors logged in full before only every `ERRORS_LOGGED_EVERY`th is.
const ERRORS_LOGGED: u32 = 20;
const ERRORS_LOGGED_EVERY: u32 = 100;

/// The consumer's librdkafka context: a partition's end is an event the source
/// handles ([`Polled::Skip`]), not an error to print; other client errors go to
/// the log as warnings, rate-limited (librdkafka retries them itself).
#[derive(Default)]
pub struct SourceContext {
    pub(super) errors: std::sync::atomic::AtomicU32,
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        let n = self
            .errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n <= ERRORS_LOGGED || n.is_multiple_of(ERRORS_LOGGED_EVERY) {
            tracing::warn!(
                "kafka source: librdkafka ({n} client errors so far): {error}: {reason}"
            );
        }
    }
}

impl ConsumerContext for SourceContext {}

/// What librdkafka may prefetch for one job, over all its consumers (the job's
/// workers across the cluster), in KiB. librdkafka's own default is 64 MiB per
/// consumer (`queued.max.messages.kbytes`), so a job of 16 workers, or 20 jobs on a
/// member, could hold a gigabyte of records not read yet.
pub const PREFETCH_PER_JOB_KIB: u64 = 64 * 1024;

/// The least a consumer is given: librdkafka fetches at least one
/// `message.max.bytes` (1 MB by default) at a time whatever the queue's bound.
const PREFETCH_MIN_KIB: u64 = 1024;

/// librdkafka's `message.max.bytes` default: `fetch.max.bytes` may not be below it.
const MESSAGE_MAX_BYTES: u64 = 1_000_000;

/// The prefetch settings of one of a job's `consumers` consumers: its share of
/// [`PREFETCH_PER_JOB_KIB`] (at least 1 MiB) as `queued.max.messages.kbytes`, or the
/// user's own value when it is lower; a `fetch.max.bytes` of the user's (librdkafka
/// lowers its default to the queue's bound itself, but not a value set) is lowered
/// to the share too.
pub fn prefetch_settings(
    options: &BTreeMap<String, String>,
    consumers: usize,
) -> Vec<(&'static str, String)> {
    let share = (PREFETCH_PER_JOB_KIB / consumers.max(1) as u64).max(PREFETCH_MIN_KIB);
    let user = |name: &str| options.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let kib = user("queued.max.messages.kbytes").map_or(share, |u| u.min(share));
    let mut out = vec![("queued.max.messages.kbytes", kib.to_string())];
    if let Some(fetch) = user("fetch.max.bytes") {
        let floor = user("message.max.bytes").unwrap_or(MESSAGE_MAX_BYTES);
        out.push((
            "fetch.max.bytes",
            fetch.min((kib * 1024).max(floor)).to_string(),
        ));
    }
    out
}

/// A consumer with the job's settings (its group id only receives offsets), one of
/// the job's `consumers`.
pub(super) fn make_consumer(
    source: &KafkaSource,
    job: &str,
    consumers: usize,
) -> Result<BaseConsumer<SourceContext>, ConnectError> {
    let mut config = client_config(Role::Consumer, &source.brokers, &source.options)?;
    config.set("group.id", source.group_id_for(job));
    for (name, value) in prefetch_settings(&source.options, consumers) {
        config.set(name, value);
    }
    config
        .create_with_context(SourceContext::default())
        .map_err(|source| ConnectError::Kafka {
            what: "cannot make a consumer",
            source,
        })
}

/// The partitions below `count` that worker `index` of `workers` reads (`p mod
/// workers`) and that are not in `have`.
pub fn new_partitions(
    have: impl IntoIterator<Item = i32>,
    count: usize,
    index: usize,
    workers: usize,
) -> Vec<i32> {
    let have: BTreeSet<i32> = have.into_iter().collect();
    (0..count as i32)
        .filter(|p| *p as usize % workers.max(1) == index && !have.contains(p))
        .collect()
}
