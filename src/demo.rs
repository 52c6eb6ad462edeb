//! `tidemark demo`: sample logs with rotation, the example job, a table of rollups.
//!
//! The demo writes `sample/`, `nginx.toml` and `out/nginx.jsonl` in its folder and
//! leaves a marker there ([`MARKER`]). Run again in a folder with the marker, it
//! replaces those files (they are its own); in a folder that holds any of them
//! without the marker, it refuses and touches nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use tidemark_sources::sample::{write_nginx_sample, SampleSpec};

use crate::run::{execute, load_job, stop_on_signals, RunArgs, EXIT_INVALID};

/// Left in the demo's folder: the files the demo writes there are its own.
const MARKER: &str = ".tidemark-demo";

/// What the demo writes in its folder (relative paths).
const WRITES: [&str; 3] = ["sample", "nginx.toml", "out/nginx.jsonl"];

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
    if let Some(refusal) = claim(&dir)? {
        // Someone's files in the way: a usage problem, like any file tidemark
        // will not overwrite.
        eprintln!("error: {refusal}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
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
        reset_checkpoint: None,
        checkpoint_interval: std::time::Duration::from_secs(1),
        // Its own output (the folder is claimed): a re-run replaces it.
        overwrite: true,
        // A finite run: no periodic status, its summary says it all.
        status_interval: std::time::Duration::ZERO,
        no_status: true,
        metrics_addr: None,
    };
    let outcome = execute(&job, Some(&job_path), args, stop_on_signals()?)?;
    eprint!("{}", outcome.stats.summary());
    eprintln!(
        "demo: JSON Lines (rules and per-host series) in {}",
        dir.join("out/nginx.jsonl").display()
    );
    eprintln!(
        "demo: re-run it with: tidemark run {} --until-eof --overwrite",
        job_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Makes `dir` the demo's folder: fine if it is new, already the demo's (marked),
/// or holds none of what the demo writes. Anything else is someone's files:
/// `Ok(Some(why))`, and nothing is touched.
fn claim(dir: &Path) -> anyhow::Result<Option<String>> {
    let marker = dir.join(MARKER);
    if marker.exists() {
        return Ok(None);
    }
    let found: Vec<&str> = WRITES
        .into_iter()
        .filter(|p| dir.join(p).symlink_metadata().is_ok())
        .collect();
    if !found.is_empty() {
        return Ok(Some(format!(
            "{} already holds {} that `tidemark demo` did not write (no {MARKER} marker there), \
             and the demo does not overwrite them. hint: pick an empty or new folder with \
             --dir, or leave --dir out for a new temporary folder",
            dir.display(),
            found.join(", ")
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        &marker,
        "Written by `tidemark demo`: the sample/, nginx.toml and out/nginx.jsonl next to \
         this file are the demo's, and a demo run here replaces them.\n",
    )
    .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok(None)
}
