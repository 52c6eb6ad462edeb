//! Stage 4: every record goes to worker 0, which hands each closed window, sorted,
//! to the job's output (the sinks), and — with a state dir — commits checkpoints
//! once that output is durable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::per_window::{concat, window_of};
use crate::commit::Committer;
use crate::series::{ClosedWindow, Series};
use crate::sink::{error_chain, Sinks};
use crate::stats::SharedStats;
use crate::time::{EventMs, WindowTime};

/// Where a failed output's error is kept for the runner to report. Text, because
/// the same slot holds a source's discovery failure; the sinks' and the
/// committer's typed errors are flattened into it with their sources
/// ([`error_chain`]).
pub type OutputError = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// Worker 0's output side of a job.
pub struct Collector {
    pub output: Sinks,
    pub committer: Option<Committer>,
}

pub fn collect<'scope>(
    records: Stream<'scope, WindowTime, Vec<Series>>,
    window_ms: i64,
    mut collector: Option<Collector>,
    error: OutputError,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
) {
    let pact = Exchange::new(|_: &Series| 0u64);
    let mut pending: BTreeMap<WindowTime, Vec<Vec<Series>>> = BTreeMap::new();
    // Every window below this is written; only ever taken from real progress,
    // never from the capabilities sources drop when stopping.
    let mut complete_below: EventMs = EventMs::MIN;
    // End of the last window written: what "complete" means at end of input (the
    // empty frontier would claim every window, forever, and a later run with new
    // data would skip all of it).
    let mut written_end: EventMs = EventMs::MIN;
    let scope = records.scope();
    // A sink with an activator: a deferred checkpoint needs a wake-up call.
    let _ = records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        pact,
        "Collect",
        move |_cap, info| {
            let activator = scope.activator_for(info.address);
            move |(input, frontier), _output| {
                input.for_each_stamp(|cap, data| {
                    let Some(window) = window_of(&cap, "Collect") else {
                        return;
                    };
                    let slot = pending.entry(window).or_default();
                    slot.extend(data.map(std::mem::take));
                });
                let Some(c) = collector.as_mut() else {
                    pending.clear();
                    return;
                };
                let stopping = stop.load(Ordering::SeqCst);
                let mut failed: Option<String> = None;
                if !stopping {
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        let (start, batches) = entry.remove_entry();
                        let mut records = concat(batches);
                        written_end = written_end.max(start as EventMs + window_ms);
                        sort_records(&mut records);
                        if let Ok(mut s) = stats.lock() {
                            s.windows_emitted += 1;
                            s.last_window_ms =
                                Some((start as EventMs, start as EventMs + window_ms));
                        }
                        let window = closed(start, window_ms, records);
                        if let Err(e) = c.output.write_window(&window) {
                            failed = Some(error_chain(&e));
                            break;
                        }
                    }
                    if failed.is_none() {
                        let front = frontier.frontier().iter().next().copied();
                        let below = match (front, pending.keys().next()) {
                            (Some(f), Some(&p)) => f.min(p) as EventMs,
                            (Some(f), None) => f as EventMs,
                            (None, Some(&p)) => p as EventMs,
                            (None, None) => written_end,
                        };
                        complete_below = complete_below.max(below);
                        if let Ok(mut s) = stats.lock() {
                            s.frontier_ms = Some(complete_below);
                        }
                    }
                }
                let done = !stopping && frontier.is_empty() && pending.is_empty();
                if failed.is_none() {
                    if let Some(committer) = c.committer.as_mut() {
                        // After a stop, commit what was completed before it, once.
                        match committer.offer(&mut c.output, complete_below, stopping || done) {
                            Ok(Some(wait)) => activator.activate_after(wait),
                            Ok(None) => {}
                            Err(e) => {
                                failed = Some(format!(
                                    "writing the checkpoint failed: {}",
                                    error_chain(&e)
                                ))
                            }
                        }
                    }
                }
                if failed.is_none() && done {
                    if let Err(e) = c.output.finish() {
                        failed = Some(error_chain(&e));
                    }
                }
                if let Some(e) = failed {
                    if let Ok(mut slot) = error.lock() {
                        slot.get_or_insert(e);
                    }
                    collector = None;
                } else if done || stopping {
                    collector = None;
                }
            }
        },
    );
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
