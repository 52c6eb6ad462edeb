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

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tidemark_bench::{
    bench_root, env_or, job_template, job_toml, median, rfc3339_utc, run_measured, self_metric,
    tail, thousands, tidemark_binary, RunStats,
};
use tidemark_sources::sample::{write_nginx_sample, SampleSpec};

/// 2026-11-19T00:00:00Z: the archive holds that whole UTC day. It lies in the past, so
/// no line is refused as a future timestamp.
const DAY_START: i64 = 1_795_046_400;
const DAY_MINUTES: u32 = 24 * 60;
/// The 1-hour range, in the middle of the day: 12:30 to 13:30 (with the default 2-hour
/// files, the middle of one plain file).
const HOUR_FROM: i64 = DAY_START + 12 * 3600 + 1800;
const HOUR_TO: i64 = HOUR_FROM + 3600;
/// Lag bound of the generated timestamps; the job's `max_out_of_orderness` must cover it.
const DISORDER_SECS: u32 = 3;

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

struct Archive {
    dir: PathBuf,
    lines: u64,
    bytes: u64,
    disk_bytes: u64,
    files: u64,
}

/// Writes the archive into `root/replay/data` unless the same spec is already there (only
/// possible with TIDEMARK_BENCH_DIR).
fn archive(root: &Path, spec: &SampleSpec) -> Result<Archive> {
    let dir = root.join("replay").join("data");
    let marker = root.join("replay").join("spec.txt");
    let want = format!("{spec:?}");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut it = text.lines();
        if it.next() == Some(want.as_str()) {
            let n: Vec<u64> = it.filter_map(|l| l.parse().ok()).collect();
            if let [lines, bytes, disk_bytes, files] = n[..] {
                eprintln!("reusing {}", dir.display());
                return Ok(Archive {
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
    let files = s.files.len() as u64;
    eprintln!(
        "generated {} lines, {:.0} MB ({:.0} MB on disk) in {files} files in {:.1}s",
        s.lines,
        s.bytes as f64 / 1e6,
        s.disk_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(
        &marker,
        format!(
            "{want}\n{}\n{}\n{}\n{files}\n",
            s.lines, s.bytes, s.disk_bytes
        ),
    )?;
    Ok(Archive {
        dir,
        lines: s.lines,
        bytes: s.bytes,
        disk_bytes: s.disk_bytes,
        files,
    })
}

/// `"5s"`, `"500ms"`, `"1m"`, `"1h"` in seconds.
fn duration_secs(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = s.split_at(split);
    let unit = match unit.trim() {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(n.parse::<f64>().ok()? * unit)
}

/// The job file for `data`, writing to `out`; refuses a disorder bound below the data's.
fn job_text(template: &str, data: &Path, out: &Path) -> Result<String> {
    let text = job_toml(template, data, out)?;
    let job: toml::Table = text.parse()?;
    let bound = job
        .get("window")
        .and_then(|w| w.get("max_out_of_orderness"))
        .and_then(|v| v.as_str());
    if let Some(b) = bound {
        match duration_secs(b) {
            Some(s) if s < f64::from(DISORDER_SECS) => bail!(
                "the job's max_out_of_orderness ({b}) is below the data's disorder \
                 ({DISORDER_SECS}s): lines would be late and replays could differ"
            ),
            Some(_) => {}
            None => eprintln!("warning: cannot read max_out_of_orderness = {b:?}; not checked"),
        }
    }
    Ok(text)
}

/// What one run is.
#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    /// `None`: `run --until-eof` over everything; else `replay --from --to` (unix secs).
    range: Option<(i64, i64)>,
    workers: usize,
}

/// One measured run.
struct Measured {
    stats: RunStats,
    /// Bytes the child read (`rchar`): files, the job file, its shared libraries.
    rchar: f64,
    lines: f64,
    late: f64,
    /// `first after F s` of `replay done ...` (NaN for `run`).
    first: f64,
    windows: f64,
    /// `replay [FROM, TO): ...` (empty for `run`).
    plan: String,
}

/// `rchar` of this process, which includes every child it has reaped.
fn own_rchar() -> Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io").context("reading /proc/self/io")?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:")?.trim().parse().ok())
        .context("no rchar in /proc/self/io")
}

/// CPU time in clock ticks (USER_HZ, 100 per second on Linux): (busy time of the whole
/// machine from /proc/stat, time of this process and the children it has reaped).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy = stat.lines().next().map_or(0, |l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum()
    });
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let own = me.rfind(')').map_or(0, |i| {
        // Fields 14-17 (utime stime cutime cstime); field 3 comes right after ')'.
        me[i + 1..]
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|x| x.parse::<u64>().ok())
            .sum()
    });
    (busy, own)
}

/// The number right after `key` in `line` (`"first after 0.12s"` -> 0.12).
fn number_after(line: &str, key: &str) -> f64 {
    line.find(key)
        .map(|i| &line[i + key.len()..])
        .map(|rest| {
            let n: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            n.parse().unwrap_or(f64::NAN)
        })
        .unwrap_or(f64::NAN)
}

/// Runs `v` in the fresh folder `dir` (job file, output `dir/out.jsonl`, stdout, stderr).
fn run_variant(
    bin: &Path,
    template: &str,
    data: &Path,
    dir: &Path,
    v: Variant,
    timeout: Duration,
) -> Result<Measured> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let out = dir.join("out.jsonl");
    std::fs::write(dir.join("job.toml"), job_text(template, data, &out)?)?;
    let mut cmd = Command::new(bin);
    let w = v.workers.to_string();
    match v.range {
        None => cmd.args(["run", "job.toml", "--until-eof", "-w", &w]),
        Some((from, to)) => cmd.args(["replay", "job.toml", "-w", &w]).args([
            "--from",
            &rfc3339_utc(from),
            "--to",
            &rfc3339_utc(to),
            "--output",
            "out.jsonl",
            "--progress",
            "none",
        ]),
    };
    cmd.current_dir(dir);
    let before = own_rchar()?;
    let stats = run_measured(&mut cmd, dir, timeout).with_context(|| {
        format!(
            "{} failed; job file, stdout and stderr are in {} (kept only when \
             TIDEMARK_BENCH_DIR is set)",
            v.name,
            dir.display()
        )
    })?;
    let rchar = own_rchar()?.saturating_sub(before) as f64;
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    let metric = |key| self_metric(dir, key).map_or(f64::NAN, |n| n as f64);
    let plan = stderr
        .lines()
        .find(|l| l.starts_with("replay ["))
        .unwrap_or_default()
        .to_string();
    let done = stderr
        .lines()
        .find(|l| l.starts_with("replay done in"))
        .unwrap_or_default();
    if v.range.is_some() && (plan.is_empty() || done.is_empty()) {
        bail!(
            "{}: no `replay [...]` or `replay done in` line on stderr:\n{}",
            v.name,
            tail(&dir.join("stderr"), 20)
        );
    }
    Ok(Measured {
        stats,
        rchar,
        lines: metric("lines read"),
        late: metric("late lines (dropped)"),
        first: number_after(done, "first after"),
        windows: number_after(done, ":"),
        plan,
    })
}

/// The `start` field of a jsonl output line.
fn start_of(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"start\":\"";
    let i = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[i..].iter().position(|&b| b == b'"')?;
    Some(&line[i..i + len])
}

/// Output files are read a line at a time and never held whole: a child's `ru_maxrss`
/// starts at this process's own peak RSS (Linux counts the memory it shares with its
/// parent until `exec`), so a big buffer here would show up in every later run's figure.
fn lines_of(path: &Path) -> Result<impl Iterator<Item = std::io::Result<Vec<u8>>>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(64 << 10, f).split(b'\n'))
}

/// FNV-1a over `bytes`, continuing from `h` (start from [`FNV_START`]).
fn fnv_update(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A digest of the file `path` (0 if it does not exist).
fn digest(path: &Path) -> Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    let mut h = FNV_START;
    for line in lines_of(path)? {
        h = fnv_update(fnv_update(h, &line?), b"\n");
    }
    Ok(h)
}

/// Copies the lines of `output` whose window starts in `[from, to)` (by the `start`
/// field) to `into`, and returns how many there were.
fn windows_in(output: &Path, from: i64, to: i64, into: &Path) -> Result<u64> {
    let (from, to) = (rfc3339_utc(from), rfc3339_utc(to));
    let mut w = BufWriter::new(File::create(into)?);
    let mut n = 0;
    for line in lines_of(output)? {
        let line = line?;
        if start_of(&line).is_some_and(|s| s >= from.as_bytes() && s < to.as_bytes()) {
            w.write_all(&line)?;
            w.write_all(b"\n")?;
            n += 1;
        }
    }
    w.flush()?;
    Ok(n)
}

/// `None` if `got` holds the same bytes as `want`, else where it first departs from it.
fn difference(want: &Path, got: &Path) -> Result<Option<String>> {
    if !got.exists() {
        return Ok(Some("no output file was written".into()));
    }
    let show = |l: &[u8]| String::from_utf8_lossy(&l[..l.len().min(200)]).into_owned();
    let (mut w, mut g) = (lines_of(want)?, lines_of(got)?);
    let mut i = 0u64;
    loop {
        i += 1;
        match (w.next().transpose()?, g.next().transpose()?) {
            (None, None) => break,
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                return Ok(Some(format!(
                    "line {i}: expected {:?}, got {:?}",
                    show(&a),
                    show(&b)
                )))
            }
            (Some(a), None) => {
                return Ok(Some(format!(
                    "line {i} is missing, expected {:?}",
                    show(&a)
                )))
            }
            (None, Some(b)) => return Ok(Some(format!("extra line {i}: {:?}", show(&b)))),
        }
    }
    // Same lines; only a missing final newline can still differ.
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok((len(want) != len(got)).then(|| "the final newline differs".to_string()))
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
