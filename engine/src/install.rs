//! Installing a job into a running timely worker.
//!
//! The same function serves a one-shot run and a long-lived cluster: it builds the
//! job's dataflow inside `worker.dataflow(..)` and returns a handle. Every worker
//! must call it for the same job in the same order.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tidemark_jobs::Job;
use timely::dataflow::operators::core::Concat;
use timely::dataflow::Stream;
use timely::worker::Worker;

use crate::error::EngineError;
use crate::error::FailureSlot;
use crate::groupset::GroupSet;
use crate::kafka_source::{kafka_source, KafkaCtx};
use crate::operators::collect::{collect, Collector};
use crate::operators::host_merge::HostMerge;
use crate::operators::rollup::Rollup;
use crate::operators::series_limit::{host_records_in_output_order, series_limit_of_merged};
use crate::operators::source::{file_source, Pacing, Poke, SourceSignals};
use crate::pacing::{default_bound_ms, file_group_bound_ms, Pacer};
use crate::plan::Plan;
use crate::resume::ResumeBoard;
use crate::series::HostPartial;
use crate::start::ResumePlan;
use crate::stats::SharedStats;
use crate::time::WindowTime;

/// What a worker needs besides the job to install it.
pub struct InstallContext {
    /// Follow live files (live mode) rather than finish at end of input.
    pub follow: bool,
    /// Where each group resumes, and the windows already written.
    pub resume: Arc<ResumePlan>,
    /// Shared by the process's workers: every group's resume marks.
    pub board: Arc<ResumeBoard>,
    /// Set to stop the job: sources stop reading and open windows are not emitted.
    pub stop: Arc<AtomicBool>,
    /// The job's self-metrics, shared by its workers.
    pub stats: SharedStats,
    /// Worker 0 only: the sinks and the checkpoint committer.
    pub collector: Option<Collector>,
    /// Where an operator records why the job failed.
    pub output_error: FailureSlot,
    /// Set by a directory watcher when the job's folders change.
    pub poke: Poke,
    /// The groups there at start with their owning workers, found and assigned
    /// once for every worker ([`crate::groupset::initial_groups`], [`crate::groupset::balance`]).
    pub initial_groups: Arc<Vec<(tidemark_sources::file::FileGroup, usize)>>,
    /// This process's workers, `(first global index, count)`: a group found later
    /// goes to one of them (each process reads the files on its own machine).
    pub process_workers: (usize, usize),
    /// This process's claim table and discovery, shared by its workers.
    pub files: Arc<crate::groupset::ProcessFiles>,
    /// Where the input ends: the sources raise it, the collector reads it.
    pub input_end: Arc<crate::input_end::InputEnd>,
    /// This process's workers' slowest groups ([`crate::pacing`]).
    pub pace: Arc<crate::pacing::PaceBoard>,
    /// Whether the sources publish their groups' figures ([`crate::stats::JobStats::groups_wanted`]).
    pub publish_groups: bool,
    /// Closed while a sink of the job is backlogged: the sources pause reading.
    pub read_gate: Arc<crate::backpressure::ReadGate>,
    /// The groups every worker of this process reads as segments ([`crate::split`]).
    pub split: Arc<crate::split::SplitPlan>,
}

/// A job installed in a worker.
#[derive(Debug, Clone, Copy)]
pub struct JobHandle {
    /// The worker's index of the job's dataflow.
    pub dataflow: usize,
}

impl JobHandle {
    /// Whether the job's dataflow has completed on this worker.
    pub fn is_done(&self, worker: &Worker) -> bool {
        !worker.installed_dataflows().contains(&self.dataflow)
    }
}

/// Builds the job's dataflow in `worker` (stages 1–4) and returns its handle; the
/// caller steps the worker until [`JobHandle::is_done`]. Every worker of the
/// execution must install the same jobs in the same order.
pub fn install_job(
    worker: &mut Worker,
    job: &Arc<Job>,
    ctx: InstallContext,
) -> Result<JobHandle, EngineError> {
    let plan = Arc::new(Plan::new(job));
    let index = worker.index();
    let groups = GroupSet::new(
        job.clone(),
        plan.clone(),
        ctx.resume.clone(),
        ctx.board.clone(),
        plan.tail.clone(),
        ctx.initial_groups.clone(),
        ctx.follow,
        index,
        ctx.process_workers,
        ctx.files.clone(),
    )
    .with_pacer(Pacer::new(
        file_group_bound_ms(plan.window_ms),
        ctx.pace.clone(),
        index.saturating_sub(ctx.process_workers.0),
    ));
    let chunk = job.source.read_chunk_bytes.max(4096);
    let pacing = Pacing {
        chunk_bytes: chunk,
        activation_bytes: chunk * 4,
        poll_interval: job.source.poll_interval,
        // Per machine: each process reads its own disks.
        rate_limit: job
            .source
            .rate_limit
            .map(|r| (r / ctx.process_workers.1.max(1) as u64).max(1)),
        publish_groups: ctx.publish_groups,
    };
    let dataflow = worker.next_dataflow_index();
    let name = format!("job:{}", job.name);
    let InstallContext {
        stop,
        stats,
        collector,
        output_error,
        poke,
        input_end,
        read_gate,
        split,
        ..
    } = ctx;
    let split = crate::split::source::SplitCtx {
        split,
        plan: plan.clone(),
        parse: job.parse.clone(),
        chunk_bytes: chunk,
        max_line_bytes: job.source.max_line_bytes,
        stop: stop.clone(),
        failed: output_error.clone(),
        input_end: input_end.clone(),
        gate: read_gate.clone(),
        stats: stats.clone(),
    };
    let follow = ctx.follow;
    // A kafka source's partitions are paced on the same board as file groups.
    let kafka_pacer = Pacer::new(
        default_bound_ms(plan.window_ms),
        ctx.pace.clone(),
        index.saturating_sub(ctx.process_workers.0),
    );
    let (ctx_resume, ctx_board) = (ctx.resume.clone(), ctx.board.clone());
    worker.dataflow_named::<WindowTime, _, _>(&name, |scope| {
        let partials = if job.source.kafka.is_some() {
            kafka_source(
                scope,
                KafkaCtx {
                    job: job.clone(),
                    plan: plan.clone(),
                    follow,
                    gate: read_gate,
                    stats: stats.clone(),
                    stop: stop.clone(),
                    failed: output_error.clone(),
                    input_end,
                    resume: ctx_resume,
                    board: ctx_board,
                    pacer: kafka_pacer,
                },
            )
        } else {
            file_source(
                scope,
                groups,
                pacing,
                poke,
                read_gate,
                stats.clone(),
                SourceSignals {
                    stop: stop.clone(),
                    failed: output_error.clone(),
                    input_end,
                },
            )
        };
        // Built on every worker, split or not: all must build the same dataflow.
        let partials = partials.concat(crate::split::source::split_source(scope, split));
        downstream(partials, &plan, collector, output_error, stop, stats);
    });
    Ok(JobHandle { dataflow })
}

/// Stages 2–4, the same for a live run and a replay: host merge, the job-wide
/// `max_series` cut, rollup, collect.
pub(crate) fn downstream<'scope>(
    partials: Stream<'scope, WindowTime, Vec<HostPartial>>,
    plan: &Arc<Plan>,
    collector: Option<Collector>,
    output_error: FailureSlot,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
) {
    let merged = partials.host_merge(plan.clone(), stats.clone());
    let (host_series, rule_inputs) = series_limit_of_merged(merged, plan.clone(), stats.clone());
    let rule_series = rule_inputs.rollup(plan.clone());
    let all = rule_series.concat(host_series);
    let sorted = host_records_in_output_order(plan);
    collect(
        all,
        plan.window_ms,
        collector,
        output_error,
        stop,
        stats,
        sorted,
    );
}
