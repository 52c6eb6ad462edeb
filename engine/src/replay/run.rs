//! Running a planned replay in a timely execution of `workers` threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_jobs::Job;

use super::plan::ReplayPlan;
use super::progress::ReplayProgress;
use super::shared::{ReplaySourceCtx, SegmentQueue};
use super::source::replay_source;
use crate::backpressure::ReadGate;
use crate::error::EngineError;
use crate::input_end::InputEnd;
use crate::install::downstream;
use crate::operators::collect::Collector;
use crate::plan::Plan;
use crate::series::ClosedWindow;
use crate::sink::{BoxError, Sink, Sinks};
use crate::stats::{JobStats, SharedStats};
use crate::time::{EventMs, WindowTime};

/// How to run a planned replay.
pub struct ReplayOptions {
    /// timely worker threads (at least 1).
    pub workers: usize,
    /// Bytes per second over the whole replay (the job's `rate_limit` unless
    /// overridden); `None`: unlimited.
    pub rate_limit: Option<u64>,
    /// Set (Ctrl-C) to stop: windows already written stay, open ones are dropped.
    pub stop: Arc<AtomicBool>,
    /// Counters the workers update, for the caller's progress display.
    pub progress: Arc<ReplayProgress>,
}

/// What a replay that ran to its end or was interrupted did.
#[derive(Debug)]
pub struct ReplayOutcome {
    /// The job's self-metrics over the whole replay.
    pub stats: JobStats,
    /// Windows every sink took.
    pub windows_written: u64,
    /// How long after the start of the run (not of planning) the first window was
    /// written.
    pub first_window_after: Option<Duration>,
    /// Stopped before the end (Ctrl-C).
    pub interrupted: bool,
}

/// Reads the plan's segments and writes the range's windows to `output`.
pub fn run_replay(
    job: &Job,
    replay: ReplayPlan,
    opts: ReplayOptions,
    output: Sinks,
) -> Result<ReplayOutcome, EngineError> {
    run_replay_from(job, replay, opts, output, None)
}

/// [`run_replay`] whose plan starts before the range the user asked for, to
/// warm the alerts up: windows before `print_from` are read for the alerts
/// only, and written nowhere.
pub fn run_replay_from(
    job: &Job,
    replay: ReplayPlan,
    opts: ReplayOptions,
    mut output: Sinks,
    print_from: Option<EventMs>,
) -> Result<ReplayOutcome, EngineError> {
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let progress = opts.progress.clone();
    progress.add(&progress.bytes_total, replay.bytes_to_read);
    progress.add(&progress.segments_total, replay.segments.len() as u64);
    let workers = opts.workers.max(1);
    if let Ok(mut s) = stats.lock() {
        s.sinks = output.describe();
        s.sink_meters = output.meters();
    }
    // A sink blocked on a down receiver gives up when the replay is stopped.
    output.watch_stop(&opts.stop);
    let gate = ReadGate::new(output.meters());
    // Last: a window counts as written once every sink of the job has it.
    output.push(Box::new(Progress(progress.clone())));
    // A replay ends at its range's end at the latest.
    let input_end = Arc::new(InputEnd::capped_at(replay.range.to_ms()));
    let collector = Arc::new(Mutex::new(Some(Collector {
        output,
        committer: None,
        // A back-test: the alerts start fresh where the replay starts reading.
        alerts: crate::alerts::AlertEvaluator::for_job(job).map(|mut e| {
            if let Some(from) = print_from {
                e.warm_up_before(from);
            }
            e
        }),
        input_end: input_end.clone(),
        print_from: print_from.unwrap_or(EventMs::MIN),
    })));
    let output_error = Arc::new(Mutex::new(None));
    let failed = Arc::new(Mutex::new(None));
    let ctx = ReplaySourceCtx {
        queue: Arc::new(SegmentQueue::new(replay.segments)),
        plan: Arc::new(Plan::new(job)),
        range: replay.range,
        parse: job.parse.clone(),
        max_line_bytes: job.source.max_line_bytes,
        chunk_bytes: job.source.read_chunk_bytes.max(4096),
        rate_limit: opts.rate_limit.map(|r| (r / workers as u64).max(1)),
        stop: opts.stop.clone(),
        stats: stats.clone(),
        progress: progress.clone(),
        failed: failed.clone(),
        input_end,
        gate,
        pace: crate::pacing::PaceBoard::new(workers),
        slot: 0,
    };
    let name = format!("replay:{}", job.name);
    let guards = {
        let (stats, output_error) = (stats.clone(), output_error.clone());
        let panics = crate::worker_panic::PanicWatch::default();
        timely::execute(timely::Config::process(workers), move |worker| {
            panics.catching(worker, |worker| {
                let collector = if worker.index() == 0 {
                    collector.lock().ok().and_then(|mut o| o.take())
                } else {
                    None
                };
                let ctx = ReplaySourceCtx {
                    slot: worker.index(),
                    ..ctx.clone()
                };
                let plan = ctx.plan.clone();
                let stop = ctx.stop.clone();
                let stop_all = ctx.stop.clone();
                let (stats, errors) = (stats.clone(), output_error.clone());
                let dataflow = worker.next_dataflow_index();
                worker.dataflow_named::<WindowTime, _, _>(&name, move |scope| {
                    let partials = replay_source(scope, ctx);
                    downstream(partials, &plan, collector, errors, stop, stats);
                });
                while worker.installed_dataflows().contains(&dataflow) {
                    if panics.abandon_if_panicked(worker) {
                        return; // the panicking worker's error is the replay's
                    }
                    // A failed sink ends the replay: stop reading the rest of the range.
                    if output_error.lock().map(|e| e.is_some()).unwrap_or(false) {
                        stop_all.store(true, Ordering::SeqCst);
                    }
                    worker.step_or_park(Some(Duration::from_millis(50)));
                }
            })
        })
        .map_err(|message| EngineError::Timely {
            worker: None,
            message,
        })?
    };
    for (worker, r) in guards.join().into_iter().enumerate() {
        r.and_then(|caught| caught)
            .map_err(|message| EngineError::Timely {
                worker: Some(worker),
                message,
            })?;
    }
    if let Some(e) = failed.lock().ok().and_then(|mut e| e.take()) {
        return Err(EngineError::Replay(e));
    }
    if let Some(e) = output_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(EngineError::Output(e));
    }
    let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(ReplayOutcome {
        stats,
        windows_written: progress.get(&progress.windows_written),
        first_window_after: progress.first_window_after(),
        interrupted: !progress.is_complete(),
    })
}

/// Counts windows for progress: the last of the replay's sinks, so it sees a
/// window (and the end) only after every real sink took it.
struct Progress(Arc<ReplayProgress>);

impl Sink for Progress {
    fn describe(&self) -> String {
        "replay progress".to_string()
    }

    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        self.0.window_written();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.0.set_complete();
        Ok(())
    }
}
