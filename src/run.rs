//! `tidemark run` and `tidemark validate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tidemark_engine::checkpoint::{CheckpointError, ResetChoice};
use tidemark_engine::error::{EngineError, StateLockError};
use tidemark_engine::output_guard::Protected;
use tidemark_engine::stats::SharedStats;
use tidemark_engine::{run_job_file, RunOptions, RunOutcome};
use tidemark_jobs::Job;
use tidemark_sinks::{Existing, SinkError};

use crate::status::StatusPrinter;

/// Exit code for an invalid job or bad usage, including a file in the way that the
/// user must move (or let go with `--overwrite`).
pub const EXIT_INVALID: u8 = 2;

/// Exit code of a finite run (`--until-eof`, replay) that wrote its windows but
/// left lines out of them by a limit of the job (`max_series`): the output is
/// incomplete, and scripts should know.
pub const EXIT_INCOMPLETE: u8 = 3;

/// The exit code of a finite run that completed, after saying why it is not 0.
pub fn finite_exit(stats: &tidemark_engine::JobStats) -> ExitCode {
    let unreadable = stats.unreadable();
    if stats.series_limited() {
        eprintln!(
            "incomplete: {} window(s) had more series than [window] max_series allows; the lines of the series left out are counted above (series_limit_dropped)",
            stats.series_limited_windows
        );
    }
    if !unreadable.is_empty() {
        // A finite run that missed files must not look complete: this is a failure
        // (exit 1), which outranks the series limit's exit 3.
        tracing::error!(
            "{} file(s) could not be read, so their lines are missing from the output \
             (listed above under \"files that could not be read\"); fix their permissions \
             or leave them out with `exclude`, then run again",
            unreadable.len()
        );
        return ExitCode::FAILURE;
    }
    if stats.late_after_written > 0 {
        eprintln!(
            "incomplete: {} line(s) arrived after their window had been written by an earlier run (late_after_written); they are not in the output",
            stats.late_after_written
        );
    }
    // A kafka source knows of lines that never reached it (a gap in an agent group's
    // sequence) and of records it could not read: the output lacks them.
    if stats.kafka_lost_lines > 0 {
        eprintln!(
            "incomplete: {} line(s) never arrived from Kafka (gaps in agent groups' sequence numbers: kafka_lost_lines); they are not in the output",
            stats.kafka_lost_lines
        );
    }
    if stats.kafka_bad_records > 0 {
        eprintln!(
            "incomplete: {} Kafka record(s) could not be read and were skipped (kafka_bad_records, warned above)",
            stats.kafka_bad_records
        );
    }
    let kafka_missing = stats.kafka_lost_lines > 0 || stats.kafka_bad_records > 0;
    let refused = refused_samples(stats);
    if stats.series_limited() || stats.late_after_written > 0 || refused || kafka_missing {
        return ExitCode::from(EXIT_INCOMPLETE);
    }
    ExitCode::SUCCESS
}

/// Says what each sink's receiver refused for good, and whether anything was
/// (the output there is incomplete). Samples a resumed run sent again and the
/// receiver already held are said, but are not a loss.
fn refused_samples(stats: &tidemark_engine::JobStats) -> bool {
    use tidemark_engine::stats::sink::Rejection;
    let mut any = false;
    for m in stats.sink_meters.snapshot() {
        if m.resent_held > 0 {
            eprintln!(
                "{}: {} sample(s) of windows this resumed run sent again were already held by the receiver (expected after a restart; not a loss)",
                m.name, m.resent_held
            );
        }
        let lost: Vec<String> = m
            .rejected
            .iter()
            .filter(|(why, n)| *n > 0 && *why != Rejection::Refused)
            .map(|(why, n)| format!("{n} {}", why.as_str()))
            .collect();
        if !lost.is_empty() {
            any = true;
            eprintln!(
                "incomplete: {}: the receiver refused sample(s) for good ({}); they are not in it (see the warnings above for the windows and series)",
                m.name,
                lost.join(", ")
            );
        }
    }
    any
}

/// Whether `e` is a usage problem (exit 2): a sink path refused for what is at it
/// (an existing file, a device, a file the checkpoint does not name…), or a
/// checkpoint that only the user can decide about — not a failure while running.
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(s) = c.downcast_ref::<SinkError>() {
            return s.is_usage();
        }
        match c.downcast_ref::<EngineError>() {
            Some(EngineError::SinkPath(_)) => true,
            // Running again as is fails the same way (and a service manager
            // restarting on failure would loop): the user must choose.
            Some(EngineError::Checkpoint(ck)) => {
                ck.needs_reset_choice() || matches!(ck, CheckpointError::WrongJob { .. })
            }
            _ => false,
        }
    })
}

/// What the user can do about `e`, as `hint:` lines for stderr (empty if
/// nothing more than the error itself says).
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let Some(engine) = e.chain().find_map(|c| c.downcast_ref::<EngineError>()) else {
        return Vec::new();
    };
    match engine {
        EngineError::Checkpoint(ck) if ck.needs_reset_choice() => {
            // A damaged or missing checkpoint cannot name the job's outputs, so
            // rewriting them from the start needs --overwrite as well.
            let overwrite = if matches!(ck, CheckpointError::SemanticsChanged { .. }) {
                ""
            } else {
                " --overwrite"
            };
            vec![
                format!(
                    "re-run with `--reset-checkpoint=beginning{overwrite}` to recompute every window \
                     from the start of each file (the output is rewritten)"
                ),
                "or with `--reset-checkpoint=end` to keep the output and start at the end of each \
                 file (lines not yet processed are lost)"
                    .to_string(),
            ]
        }
        EngineError::Checkpoint(CheckpointError::WrongJob { .. }) => {
            vec!["give each job its own --state-dir".to_string()]
        }
        EngineError::StateLock(StateLockError::Held { dir, .. }) => vec![format!(
            "the lock is {}; it is released when the process holding it exits (even after \
             kill -9), so there is nothing to delete",
            dir.join("lock").display()
        )],
        _ => Vec::new(),
    }
}

/// Prints a failed run's error and its hints.
pub fn print_error(e: &anyhow::Error) {
    // Each cause once (see `full_message`), joined as `{:#}` joins them.
    eprintln!("error: {}", tidemark_engine::error::full_message(&**e));
    for hint in hints(e) {
        eprintln!("  hint: {hint}");
    }
}

pub fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    match tidemark_jobs::load(path) {
        Ok(job) => {
            if let Err(e) = Protected::of_job(&job, Some(path), None).check(&job) {
                eprintln!("{}: error: {e}", path.display());
                return Ok(ExitCode::from(EXIT_INVALID));
            }
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
#[derive(clap::Args)]
pub struct RunArgs {
    /// Read every file to its end, close every window, and exit.
    #[arg(long)]
    pub until_eof: bool,
    /// Worker threads.
    #[arg(short = 'w', long, default_value_t = 1, value_parser = crate::parse_workers)]
    pub workers: usize,
    /// Keep checkpoints here (in a folder per job) and resume from them, so a
    /// restart neither loses nor double-counts a line.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Instead of resuming: `beginning` re-reads every file (the output is
    /// rewritten), `end` starts at the end of each file (unprocessed lines are lost).
    #[arg(long, value_name = "beginning|end")]
    pub reset_checkpoint: Option<ResetChoice>,
    /// With --state-dir: how often, at most, a checkpoint is written (each one
    /// fsyncs the output). A restart redoes at most about this much work.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::parse_duration_arg)]
    pub checkpoint_interval: std::time::Duration,
    /// Replace a non-empty file at a sink path that no checkpoint of this job
    /// names as its output (refused otherwise). Never an input, the job file or
    /// a state file.
    #[arg(long)]
    pub overwrite: bool,
    /// Without --until-eof: how often a one-line status goes to stderr (lines/s,
    /// how far the output is complete and its lag, late and malformed counts).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration_arg)]
    pub status_interval: std::time::Duration,
    /// Without --until-eof: print no periodic status line.
    #[arg(long)]
    pub no_status: bool,
    /// Serve the job's self-metrics at `GET http://ADDR/metrics` (Prometheus text
    /// format) while the run lives. No token: bind a loopback address unless
    /// everyone who can reach ADDR may see the job's file paths. Port 0 picks a
    /// free port; the address is printed on stderr.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// How often a status line is printed, if at all: live runs only (a finite
    /// run ends with its summary).
    fn status_every(&self) -> Option<std::time::Duration> {
        (!self.until_eof && !self.no_status && !self.status_interval.is_zero())
            .then_some(self.status_interval)
    }
}

pub fn run(path: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.reset_checkpoint.is_some() && args.state_dir.is_none() {
        // Bad usage, like any other flag that cannot work (exit 2).
        eprintln!(
            "error: --reset-checkpoint needs --state-dir (the folder whose checkpoint to reset)"
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let Some(mut job) = load_job(path) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    // One job alone in the process: it may use what the limit on open files
    // leaves after the reserve, no more (else its own opens hit EMFILE).
    let cap = crate::fd_limit::default_cap(crate::fd_limit::soft_limit());
    if job.source.max_open_files > cap {
        tracing::info!(
            "max_open_files {} lowered to {cap}: the limit on open files less a reserve \
             (raise it with `ulimit -n`)",
            job.source.max_open_files
        );
        job.source.max_open_files = cap;
    }
    // What validation cannot see: a sink path reaching the job file or the state
    // folder through a link, or lying in the state folder. Checked before the
    // engine starts, which opens the state folder (and clears its leftover
    // temporary files). A sink path reaching an input the engine checks before
    // it opens a sink, with the groups it found to read (exit 2 too, through
    // `is_usage_error`): here that was a second discovery of every input (with
    // 2,000 hosts, ~1% of a catch-up's CPU).
    if let Err(e) = Protected::of_run(Some(path), args.state_dir.as_deref()).check(&job) {
        eprintln!("{}: error: {e}", path.display());
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let stop = stop_on_signals()?;
    if !args.until_eof {
        tracing::info!("following the job's files; stop with Ctrl-C or SIGTERM");
        if args.state_dir.is_none() {
            tracing::warn!(
                "no --state-dir: nothing is checkpointed, so a restart re-reads every file from the start"
            );
        }
    }
    let until_eof = args.until_eof;
    let outcome = match execute(&job, Some(path), args, stop) {
        Ok(o) => o,
        Err(e) => {
            print_error(&e);
            return Ok(if is_usage_error(&e) {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::FAILURE
            });
        }
    };
    eprint!("{}", outcome.stats.summary());
    if until_eof {
        return Ok(finite_exit(&outcome.stats));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `job` (read from `job_file`, if from a file) with its sinks.
pub fn execute(
    job: &Job,
    job_file: Option<&Path>,
    args: RunArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<RunOutcome> {
    if args.until_eof {
        // It ends when its files do: freed memory is reused until then.
        crate::alloc_decay::keep_freed_pages();
    }
    let for_sinks = job.clone();
    let existing = if args.overwrite {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let every = args.status_every();
    let stats = (every.is_some() || args.metrics_addr.is_some()).then(|| {
        // Per-group figures cost a copy of every group's path each second: only
        // for /metrics (the status line does not show them).
        SharedStats::new(std::sync::Mutex::new(tidemark_engine::JobStats {
            groups_wanted: args.metrics_addr.is_some(),
            ..Default::default()
        }))
    });
    // Both stop (and join) when this function returns.
    let _status = every
        .zip(stats.as_ref())
        .map(|(every, shared)| StatusPrinter::start(shared.clone(), every));
    let _metrics = match (args.metrics_addr, &stats) {
        (Some(addr), Some(shared)) => Some(crate::metrics::serve(addr, &job.name, shared.clone())?),
        _ => None,
    };
    run_job_file(
        job,
        job_file.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
        RunOptions {
            workers: args.workers.max(1),
            until_eof: args.until_eof,
            stop,
            state_dir: args.state_dir,
            reset: args.reset_checkpoint,
            checkpoint_interval: args.checkpoint_interval,
            stats,
        },
        Box::new(move |start| {
            tidemark_sinks::open_with(&for_sinks, start, existing).map_err(Into::into)
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
