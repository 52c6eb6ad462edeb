//! The `tidemark` binary: one binary, a subcommand per role.

mod agent;
mod alloc_decay;
mod cluster;
mod demo;
mod fd_limit;
mod log_scrub;
mod metrics;
mod replay;
mod replay_om;
mod run;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// jemalloc, not glibc's malloc: tidemark allocates and frees many small, short-lived blocks
// per window and group (series keys, partials, line buffers), and on issue 13's item 2
// (2,000 hosts x 60 min, `run --until-eof -w 1`) glibc spent ~20% more CPU on it (A/B in
// benches/README.md, "Issue 13: item 2, fourth pass"; item 1 and the throughput benchmark
// unchanged). mimalloc was as fast but held ~50 MiB more at peak, past item 2's 200 MiB.
// Its decay settings, which keep the peak RSS below glibc's, are in .cargo/config.toml.
// librdkafka keeps glibc's malloc (tikv-jemallocator's symbols are prefixed).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        #[command(flatten)]
        args: run::RunArgs,
    },
    /// Recompute the windows of a past range from the job's files (live, rotated,
    /// compressed and `archive`d), found by binary search and read in parallel.
    Replay {
        job: PathBuf,
        #[command(flatten)]
        args: replay::ReplayArgs,
    },
    /// Check a job file, or an agent file (one with an `[agent]` table); print `ok`
    /// or every error with file:line:column and a hint.
    Validate { job: PathBuf },
    /// Ship log files to Kafka: tail them as a job does and produce each line once,
    /// in order, per file group (see docs/agent.md).
    Agent { config: PathBuf },
    /// Run a long-lived cluster member that accepts jobs over its control API.
    Cluster {
        #[command(flatten)]
        args: cluster::ClusterArgs,
    },
    /// Submit, list, inspect and stop a cluster's jobs.
    Job {
        #[command(subcommand)]
        command: cluster::JobCommand,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    fd_limit::raise();
    let result = match cli.command {
        Command::Demo { dir, workers } => demo::demo(dir, workers),
        Command::Run { job, args } => run::run(&job, args),
        Command::Replay { job, args } => replay::replay(&job, args),
        Command::Validate { job } => match agent::validate_if_agent(&job) {
            Some(code) => Ok(code),
            None => run::validate(&job),
        },
        Command::Agent { config } => agent::agent(&config),
        Command::Cluster { args } => cluster::cluster(args),
        Command::Job {
            command,
            api,
            token_file,
            state_dir,
        } => cluster::job(command, &api, token_file.as_deref(), state_dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", tidemark_engine::error::full_message(&*e));
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
        .with_writer(|| log_scrub::Scrubbed)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The subcommands' options live in flattened `Args` structs: two of them
    /// declaring the same flag would only fail when that subcommand is parsed.
    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
