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
use super::record_order::{in_record_order, sort_records};
use crate::alert_event::AlertUpdate;
use crate::alerts::AlertEvaluator;
use crate::commit::{Committer, SINK_POLL};
use crate::error::{record_failure, FailureSlot, JobFailure};
use crate::input_end::InputEnd;
use crate::series::{ClosedWindow, Series};
use crate::sink::{SinkFailure, Sinks};
use crate::stats::SharedStats;
use crate::time::{EventMs, WindowTime};

/// Worker 0's output side of a job: built once per job by the setup (or a replay)
/// and handed to worker 0's collect operator; other workers get `None`.
pub struct Collector {
    /// The job's sinks: every closed window goes to each, in order.
    pub output: Sinks,
    /// Writes a checkpoint once the sinks made the output before it durable;
    /// `None` without a state dir (and in a replay, which writes none).
    pub committer: Option<Committer>,
    /// Steps the job's `[[alert]]`s after each window and hands what they say
    /// to the sinks; `None` for a job without alerts.
    pub alerts: Option<AlertEvaluator>,
    /// Where the input ends, raised by the job's sources: at the end of input
    /// the alerts step to it, not to whatever frontier scheduling let them see.
    pub input_end: Arc<InputEnd>,
    /// Windows starting before this are not written (a replay's alert
    /// warm-up reads them for the alerts only); `EventMs::MIN`: all are.
    pub print_from: EventMs,
}

/// Extension trait for the stream of a job's output records (host series and
/// rule series): stage 4 of the dataflow, the end of it.
pub trait CollectWindows<'scope> {
    /// Sends every record to worker 0 and, once the frontier passes a window,
    /// hands it closed and sorted by (record, labels) to `collector`'s sinks, in
    /// window order, each followed by what the job's alerts say after it (gap
    /// windows' alert changes come before the next window); then offers the
    /// committer the new frontier with the alerts' state at it (a deferred
    /// checkpoint wakes the operator again). At the end of input the alerts
    /// step to `collector.input_end` (the same bound at any read speed) and the
    /// sinks are finished. A sink's or the committer's error goes to `error` and nothing
    /// more is written. Once `stop` is set no further window is written: the
    /// committer gets one last offer of what was complete before it. Counts
    /// `windows_emitted`, `last_window_ms` and `frontier_ms` in `stats`.
    /// `window_ms` is the job's window size; `collector` is `None` on the other
    /// workers, which only forward.
    ///
    /// # Examples
    /// An in-memory sink receives two closed windows, records sorted, and is
    /// finished at the end of input.
    /// ```
    /// use std::sync::atomic::AtomicBool;
    /// use std::sync::{Arc, Mutex};
    /// use timely::dataflow::operators::Input;
    /// use tidemark_engine::operators::collect::{CollectWindows, Collector};
    /// use tidemark_engine::sink::{BoxError, Sink, Sinks};
    /// use tidemark_engine::{ClosedWindow, Labels, Origin, Series, Value};
    ///
    /// /// Keeps every window it is given, and whether it was finished.
    /// #[derive(Clone, Default)]
    /// struct Memory(Arc<Mutex<(Vec<ClosedWindow>, bool)>>);
    ///
    /// impl Sink for Memory {
    ///     fn describe(&self) -> String {
    ///         "memory".to_string()
    ///     }
    ///     fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
    ///         self.0.lock().unwrap().0.push(w.clone());
    ///         Ok(())
    ///     }
    ///     fn finish(&mut self) -> Result<(), BoxError> {
    ///         self.0.lock().unwrap().1 = true;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let hits = |host: &str, n: u64| Series {
    ///     record: Arc::from("hits"),
    ///     labels: Labels::from_pairs(&[("host", host)]),
    ///     value: Value::Int(n),
    ///     origin: Origin::Host,
    /// };
    /// let memory = Memory::default();
    /// let sink = memory.clone();
    /// let error = Arc::new(Mutex::new(None));
    /// let failure = error.clone();
    /// timely::execute_directly(move |worker| {
    ///     let collector = Collector {
    ///         output: Sinks::new(vec![Box::new(sink)]),
    ///         committer: None,
    ///         alerts: None,
    ///         input_end: Default::default(),
    ///         print_from: i64::MIN,
    ///     };
    ///     let stop = Arc::new(AtomicBool::new(false));
    ///     let stats = Arc::new(Mutex::new(Default::default()));
    ///     let mut input = worker.dataflow::<u64, _, _>(|scope| {
    ///         let (input, records) = scope.new_input::<Vec<Series>>();
    ///         records.collect_windows(60_000, Some(collector), failure, stop, stats);
    ///         input
    ///     });
    ///     // Window 0 gets two records, out of order; window 60 000 one.
    ///     input.send(hits("web2", 1));
    ///     input.send(hits("web1", 3));
    ///     input.advance_to(60_000);
    ///     input.send(hits("web1", 4));
    /// });
    /// assert!(error.lock().unwrap().is_none());
    /// let (windows, finished) = memory.0.lock().unwrap().clone();
    /// assert_eq!(
    ///     windows,
    ///     vec![
    ///         ClosedWindow {
    ///             start_ms: 0,
    ///             end_ms: 60_000,
    ///             series: vec![hits("web1", 3), hits("web2", 1)],
    ///         },
    ///         ClosedWindow { start_ms: 60_000, end_ms: 120_000, series: vec![hits("web1", 4)] },
    ///     ]
    /// );
    /// assert!(finished);
    /// ```
    fn collect_windows(
        self,
        window_ms: i64,
        collector: Option<Collector>,
        error: FailureSlot,
        stop: Arc<AtomicBool>,
        stats: SharedStats,
    );
}

impl<'scope> CollectWindows<'scope> for Stream<'scope, WindowTime, Vec<Series>> {
    fn collect_windows(
        self,
        window_ms: i64,
        collector: Option<Collector>,
        error: FailureSlot,
        stop: Arc<AtomicBool>,
        stats: SharedStats,
    ) {
        collect(self, window_ms, collector, error, stop, stats, false)
    }
}

/// [`CollectWindows::collect_windows`]; `sorted`: each window's records arrive
/// in the order the sinks get them (see
/// [`super::series_limit::host_records_in_output_order`]), so they are not
/// checked again (a `debug_assert` does in debug builds).
pub(crate) fn collect<'scope>(
    records: Stream<'scope, WindowTime, Vec<Series>>,
    window_ms: i64,
    mut collector: Option<Collector>,
    error: FailureSlot,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
    sorted: bool,
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
    // Windows below this were complete when they were held back for a sink:
    // counted if a stop finds them still pending.
    let mut held_below: EventMs = EventMs::MIN;
    let scope = records.scope();
    // A sink with an activator: a deferred checkpoint needs a wake-up call.
    let _ = records.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
        pact,
        "Collect",
        move |cap, info| {
            let activator = scope.activator_for(info.address);
            // Held while worker 0's collector has windows or a sink's
            // acknowledgement to wait for: without it the dataflow ends (and
            // drops the sinks) as soon as the input is complete, even with
            // windows still held back for a sink that is not ready.
            let mut keep_alive = Some(cap);
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
                    drop(keep_alive.take());
                    return;
                };
                let stopping = stop.load(Ordering::SeqCst);
                if stopping {
                    let held = pending
                        .keys()
                        .take_while(|w| (**w as EventMs) < held_below)
                        .count();
                    if held > 0 {
                        if let Ok(mut s) = stats.lock() {
                            s.windows_held_at_stop += held as u64;
                        }
                    }
                }
                let mut failed: Option<JobFailure> = None;
                if !stopping {
                    // Never block worker 0 on a sink: a full one, or a due
                    // checkpoint waiting for the sinks to settle, keeps the
                    // windows pending until a later call.
                    let hold = c.committer.as_ref().is_some_and(Committer::holds_windows);
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(entry.key()) {
                            break;
                        }
                        if hold || !c.output.ready() {
                            let front = frontier.frontier().iter().next().copied();
                            held_below =
                                held_below.max(front.map_or(EventMs::MAX, |f| f as EventMs));
                            activator.activate_after(SINK_POLL);
                            break;
                        }
                        let (start, batches) = entry.remove_entry();
                        let mut records = concat(batches);
                        written_end = written_end.max(start as EventMs + window_ms);
                        debug_assert!(!sorted || in_record_order(&records));
                        if !sorted {
                            sort_records(&mut records);
                        }
                        let printed = start as EventMs >= c.print_from;
                        if !printed {
                            // Warm-up only: the alerts read it, no sink gets it.
                            let window = closed(start, window_ms, records);
                            if let Some(alerts) = c.alerts.as_mut() {
                                let mut updates = alerts.advance_to(window.start_ms);
                                updates.extend(alerts.evaluate(&window));
                            }
                            continue;
                        }
                        if let Ok(mut s) = stats.lock() {
                            s.windows_emitted += 1;
                            s.last_window_ms =
                                Some((start as EventMs, start as EventMs + window_ms));
                        }
                        let window = closed(start, window_ms, records);
                        // The gap windows before this one first: their alert
                        // changes precede its records in every run, whether the
                        // frontier passed them before it came or not.
                        if let Some(alerts) = c.alerts.as_mut() {
                            let updates = alerts.advance_to(window.start_ms);
                            if let Err(e) = hand_over(&mut c.output, &updates, alerts, &stats) {
                                failed = Some(JobFailure::Sink(e));
                                break;
                            }
                        }
                        if let Err(e) = c.output.write_window(&window) {
                            failed = Some(JobFailure::Sink(e));
                            break;
                        }
                        if let Some(alerts) = c.alerts.as_mut() {
                            let updates = alerts.evaluate(&window);
                            if let Err(e) = hand_over(&mut c.output, &updates, alerts, &stats) {
                                failed = Some(JobFailure::Sink(e));
                                break;
                            }
                        }
                    }
                    if failed.is_none() {
                        let front = frontier.frontier().iter().next().copied();
                        let below = match (front, pending.keys().next()) {
                            (Some(f), Some(&p)) => f.min(p) as EventMs,
                            (Some(f), None) => f as EventMs,
                            (None, Some(&p)) => p as EventMs,
                            // The end of input: the bound every frontier seen
                            // is below, whatever the speed (crate::input_end).
                            (None, None) => written_end.max(c.input_end.get()),
                        };
                        complete_below = complete_below.max(below);
                        if let Ok(mut s) = stats.lock() {
                            s.frontier_ms = Some(complete_below);
                        }
                        // The windows below the frontier without records are
                        // closed too: the alerts step over them now, so the
                        // state a checkpoint at this frontier records is the
                        // state after exactly the windows below it.
                        if let Some(alerts) = c.alerts.as_mut() {
                            let updates = alerts.advance_to(complete_below);
                            if let Err(e) = hand_over(&mut c.output, &updates, alerts, &stats) {
                                failed = Some(JobFailure::Sink(e));
                            }
                        }
                    }
                }
                let mut done = !stopping && frontier.is_empty() && pending.is_empty();
                if done && !c.output.settled() {
                    // The last sync and finish wait for acknowledgements: wait
                    // for them here instead, without blocking worker 0.
                    done = false;
                    activator.activate_after(SINK_POLL);
                }
                if failed.is_none() {
                    if let Some(committer) = c.committer.as_mut() {
                        // After a stop, commit what was completed before it, once.
                        match committer.offer_with(
                            &mut c.output,
                            complete_below,
                            stopping || done,
                            c.alerts.as_ref(),
                        ) {
                            Ok(Some(wait)) => activator.activate_after(wait),
                            Ok(None) => {}
                            Err(e) => failed = Some(JobFailure::Commit(e)),
                        }
                    } else if stopping {
                        // No checkpoint to write, but what a sink did not make
                        // durable before the stop (a receiver that is down)
                        // must fail the run, not vanish with it.
                        if let Err(e) = c.output.sync(complete_below) {
                            failed = Some(JobFailure::Sink(e));
                        }
                    }
                }
                if failed.is_none() && done {
                    if let Err(e) = c.output.finish() {
                        failed = Some(JobFailure::Sink(e));
                    }
                }
                if let Some(e) = failed {
                    record_failure(&error, e);
                    collector = None;
                } else if done || stopping {
                    collector = None;
                }
                if collector.is_none() {
                    drop(keep_alive.take());
                }
            }
        },
    );
}

/// Hands the alerts' `updates` to the sinks, in order, and counts them.
fn hand_over(
    output: &mut Sinks,
    updates: &[AlertUpdate],
    alerts: &mut AlertEvaluator,
    stats: &SharedStats,
) -> Result<(), SinkFailure> {
    let counts = alerts.take_counts();
    if let Ok(mut s) = stats.lock() {
        s.alerts_evaluated += counts.evaluated;
        s.alert_transitions += counts.transitions;
        s.alert_series_collisions += counts.collisions;
        s.alerts_firing = alerts.firing_now();
    }
    if counts.collisions > 0 {
        tracing::warn!(
            "{} alert series left out: another series of the same window gave the same alert instance (an alert's `labels` overwrote the label that told them apart); the first in label order is compared",
            counts.collisions
        );
    }
    for u in updates {
        output.write_alerts(u)?;
    }
    Ok(())
}

/// The window starting at `start`, holding `series`.
fn closed(start: WindowTime, window_ms: i64, series: Vec<Series>) -> ClosedWindow {
    ClosedWindow {
        start_ms: start as EventMs,
        end_ms: start as EventMs + window_ms,
        series,
    }
}
