//! Installing a job into a running timely worker.
//!
//! The same function serves a one-shot run and a long-lived cluster: it builds the
//! job's dataflow inside `worker.dataflow(..)` and returns a handle. Every worker
//! must call it for the same job in the same order.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use thiserror::Error;
use tidemark_jobs::{HostFrom, Job};
use tidemark_sources::file::{FileGroup, DEFAULT_MAX_LINE_BYTES};
use tidemark_sources::parse::LineParser;
use timely::dataflow::operators::core::{Concat, OkErr};
use timely::worker::Worker;

use crate::group::GroupState;
use crate::operators::collect::{collect, OutputError, WindowOutput};
use crate::operators::host_merge::{host_merge, Stage2};
use crate::operators::rollup::rollup;
use crate::operators::source::{file_source, Pacing};
use crate::plan::Plan;
use crate::series::{RuleInput, Series};
use crate::stats::SharedStats;
use crate::time::WindowTime;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("cannot build the line parser: {0}")]
    Parser(String),
    #[error("output failed: {0}")]
    Output(String),
    #[error("worker failed: {0}")]
    Worker(String),
}

/// What a worker needs besides the job to install it.
pub struct InstallContext {
    /// The job's file groups, in the same order on every worker; group `i` is read
    /// by worker `i % peers`.
    pub groups: Arc<Vec<FileGroup>>,
    /// Follow live files (live mode) rather than finish at end of input.
    pub follow: bool,
    /// Set to stop the job: sources stop reading and open windows are not emitted.
    pub stop: Arc<AtomicBool>,
    pub stats: SharedStats,
    /// Worker 0 only: where closed windows go.
    pub output: Option<Box<dyn WindowOutput>>,
    pub output_error: OutputError,
}

/// A job installed in a worker.
#[derive(Debug, Clone, Copy)]
pub struct JobHandle {
    pub dataflow: usize,
}

impl JobHandle {
    /// Whether the job's dataflow has completed on this worker.
    pub fn is_done(&self, worker: &Worker) -> bool {
        !worker.installed_dataflows().contains(&self.dataflow)
    }
}

pub fn install_job(
    worker: &mut Worker,
    job: &Job,
    ctx: InstallContext,
) -> Result<JobHandle, EngineError> {
    let plan = Arc::new(Plan::new(job));
    let (index, peers) = (worker.index(), worker.peers());
    let mut groups = Vec::new();
    for (i, g) in ctx.groups.iter().enumerate() {
        if i % peers != index {
            continue;
        }
        let parser = LineParser::new(&job.parse, &plan.fields)
            .map_err(|e| EngineError::Parser(e.to_string()))?;
        groups.push(GroupState::new(
            i as u32,
            g,
            group_host(&job.source.host, g),
            plan.clone(),
            parser,
            ctx.follow,
            DEFAULT_MAX_LINE_BYTES,
        ));
    }
    let pacing = Pacing {
        chunk_bytes: job.source.read_chunk_bytes.max(4096),
        activation_bytes: job.source.read_chunk_bytes.max(4096) * 4,
        poll_interval: job.source.poll_interval,
    };
    let dataflow = worker.next_dataflow_index();
    let name = format!("job:{}", job.name);
    let InstallContext {
        stop,
        stats,
        output,
        output_error,
        ..
    } = ctx;
    worker.dataflow_named::<WindowTime, _, _>(&name, |scope| {
        let partials = file_source(scope, groups, pacing, stop.clone(), stats.clone());
        let stage2 = host_merge(partials, plan.clone());
        let (rule_inputs, host_series) =
            stage2.ok_err::<Vec<RuleInput>, _, Vec<Series>, _, _>(|x| match x {
                Stage2::Rule(r) => Ok(r),
                Stage2::Host(s) => Err(s),
            });
        let rule_series = rollup(rule_inputs, plan.clone());
        let all = rule_series.concat(host_series);
        collect(all, plan.window_ms, output, output_error, stop, stats);
    });
    Ok(JobHandle { dataflow })
}

/// The host label of a group whose host does not come from each line.
fn group_host(host: &HostFrom, group: &FileGroup) -> Option<String> {
    match host {
        HostFrom::Value(v) => Some(v.clone()),
        HostFrom::Field(_) => None,
        HostFrom::PathRegex(re) => {
            let path = group.live.to_string_lossy();
            match re.captures(&path).and_then(|c| c.name("host")) {
                Some(m) => Some(m.as_str().to_string()),
                None => {
                    tracing::warn!(
                        "{path}: the job's host path_regex {:?} does not match this path; its lines get host=\"\"",
                        re.as_str()
                    );
                    Some(String::new())
                }
            }
        }
    }
}
