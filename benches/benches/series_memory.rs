//! Memory per series: peak RSS of `tidemark run JOB --until-eof` on one window with
//! many distinct label values, against the same number of lines with one value.
//!
//!     cargo bench -p tidemark-bench --bench series_memory
//!
//! The job counts lines and sums a field per `path` label and has a rule
//! `sum by (path)`, so a window of N distinct paths holds 2N per-host series and N
//! rule series. Bytes per series = (peak RSS with N paths - peak RSS with 1 path) /
//! 2N. A third case sets `max_series` below N to show the bound. Settings come from
//! environment variables; see benches/README.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tidemark_bench::{
    bench_root, env_or, median, run_measured_exiting, thousands, tidemark_binary, RunStats,
};

struct Config {
    paths: u64,
    runs: usize,
    workers: Vec<usize>,
    /// `None`: the job file sets no `max_series` (a binary from before it existed).
    max_series: Option<u64>,
    limit: u64,
    timeout: Duration,
}

impl Config {
    fn from_env() -> Result<Config> {
        let workers: String = env_or("TIDEMARK_BENCH_WORKERS", "1,2".to_string())?;
        let workers = workers
            .split(',')
            .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
            .collect::<Option<Vec<_>>>()
            .with_context(|| format!("TIDEMARK_BENCH_WORKERS={workers:?}: want e.g. 1,2"))?;
        let max_series: String = env_or("TIDEMARK_BENCH_MAX_SERIES", "100000000".to_string())?;
        let cfg = Config {
            paths: env_or("TIDEMARK_BENCH_PATHS", 200_000)?,
            runs: env_or("TIDEMARK_BENCH_RUNS", 3)?,
            workers,
            max_series: match max_series.as_str() {
                "none" => None,
                n => Some(n.parse().with_context(|| {
                    format!("TIDEMARK_BENCH_MAX_SERIES={n:?}: want a number or none")
                })?),
            },
            limit: env_or("TIDEMARK_BENCH_LIMIT", 20_000)?,
            timeout: Duration::from_secs(env_or("TIDEMARK_BENCH_TIMEOUT_SECS", 1_800)?),
        };
        if cfg.paths == 0 || cfg.runs == 0 || cfg.limit < 2 {
            bail!("TIDEMARK_BENCH_PATHS and _RUNS must be > 0, _LIMIT at least 2");
        }
        Ok(cfg)
    }
}

/// `lines` lines in the minute 2026-11-20T10:00, spread over `distinct` paths.
fn write_log(path: &Path, lines: u64, distinct: u64) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..lines {
        writeln!(
            out,
            "time=2026-11-20T10:00:{:02}Z path=/item/{:07} ms={}",
            i * 60 / lines,
            // Scrambled, so series do not arrive in key order.
            (i * 7_919) % distinct,
            i % 997
        )?;
    }
    out.flush()?;
    Ok(())
}

fn job(log: &Path, out: &Path, series: &str, max_series: Option<u64>) -> String {
    let window = match max_series {
        Some(n) => format!("[window]\nmax_series = {n}\n"),
        None => String::new(),
    };
    format!(
        r#"name = "series_memory"
[source]
kind = "file"
include = [{log:?}]
[parse]
format = "logfmt"
{window}
[[metric]]
name = "requests_total"
kind = "counter"
labels = ["path"]
[[metric]]
name = "ms_total"
kind = "sum"
field = "ms"
labels = ["path"]
[[rule]]
record = "path:requests:sum"
expr = "sum by (path) (requests_total)"
[[sink]]
kind = "jsonl"
path = {out:?}
series = "{series}"
"#
    )
}

struct Case {
    name: String,
    distinct: u64,
    series: &'static str,
    max_series: Option<u64>,
}

/// Measured runs of one case; returns the stats and the output line count.
fn measure(
    bin: &Path,
    dir: &Path,
    log: &Path,
    case: &Case,
    workers: usize,
    cfg: &Config,
) -> Result<(Vec<RunStats>, usize)> {
    let mut runs = Vec::new();
    let mut records = 0;
    for i in 1..=cfg.runs {
        let run_dir = dir.join(format!("run-{}-w{workers}-{i}", case.name));
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir)?;
        let (job_file, out) = (run_dir.join("job.toml"), run_dir.join("out.jsonl"));
        std::fs::write(&job_file, job(log, &out, case.series, case.max_series))?;
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg(&job_file)
            .args(["--until-eof", "-w", &workers.to_string()])
            .current_dir(&run_dir);
        // A run that hits max_series exits 3 (incomplete): expected for that case.
        let limited = case.max_series.is_some_and(|m| m < 2 * case.distinct);
        let ok: &[i32] = if limited { &[3] } else { &[0] };
        let stats = run_measured_exiting(&mut cmd, &run_dir, cfg.timeout, ok)?;
        records = count_lines(&out)?;
        eprintln!(
            "{} -w {workers} run {i}/{}: peak RSS {:.1} MiB, wall {:.2}s, cpu {:.2}s, {records} records",
            case.name,
            cfg.runs,
            stats.max_rss_kib as f64 / 1024.0,
            stats.wall_secs,
            stats.cpu_secs()
        );
        runs.push(stats);
        std::fs::remove_dir_all(&run_dir)?;
    }
    Ok((runs, records))
}

fn count_lines(path: &Path) -> Result<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    Ok(std::io::BufReader::new(f).lines().count())
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "series_memory: skipped (run it with `cargo bench -p tidemark-bench --bench series_memory`)"
        );
        return Ok(());
    }
    let cfg = Config::from_env()?;
    // Absolute: the runs start in their own folders.
    let bin = std::path::absolute(tidemark_binary()?)?;
    let (_tmp, root) = bench_root()?;
    let dir: PathBuf = root.join("series_memory");
    std::fs::create_dir_all(&dir)?;
    let n = cfg.paths;
    let (many, one) = (dir.join("many.log"), dir.join("one.log"));
    write_log(&many, n, n)?;
    write_log(&one, n, 1)?;

    let mut cases = vec![
        Case {
            name: "1 path".into(),
            distinct: 1,
            series: "all",
            max_series: cfg.max_series,
        },
        Case {
            name: format!("{} paths", thousands(n as f64)),
            distinct: n,
            series: "all",
            max_series: cfg.max_series,
        },
        Case {
            name: format!("{} paths, rules sink", thousands(n as f64)),
            distinct: n,
            series: "rules",
            max_series: cfg.max_series,
        },
    ];
    if cfg.max_series.is_some() {
        cases.push(Case {
            name: format!(
                "{} paths, max_series = {}",
                thousands(n as f64),
                thousands(cfg.limit as f64)
            ),
            distinct: n,
            series: "all",
            max_series: Some(cfg.limit),
        });
    }
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("## tidemark memory per series (`tidemark run --until-eof`, one window)\n");
    println!(
        "- binary: `{}`; {cpus} CPUs; medians of {} runs",
        bin.display(),
        cfg.runs
    );
    println!(
        "- job: counter and sum by `path`, rule `sum by (path)`; {} lines in one minute; \
         N paths = 2N per-host series + N rule series per window",
        thousands(n as f64)
    );
    println!("- bytes/series = (peak RSS - peak RSS of the 1-path case) / per-host series\n");
    println!("| case | workers | per-host series | records written | peak RSS MiB | bytes/series | wall s | CPU s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for &workers in &cfg.workers {
        let mut floor = None;
        for case in &cases {
            let log = if case.distinct == 1 { &one } else { &many };
            let (runs, records) = measure(&bin, &dir, log, case, workers, &cfg)?;
            let rss = median(
                &runs
                    .iter()
                    .map(|r| r.max_rss_kib as f64 * 1024.0)
                    .collect::<Vec<_>>(),
            );
            let floor_rss = *floor.get_or_insert(rss);
            let host_series = match case.max_series {
                Some(m) if m < 2 * case.distinct => m,
                _ => 2 * case.distinct,
            };
            let per = if case.distinct > 1 {
                format!("{:.0}", (rss - floor_rss) / host_series as f64)
            } else {
                "-".into()
            };
            println!(
                "| {} | {workers} | {} | {} | {:.1} | {per} | {:.2} | {:.2} |",
                case.name,
                thousands(host_series as f64),
                thousands(records as f64),
                rss / (1024.0 * 1024.0),
                median(&runs.iter().map(|r| r.wall_secs).collect::<Vec<_>>()),
                median(&runs.iter().map(RunStats::cpu_secs).collect::<Vec<_>>()),
            );
        }
    }
    Ok(())
}
