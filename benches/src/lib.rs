//! Plumbing shared by the tidemark benchmarks: run a child and read *its own* CPU time
//! and peak RSS with `wait4`, medians, finding (or building) the release binary, and
//! writing a job file that points at generated data.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Resource usage of one finished child process.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    pub user_secs: f64,
    pub sys_secs: f64,
    pub wall_secs: f64,
    /// `ru_maxrss`: peak resident set size in KiB (Linux).
    pub max_rss_kib: u64,
}

impl RunStats {
    pub fn cpu_secs(&self) -> f64 {
        self.user_secs + self.sys_secs
    }
}

/// Runs `cmd` with stdout and stderr redirected to `log_dir/{stdout,stderr}` and waits for
/// it with `wait4`, so the figures are that child's alone. A child that is still running
/// after `timeout` is killed. Errors (with the tail of its stderr) unless it exits 0.
pub fn run_measured(cmd: &mut Command, log_dir: &Path, timeout: Duration) -> Result<RunStats> {
    run_measured_exiting(cmd, log_dir, timeout, &[0])
}

/// [`run_measured`], where any exit code in `ok` counts as success (e.g. 3, a
/// finite run that left lines out under `max_series`).
pub fn run_measured_exiting(
    cmd: &mut Command,
    log_dir: &Path,
    timeout: Duration,
    ok: &[i32],
) -> Result<RunStats> {
    let (out, err) = (log_dir.join("stdout"), log_dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(File::create(&err)?);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let (done, wait_done) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let timed_out = wait_done.recv_timeout(timeout).is_err();
        if timed_out {
            let _ = child.kill();
        }
        timed_out
    });
    let waited = wait4(pid);
    let wall_secs = started.elapsed().as_secs_f64();
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let (status, ru) = waited.context("wait4")?;
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let stats = RunStats {
        user_secs: tv(ru.ru_utime),
        sys_secs: tv(ru.ru_stime),
        wall_secs,
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    };
    let why = if timed_out {
        format!("timed out after {timeout:?} and was killed")
    } else if libc::WIFEXITED(status) && ok.contains(&libc::WEXITSTATUS(status)) {
        return Ok(stats);
    } else if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    };
    bail!(
        "{cmd:?} {why} after {wall_secs:.1}s\n--- last lines of {} ---\n{}",
        err.display(),
        tail(&err, 20)
    )
}

#[allow(unsafe_code)]
fn wait4(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain integers, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to live locals; `pid` is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((status, ru));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The last `n` lines of a text file (lossy), for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Median (mean of the middle two for an even count); NaN for an empty slice.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Reads environment variable `name`, or `default` when unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={s:?}: {e}")),
        Err(_) => Ok(default),
    }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent")
        .to_path_buf()
}

/// The `tidemark` binary to measure: `$TIDEMARK_BIN` if set (used as is), otherwise
/// `cargo build --release -p tidemark` (a no-op when up to date, so a stale binary is
/// never measured) and `<target dir>/release/tidemark`.
pub fn tidemark_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TIDEMARK_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t), // join keeps an absolute path as is
        None => root.join("target"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release binary: cargo build --release -p tidemark --bin tidemark");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "tidemark", "--bin", "tidemark"])
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo build --release -p tidemark` failed ({status}); fix the build or set TIDEMARK_BIN");
    }
    let bin = target.join("release").join("tidemark");
    if !bin.is_file() {
        bail!("{} does not exist after building", bin.display());
    }
    Ok(bin)
}

/// Fallback job, a trimmed copy of `jobs/examples/nginx.toml` (the example job of
/// docs/job-file.md); `source.include`, `source.host` and
/// `sink` are replaced by [`job_toml`].
pub const DEFAULT_JOB: &str = r#"
name = "nginx"

[source]
kind = "file"
include = []

[parse]
format = "nginx"

[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "30s"

[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status", "method"]

[[metric]]
name = "http_response_bytes_total"
kind = "sum"
field = "body_bytes_sent"
labels = ["status"]

[[metric]]
name = "http_request_duration_seconds"
kind = "histogram"
field = "request_time"

[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"

[[rule]]
record = "job:http_request_duration_seconds:p99_1m"
expr = "histogram_quantile(0.99, http_request_duration_seconds)"
"#;

/// The job template: `$TIDEMARK_BENCH_JOB`, else `jobs/examples/nginx.toml` if it exists,
/// else [`DEFAULT_JOB`]. Returns (where it came from, text).
pub fn job_template() -> Result<(String, String)> {
    let path = match std::env::var_os("TIDEMARK_BENCH_JOB") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("jobs/examples/nginx.toml"),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((path.display().to_string(), text)),
        Err(_) if std::env::var_os("TIDEMARK_BENCH_JOB").is_none() => {
            Ok(("built-in (example job)".into(), DEFAULT_JOB.into()))
        }
        Err(e) => Err(e).with_context(|| format!("TIDEMARK_BENCH_JOB={}", path.display())),
    }
}

/// `template` with its source reading `data_dir/*/access.log` (host = the folder name)
/// and a single jsonl sink writing every series (`all`) to `out`.
pub fn job_toml(template: &str, data_dir: &Path, out: &Path) -> Result<String> {
    let mut job: toml::Table = template.parse().context("job template is not valid TOML")?;
    let source = job
        .entry("source")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .context("[source] is not a table")?;
    let include = data_dir.join("*").join("access.log");
    source.insert("kind".into(), "file".into());
    source.insert(
        "include".into(),
        vec![toml::Value::from(include.display().to_string())].into(),
    );
    let mut host = toml::Table::new();
    host.insert(
        "path_regex".into(),
        r"/(?P<host>web-[0-9]+)/access\.log".into(),
    );
    source.insert("host".into(), host.into());
    let mut sink = toml::Table::new();
    sink.insert("kind".into(), "jsonl".into());
    sink.insert("path".into(), out.display().to_string().into());
    sink.insert("series".into(), "all".into());
    job.insert("sink".into(), vec![toml::Value::from(sink)].into());
    Ok(toml::to_string(&job)?)
}

/// A self-metric that `tidemark` prints to stderr on exit, e.g. `lines read: 1234` for
/// `key = "lines read"`: the first number after `key:` in `log_dir/stderr`.
pub fn self_metric(log_dir: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(log_dir.join("stderr")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?.strip_prefix(':')?.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// `2026-11-20T10:00:00Z`: unix seconds as RFC 3339 UTC, the form of the jsonl sink's
/// `start`/`end` fields.
pub fn rfc3339_utc(secs: i64) -> String {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

/// 64-bit FNV-1a: a cheap digest for comparing outputs of runs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// 1234567 -> "1,234,567".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Where a benchmark keeps its data: `TIDEMARK_BENCH_DIR` (kept between runs), or a
/// new temporary folder (removed when the returned guard drops).
pub fn bench_root() -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match std::env::var_os("TIDEMARK_BENCH_DIR") {
        Some(d) => (None, PathBuf::from(d)),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tidemark-bench-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_helpers() {
        assert_eq!(rfc3339_utc(1_795_168_800), "2026-11-20T10:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400 + 3_661), "2000-02-29T01:01:01Z");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(12.0), "12");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stderr"),
            "bytes read: 10\nlines read: 1234\ncheckpoints written: 7\n",
        )
        .unwrap();
        assert_eq!(self_metric(dir.path(), "lines read"), Some(1234));
        assert_eq!(self_metric(dir.path(), "checkpoints written"), Some(7));
        assert_eq!(self_metric(dir.path(), "files read"), None);
    }

    #[test]
    fn medians() {
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn job_points_at_data() {
        let text = job_toml(DEFAULT_JOB, Path::new("/d"), Path::new("/o.jsonl")).unwrap();
        let job: toml::Table = text.parse().unwrap();
        assert_eq!(
            job["source"]["include"][0].as_str(),
            Some("/d/*/access.log")
        );
        assert_eq!(job["sink"][0]["path"].as_str(), Some("/o.jsonl"));
        assert_eq!(job["metric"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn measures_a_child_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let mut ok = Command::new("sh");
        ok.args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"]);
        let s = run_measured(&mut ok, dir.path(), Duration::from_secs(60)).unwrap();
        assert!(s.cpu_secs() > 0.0 && s.wall_secs > 0.0 && s.max_rss_kib > 0);
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo boom >&2; exit 3"]);
        let e = run_measured(&mut bad, dir.path(), Duration::from_secs(60)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("exited with code 3") && msg.contains("boom"),
            "{msg}"
        );
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let e = run_measured(&mut slow, dir.path(), Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
    }
}
