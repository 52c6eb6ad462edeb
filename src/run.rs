//! `tidemark run` and `tidemark validate`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tidemark_engine::{run_job, RunOptions, RunOutcome};
use tidemark_jobs::Job;
use tidemark_sinks::Outputs;

/// Exit code for an invalid job or bad usage.
pub const EXIT_INVALID: u8 = 2;

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match tidemark_jobs::load(path) {
        Ok(_) => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprintln!("{diags}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// Loads a job, printing its errors; `None` means invalid (exit 2).
pub fn load_job(path: &Path) -> Option<Job> {
    match tidemark_jobs::load(path) {
        Ok(job) => Some(job),
        Err(diags) => {
            eprintln!("{diags}");
            None
        }
    }
}

pub fn run(path: &Path, until_eof: bool, workers: usize) -> anyhow::Result<ExitCode> {
    let Some(job) = load_job(path) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let stop = stop_on_signals()?;
    if !until_eof {
        tracing::info!("following the job's files; stop with Ctrl-C or SIGTERM");
    }
    let outcome = execute(&job, until_eof, workers, stop)?;
    eprint!("{}", outcome.stats.summary());
    Ok(ExitCode::SUCCESS)
}

/// Runs `job` with its sinks.
pub fn execute(
    job: &Job,
    until_eof: bool,
    workers: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    let outputs = Outputs::open(job).context("cannot open the job's sinks")?;
    run_job(
        job,
        RunOptions {
            workers: workers.max(1),
            until_eof,
            stop,
        },
        Box::new(outputs),
    )
    .with_context(|| format!("job {:?} failed", job.name))
}

/// A flag set by the first SIGINT/SIGTERM; a second one exits at once.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("stopping: windows already written are kept; open windows are not emitted");
    })
    .context("cannot install the signal handler")?;
    Ok(stop)
}
