//! What the agent counts, shared with the `/metrics` thread (atomics: the read loop
//! never waits for a scrape), and its rendering as OpenMetrics.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// OpenMetrics 1.0 text, which Prometheus and `curl` read.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The agent's counters and gauges.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines the file source delivered.
    pub lines_read: AtomicU64,
    /// Bytes read from files (decompressed).
    pub bytes_read: AtomicU64,
    /// Lines produced to Kafka (a resend after a restart counts again).
    pub lines_sent: AtomicU64,
    /// Lines the broker acknowledged.
    pub lines_acked: AtomicU64,
    /// Lines left out by `[filter]`.
    pub lines_filtered: AtomicU64,
    /// Heartbeats produced.
    pub heartbeats_sent: AtomicU64,
    /// Lines sent and not yet acknowledged.
    pub in_flight: AtomicU64,
    /// The most lines ever in flight at once (never above `max_in_flight`).
    pub in_flight_max: AtomicU64,
    /// Errors librdkafka reported (broker down, connection refused, …).
    pub broker_errors: AtomicU64,
    /// Records the broker refused for good (the agent stops on the first line refused;
    /// a heartbeat refused is only warned about).
    pub delivery_errors: AtomicU64,
    /// File groups shipped.
    pub groups: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Wall time of the last checkpoint, ms since the Unix epoch (0: none yet).
    pub checkpoint_at_ms: AtomicU64,
    /// Times reading paused because `max_in_flight` lines were in flight.
    pub in_flight_pauses: AtomicU64,
    /// Lines longer than max_line_bytes, skipped (from the file source).
    pub oversize_lines: AtomicU64,
    /// Rotations, copytruncates, plain truncations and resume misses (file source).
    pub rotations: AtomicU64,
    /// See `rotations`.
    pub copytruncates: AtomicU64,
    /// See `rotations`.
    pub truncations: AtomicU64,
    /// See `rotations`.
    pub resume_misses: AtomicU64,
    /// New sequence epochs drawn for known groups, because the file source
    /// reported a discontinuity (resume miss, truncation, …): each is also warned.
    pub new_epochs: AtomicU64,
    /// Groups forgotten after `group_retention` with none of their files.
    pub groups_pruned: AtomicU64,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }

    /// The metrics as OpenMetrics text; `now_ms` is the wall clock.
    pub fn render(&self, host: &str, now_ms: u64) -> String {
        let mut registry = Registry::with_prefix_and_labels(
            "tidemark_agent",
            [("host".into(), host.to_string().into())].into_iter(),
        );
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, &AtomicU64); 16] = [
            (
                "lines_read",
                "Lines the file source delivered",
                &self.lines_read,
            ),
            ("bytes_read", "Bytes read from files", &self.bytes_read),
            (
                "lines_sent",
                "Lines produced to Kafka (resends after a restart included)",
                &self.lines_sent,
            ),
            (
                "lines_acked",
                "Lines the broker acknowledged",
                &self.lines_acked,
            ),
            (
                "lines_filtered",
                "Lines left out by [filter] (they take no sequence number)",
                &self.lines_filtered,
            ),
            (
                "heartbeats_sent",
                "Heartbeats produced by idle groups",
                &self.heartbeats_sent,
            ),
            (
                "broker_errors",
                "Errors librdkafka reported (broker unreachable, ...)",
                &self.broker_errors,
            ),
            (
                "delivery_errors",
                "Records the broker refused for good",
                &self.delivery_errors,
            ),
            ("checkpoints", "Checkpoints written", &self.checkpoints),
            (
                "in_flight_pauses",
                "Times reading paused at max_in_flight",
                &self.in_flight_pauses,
            ),
            (
                "oversize_lines",
                "Lines longer than max_line_bytes, skipped",
                &self.oversize_lines,
            ),
            ("rotations", "Live files renamed away", &self.rotations),
            (
                "copytruncates",
                "Truncations whose old content was read from its copy",
                &self.copytruncates,
            ),
            (
                "truncations",
                "Truncations without a copy (read again from 0)",
                &self.truncations,
            ),
            (
                "new_epochs",
                "New sequence epochs drawn for known groups after a discontinuity of their files (resume miss, truncation, ...)",
                &self.new_epochs,
            ),
            (
                "groups_pruned",
                "Groups forgotten after group_retention with none of their files",
                &self.groups_pruned,
            ),
        ];
        for (name, help, value) in counters {
            let c = Counter::<u64, AtomicU64>::default();
            c.inc_by(get(value));
            registry.register(name, help, c);
        }
        let last = get(&self.checkpoint_at_ms);
        let age = if last == 0 {
            -1
        } else {
            (now_ms.saturating_sub(last) / 1000) as i64
        };
        let gauges: [(&str, &str, i64); 5] = [
            (
                "in_flight",
                "Lines sent and not yet acknowledged",
                get(&self.in_flight) as i64,
            ),
            (
                "in_flight_max",
                "The most lines in flight at once since start",
                get(&self.in_flight_max) as i64,
            ),
            ("groups", "File groups shipped", get(&self.groups) as i64),
            (
                "resume_misses",
                "Checkpointed positions whose file was not found",
                get(&self.resume_misses) as i64,
            ),
            (
                "checkpoint_age_seconds",
                "Seconds since the last checkpoint (-1: none yet)",
                age,
            ),
        ];
        for (name, help, value) in gauges {
            let g = Gauge::<i64>::default();
            g.set(value);
            registry.register(name, help, g);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_the_host() {
        let s = Stats::default();
        Stats::add(&s.lines_acked, 5);
        Stats::set(&s.in_flight_max, 3);
        let text = s.render("web-1", 10_000);
        assert!(
            text.contains("tidemark_agent_lines_acked_total{host=\"web-1\"} 5"),
            "{text}"
        );
        assert!(text.contains("tidemark_agent_in_flight_max{host=\"web-1\"} 3"));
        assert!(text.contains("tidemark_agent_checkpoint_age_seconds{host=\"web-1\"} -1"));
    }
}
