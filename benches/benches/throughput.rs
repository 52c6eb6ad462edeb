//! Throughput and memory of `tidemark run JOB --until-eof -w N` on generated nginx logs.
//!
//!     cargo bench -p tidemark-bench --bench throughput
//!
//! Generates a big and a small (about 1/4) data set with the same hosts and rate (the big
//! one just covers more minutes), runs the release binary on each with every worker count,
//! measures each run with `wait4` (the child's own CPU time and peak RSS) and prints a
//! markdown table of medians. Settings come from environment variables; see
//! benches/README.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tidemark_bench::{
    bench_root, env_or, fnv1a, job_template, job_toml, median, run_measured, thousands,
    tidemark_binary, RunStats,
};
use tidemark_sources::sample::{write_nginx_sample, SampleSpec};

struct Config {
    lines: u64,
    hosts: usize,
    lines_per_minute: u32,
    runs: usize,
    workers: Vec<usize>,
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
        let cfg = Config {
            lines: env_or("TIDEMARK_BENCH_LINES", 4_000_000)?,
            hosts: env_or("TIDEMARK_BENCH_HOSTS", 6)?,
            lines_per_minute: env_or("TIDEMARK_BENCH_LINES_PER_MINUTE", 5_000)?,
            runs: env_or("TIDEMARK_BENCH_RUNS", 3)?,
            workers,
            timeout: Duration::from_secs(env_or("TIDEMARK_BENCH_TIMEOUT_SECS", 1_800)?),
        };
        if cfg.hosts == 0 || cfg.lines_per_minute == 0 || cfg.runs == 0 || cfg.lines == 0 {
            bail!("TIDEMARK_BENCH_LINES, _HOSTS, _LINES_PER_MINUTE and _RUNS must be > 0");
        }
        Ok(cfg)
    }

    /// Same hosts and rate for both sets; the big one covers ~4x the minutes.
    fn spec(&self, quarter: bool) -> SampleSpec {
        let per_minute = self.hosts as u64 * u64::from(self.lines_per_minute);
        let minutes = self.lines.div_ceil(per_minute).max(4);
        let minutes = if quarter {
            minutes.div_ceil(4)
        } else {
            minutes
        };
        SampleSpec {
            hosts: self.hosts,
            minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            lines_per_minute: self.lines_per_minute,
            rotations: 3,
            gzip_from: 2,
            disorder_secs: 3, // below the job's max_out_of_orderness (5s): no late lines
            seed: 20_261_120,
            ..SampleSpec::default()
        }
    }
}

struct DataSet {
    name: &'static str,
    dir: PathBuf,
    lines: u64,
    bytes: u64,
    disk_bytes: u64,
    files: usize,
}

/// Writes the data set into `root/name/data`, unless an identical one is already there
/// (only possible with TIDEMARK_BENCH_DIR).
fn data_set(root: &Path, name: &'static str, spec: &SampleSpec) -> Result<DataSet> {
    let dir = root.join(name).join("data");
    let marker = root.join(name).join("spec.txt");
    let want = format!("{spec:?}");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut it = text.lines();
        if it.next() == Some(want.as_str()) {
            let n: Vec<u64> = it.filter_map(|l| l.parse().ok()).collect();
            if let [lines, bytes, disk_bytes, files] = n[..] {
                eprintln!("{name}: reusing {}", dir.display());
                let files = files as usize;
                return Ok(DataSet {
                    name,
                    dir,
                    lines,
                    bytes,
                    disk_bytes,
                    files,
                });
            }
        }
    }
    let _ = std::fs::remove_file(&marker);
    let t = Instant::now();
    let s = write_nginx_sample(&dir, spec).with_context(|| format!("writing {}", dir.display()))?;
    eprintln!(
        "{name}: generated {} lines, {:.0} MB ({:.0} MB on disk, {} files) in {:.1}s",
        s.lines,
        s.bytes as f64 / 1e6,
        s.disk_bytes as f64 / 1e6,
        s.files.len(),
        t.elapsed().as_secs_f64()
    );
    let n = s.files.len();
    std::fs::write(
        &marker,
        format!("{want}\n{}\n{}\n{}\n{n}\n", s.lines, s.bytes, s.disk_bytes),
    )?;
    let (lines, bytes, disk_bytes) = (s.lines, s.bytes, s.disk_bytes);
    Ok(DataSet {
        name,
        dir,
        lines,
        bytes,
        disk_bytes,
        files: n,
    })
}

/// One measured run in a fresh folder (job file, output), removed afterwards.
/// Returns the stats and a digest of the jsonl output (None if there is none).
fn run_once(
    bin: &Path,
    template: &str,
    set: &DataSet,
    run_dir: &Path,
    workers: usize,
    timeout: Duration,
) -> Result<(RunStats, Option<u64>)> {
    let _ = std::fs::remove_dir_all(run_dir);
    std::fs::create_dir_all(run_dir)?;
    let (job, out) = (run_dir.join("job.toml"), run_dir.join("out.jsonl"));
    std::fs::write(&job, job_toml(template, &set.dir, &out)?)?;
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(&job)
        .args(["--until-eof", "-w", &workers.to_string()])
        .current_dir(run_dir);
    let stats = run_measured(&mut cmd, run_dir, timeout).with_context(|| {
        format!(
            "tidemark run failed on the {} data set; job file, stdout and stderr are in {} \
             (kept only when TIDEMARK_BENCH_DIR is set)",
            set.name,
            run_dir.display()
        )
    })?;
    let digest = std::fs::read(&out).ok().map(|b| fnv1a(&b));
    std::fs::remove_dir_all(run_dir)?;
    Ok((stats, digest))
}

/// Reads and decompresses every file of `set` to /dev/null: what any tool reading
/// these logs pays before parsing a byte.
fn run_baseline(set: &DataSet, run_dir: &Path, timeout: Duration) -> Result<RunStats> {
    let _ = std::fs::remove_dir_all(run_dir);
    std::fs::create_dir_all(run_dir)?;
    let mut files = Vec::new();
    for host in std::fs::read_dir(&set.dir)? {
        for f in std::fs::read_dir(host?.path())? {
            files.push(f?.path());
        }
    }
    files.sort();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"for f in "$@"; do case "$f" in *.gz) gzip -dc -- "$f";; *) cat -- "$f";; esac; done > /dev/null"#)
        .arg("sh")
        .args(&files);
    let stats = run_measured(&mut cmd, run_dir, timeout).context("baseline read failed")?;
    let _ = std::fs::remove_dir_all(run_dir);
    Ok(stats)
}

struct Row<'a> {
    set: &'a DataSet,
    workers: usize,
    runs: Vec<RunStats>,
}

impl Row<'_> {
    fn med(&self, f: impl Fn(&RunStats) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }
    fn rss_mib(&self) -> f64 {
        self.med(|r| r.max_rss_kib as f64) / 1024.0
    }
}

fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "throughput: skipped (run it with `cargo bench -p tidemark-bench --bench throughput`)"
        );
        return Ok(());
    }
    let cfg = Config::from_env()?;
    let bin = tidemark_binary()?;
    let (template_from, template) = job_template()?;
    let (_tmp, root) = bench_root()?;
    std::fs::create_dir_all(&root)?;
    let (small_spec, big_spec) = (cfg.spec(true), cfg.spec(false));
    let sets = [
        data_set(&root, "small", &small_spec)?,
        data_set(&root, "big", &big_spec)?,
    ];

    // Baseline in the same run: only decompressing and reading the input, no parsing.
    let mut baselines = Vec::new();
    for set in &sets {
        let mut runs = Vec::new();
        for i in 1..=cfg.runs {
            let dir = root.join("runs").join(format!("{}-baseline-{i}", set.name));
            runs.push(run_baseline(set, &dir, cfg.timeout)?);
        }
        baselines.push(Row {
            set,
            workers: 0,
            runs,
        });
    }

    let mut rows = Vec::new();
    let mut digests: Vec<(&str, BTreeSet<Option<u64>>)> = Vec::new();
    for set in &sets {
        let mut seen = BTreeSet::new();
        for &workers in &cfg.workers {
            let mut runs = Vec::new();
            for i in 1..=cfg.runs {
                let dir = root
                    .join("runs")
                    .join(format!("{}-w{workers}-{i}", set.name));
                let (s, d) = run_once(&bin, &template, set, &dir, workers, cfg.timeout)?;
                eprintln!(
                    "{} -w {workers} run {i}/{}: cpu {:.2}s (user {:.2} + sys {:.2}), wall {:.2}s, peak RSS {:.1} MiB",
                    set.name,
                    cfg.runs,
                    s.cpu_secs(),
                    s.user_secs,
                    s.sys_secs,
                    s.wall_secs,
                    s.max_rss_kib as f64 / 1024.0
                );
                seen.insert(d);
                runs.push(s);
            }
            rows.push(Row { set, workers, runs });
        }
        digests.push((set.name, seen));
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## tidemark throughput (`tidemark run --until-eof`)\n");
    println!(
        "- binary: `{}`; job: {template_from}; {cpus} CPUs",
        bin.display()
    );
    for (set, spec) in sets.iter().zip([&small_spec, &big_spec]) {
        println!(
            "- {}: {} hosts x {} min x {} lines/host-min = {} lines, {:.0} MB ({:.0} MB on disk, {} files, rotations {} with .gz from .{}, disorder {}s)",
            set.name,
            spec.hosts,
            spec.minutes,
            spec.lines_per_minute,
            set.lines,
            set.bytes as f64 / 1e6,
            set.disk_bytes as f64 / 1e6,
            set.files,
            spec.rotations,
            spec.gzip_from,
            spec.disorder_secs
        );
    }
    println!(
        "- medians of {} runs per row; MB = 10^6 bytes of uncompressed log\n",
        cfg.runs
    );
    println!("| data set | lines | MB | workers | CPU s | wall s | lines/CPU-s | MB/CPU-s | lines/wall-s | peak RSS MiB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let (lines, mb) = (r.set.lines as f64, r.set.bytes as f64 / 1e6);
        println!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.2} | {} | {:.1} | {} | {:.1} |",
            r.set.name,
            thousands(lines),
            mb,
            r.workers,
            r.med(RunStats::cpu_secs),
            r.med(|s| s.wall_secs),
            thousands(r.med(|s| lines / s.cpu_secs())),
            r.med(|s| mb / s.cpu_secs()),
            thousands(r.med(|s| lines / s.wall_secs)),
            r.rss_mib()
        );
    }
    println!();
    let n = cfg.workers.len();
    for (small, big) in rows[..n].iter().zip(&rows[n..]) {
        println!(
            "- peak RSS big/small, {} worker(s): {:.2}x ({:.1} / {:.1} MiB; input {:.1}x larger)",
            big.workers,
            big.rss_mib() / small.rss_mib(),
            big.rss_mib(),
            small.rss_mib(),
            big.set.lines as f64 / small.set.lines as f64
        );
    }
    println!();
    println!("Baseline measured in the same run: `gzip -dc` / `cat` of every input file to /dev/null (reading and decompressing only).\n");
    println!("| data set | baseline CPU s | tidemark -w 1 CPU s | tidemark / baseline |");
    println!("|---|---:|---:|---:|");
    for b in &baselines {
        if let Some(t) = rows
            .iter()
            .find(|r| r.set.name == b.set.name && r.workers == 1)
        {
            let (bc, tc) = (b.med(RunStats::cpu_secs), t.med(RunStats::cpu_secs));
            println!("| {} | {bc:.2} | {tc:.2} | {:.2}x |", b.set.name, tc / bc);
        }
    }
    println!();
    for (name, seen) in digests {
        let verdict = match seen.len() {
            1 if seen.contains(&None) => "no output file was written".to_string(),
            1 => "identical across all worker counts and runs".to_string(),
            k => format!("DIFFERS between runs ({k} distinct outputs)"),
        };
        println!("- {name} output: {verdict}");
    }
    Ok(())
}
