//! The `tidemark` binary: one binary, a subcommand per role.

mod demo;
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
        #[arg(short = 'w', long, default_value_t = 2)]
        workers: usize,
    },
    /// Run a job: follow its files until SIGINT/SIGTERM, or to their end with --until-eof.
    Run {
        job: PathBuf,
        /// Read every file to its end, close every window, and exit.
        #[arg(long)]
        until_eof: bool,
        /// Worker threads.
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
    },
    /// Check a job file; print `ok` or every error with file:line:column and a hint.
    Validate { job: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Demo { dir, workers } => demo::demo(dir, workers),
        Command::Run {
            job,
            until_eof,
            workers,
        } => run::run(&job, until_eof, workers),
        Command::Validate { job } => run::validate(&job),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
