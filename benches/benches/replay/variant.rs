//! One measured run of the binary: `run --until-eof` or `replay --from --to`, in
//! a fresh folder, with what it read and what it said on stderr.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tidemark_bench::{job_toml, rfc3339_utc, run_measured, self_metric, tail, RunStats};

use crate::archive::DISORDER_SECS;

pub fn duration_secs(s: &str) -> Option<f64> {
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
pub fn job_text(template: &str, data: &Path, out: &Path) -> Result<String> {
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
pub struct Variant {
    pub name: &'static str,
    /// `None`: `run --until-eof` over everything; else `replay --from --to` (unix secs).
    pub range: Option<(i64, i64)>,
    pub workers: usize,
}

/// One measured run.
pub struct Measured {
    pub stats: RunStats,
    /// Bytes the child read (`rchar`): files, the job file, its shared libraries.
    pub rchar: f64,
    pub lines: f64,
    pub late: f64,
    /// `first after F s` of `replay done ...` (NaN for `run`).
    pub first: f64,
    pub windows: f64,
    /// `replay [FROM, TO): ...` (empty for `run`).
    pub plan: String,
}

/// `rchar` of this process, which includes every child it has reaped.
pub fn own_rchar() -> Result<u64> {
    let io = std::fs::read_to_string("/proc/self/io").context("reading /proc/self/io")?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:")?.trim().parse().ok())
        .context("no rchar in /proc/self/io")
}

/// CPU time in clock ticks (USER_HZ, 100 per second on Linux): (busy time of the whole
/// machine from /proc/stat, time of this process and the children it has reaped).
pub fn cpu_ticks() -> (u64, u64) {
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
pub fn number_after(line: &str, key: &str) -> f64 {
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
pub fn run_variant(
    bin: &Path,
    template: &str,
    data: &Path,
    dir: &Path,
    v: Variant,
    timeout: Duration,
) -> Result<Measured> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    // A replay refuses to write onto the job's own sink (the live output), so the
    // job's sink is `live.jsonl` there and the replay writes `out.jsonl`.
    let sink = match v.range {
        None => dir.join("out.jsonl"),
        Some(_) => dir.join("live.jsonl"),
    };
    std::fs::write(dir.join("job.toml"), job_text(template, data, &sink)?)?;
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
