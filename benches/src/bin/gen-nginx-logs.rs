//! Writes a deterministic synthetic nginx access-log data set (see
//! `tidemark_sources::sample`): DIR/web-N/access.log plus rotated siblings.
//!
//! cargo run --release -p tidemark-bench --bin gen-nginx-logs -- --dir /tmp/logs --hosts 6

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use tidemark_sources::sample::{write_nginx_sample, SampleSpec, SAMPLE_START_UNIX_SECS};

/// Generate synthetic nginx access logs (combined format + request time).
#[derive(Parser, Debug)]
#[command(name = "gen-nginx-logs")]
struct Args {
    /// Output folder; one sub-folder per host (web-1, web-2, ...).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    hosts: usize,
    #[arg(long, default_value_t = 10)]
    minutes: u32,
    /// Lines per host per minute.
    #[arg(long, default_value_t = 600)]
    lines_per_minute: u32,
    /// Rotated siblings per host (access.log.1, access.log.2, ...).
    #[arg(long, default_value_t = 2)]
    rotations: u32,
    /// Siblings numbered >= this are gzip-compressed; 0 = none.
    #[arg(long, default_value_t = 2)]
    gzip_from: u32,
    /// Max seconds a line may lag behind the newest time before it (bounded disorder).
    #[arg(long, default_value_t = 3)]
    disorder_secs: u32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First event time, unix seconds (default 2026-11-20T10:00:00Z).
    #[arg(long, default_value_t = SAMPLE_START_UNIX_SECS)]
    start_unix_secs: i64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spec = SampleSpec {
        hosts: a.hosts,
        start_unix_secs: a.start_unix_secs,
        minutes: a.minutes,
        lines_per_minute: a.lines_per_minute,
        rotations: a.rotations,
        gzip_from: a.gzip_from,
        disorder_secs: a.disorder_secs,
        seed: a.seed,
    };
    let t = Instant::now();
    let sum = write_nginx_sample(&a.dir, &spec)?;
    let secs = t.elapsed().as_secs_f64();
    for f in &sum.files {
        println!("{}", f.display());
    }
    println!(
        "files: {}  lines: {}  bytes: {} (uncompressed; {} on disk)  in {:.2}s ({:.2} M lines/s)",
        sum.files.len(),
        sum.lines,
        sum.bytes,
        sum.disk_bytes,
        secs,
        sum.lines as f64 / secs / 1e6
    );
    Ok(())
}
