//! What librdkafka's producer limits allow an agent file: lines in flight within its
//! queue, and a line of `max_line_bytes` within one record.

use crate::config::AgentTable;

use super::{Report, DEFAULT_MAX_IN_FLIGHT};

/// librdkafka's default `message.max.bytes`.
const LIBRDKAFKA_MESSAGE_MAX: u64 = 1_000_000;
/// librdkafka's default `queue.buffering.max.messages`.
const LIBRDKAFKA_QUEUE_MAX: u64 = 100_000;
/// Room for a record's headers and framing besides the line (the group's path is a
/// header; a path is at most 4 KiB).
const RECORD_OVERHEAD: u64 = 16 * 1024;

fn option_number(a: &AgentTable, key: &str, default: u64) -> u64 {
    a.options
        .get(key)
        .and_then(|v| v.get_ref().trim().parse().ok())
        .unwrap_or(default)
}

pub(super) fn max_in_flight(r: &mut Report<'_>, a: &AgentTable) -> Option<usize> {
    let Some(v) = &a.max_in_flight else {
        return Some(DEFAULT_MAX_IN_FLIGHT);
    };
    let queue = option_number(a, "queue.buffering.max.messages", LIBRDKAFKA_QUEUE_MAX);
    let n = *v.get_ref();
    if n < 1 || n as u64 > queue {
        r.on(
            v,
            format!("max_in_flight = {n} is out of range"),
            format!(
                "use 1 to {queue} (librdkafka's queue.buffering.max.messages holds every \
                 line in flight); the default is {DEFAULT_MAX_IN_FLIGHT}"
            ),
        );
        return None;
    }
    Some(n as usize)
}

/// A line of `max_line_bytes` must fit in one record: a line the broker refused
/// could never be sent, and the agent would stop on it.
pub(super) fn record_fits(r: &mut Report<'_>, a: &AgentTable, max_line: u64) {
    let max = option_number(a, "message.max.bytes", LIBRDKAFKA_MESSAGE_MAX);
    if max_line + RECORD_OVERHEAD > max {
        r.on(
            &a.brokers,
            format!(
                "a line of max_line_bytes ({max_line} bytes) plus its headers does not fit \
                 in a record of message.max.bytes ({max} bytes)"
            ),
            format!(
                "lower [source] max_line_bytes below {} or raise options \
                 \"message.max.bytes\" (and the topic's max.message.bytes)",
                max.saturating_sub(RECORD_OVERHEAD)
            ),
        );
    }
}
