//! `tidemark run` and `tidemark validate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tidemark_engine::checkpoint::ResetChoice;
use tidemark_engine::{run_job, RunOptions, RunOutcome};
use tidemark_jobs::Job;
use tidemark_sinks::Outputs;

/// Exit code for an invalid job or bad usage.
pub const EXIT_INVALID: u8 = 2;

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match tidemark_jobs::load(path) {
        Ok(job) => {
            for warning in include_warnings(&job) {
                eprintln!("{}: {warning}", path.display());
            }
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprintln!("{diags}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// A warning for each `include` glob that matches no file right now (counting
/// rotated siblings and `exclude`, as a run would): the job is valid, but it
/// would read nothing from that glob until such a file appears.
fn include_warnings(job: &Job) -> Vec<String> {
    let roots = tidemark_sources::file::AllowedRoots::any();
    job.source
        .include
        .iter()
        .filter_map(|glob| {
            let found = tidemark_sources::file::discover(
                std::slice::from_ref(glob),
                &job.source.exclude,
                &roots,
            );
            match found {
                Ok(d) if d.groups.is_empty() => Some(format!(
                    "warning: include glob `{glob}` matches no file\n  hint: check the path \
                     (relative globs are relative to the job file's folder); until a file \
                     matches, the job reads nothing from this glob"
                )),
                Ok(_) => None,
                Err(e) => Some(format!(
                    "warning: include glob `{glob}` cannot be searched: {e}\n  hint: check the glob"
                )),
            }
        })
        .collect()
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

/// `tidemark run`'s options.
pub struct RunArgs {
    pub until_eof: bool,
    pub workers: usize,
    pub state_dir: Option<PathBuf>,
    pub reset: Option<ResetChoice>,
    pub checkpoint_interval: std::time::Duration,
}

pub fn run(path: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some(job) = load_job(path) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let stop = stop_on_signals()?;
    if !args.until_eof {
        tracing::info!("following the job's files; stop with Ctrl-C or SIGTERM");
        if args.state_dir.is_none() {
            tracing::warn!(
                "no --state-dir: nothing is checkpointed, so a restart re-reads every file from the start"
            );
        }
    }
    if args.reset.is_some() && args.state_dir.is_none() {
        anyhow::bail!(
            "--reset-checkpoint needs --state-dir (the folder whose checkpoint to reset)"
        );
    }
    let outcome = execute(&job, args, stop)?;
    eprint!("{}", outcome.stats.summary());
    Ok(ExitCode::SUCCESS)
}

/// Runs `job` with its sinks.
pub fn execute(job: &Job, args: RunArgs, stop: Arc<AtomicBool>) -> anyhow::Result<RunOutcome> {
    let for_sinks = job.clone();
    run_job(
        job,
        RunOptions {
            workers: args.workers.max(1),
            until_eof: args.until_eof,
            stop,
            state_dir: args.state_dir,
            reset: args.reset,
            checkpoint_interval: args.checkpoint_interval,
            stats: None,
        },
        Box::new(move |start| {
            Outputs::open(&for_sinks, start)
                .map(|o| Box::new(o) as Box<dyn tidemark_engine::WindowOutput>)
                .map_err(|e| format!("cannot open the job's sinks: {e}"))
        }),
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
