//! Running one job to completion (`tidemark run`, `tidemark demo`) in a timely
//! execution of `workers` threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_jobs::Job;
use tidemark_sources::file::{discover, FileGroup};

use crate::install::{install_job, EngineError, InstallContext};
use crate::operators::collect::WindowOutput;
use crate::stats::JobStats;

pub struct RunOptions {
    pub workers: usize,
    /// Finish at the end of every file (`--until-eof`) instead of following them.
    pub until_eof: bool,
    /// Set (e.g. by a signal handler) to stop a live run cleanly.
    pub stop: Arc<AtomicBool>,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub stats: JobStats,
    pub groups: Vec<FileGroup>,
}

/// Discovers the job's files and runs it; closed windows go to `output`.
pub fn run_job(
    job: &Job,
    opts: RunOptions,
    output: Box<dyn WindowOutput>,
) -> Result<RunOutcome, EngineError> {
    let groups = discover(&job.source.include, &job.source.exclude)
        .map_err(|e| EngineError::Worker(e.to_string()))?;
    if groups.is_empty() {
        tracing::warn!(
            "no file matches the job's include globs {:?}; nothing to read",
            job.source.include
        );
    }
    let groups = Arc::new(groups);
    let stats = Arc::new(Mutex::new(JobStats::default()));
    let output_error = Arc::new(Mutex::new(None));
    let output = Arc::new(Mutex::new(Some(output)));
    let job = Arc::new(job.clone());
    let stop = opts.stop.clone();
    let config = timely::Config::process(opts.workers.max(1));
    let guards = {
        let (groups, stats, output_error, stop) = (
            groups.clone(),
            stats.clone(),
            output_error.clone(),
            stop.clone(),
        );
        timely::execute(config, move |worker| -> Result<(), EngineError> {
            let out = if worker.index() == 0 {
                output.lock().ok().and_then(|mut o| o.take())
            } else {
                None
            };
            let handle = install_job(
                worker,
                &job,
                InstallContext {
                    groups: groups.clone(),
                    follow: !opts.until_eof,
                    stop: stop.clone(),
                    stats: stats.clone(),
                    output: out,
                    output_error: output_error.clone(),
                },
            )?;
            while !handle.is_done(worker) {
                if output_error.lock().map(|e| e.is_some()).unwrap_or(false) {
                    stop.store(true, Ordering::SeqCst);
                }
                worker.step_or_park(Some(Duration::from_millis(50)));
            }
            Ok(())
        })
        .map_err(EngineError::Worker)?
    };
    for r in guards.join() {
        r.map_err(EngineError::Worker)??;
    }
    if let Some(e) = output_error.lock().ok().and_then(|mut e| e.take()) {
        return Err(EngineError::Output(e));
    }
    let stats = stats.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(RunOutcome {
        stats,
        groups: Arc::try_unwrap(groups).unwrap_or_else(|g| (*g).clone()),
    })
}
