//! Cost of checkpoints and time to recover after `kill -9`, on about 1 GB of nginx logs.
//!
//!     cargo bench -p tidemark-bench --bench recovery
//!
//! 1. Overhead: `tidemark run JOB --until-eof -w 1` without `--state-dir`, with it (default
//!    interval 1s) and with `--checkpoint-interval 100ms`, in rotating order, each run in a
//!    fresh folder. Reports medians and the median of the per-repetition ratios to "off".
//! 2. Recovery: `tidemark run JOB --state-dir S -w 2` (live) until every host has emitted the
//!    window two minutes before the data's last minute, 2 s more, then SIGKILL. Times
//!    `run JOB --state-dir S --until-eof -w 2` (the resume) against the same command with a
//!    fresh state folder (from scratch) and checks that both outputs are byte-identical.
//!
//! Settings come from environment variables; see benches/README.md.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tidemark_bench::{
    bench_root, env_or, fnv1a, job_template, job_toml, median, rfc3339_utc, run_measured,
    self_metric, tail, thousands, tidemark_binary, RunStats,
};
use tidemark_sources::sample::{host_name, write_nginx_sample, SampleSpec};

/// How long the live run keeps going after it has caught up, before the kill: more than
/// the default checkpoint interval (1s), so a checkpoint after the catch-up is due.
const SETTLE: Duration = Duration::from_secs(2);

/// Writes the data into `root/recovery/data` unless the same spec is already there (only
/// possible with TIDEMARK_BENCH_DIR). Returns (folder, uncompressed bytes, lines).
fn data_set(root: &Path, spec: &SampleSpec) -> Result<(PathBuf, u64, u64)> {
    let dir = root.join("recovery").join("data");
    let marker = root.join("recovery").join("spec.txt");
    let want = format!("{spec:?}");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut it = text.lines();
        if it.next() == Some(want.as_str()) {
            let n: Vec<u64> = it.filter_map(|l| l.parse().ok()).collect();
            if let [bytes, lines] = n[..] {
                eprintln!("reusing {}", dir.display());
                return Ok((dir, bytes, lines));
            }
        }
    }
    let _ = std::fs::remove_file(&marker);
    let t = Instant::now();
    let s = write_nginx_sample(&dir, spec).with_context(|| format!("writing {}", dir.display()))?;
    eprintln!(
        "generated {} lines, {:.0} MB in {} files in {:.1}s",
        s.lines,
        s.bytes as f64 / 1e6,
        s.files.len(),
        t.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, format!("{want}\n{}\n{}\n", s.bytes, s.lines))?;
    Ok((dir, s.bytes, s.lines))
}

/// A fresh `dir` holding `job.toml`: jsonl sink `dir/out.jsonl`, and `idle_timeout = "1h"`
/// so that windows close only by watermark. Returns the output path.
fn fresh_job(dir: &Path, template: &str, data: &Path) -> Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let out = dir.join("out.jsonl");
    let mut job: toml::Table = job_toml(template, data, &out)?.parse()?;
    job.entry("window")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .context("[window] is not a table")?
        .insert("idle_timeout".into(), "1h".into());
    std::fs::write(dir.join("job.toml"), toml::to_string(&job)?)?;
    Ok(out)
}

/// `tidemark run job.toml ARGS` in `dir` (so `--state-dir state` means `dir/state`).
fn tidemark(bin: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["run", "job.toml"]).args(args).current_dir(dir);
    cmd
}

/// What the killed live run had done.
struct Killed {
    rchar: f64,     // bytes it had read (/proc/PID/io), just before the kill
    caught_up: f64, // seconds from its start until every host had emitted the target window
    out_len: f64,   // bytes of output it had written
    committed: f64, // bytes of output its last checkpoint commits
    ckpt_age: f64,  // seconds between its last checkpoint and the kill
}

/// `"key": N` in `dir/state/<job>/checkpoint` (a binary header, then JSON).
fn checkpoint_field(dir: &Path, key: &str) -> f64 {
    let get = || -> Option<f64> {
        let job = std::fs::read_dir(dir.join("state"))
            .ok()?
            .flatten()
            .next()?;
        let bytes = std::fs::read(job.path().join("checkpoint")).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let rest = text[text.find(&format!("\"{key}\":"))? + key.len() + 3..].trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    get().unwrap_or(f64::NAN)
}

/// Starts the live run `cmd` in `dir`, waits until every host has emitted the window that
/// starts at `target` (reading only what was appended to the output since the last poll,
/// as the bench shares the CPUs with it), waits [`SETTLE`], then SIGKILLs it.
fn run_and_kill(
    mut cmd: Command,
    dir: &Path,
    target: &str,
    hosts: usize,
    timeout: Duration,
) -> Result<Killed> {
    let (err, out) = (dir.join("stderr"), dir.join("out.jsonl"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout"))?)
        .stderr(std::fs::File::create(&err)?);
    let started = Instant::now();
    let mut child = cmd.spawn().context("cannot start tidemark")?;
    let needle = format!("\"start\":\"{target}\"");
    let (mut pos, mut carry, mut seen) = (0u64, Vec::new(), BTreeSet::new());
    while seen.len() < hosts {
        if let Some(status) = child.try_wait()? {
            bail!("live run ended early ({status}):\n{}", tail(&err, 20));
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("live run did not emit the {target} window within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
        let Ok(mut f) = std::fs::File::open(&out) else {
            continue;
        };
        f.seek(SeekFrom::Start(pos))?;
        pos += f.read_to_end(&mut carry)? as u64;
        let complete = carry.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&carry[..complete]).lines() {
            if line.contains(&needle) {
                let host = |h: &usize| line.contains(&format!("\"host\":\"{}\"", host_name(*h)));
                seen.extend((0..hosts).filter(host));
            }
        }
        carry.drain(..complete);
    }
    let caught_up = started.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    let io = std::fs::read_to_string(format!("/proc/{}/io", child.id())).unwrap_or_default();
    let rchar = io
        .lines()
        .find_map(|l| l.strip_prefix("rchar:")?.trim().parse().ok());
    child.kill()?; // std's Child::kill sends SIGKILL on Unix: this is `kill -9`
    let killed_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as f64;
    let status = child.wait()?;
    if status.signal() != Some(libc::SIGKILL) {
        bail!("live run was not killed by SIGKILL but ended with {status}");
    }
    Ok(Killed {
        rchar: rchar.unwrap_or(f64::NAN),
        caught_up,
        out_len: std::fs::metadata(&out).map_or(f64::NAN, |m| m.len() as f64),
        committed: checkpoint_field(dir, "committed_len"),
        ckpt_age: (killed_ms - checkpoint_field(dir, "written_unix_ms")) / 1e3,
    })
}

fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "recovery: skipped (run it with `cargo bench -p tidemark-bench --bench recovery`)"
        );
        return Ok(());
    }
    let want_lines: u64 = env_or("TIDEMARK_BENCH_LINES", 5_600_000)?;
    let hosts: usize = env_or("TIDEMARK_BENCH_HOSTS", 6)?;
    let lines_per_minute: u32 = env_or("TIDEMARK_BENCH_LINES_PER_MINUTE", 5_000)?;
    let runs: usize = env_or("TIDEMARK_BENCH_RUNS", 3)?;
    let timeout = Duration::from_secs(env_or("TIDEMARK_BENCH_TIMEOUT_SECS", 1_800)?);
    if hosts == 0 || lines_per_minute == 0 || runs == 0 || want_lines == 0 {
        bail!("TIDEMARK_BENCH_LINES, _HOSTS, _LINES_PER_MINUTE and _RUNS must be > 0");
    }
    let minutes = want_lines
        .div_ceil(hosts as u64 * u64::from(lines_per_minute))
        .max(4);
    let spec = SampleSpec {
        hosts,
        minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
        lines_per_minute,
        rotations: 3,
        gzip_from: 0,     // plain files: parse-bound, and bytes read = bytes of log
        disorder_secs: 3, // below the job's max_out_of_orderness (5s): no late lines
        seed: 20_261_121,
        ..SampleSpec::default()
    };
    let bin = tidemark_binary()?;
    let (template_from, template) = job_template()?;
    let (_tmp, root) = bench_root()?;
    std::fs::create_dir_all(&root)?;
    let root = root.canonicalize()?; // the job file needs an absolute data path
    let (data, bytes, lines) = data_set(&root, &spec)?;
    let mb = bytes as f64 / 1e6;
    let runs_dir = root.join("runs");

    // 1. Overhead: off / on (1s) / on (100ms), rotating which goes first.
    let names = ["off", "on, interval 1s (default)", "on, interval 100ms"];
    let flags: [&[&str]; 3] = [
        &[],
        &["--state-dir", "state"],
        &["--state-dir", "state", "--checkpoint-interval", "100ms"],
    ];
    let mut stats: [Vec<(RunStats, f64)>; 3] = Default::default(); // (run, checkpoints)
    let mut ratios: [Vec<(f64, f64)>; 3] = Default::default(); // (CPU, wall) / same rep's off
    let mut digests = BTreeSet::new();
    for i in 0..runs {
        for v in (0..3).map(|k| (i + k) % 3) {
            let dir = runs_dir.join(format!("overhead-{v}-{}", i + 1));
            let out = fresh_job(&dir, &template, &data)?;
            let args = [&["--until-eof", "-w", "1"], flags[v]].concat();
            let s = run_measured(&mut tidemark(&bin, &dir, &args), &dir, timeout)?;
            let ckpts = self_metric(&dir, "checkpoints written").unwrap_or(0);
            eprintln!(
                "overhead {} {}/{runs}: cpu {:.2}s, wall {:.2}s, {ckpts} checkpoints",
                names[v],
                i + 1,
                s.cpu_secs(),
                s.wall_secs
            );
            digests.insert(std::fs::read(&out).ok().map(|b| fnv1a(&b)));
            stats[v].push((s, ckpts as f64));
            std::fs::remove_dir_all(&dir)?;
        }
        let off = stats[0][i].0;
        for v in 0..3 {
            let s = stats[v][i].0;
            ratios[v].push((s.cpu_secs() / off.cpu_secs(), s.wall_secs / off.wall_secs));
        }
    }

    // 2. Recovery after kill -9 with the whole data set processed.
    let last_minute = spec.start_unix_secs + (i64::from(spec.minutes) - 1) * 60;
    let target = rfc3339_utc(last_minute - 2 * 60);
    let (mut kills, mut rec, mut scratch, mut identical) = (vec![], vec![], vec![], 0);
    let until_eof = ["--state-dir", "state", "--until-eof", "-w", "2"];
    for i in 1..=runs {
        // The killed live run, then its resume: same job file, state folder and output.
        let dir = runs_dir.join(format!("recover-{i}"));
        let out = fresh_job(&dir, &template, &data)?;
        let live = tidemark(&bin, &dir, &["--state-dir", "state", "-w", "2"]);
        let k = run_and_kill(live, &dir, &target, hosts, timeout)?;
        let log = dir.join("resume");
        std::fs::create_dir_all(&log)?;
        let r = run_measured(&mut tidemark(&bin, &dir, &until_eof), &log, timeout)?;
        let r_lines = self_metric(&log, "lines read").map_or(f64::NAN, |n| n as f64);
        // From scratch: the same command with a fresh state folder.
        let sdir = runs_dir.join(format!("scratch-{i}"));
        let sout = fresh_job(&sdir, &template, &data)?;
        let s = run_measured(&mut tidemark(&bin, &sdir, &until_eof), &sdir, timeout)?;
        let s_lines = self_metric(&sdir, "lines read").map_or(f64::NAN, |n| n as f64);
        let same = std::fs::read(&out)? == std::fs::read(&sout)?;
        identical += usize::from(same);
        eprintln!(
            "recovery {i}/{runs}: killed after {:.0} MB read (caught up at {:.1}s; last checkpoint \
             {:.1}s old, committing {} of {} output bytes); resume wall {:.2}s cpu {:.2}s, \
             {r_lines} lines; from scratch wall {:.2}s cpu {:.2}s, {s_lines} lines; output {}",
            k.rchar / 1e6,
            k.caught_up,
            k.ckpt_age,
            k.committed,
            k.out_len,
            r.wall_secs,
            r.cpu_secs(),
            s.wall_secs,
            s.cpu_secs(),
            if same { "identical" } else { "DIFFERS (folders kept)" }
        );
        kills.push(k);
        rec.push((r, r_lines));
        scratch.push((s, s_lines));
        if same {
            std::fs::remove_dir_all(&dir)?;
            std::fs::remove_dir_all(&sdir)?;
        }
    }

    let med = |v: &[(RunStats, f64)], f: &dyn Fn(&(RunStats, f64)) -> f64| {
        median(&v.iter().map(f).collect::<Vec<_>>())
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("## tidemark checkpoint overhead and recovery after kill -9\n");
    println!(
        "- binary: `{}`; job: {template_from} with `idle_timeout = \"1h\"`; {cpus} CPUs",
        bin.display()
    );
    println!(
        "- data: {hosts} hosts x {} min x {lines_per_minute} lines/host-min = {} lines, {mb:.0} MB \
         in plain files (rotations {}, no gzip), disorder {}s",
        spec.minutes,
        thousands(lines as f64),
        spec.rotations,
        spec.disorder_secs
    );
    println!("- medians of {runs} repetitions; MB = 10^6 bytes of log\n");
    println!("### Checkpoint overhead: `tidemark run JOB --until-eof -w 1 [--state-dir S]`\n");
    println!("| checkpoints | CPU s | wall s | MB/CPU-s | MB/wall-s | checkpoints written | CPU vs off | wall vs off |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for v in 0..3 {
        let r = |f: fn(&(f64, f64)) -> f64| median(&ratios[v].iter().map(f).collect::<Vec<_>>());
        println!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.3}x | {:.3}x |",
            names[v],
            med(&stats[v], &|s| s.0.cpu_secs()),
            med(&stats[v], &|s| s.0.wall_secs),
            med(&stats[v], &|s| mb / s.0.cpu_secs()),
            med(&stats[v], &|s| mb / s.0.wall_secs),
            med(&stats[v], &|s| s.1),
            r(|x| x.0),
            r(|x| x.1)
        );
    }
    let verdict = match digests.len() {
        1 if digests.contains(&None) => "no output file was written",
        1 => "identical with and without checkpoints",
        _ => "DIFFERS between variants",
    };
    println!("\n\"vs off\": median of the per-repetition ratios (variant / off of the same repetition). Output: {verdict}.\n");

    println!("### Recovery after kill -9: `tidemark run JOB --state-dir S --until-eof -w 2`\n");
    let km = |f: fn(&Killed) -> f64| median(&kills.iter().map(f).collect::<Vec<_>>());
    println!(
        "The live run (`run JOB --state-dir S -w 2`) was killed with SIGKILL {} s after every host \
         had emitted the {target} window ({:.1} s after its start), having read {:.0} MB \
         (`rchar` in /proc/PID/io) of the {mb:.0} MB of log. Its last checkpoint was then \
         {:.1} s old and committed {} of the {} bytes of output written (medians).\n",
        SETTLE.as_secs(),
        km(|k| k.caught_up),
        km(|k| k.rchar) / 1e6,
        km(|k| k.ckpt_age),
        thousands(km(|k| k.committed)),
        thousands(km(|k| k.out_len))
    );
    println!("| run | wall s | CPU s | peak RSS MiB | lines read |");
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in [("resume after kill -9", &rec), ("from scratch", &scratch)] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {} |",
            med(v, &|x| x.0.wall_secs),
            med(v, &|x| x.0.cpu_secs()),
            med(v, &|x| x.0.max_rss_kib as f64) / 1024.0,
            thousands(med(v, &|x| x.1))
        );
    }
    let ratio: Vec<f64> = (rec.iter().zip(&scratch))
        .map(|(r, s)| r.0.wall_secs / s.0.wall_secs)
        .collect();
    println!(
        "\n- resume / from scratch, wall: {:.3}x (median of per-repetition ratios); the resume \
         re-read {:.1}% of the input lines",
        median(&ratio),
        100.0 * med(&rec, &|x| x.1) / lines as f64
    );
    let verdict = if identical == runs {
        "identical to the from-scratch output in every repetition".to_string()
    } else {
        format!(
            "DIFFERS from the from-scratch output in {} of {runs} repetitions",
            runs - identical
        )
    };
    println!("- recovered output: {verdict}");
    Ok(())
}
