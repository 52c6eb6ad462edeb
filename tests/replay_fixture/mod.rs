//! Logs, jobs and a live run to compare `tidemark replay` against, for the
//! `replay_cli*.rs` black-box tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

pub fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn secs(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .as_second()
}

/// Every test's logs start here.
pub const T0: &str = "2026-11-20T10:00:00Z";

// ---------------------------------------------------------------------------
// Logs and jobs
// ---------------------------------------------------------------------------

/// splitmix64: deterministic logs without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What to generate under `DIR/logs/web-N/`.
#[derive(Clone, Copy)]
pub struct Spec {
    pub hosts: usize,
    pub minutes: i64,
    /// Average lines per second per host (0 ..= 2× this each second).
    pub per_sec: u64,
    /// Files per host: `access.log` and `files - 1` rotated siblings.
    pub files: usize,
    /// How many of the oldest siblings are gzipped.
    pub gzipped: usize,
}

/// A line's time is its second minus 0..=3 s: bounded disorder, below the jobs'
/// `max_out_of_orderness` of 5 s (every line ≥ the largest time before it − 3 s).
pub const DISORDER_SECS: u64 = 3;

/// `[20/Nov/2026:10:00:01 +0000]`-style nginx line with a request time.
pub fn nginx_line(rng: &mut Rng, host: usize, t_secs: i64) -> String {
    let ts = jiff::Timestamp::from_second(t_secs).unwrap();
    let method = rng.pick(&["GET", "GET", "GET", "POST", "PUT"]);
    let status = rng.pick(&["200", "200", "200", "200", "304", "404", "500"]);
    let path = rng.pick(&[
        "/",
        "/api/items",
        "/api/items/42",
        "/login",
        "/static/app.js",
    ]);
    let bytes = rng.below(20_000);
    let rt_ms = 1 + rng.below(50) * rng.below(20);
    format!(
        "10.0.{host}.{} - - [{}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"test/1.0\" {}.{:03}\n",
        rng.below(250),
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        rt_ms / 1000,
        rt_ms % 1000
    )
}

pub fn write_file(path: &Path, lines: &[String], gzip: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: String = lines.concat();
    if gzip {
        let f = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(data.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, data).unwrap();
    }
}

/// File name of chunk `i` of `n` (0 = oldest): `access.log.<n-1-i>[.gz]`, the
/// newest being the live `access.log`.
pub fn file_name(spec: &Spec, i: usize) -> String {
    let number = spec.files - 1 - i;
    match (number, i < spec.gzipped) {
        (0, _) => "access.log".to_string(),
        (n, true) => format!("access.log.{n}.gz"),
        (n, false) => format!("access.log.{n}"),
    }
}

/// Writes every host's stream, cut into `spec.files` files of equal line counts.
/// Returns the total size of the uncompressed data.
pub fn write_logs(dir: &Path, spec: &Spec) -> u64 {
    let t0 = secs(T0);
    let mut total = 0;
    for host in 1..=spec.hosts {
        let mut rng = Rng(0x5eed_0000 + host as u64);
        let mut lines = Vec::new();
        for s in 0..spec.minutes * 60 {
            for _ in 0..rng.below(2 * spec.per_sec + 1) {
                let t = t0 + s - rng.below(DISORDER_SECS + 1) as i64;
                lines.push(nginx_line(&mut rng, host, t));
            }
        }
        total += lines.iter().map(|l| l.len() as u64).sum::<u64>();
        let per_file = lines.len().div_ceil(spec.files);
        for (i, chunk) in lines.chunks(per_file).enumerate() {
            let path = dir
                .join(format!("logs/web-{host}"))
                .join(file_name(spec, i));
            write_file(&path, chunk, i < spec.gzipped);
        }
    }
    total
}

/// A job over `DIR/logs/*/access.log` writing every series to `out/live.jsonl`;
/// `source_extra` is added to its `[source]` table.
pub fn job_toml(source_extra: &str) -> String {
    format!(
        r#"name = "web"

[source]
kind = "file"
include = ["logs/*/access.log"]
host = {{ path_regex = '/(?P<host>web-[0-9]+)/' }}
{source_extra}

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
record = "job:http_requests:sum1m"
expr = "sum(http_requests_total)"

[[rule]]
record = "job:http_response_bytes:sum1m"
expr = "sum(http_response_bytes_total)"

[[rule]]
record = "job:http_request_duration_seconds:p99_1m"
expr = "histogram_quantile(0.99, http_request_duration_seconds)"

[[sink]]
kind = "jsonl"
path = "out/live.jsonl"
series = "all"
"#
    )
}

/// Logs, a job and the live run's output.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub job: PathBuf,
    /// Bytes of the logs (uncompressed).
    pub log_bytes: u64,
    /// `tidemark run JOB --until-eof` (fresh, no state dir): the reference.
    pub live: Vec<u8>,
}

impl Fixture {
    pub fn new(spec: Spec) -> Fixture {
        Fixture::with_job(spec, "")
    }

    pub fn with_job(spec: Spec, source_extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log_bytes = write_logs(dir.path(), &spec);
        let job = dir.path().join("job.toml");
        std::fs::write(&job, job_toml(source_extra)).unwrap();
        let out = tidemark()
            .arg("run")
            .arg(&job)
            .args(["--until-eof", "-w", "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "live run: {}", stderr_of(&out));
        let live = std::fs::read(dir.path().join("out/live.jsonl")).unwrap();
        assert!(!live.is_empty(), "the live run wrote nothing");
        Fixture {
            dir,
            job,
            log_bytes,
            live,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Another job file next to the first (same logs, same sink path).
    pub fn job_variant(&self, name: &str, source_extra: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, job_toml(source_extra)).unwrap();
        p
    }

    /// The live output's lines whose window starts in `[from, to)`.
    pub fn live_range(&self, from: &str, to: &str) -> Vec<u8> {
        let (from, to) = (secs(from), secs(to));
        let mut out = Vec::new();
        for (start, lines) in windows(&self.live) {
            if (from..to).contains(&start) {
                out.extend_from_slice(&lines);
            }
        }
        out
    }
}

/// A JSONL output cut into windows, in file order: (start in seconds, its lines).
/// Panics if a window's lines are not contiguous.
pub fn windows(jsonl: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    for line in jsonl.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\n"), "unterminated JSONL line: {line:?}");
        let v: serde_json::Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)));
        let start = secs(v["start"].as_str().expect("a \"start\" field"));
        match out.last_mut() {
            Some((s, lines)) if *s == start => lines.extend_from_slice(line),
            _ => {
                assert!(
                    out.iter().all(|(s, _)| *s != start),
                    "window {start} is not contiguous in the output"
                );
                out.push((start, line.to_vec()));
            }
        }
    }
    out
}

pub fn window_starts(jsonl: &[u8]) -> Vec<i64> {
    windows(jsonl).into_iter().map(|w| w.0).collect()
}

/// `tidemark replay JOB --from FROM --to TO ARGS…`.
pub fn replay_cmd(job: &Path, from: &str, to: &str, args: &[&str]) -> Command {
    let mut c = tidemark();
    c.arg("replay")
        .arg(job)
        .args(["--from", from, "--to", to])
        .args(args);
    c
}

/// Runs a replay into `out` and returns its stderr; fails the test unless it succeeds.
pub fn replay_ok(job: &Path, from: &str, to: &str, out: &Path, args: &[&str]) -> String {
    let o = replay_cmd(job, from, to, args)
        .arg("--output")
        .arg(out)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert!(
        o.status.success(),
        "replay {from} .. {to} {args:?} failed ({:?}): {err}",
        o.status
    );
    err
}

pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let (g, w) = (window_starts(got), window_starts(want));
        let first_diff = windows(got)
            .into_iter()
            .zip(windows(want))
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                format!(
                    "first differing window {}:\n--- replay\n{}--- live\n{}",
                    a.0,
                    String::from_utf8_lossy(&a.1),
                    String::from_utf8_lossy(&b.1)
                )
            });
        panic!(
            "{what}: {} bytes in windows {g:?}, expected {} bytes in windows {w:?}\n{}",
            got.len(),
            want.len(),
            first_diff.unwrap_or_default()
        );
    }
}

/// The numbers of replay's plan line:
/// `replay [FROM, TO): X of Y in N files (K skipped …), S segments on W workers`.
#[derive(Debug)]
pub struct PlanLine {
    pub to_read: f64,
    pub in_files: f64,
    pub files: u64,
    pub skipped: u64,
    /// What the planning searches read.
    pub search: f64,
    pub segments: u64,
}

/// `123 B`, `12.3 kB`, `1.2 MB`, … in bytes.
pub fn parse_size(s: &str) -> f64 {
    let (n, unit) = s
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("not a size: {s:?}"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("not a size: {s:?}"));
    let mul = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unknown unit in {s:?}"),
    };
    n * mul
}

pub fn plan_line(stderr: &str) -> PlanLine {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("replay [") && l.contains(" files"))
        .unwrap_or_else(|| panic!("no `replay [..): X of Y in N files` line in: {stderr}"));
    let bad = || -> ! { panic!("cannot read the plan line: {line}") };
    let rest = line.split_once("): ").unwrap_or_else(|| bad()).1;
    let (x, rest) = rest.split_once(" of ").unwrap_or_else(|| bad());
    let (y, rest) = rest.split_once(" in ").unwrap_or_else(|| bad());
    let (n, rest) = rest.split_once(" files").unwrap_or_else(|| bad());
    let k = rest
        .trim_start_matches([' ', '('])
        .split(' ')
        .next()
        .unwrap_or_else(|| bad());
    let search = line
        .split_once("search read ")
        .and_then(|(_, r)| r.split([')', ',', ';']).next())
        .unwrap_or_else(|| bad());
    let words: Vec<&str> = line.split_whitespace().collect();
    let segments = words
        .iter()
        .position(|w| w.trim_end_matches(',') == "segments")
        .and_then(|i| words.get(i.wrapping_sub(1)))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| bad());
    PlanLine {
        to_read: parse_size(x),
        in_files: parse_size(y),
        files: n.trim().parse().unwrap_or_else(|_| bad()),
        skipped: k.parse().unwrap_or_else(|_| bad()),
        search: parse_size(search),
        segments,
    }
}

/// `NAME: N` from the stats summary printed at the end.
pub fn summary_count(stderr: &str, name: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}: N` line in: {stderr}"))
}

/// Waits for `child` at most `limit`; kills it and fails the test if it hangs.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (hang?); killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 3 hosts, 40 minutes, 6 files each (the 2 oldest gzipped): about 0.7 MB.
pub const THREE_HOSTS: Spec = Spec {
    hosts: 3,
    minutes: 40,
    per_sec: 1,
    files: 6,
    gzipped: 2,
};
