//! Cost of `tidemark replay` on a 24-hour archive of nginx logs (about 1 GB of log).
//!
//!     cargo bench -p tidemark-bench --bench replay
//!
//! Generates one UTC day of logs for a few hosts as rotated siblings (12 two-hour files per
//! host, the oldest three gzipped). Each repetition runs, each in a fresh folder and measured
//! with `wait4` (CPU time, peak RSS) and the `rchar` that the reaped child adds to this
//! process's `/proc/self/io` (bytes it read):
//!
//! - the baseline: `tidemark run JOB --until-eof -w 1` over the whole archive;
//! - `tidemark replay JOB --from 12:30 --to 13:30 -w 1` and `-w 2` (1 hour mid-day);
//! - `tidemark replay JOB --from 00:00 --to 24:00 -w 1` and `-w 2` (the whole day).
//!
//! The replays run in rotating order after the baseline. Every replay's output must be
//! byte-identical to the baseline's lines for the same windows (filtered by their `start`
//! field); any difference keeps the run folder and fails the benchmark after the report.
//! Settings come from environment variables; see benches/README.md.

mod archive;
mod outputs;
mod variant;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use archive::{archive, DAY_MINUTES, DAY_START, DISORDER_SECS};
use outputs::{difference, digest, windows_in};
use tidemark_bench::{
    bench_root, env_or, job_template, median, rfc3339_utc, run_measured, thousands, tidemark_binary,
};
use tidemark_sources::sample::SampleSpec;
use variant::{cpu_ticks, run_variant, Measured, Variant};

/// The 1-hour range, in the middle of the day: 12:30 to 13:30 (with the default 2-hour
/// files, the middle of one plain file).
const HOUR_FROM: i64 = DAY_START + 12 * 3600 + 1800;
const HOUR_TO: i64 = HOUR_FROM + 3600;

struct Config {
    hosts: usize,
    lines_per_minute: u32,
    rotations: u32,
    gzip_from: u32,
    runs: usize,
    timeout: Duration,
}

impl Config {
    fn from_env() -> Result<Config> {
        let lines: u64 = env_or("TIDEMARK_BENCH_LINES", 5_760_000)?;
        let hosts: usize = env_or("TIDEMARK_BENCH_HOSTS", 4)?;
        if hosts == 0 || lines == 0 {
            bail!("TIDEMARK_BENCH_LINES and TIDEMARK_BENCH_HOSTS must be > 0");
        }
        let per_minute = lines.div_ceil(hosts as u64 * u64::from(DAY_MINUTES));
        let cfg = Config {
            hosts,
            lines_per_minute: u32::try_from(per_minute).unwrap_or(u32::MAX),
            rotations: env_or("TIDEMARK_BENCH_ROTATIONS", 11)?,
            gzip_from: env_or("TIDEMARK_BENCH_GZIP_FROM", 9)?,
            runs: env_or("TIDEMARK_BENCH_RUNS", 3)?,
            timeout: Duration::from_secs(env_or("TIDEMARK_BENCH_TIMEOUT_SECS", 1_800)?),
        };
        if cfg.runs == 0 {
            bail!("TIDEMARK_BENCH_RUNS must be > 0");
        }
        Ok(cfg)
    }

    fn spec(&self) -> SampleSpec {
        SampleSpec {
            hosts: self.hosts,
            start_unix_secs: DAY_START,
            minutes: DAY_MINUTES,
            lines_per_minute: self.lines_per_minute,
            rotations: self.rotations,
            gzip_from: self.gzip_from,
            disorder_secs: DISORDER_SECS,
            seed: 20_261_119,
        }
    }
}

fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("replay: skipped (run it with `cargo bench -p tidemark-bench --bench replay`)");
        return Ok(());
    }
    let cfg = Config::from_env()?;
    let spec = cfg.spec();
    let bin = tidemark_binary()?;
    let (template_from, template) = job_template()?;
    let (_tmp, root) = bench_root()?;
    std::fs::create_dir_all(&root)?;
    let root = root.canonicalize()?; // the job file needs an absolute data path
    let data = archive(&root, &spec)?;
    let runs_dir = root.join("runs");
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let day = (DAY_START, DAY_START + i64::from(DAY_MINUTES) * 60);
    let full = Variant {
        name: "run --until-eof (whole archive)",
        range: None,
        workers: 1,
    };
    let replays = [
        ("replay 1 h", (HOUR_FROM, HOUR_TO), 1),
        ("replay 1 h", (HOUR_FROM, HOUR_TO), 2),
        ("replay whole day", day, 1),
        ("replay whole day", day, 2),
    ]
    .map(|(name, range, workers)| Variant {
        name,
        range: Some(range),
        workers,
    });
    let mut measured: Vec<Vec<Measured>> = (0..=replays.len()).map(|_| Vec::new()).collect();
    // What each range must give: the first baseline run's lines of its windows, kept
    // in `root/replay/expected-*.jsonl`; and the digests each replay variant produced.
    let expected = root.join("replay");
    let (want_hour, want_day) = (
        expected.join("expected-hour.jsonl"),
        expected.join("expected-day.jsonl"),
    );
    let mut want_full = 0u64;
    let mut digests: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); replays.len()];
    let mut wrong_runs = vec![0usize; replays.len()];
    let mut failures: Vec<String> = Vec::new();
    let (busy_before, own_before) = cpu_ticks();
    let measuring = Instant::now();
    for i in 0..cfg.runs {
        // The baseline first: its output is what the replays must reproduce.
        let dir = runs_dir.join(format!("full-{}", i + 1));
        let m = run_variant(&bin, &template, &data.dir, &dir, full, cfg.timeout)?;
        let out = dir.join("out.jsonl");
        let d = digest(&out)?;
        eprintln!(
            "{} {}/{}: wall {:.2}s, cpu {:.2}s, read {:.0} MB, {} lines, peak RSS {:.1} MiB",
            full.name,
            i + 1,
            cfg.runs,
            m.stats.wall_secs,
            m.stats.cpu_secs(),
            m.rchar / 1e6,
            m.lines,
            m.stats.max_rss_kib as f64 / 1024.0
        );
        if i == 0 {
            want_full = d;
            let hour = windows_in(&out, HOUR_FROM, HOUR_TO, &want_hour)?;
            windows_in(&out, day.0, day.1, &want_day)?;
            if hour == 0 {
                bail!(
                    "the baseline run wrote no window in the 1-hour range; see {}",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(&dir)?;
        } else if d != want_full {
            failures.push(format!(
                "baseline run {} wrote other output than run 1 (kept in {})",
                i + 1,
                dir.display()
            ));
        } else {
            std::fs::remove_dir_all(&dir)?;
        }
        measured[0].push(m);
        for k in 0..replays.len() {
            let r = (i + k) % replays.len();
            let v = replays[r];
            let dir = runs_dir.join(format!("replay-{r}-w{}-{}", v.workers, i + 1));
            let m = run_variant(&bin, &template, &data.dir, &dir, v, cfg.timeout)?;
            let out = dir.join("out.jsonl");
            digests[r].insert(digest(&out)?);
            let (from, to) = v.range.unwrap_or(day);
            let want = if (from, to) == day {
                &want_day
            } else {
                &want_hour
            };
            let wrong = difference(want, &out)?;
            eprintln!(
                "{} -w {} {}/{}: wall {:.2}s, cpu {:.2}s, read {:.1} MB, {} lines, first window \
                 after {:.2}s, {} windows, peak RSS {:.1} MiB; output {}",
                v.name,
                v.workers,
                i + 1,
                cfg.runs,
                m.stats.wall_secs,
                m.stats.cpu_secs(),
                m.rchar / 1e6,
                m.lines,
                m.first,
                m.windows,
                m.stats.max_rss_kib as f64 / 1024.0,
                if wrong.is_some() {
                    "DIFFERS"
                } else {
                    "as expected"
                }
            );
            match wrong {
                Some(why) => {
                    wrong_runs[r] += 1;
                    std::fs::copy(want, dir.join("expected.jsonl"))?;
                    failures.push(format!(
                        "{} -w {} (repetition {}): output differs from the baseline's windows \
                         in [{}, {}): {why} (kept in {}, next to expected.jsonl)",
                        v.name,
                        v.workers,
                        i + 1,
                        rfc3339_utc(from),
                        rfc3339_utc(to),
                        dir.display()
                    ));
                }
                None => std::fs::remove_dir_all(&dir)?,
            }
            measured[r + 1].push(m);
        }
    }
    let (busy_after, own_after) = cpu_ticks();
    let measuring = measuring.elapsed().as_secs_f64();
    let others = busy_after
        .saturating_sub(busy_before)
        .saturating_sub(own_after - own_before) as f64
        / 100.0;
    // The floor under every peak RSS figure: a child that does nothing reports this
    // process's own peak (see `lines_of`).
    let floor_dir = runs_dir.join("floor");
    std::fs::create_dir_all(&floor_dir)?;
    let floor = run_measured(&mut Command::new("true"), &floor_dir, cfg.timeout)?;
    std::fs::remove_dir_all(&floor_dir)?;
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let med =
        |v: &[Measured], f: &dyn Fn(&Measured) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    // Median of the per-repetition ratios a / b of `f`.
    let ratio = |a: usize, b: usize, f: &dyn Fn(&Measured) -> f64| {
        median(
            &measured[a]
                .iter()
                .zip(&measured[b])
                .map(|(x, y)| f(x) / f(y))
                .collect::<Vec<_>>(),
        )
    };
    let wall = |m: &Measured| m.stats.wall_secs;
    let cpu = |m: &Measured| m.stats.cpu_secs();
    let read = |m: &Measured| m.rchar;

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = |s: &str| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let (mb, disk_mb) = (data.bytes as f64 / 1e6, data.disk_bytes as f64 / 1e6);
    let hhmm = |t: i64| rfc3339_utc(t)[11..16].to_string();
    println!("## tidemark replay (`tidemark replay JOB --from --to -w N`)\n");
    println!(
        "- binary: `{}`; job: {template_from}; {cpus} CPUs; load average {} before, {} after",
        bin.display(),
        load(&load_before),
        load(&load_after)
    );
    println!(
        "- other processes used {others:.0} CPU-s during the {measuring:.0} s of runs \
         (on average {:.2} of the {cpus} CPUs busy with something else)",
        others / measuring
    );
    println!(
        "- archive: {} hosts x 24 h ({}) x {} lines/host-min = {} lines, {mb:.0} MB of log, \
         {disk_mb:.0} MB on disk in {} files: per host `access.log` and {} rotated siblings, \
         `.{}` and older gzipped; disorder {}s",
        spec.hosts,
        &rfc3339_utc(DAY_START)[..10],
        spec.lines_per_minute,
        thousands(data.lines as f64),
        data.files,
        spec.rotations,
        spec.gzip_from,
        spec.disorder_secs
    );
    println!(
        "- ranges: 1 h = [{}, {}) UTC, whole day = [{}, 24:00) UTC; medians of {} repetitions; \
         MB = 10^6 bytes; \"read\" = `rchar` of the process (every byte it read, compressed \
         bytes for `.gz`)\n",
        hhmm(HOUR_FROM),
        hhmm(HOUR_TO),
        hhmm(day.0),
        cfg.runs
    );
    println!("| run | workers | wall s | CPU s | lines read | lines/CPU-s | MB read | read / archive on disk | first window s | windows | peak RSS MiB | late lines |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let variants = std::iter::once(full).chain(replays);
    for (v, ms) in variants.zip(&measured) {
        let first = med(ms, &|m| m.first);
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {} | {:.1} | {:.1}% | {} | {} | {:.1} | {} |",
            v.name,
            v.workers,
            med(ms, &wall),
            med(ms, &cpu),
            thousands(med(ms, &|m| m.lines)),
            thousands(med(ms, &|m| m.lines / m.stats.cpu_secs())),
            med(ms, &read) / 1e6,
            100.0 * med(ms, &read) / data.disk_bytes as f64,
            if first.is_nan() {
                "-".to_string()
            } else {
                format!("{first:.2}")
            },
            if v.range.is_some() {
                thousands(med(ms, &|m| m.windows))
            } else {
                "-".to_string()
            },
            med(ms, &|m| m.stats.max_rss_kib as f64) / 1024.0,
            thousands(med(ms, &|m| m.late))
        );
    }
    println!(
        "\nPeak RSS floor: `true` run the same way reports {:.1} MiB, this benchmark's own \
         peak (a child's `ru_maxrss` starts at its parent's).",
        floor.max_rss_kib as f64 / 1024.0
    );
    println!("\nWhat each replay planned (repetition 1):\n");
    println!("```");
    for (v, ms) in replays.iter().zip(&measured[1..]) {
        println!("-w {}: {}", v.workers, ms[0].plan);
    }
    println!("```\n");
    println!(
        "The 1 h range is {:.1}% of the day's lines. Ratios are medians of the per-repetition \
         ratios.\n",
        100.0 / 24.0
    );
    println!("| 1 h replay / full run | wall | CPU | bytes read |");
    println!("|---|---:|---:|---:|");
    for (r, w) in [(1, 1), (2, 2)] {
        println!(
            "| `-w {w}` / `run --until-eof -w 1` | {:.3}x | {:.3}x | {:.3}x |",
            ratio(r, 0, &wall),
            ratio(r, 0, &cpu),
            ratio(r, 0, &read)
        );
    }
    let speedup_day = ratio(3, 4, &wall);
    println!();
    println!(
        "- 1 h range, `-w 1` / `-w 2` wall: {:.2}x",
        ratio(1, 2, &wall)
    );
    println!(
        "- whole day ({mb:.0} MB of log), `-w 1` / `-w 2` wall: **{speedup_day:.2}x** \
         (target >= 1.7x: {}); CPU `-w 2` / `-w 1`: {:.2}x",
        if speedup_day >= 1.7 { "met" } else { "NOT met" },
        ratio(4, 3, &cpu)
    );
    let verdict = |r: usize, what: &str| match wrong_runs[r] {
        0 => format!("identical to {what} in every repetition"),
        k => format!(
            "DIFFERS in {k} of {} repetitions ({} distinct output(s); see the error below)",
            cfg.runs,
            digests[r].len()
        ),
    };
    println!(
        "- 1 h replay output, `-w 1`: {}",
        verdict(0, "the baseline's lines of those windows")
    );
    println!(
        "- 1 h replay output, `-w 2`: {}",
        verdict(1, "the baseline's lines of those windows")
    );
    println!(
        "- whole-day replay output, `-w 1`: {}",
        verdict(2, "the baseline's output for the day")
    );
    println!(
        "- whole-day replay output, `-w 2`: {}",
        verdict(3, "the baseline's output for the day")
    );
    let same_w = |a: usize, b: usize| digests[a] == digests[b] && digests[a].len() == 1;
    println!(
        "- `-w 1` vs `-w 2`: {} (1 h), {} (whole day)",
        if same_w(0, 1) { "identical" } else { "DIFFER" },
        if same_w(2, 3) { "identical" } else { "DIFFER" }
    );
    if !failures.is_empty() {
        bail!("replay output is wrong:\n- {}", failures.join("\n- "));
    }
    Ok(())
}
