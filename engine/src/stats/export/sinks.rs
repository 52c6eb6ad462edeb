//! The per-sink families, from the sinks' live meters.

use prometheus_client::registry::Unit;

use super::{job, with, Families, Labels};
use crate::stats::sink::{Rejection, SinkSnapshot, SinkState};

fn sink_labels(j: &str, name: &str) -> Labels {
    with(job(j), "sink", name)
}

pub(super) fn sinks(f: &mut Families<'_>) {
    type Get = fn(&SinkSnapshot) -> u64;
    let counters: [(&str, &str, Get); 7] = [
        ("sink_windows", "Windows handed to the sink", |s| s.windows),
        (
            "sink_records",
            "Records (series of a window) handed to the sink, before its own filter",
            |s| s.records,
        ),
        (
            "sink_records_written",
            "Records the sink wrote, or sent and had acknowledged",
            |s| s.records_written,
        ),
        (
            "sink_batches",
            "Batches (requests, syncs) the sink completed",
            |s| s.batches,
        ),
        (
            "sink_retries",
            "Attempts that failed and were tried again",
            |s| s.retries,
        ),
        (
            "sink_failures",
            "Attempts that failed, retried or not",
            |s| s.failures,
        ),
        (
            "sink_resent_held_samples",
            "Samples a resumed run sent again that the receiver already held (expected after a restart)",
            |s| s.resent_held,
        ),
    ];
    for (name, help, get) in counters {
        f.counter(name, help, None, |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), get(&m)))
                .collect::<Vec<_>>()
        });
    }
    f.counter(
        "sink_rejected_samples",
        "Samples the receiver refused for good (never retried), by reason",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .flat_map(|m| {
                    let labels = sink_labels(j, &m.name);
                    m.rejected
                        .map(|(r, n)| (with(labels.clone(), "reason", Rejection::as_str(r)), n))
                })
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_queue_records",
        "Records waiting to be sent",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), m.queue_records as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_queue",
        "Encoded bytes waiting to be sent",
        Some(Unit::Bytes),
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .map(|m| (sink_labels(j, &m.name), m.queue_bytes as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "sink_state",
        "1 for the sink's state now (ok, retrying, failed), 0 for the others",
        None,
        |j, s| {
            s.sink_meters
                .snapshot()
                .into_iter()
                .flat_map(|m| {
                    let labels = sink_labels(j, &m.name);
                    [SinkState::Ok, SinkState::Retrying, SinkState::Failed].map(|st| {
                        (
                            with(labels.clone(), "state", st.as_str()),
                            f64::from(u8::from(m.state == st)),
                        )
                    })
                })
                .collect::<Vec<_>>()
        },
    );
}
