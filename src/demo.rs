//! `tidemark demo`: sample logs with rotation, the example job, a table of rollups.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tidemark_sources::sample::{write_nginx_sample, SampleSpec};

use crate::run::{execute, load_job, stop_on_signals, RunArgs, EXIT_INVALID};

/// The example job, shipped inside the binary so the demo runs from anywhere.
const EXAMPLE_JOB: &str = include_str!("../jobs/examples/nginx.toml");

/// The demo data set: three hosts, five minutes, two rotated siblings (one gzipped),
/// a little disorder. Deterministic, so the output is too.
pub fn demo_spec() -> SampleSpec {
    SampleSpec {
        hosts: 3,
        minutes: 5,
        lines_per_minute: 120,
        rotations: 2,
        gzip_from: 2,
        disorder_secs: 3,
        seed: 42,
        ..SampleSpec::default()
    }
}

pub fn demo(dir: Option<PathBuf>, workers: usize) -> anyhow::Result<ExitCode> {
    let dir = match dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("tidemark-demo-")
            .tempdir()
            .context("cannot create a temporary folder")?
            .keep(),
    };
    let sample = dir.join("sample");
    let summary = write_nginx_sample(&sample, &demo_spec())
        .with_context(|| format!("cannot write sample logs under {}", sample.display()))?;
    let job_path = dir.join("nginx.toml");
    std::fs::write(&job_path, EXAMPLE_JOB)
        .with_context(|| format!("cannot write {}", job_path.display()))?;
    eprintln!(
        "demo: wrote {} lines in {} files (with rotated and gzipped siblings) under {}",
        summary.lines,
        summary.files.len(),
        sample.display()
    );
    let Some(job) = load_job(&job_path) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let args = RunArgs {
        until_eof: true,
        workers,
        state_dir: None,
        reset: None,
        checkpoint_interval: std::time::Duration::from_secs(1),
    };
    let outcome = execute(&job, args, stop_on_signals()?)?;
    eprint!("{}", outcome.stats.summary());
    eprintln!(
        "demo: JSON Lines (rules and per-host series) in {}",
        dir.join("out/nginx.jsonl").display()
    );
    eprintln!(
        "demo: re-run it with: tidemark run {} --until-eof",
        job_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
