//! Stage 4: every record goes to worker 0, which hands each closed window, sorted,
//! to the job's output (the sinks).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::series::{ClosedWindow, Series};
use crate::stats::SharedStats;
use crate::time::{EventMs, WindowTime};

/// Receives closed windows in ascending order; runs on worker 0 only.
pub trait WindowOutput: Send {
    /// Called once per closed window that has records. An error stops the job.
    fn window(&mut self, window: &ClosedWindow) -> Result<(), String>;
    /// Called once when the job's dataflow completes (not after a failure).
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Where a failed output's error is kept for the runner to report.
pub type OutputError = std::sync::Arc<std::sync::Mutex<Option<String>>>;

pub fn collect<'scope>(
    records: Stream<'scope, WindowTime, Vec<Series>>,
    window_ms: i64,
    mut output: Option<Box<dyn WindowOutput>>,
    error: OutputError,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
) {
    let pact = Exchange::new(|_: &Series| 0u64);
    let mut pending: BTreeMap<WindowTime, Vec<Series>> = BTreeMap::new();
    records.sink(pact, "Collect", move |(input, frontier)| {
        input.for_each_time(|time, data| {
            let slot = pending.entry(*time.time()).or_default();
            for batch in data {
                slot.append(batch);
            }
        });
        while let Some(entry) = pending.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let (start, mut records) = entry.remove_entry();
            // After a stop, sources drop their capabilities without their windows
            // being complete: nothing that closes now is final.
            if stop.load(Ordering::SeqCst) {
                continue;
            }
            sort_records(&mut records);
            if let Some(out) = output.as_mut() {
                if let Ok(mut s) = stats.lock() {
                    s.windows_emitted += 1;
                }
                if let Err(e) = out.window(&closed(start, window_ms, records)) {
                    if let Ok(mut slot) = error.lock() {
                        slot.get_or_insert(e);
                    }
                    output = None;
                }
            }
        }
        if frontier.is_empty() && pending.is_empty() {
            // Everything is emitted: flush and sync the sinks once.
            if let Some(mut out) = output.take() {
                if let Err(e) = out.finish() {
                    if let Ok(mut slot) = error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            }
        }
    });
}

/// Sorts a window's records by (record, labels) — the order sinks print them in.
pub fn sort_records(records: &mut [Series]) {
    records.sort_by(|a, b| (&a.record, &a.labels).cmp(&(&b.record, &b.labels)));
}

pub fn closed(start: WindowTime, window_ms: i64, series: Vec<Series>) -> ClosedWindow {
    ClosedWindow {
        start_ms: start as EventMs,
        end_ms: start as EventMs + window_ms,
        series,
    }
}
