//! The `tidemark` binary: one binary, a subcommand per role.

mod cluster;
mod demo;
mod fd_limit;
mod replay;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Log files to trustworthy minute-by-minute metrics.
#[derive(Parser)]
#[command(name = "tidemark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate sample nginx logs (with rotation) and run the example job on them.
    Demo {
        /// Folder for the sample logs and the output (default: a new temporary folder, kept).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Worker threads.
        #[arg(short = 'w', long, default_value_t = 2, value_parser = parse_workers)]
        workers: usize,
    },
    /// Run a job: follow its files until SIGINT/SIGTERM, or to their end with --until-eof.
    Run {
        job: PathBuf,
        /// Read every file to its end, close every window, and exit.
        #[arg(long)]
        until_eof: bool,
        /// Worker threads.
        #[arg(short = 'w', long, default_value_t = 1, value_parser = parse_workers)]
        workers: usize,
        /// Keep checkpoints here (in a folder per job) and resume from them, so a
        /// restart neither loses nor double-counts a line.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Instead of resuming: `beginning` re-reads every file (the output is
        /// rewritten), `end` starts at the end of each file (unprocessed lines are lost).
        #[arg(long, value_name = "beginning|end")]
        reset_checkpoint: Option<tidemark_engine::checkpoint::ResetChoice>,
        /// With --state-dir: how often, at most, a checkpoint is written (each one
        /// fsyncs the output). A restart redoes at most about this much work.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_arg)]
        checkpoint_interval: std::time::Duration,
        /// Replace a non-empty file at a sink path that no checkpoint of this job
        /// names as its output (refused otherwise). Never an input, the job file or
        /// a state file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Recompute the windows of a past range from the job's files (live, rotated,
    /// compressed and `archive`d), found by binary search and read in parallel.
    Replay {
        job: PathBuf,
        /// Start of the range (RFC 3339, e.g. 2026-11-20T10:00:00Z); rounded up to a window start.
        #[arg(long)]
        from: String,
        /// End of the range, exclusive; rounded down to a window end.
        #[arg(long)]
        to: String,
        /// Worker threads.
        #[arg(short = 'w', long, default_value_t = 1, value_parser = parse_workers)]
        workers: usize,
        /// Write JSON Lines here instead of the job's JSONL path (which is refused
        /// if it already exists: it is usually the live run's output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Replace a non-empty file at --output (refused otherwise). Never an
        /// input, the job file, or the job's own JSONL output.
        #[arg(long)]
        overwrite: bool,
        /// Read at most this fast, e.g. 50MiB/s (default: the job's rate_limit).
        #[arg(long, value_name = "RATE")]
        rate_limit: Option<String>,
        /// Progress display: a bar on a terminal, plain lines otherwise.
        #[arg(long, value_enum, default_value_t = replay::ProgressMode::Auto)]
        progress: replay::ProgressMode,
        /// How often plain progress lines are printed.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_arg)]
        progress_interval: std::time::Duration,
        /// Target segment size in bytes (tests and tuning).
        #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
        segment_bytes: Option<u64>,
    },
    /// Check a job file; print `ok` or every error with file:line:column and a hint.
    Validate { job: PathBuf },
    /// Run a long-lived cluster member that accepts jobs over its control API.
    Cluster {
        /// Processes in the cluster (each runs `tidemark cluster` with its own -p).
        #[arg(short = 'n', long, default_value_t = 1)]
        processes: usize,
        /// This process's index.
        #[arg(short = 'p', long, default_value_t = 0)]
        process: usize,
        /// Hosts file: one host:port per process, as timely reads it.
        #[arg(long)]
        hosts: Option<PathBuf>,
        /// Worker threads in this process.
        #[arg(short = 'w', long, default_value_t = 1, value_parser = parse_workers)]
        workers: usize,
        /// Submitted jobs and their checkpoints are kept here.
        #[arg(long)]
        state_dir: PathBuf,
        /// Address of the control API (served by process 0 only).
        #[arg(long, default_value = "127.0.0.1:7070")]
        api: std::net::SocketAddr,
        /// File holding the API's bearer token (or set TIDEMARK_API_TOKEN). Without
        /// either, the member creates a random one in STATE_DIR/api-token (mode 0600).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// API connections open at once; at the cap a new one closes the oldest
        /// that is between requests (process 0).
        #[arg(long, value_name = "N", default_value_t = tidemark_api::connections::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..))]
        api_max_connections: u64,
        /// How long an API connection may take to send a request's headers before
        /// it is closed (process 0).
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
        api_header_timeout: std::time::Duration,
        /// How long an API request, its body included, may take before it is
        /// answered 503 (process 0).
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
        api_request_timeout: std::time::Duration,
        /// Jobs may only read under these folders (repeatable; at least one;
        /// `--allow-root /` allows every file the member can read).
        #[arg(long = "allow-root", value_name = "DIR")]
        allow_roots: Vec<PathBuf>,
        /// Jobs' sinks may only write under these folders (repeatable; process 0;
        /// default STATE_DIR/output, created). None may hold the state folder.
        #[arg(long = "output-root", value_name = "DIR")]
        output_roots: Vec<PathBuf>,
        /// `${NAME}` in a submitted job may use this environment variable of the
        /// member (repeatable; any other is refused).
        #[arg(long = "job-env", value_name = "NAME")]
        job_env: Vec<String>,
        /// Most jobs the cluster accepts; one more submit gets 409.
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
        max_jobs: u64,
        /// How often, at most, each job writes a checkpoint.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration_arg)]
        checkpoint_interval: std::time::Duration,
        /// Most files all jobs together keep open on this member: each job reserves
        /// its `max_open_files` (at most half the cap, lowered to what other jobs
        /// leave, logged); a submit that finds less than one per worker left gets
        /// 400. Default:
        /// the soft limit on open files − 64 − 1/8 of it, kept for the API and
        /// checkpoints.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        max_open_files: Option<u64>,
    },
    /// Submit, list, inspect and stop a cluster's jobs.
    Job {
        #[command(subcommand)]
        command: JobCmd,
        /// The cluster's control API.
        #[arg(long, global = true, default_value = "http://127.0.0.1:7070")]
        api: String,
        /// File holding the API's bearer token (or set TIDEMARK_API_TOKEN; default:
        /// the cluster's own token in its state folder).
        #[arg(long, global = true)]
        token_file: Option<PathBuf>,
        /// The cluster's state folder, where its token is when no other is given
        /// (or set TIDEMARK_STATE_DIR; default /var/lib/tidemark).
        #[arg(long, global = true)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum JobCmd {
    /// Validate a job file on the cluster and install it.
    Submit { job: PathBuf },
    /// List the cluster's jobs.
    List,
    /// A job's state, output frontier, last window, lines/s and error counts.
    Status { name: String },
    /// Stop a job (windows already written stay) and forget it.
    Stop { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    fd_limit::raise();
    let result = match cli.command {
        Command::Demo { dir, workers } => demo::demo(dir, workers),
        Command::Run {
            job,
            until_eof,
            workers,
            state_dir,
            reset_checkpoint,
            checkpoint_interval,
            overwrite,
        } => run::run(
            &job,
            run::RunArgs {
                until_eof,
                workers,
                state_dir,
                reset: reset_checkpoint,
                checkpoint_interval,
                overwrite,
            },
        ),
        Command::Replay {
            job,
            from,
            to,
            workers,
            output,
            overwrite,
            rate_limit,
            progress,
            progress_interval,
            segment_bytes,
        } => replay::replay(
            &job,
            replay::ReplayArgs {
                from,
                to,
                workers,
                output,
                overwrite,
                rate_limit,
                progress,
                progress_interval,
                segment_bytes,
            },
        ),
        Command::Validate { job } => run::validate(&job),
        Command::Cluster {
            processes,
            process,
            hosts,
            workers,
            state_dir,
            api,
            token_file,
            api_max_connections,
            api_header_timeout,
            api_request_timeout,
            allow_roots,
            output_roots,
            job_env,
            max_jobs,
            checkpoint_interval,
            max_open_files,
        } => cluster::cluster(cluster::ClusterArgs {
            processes,
            process,
            hosts,
            workers,
            state_dir,
            api,
            token_file,
            api_connections: tidemark_api::ConnectionOptions {
                max_connections: usize::try_from(api_max_connections).unwrap_or(usize::MAX),
                header_read_timeout: api_header_timeout,
                request_timeout: api_request_timeout,
            },
            allow_roots,
            output_roots,
            job_env,
            max_jobs: usize::try_from(max_jobs).unwrap_or(usize::MAX),
            checkpoint_interval,
            max_open_files: max_open_files.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        }),
        Command::Job {
            command,
            api,
            token_file,
            state_dir,
        } => {
            let cmd = match command {
                JobCmd::Submit { job } => cluster::JobCommand::Submit { job },
                JobCmd::List => cluster::JobCommand::List,
                JobCmd::Status { name } => cluster::JobCommand::Status { name },
                JobCmd::Stop { name } => cluster::JobCommand::Stop { name },
            };
            cluster::job(cmd, &api, token_file.as_deref(), state_dir.as_deref())
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Most worker threads one process may run. timely connects every worker with
/// every other, so memory grows with the square of the count: 256 workers take
/// about 130 MB before any data, 1,024 about 1.7 GB, and 100,000 abort.
const MAX_WORKERS: usize = tidemark_engine::cluster::MAX_CLUSTER_WORKERS;

fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "worker threads must be a number between 1 and {MAX_WORKERS} (more than the \
             machine's cores rarely helps)"
        )),
    }
}

fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    tidemark_jobs::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// A timeout of 0 would close every connection at once.
fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration_arg(s)? {
        d if d.is_zero() => Err("must be more than 0, e.g. 10s".to_string()),
        d => Ok(d),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
