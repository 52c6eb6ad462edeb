//! `tidemark replay`, black-box: a replayed range equals the live run's windows
//! byte for byte (any worker count, many segments, rotated, compressed and
//! archived files), files outside the range are skipped, the live output is never
//! overwritten, bad usage is exit 2 with a clear message, progress lines, the rate
//! limit, and Ctrl-C keeping only whole windows.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn secs(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .as_second()
}

/// Every test's logs start here.
const T0: &str = "2026-11-20T10:00:00Z";

// ---------------------------------------------------------------------------
// Logs and jobs
// ---------------------------------------------------------------------------

/// splitmix64: deterministic logs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What to generate under `DIR/logs/web-N/`.
#[derive(Clone, Copy)]
struct Spec {
    hosts: usize,
    minutes: i64,
    /// Average lines per second per host (0 ..= 2× this each second).
    per_sec: u64,
    /// Files per host: `access.log` and `files - 1` rotated siblings.
    files: usize,
    /// How many of the oldest siblings are gzipped.
    gzipped: usize,
}

/// A line's time is its second minus 0..=3 s: bounded disorder, below the jobs'
/// `max_out_of_orderness` of 5 s (every line ≥ the largest time before it − 3 s).
const DISORDER_SECS: u64 = 3;

/// `[20/Nov/2026:10:00:01 +0000]`-style nginx line with a request time.
fn nginx_line(rng: &mut Rng, host: usize, t_secs: i64) -> String {
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

fn write_file(path: &Path, lines: &[String], gzip: bool) {
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
fn file_name(spec: &Spec, i: usize) -> String {
    let number = spec.files - 1 - i;
    match (number, i < spec.gzipped) {
        (0, _) => "access.log".to_string(),
        (n, true) => format!("access.log.{n}.gz"),
        (n, false) => format!("access.log.{n}"),
    }
}

/// Writes every host's stream, cut into `spec.files` files of equal line counts.
/// Returns the total size of the uncompressed data.
fn write_logs(dir: &Path, spec: &Spec) -> u64 {
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
fn job_toml(source_extra: &str) -> String {
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
struct Fixture {
    dir: tempfile::TempDir,
    job: PathBuf,
    /// Bytes of the logs (uncompressed).
    log_bytes: u64,
    /// `tidemark run JOB --until-eof` (fresh, no state dir): the reference.
    live: Vec<u8>,
}

impl Fixture {
    fn new(spec: Spec) -> Fixture {
        Fixture::with_job(spec, "")
    }

    fn with_job(spec: Spec, source_extra: &str) -> Fixture {
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

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Another job file next to the first (same logs, same sink path).
    fn job_variant(&self, name: &str, source_extra: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, job_toml(source_extra)).unwrap();
        p
    }

    /// The live output's lines whose window starts in `[from, to)`.
    fn live_range(&self, from: &str, to: &str) -> Vec<u8> {
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
fn windows(jsonl: &[u8]) -> Vec<(i64, Vec<u8>)> {
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

fn window_starts(jsonl: &[u8]) -> Vec<i64> {
    windows(jsonl).into_iter().map(|w| w.0).collect()
}

/// `tidemark replay JOB --from FROM --to TO ARGS…`.
fn replay_cmd(job: &Path, from: &str, to: &str, args: &[&str]) -> Command {
    let mut c = tidemark();
    c.arg("replay")
        .arg(job)
        .args(["--from", from, "--to", to])
        .args(args);
    c
}

/// Runs a replay into `out` and returns its stderr; fails the test unless it succeeds.
fn replay_ok(job: &Path, from: &str, to: &str, out: &Path, args: &[&str]) -> String {
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

fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
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
struct PlanLine {
    to_read: f64,
    in_files: f64,
    files: u64,
    skipped: u64,
    /// What the planning searches read.
    search: f64,
    segments: u64,
}

/// `123 B`, `12.3 kB`, `1.2 MB`, … in bytes.
fn parse_size(s: &str) -> f64 {
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

fn plan_line(stderr: &str) -> PlanLine {
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
fn summary_count(stderr: &str, name: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}: N` line in: {stderr}"))
}

/// Waits for `child` at most `limit`; kills it and fails the test if it hangs.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
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

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// 3 hosts, 40 minutes, 6 files each (the 2 oldest gzipped): about 0.7 MB.
const THREE_HOSTS: Spec = Spec {
    hosts: 3,
    minutes: 40,
    per_sec: 1,
    files: 6,
    gzipped: 2,
};

#[test]
fn replay_of_an_inner_range_equals_the_live_windows_byte_for_byte() {
    let f = Fixture::new(THREE_HOSTS);
    let (from, to) = ("2026-11-20T10:07:00Z", "2026-11-20T10:23:00Z");
    let want = f.live_range(from, to);
    assert_eq!(
        window_starts(&want).len(),
        16,
        "the live run has every window of the range"
    );
    let seg = ["--segment-bytes", "16384", "--progress", "none"];
    let (out1, out2) = (f.path("w1.jsonl"), f.path("w2.jsonl"));
    // --output replaces whatever was there, with --overwrite.
    std::fs::write(&out1, "stale\n".repeat(100_000)).unwrap();
    let err1 = replay_ok(
        &f.job,
        from,
        to,
        &out1,
        &[&["-w", "1", "--overwrite"][..], &seg].concat(),
    );
    let err2 = replay_ok(&f.job, from, to, &out2, &[&["-w", "2"][..], &seg].concat());
    // Many segments, so cuts fall inside files and windows.
    assert!(plan_line(&err1).segments >= 10, "{err1}");
    assert!(plan_line(&err2).segments >= 10, "{err2}");
    let (got1, got2) = (std::fs::read(&out1).unwrap(), std::fs::read(&out2).unwrap());
    assert_same_bytes("-w 1", &got1, &want);
    assert_same_bytes("-w 2", &got2, &want);
    assert!(got1 == got2, "-w 1 and -w 2 differ");

    // A range not on window boundaries replays the whole windows inside it.
    let out3 = f.path("unaligned.jsonl");
    let err = replay_ok(
        &f.job,
        "2026-11-20T10:06:30Z",
        "2026-11-20T10:23:59Z",
        &out3,
        &["-w", "2", "--progress", "none"],
    );
    assert_same_bytes("unaligned range", &std::fs::read(&out3).unwrap(), &want);
    assert!(
        err.contains(&format!("[{from}, {to})")),
        "says which whole windows it replays: {err}"
    );
}

#[test]
fn replay_of_a_range_covering_everything_equals_the_whole_live_output() {
    let f = Fixture::new(THREE_HOSTS);
    for workers in ["1", "2"] {
        let out = f.path(&format!("all-w{workers}.jsonl"));
        replay_ok(
            &f.job,
            "2026-11-20T09:00:00Z",
            "2026-11-20T12:00:00Z",
            &out,
            &[
                "-w",
                workers,
                "--segment-bytes",
                "50000",
                "--progress",
                "none",
            ],
        );
        assert_same_bytes(
            &format!("whole range, -w {workers}"),
            &std::fs::read(&out).unwrap(),
            &f.live,
        );
    }
}

#[test]
fn archived_files_are_read_and_the_result_equals_the_live_run_before_archiving() {
    let spec = THREE_HOSTS;
    // The live output over every file, before anything is archived.
    let f = Fixture::new(spec);
    // The three oldest siblings of each host (access.log.5.gz, access.log.4.gz,
    // access.log.3: the first 20 minutes) move to
    // DIR/archive/web-N/access.log-DATE[.gz].
    for host in 1..=spec.hosts {
        for (i, name) in [
            (0, "access.log-20261117.gz"),
            (1, "access.log-20261118.gz"),
            (2, "access.log-20261119"),
        ] {
            let from = f.path(&format!("logs/web-{host}/{}", file_name(&spec, i)));
            let to = f.path(&format!("archive/web-{host}/{name}"));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::rename(&from, &to).unwrap();
        }
    }
    let archived = f.job_variant("archived.toml", r#"archive = ["archive/*/access.log-*"]"#);
    // 10:02 .. 10:27 needs the archived lines and the live group's.
    for (from, to) in [
        ("2026-11-20T10:02:00Z", "2026-11-20T10:27:00Z"),
        ("2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z"),
    ] {
        let out = f.path("archived.jsonl");
        let err = replay_ok(
            &archived,
            from,
            to,
            &out,
            &[
                "-w",
                "2",
                "--segment-bytes",
                "20000",
                "--progress",
                "none",
                "--overwrite",
            ],
        );
        assert_same_bytes(
            &format!("with the archive, {from} .. {to}"),
            &std::fs::read(&out).unwrap(),
            &f.live_range(from, to),
        );
        assert_eq!(
            plan_line(&err).files,
            (spec.hosts * spec.files) as u64,
            "every live, rotated and archived file is looked at: {err}"
        );
    }
    // Without the archive glob the early windows lack those lines: the archive
    // was needed.
    let (from, to) = ("2026-11-20T10:02:00Z", "2026-11-20T10:27:00Z");
    let out = f.path("no-archive.jsonl");
    replay_ok(&f.job, from, to, &out, &["--progress", "none"]);
    assert!(
        std::fs::read(&out).unwrap() != f.live_range(from, to),
        "the archived files made no difference: the test proves nothing"
    );
}

#[test]
fn files_outside_a_narrow_range_are_skipped_without_being_read() {
    // 2 hosts of 10 files (~70 kB, 4 minutes each; the 2 oldest gzipped).
    let spec = Spec {
        hosts: 2,
        minutes: 40,
        per_sec: 3,
        files: 10,
        gzipped: 2,
    };
    let f = Fixture::new(spec);
    let (from, to) = ("2026-11-20T10:21:00Z", "2026-11-20T10:23:00Z");
    let out = f.path("narrow.jsonl");
    let err = replay_ok(&f.job, from, to, &out, &["-w", "2", "--progress", "none"]);
    let plan = plan_line(&err);
    let files = (spec.hosts * spec.files) as u64;
    assert_eq!(plan.files, files, "{err}");
    // The range lies in one or two files of each host (a little more with the
    // disorder bound): at least 7 of each host's 10 are skipped.
    assert!(
        plan.skipped >= 7 * spec.hosts as u64 && plan.skipped < files,
        "skipped {} of {files} files: {err}",
        plan.skipped
    );
    assert!(
        plan.in_files > 0.5 * f.log_bytes as f64,
        "the total counts every file (gzipped ones compressed): {err}"
    );
    // 2 minutes are 1/20 of the data; the segments start and end near them, and
    // the search reads little more than the ends of the skipped files.
    assert!(
        plan.to_read < plan.in_files / 8.0,
        "segments cover {} of {} bytes: {err}",
        plan.to_read,
        plan.in_files
    );
    assert!(
        plan.to_read + plan.search < plan.in_files / 3.0,
        "segments and search read {} + {} of {} bytes: {err}",
        plan.to_read,
        plan.search,
        plan.in_files
    );
    let read = summary_count(&err, "bytes read");
    assert!(
        (read as f64) < plan.in_files / 8.0,
        "bytes read: {read} of {}: {err}",
        plan.in_files
    );
    assert_same_bytes(
        "narrow range",
        &std::fs::read(&out).unwrap(),
        &f.live_range(from, to),
    );
}

#[test]
fn replay_refuses_to_overwrite_the_jobs_jsonl_unless_given_output() {
    let f = Fixture::new(Spec {
        minutes: 10,
        ..THREE_HOSTS
    });
    let live_path = f.path("out/live.jsonl");
    let (from, to) = ("2026-11-20T10:02:00Z", "2026-11-20T10:05:00Z");
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&live_path.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("--output"), "suggests --output: {err}");
    assert!(
        std::fs::read(&live_path).unwrap() == f.live,
        "the live output was changed"
    );

    // An empty file, or none, is not the live run's output: replay writes there.
    for empty in [true, false] {
        if empty {
            std::fs::write(&live_path, b"").unwrap();
        } else {
            std::fs::remove_file(&live_path).unwrap();
        }
        let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
            .output()
            .unwrap();
        assert!(o.status.success(), "empty={empty}: {}", stderr_of(&o));
        assert_same_bytes(
            &format!("into the job's own (empty={empty}) JSONL path"),
            &std::fs::read(&live_path).unwrap(),
            &f.live_range(from, to),
        );
    }
}

#[test]
fn bad_usage_and_invalid_jobs_exit_2_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(&job, job_toml("")).unwrap();
    let out = d.path().join("never.jsonl");
    let ok_from = "2026-11-20T10:00:00Z";
    let ok_to = "2026-11-20T10:10:00Z";
    let usage = |job: &Path, from: &str, to: &str, extra: &[&str]| -> String {
        let o = replay_cmd(job, from, to, extra)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let err = stderr_of(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "replay --from {from} --to {to} {extra:?}: {err}"
        );
        assert!(!out.exists(), "a refused replay created its output file");
        assert!(!err.contains("panicked"), "{err}");
        err
    };

    // --from not RFC 3339: names the flag and shows an example that parses.
    for bad in ["yesterday", "2026-11-20 10:00", "1795168800"] {
        let err = usage(&job, bad, ok_to, &[]);
        assert!(err.contains("--from"), "names --from: {err}");
        assert!(err.contains(bad), "shows the bad value: {err}");
        assert!(
            err.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .any(|w| w.parse::<jiff::Timestamp>().is_ok()),
            "shows an RFC 3339 example: {err}"
        );
    }
    let err = usage(&job, ok_from, "10:10", &[]);
    assert!(err.contains("--to"), "names --to: {err}");

    // --to before (or at) --from.
    for to in ["2026-11-20T09:00:00Z", ok_from] {
        let err = usage(&job, ok_from, to, &[]);
        assert!(
            err.contains("--to") && err.contains("--from"),
            "says --to must be after --from: {err}"
        );
    }

    // No whole window inside the range.
    let err = usage(&job, "2026-11-20T10:00:10Z", "2026-11-20T10:00:50Z", &[]);
    assert!(err.contains("window"), "says no whole window fits: {err}");
    let err = usage(&job, "2026-11-20T10:00:30Z", "2026-11-20T10:01:30Z", &[]);
    assert!(err.contains("window"), "says no whole window fits: {err}");

    // Bad --rate-limit.
    for bad in ["fast", "5MiB", "0MiB/s", "5 parsecs/s"] {
        let err = usage(&job, ok_from, ok_to, &["--rate-limit", bad]);
        assert!(
            err.contains("--rate-limit"),
            "{bad:?}: names the flag: {err}"
        );
        assert!(
            err.contains("/s"),
            "{bad:?}: shows a rate like 5MiB/s: {err}"
        );
    }

    // Missing flags and bad values are clap's usage errors: exit 2 too.
    for args in [
        vec!["replay".to_string(), job.display().to_string()],
        vec![
            "replay".to_string(),
            job.display().to_string(),
            "--from".to_string(),
            ok_from.to_string(),
        ],
    ] {
        let o = tidemark().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains("--to"), "{}", stderr_of(&o));
    }
    let err = usage(&job, ok_from, ok_to, &["--progress", "sometimes"]);
    assert!(err.contains("--progress"), "{err}");
    let err = usage(&job, ok_from, ok_to, &["--progress-interval", "soon"]);
    assert!(err.contains("--progress-interval"), "{err}");

    // An invalid job file: the validator's message with its position.
    let bad_job = d.path().join("bad.toml");
    std::fs::write(
        &bad_job,
        job_toml("").replace("size = \"1m\"", "size = \"7m\""),
    )
    .unwrap();
    let err = usage(&bad_job, ok_from, ok_to, &[]);
    assert!(err.contains(&format!("{}:", bad_job.display())), "{err}");
    assert!(err.contains("7m"), "{err}");
    // A missing job file.
    let err = usage(&d.path().join("nope.toml"), ok_from, ok_to, &[]);
    assert!(err.contains("nope.toml"), "{err}");
}

/// Plain progress lines: `progress: 42% (…)`; the percentages, in order.
fn progress_percentages(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("progress:"))
        .map(|rest| {
            let pct = rest.split_whitespace().next().unwrap_or("");
            pct.strip_suffix('%')
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no percentage in `progress:{rest}`"))
        })
        .collect()
}

#[test]
fn plain_progress_prints_percentages_and_none_prints_nothing() {
    // A small read chunk, so the rate limiter's burst is about one second's worth.
    let f = Fixture::with_job(THREE_HOSTS, r#"read_chunk = "16KiB""#);
    let (from, to) = ("2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z");
    // About 0.7 MB at 384 KiB/s: well over half a second. The three replays run
    // side by side: they mostly wait for the rate limiter.
    let modes = ["plain", "auto", "none"];
    let children: Vec<(&str, PathBuf, Instant, Child)> = modes
        .iter()
        .map(|&mode| {
            let out = f.path(&format!("{mode}.jsonl"));
            let child = replay_cmd(
                &f.job,
                from,
                to,
                &[
                    "-w",
                    "1",
                    "--rate-limit",
                    "384KiB/s",
                    "--progress",
                    mode,
                    "--progress-interval",
                    "100ms",
                ],
            )
            .arg("--output")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
            (mode, out, Instant::now(), child)
        })
        .collect();
    for (mode, out, started, child) in children {
        let o = child.wait_with_output().unwrap();
        let took = started.elapsed();
        let err = stderr_of(&o);
        assert!(o.status.success(), "--progress {mode}: {err}");
        assert!(
            took >= Duration::from_millis(500),
            "--progress {mode}: done in {took:?}, too fast to show progress: {err}"
        );
        assert_same_bytes(mode, &std::fs::read(&out).unwrap(), &f.live);
        if mode == "none" {
            assert!(!err.contains("progress:"), "--progress none: {err}");
            continue;
        }
        // stderr is a pipe here, so `auto` prints plain lines too.
        let pct = progress_percentages(&err);
        assert!(pct.len() >= 2, "--progress {mode}: progress lines: {err}");
        assert!(
            pct.iter().all(|p| (0.0..=100.0).contains(p)),
            "percentages in 0..=100: {pct:?}"
        );
        assert!(
            pct.windows(2).all(|w| w[0] <= w[1]),
            "percentages never go down: {pct:?}"
        );
        assert!(
            pct.first() < pct.last(),
            "the percentage moves while reading: {pct:?}"
        );
    }
}

/// About 2.1 MB, all plain (so file bytes are the bytes the limiter counts): 3
/// hosts, 40 minutes, 3 lines per second.
const BIGGER: Spec = Spec {
    per_sec: 3,
    gzipped: 0,
    ..THREE_HOSTS
};

/// Replays everything of `job` into `out` with `args`; returns the wall time and
/// the bytes read (from the plan line).
fn timed_replay(f: &Fixture, job: &Path, out: &Path, args: &[&str]) -> (Duration, f64, String) {
    let t = Instant::now();
    let err = replay_ok(
        job,
        "2026-11-20T09:00:00Z",
        "2026-11-20T12:00:00Z",
        out,
        args,
    );
    let took = t.elapsed();
    let bytes = plan_line(&err).to_read;
    assert!(
        (bytes - f.log_bytes as f64).abs() < 0.01 * bytes,
        "reads every byte of the plain logs ({}): {err}",
        f.log_bytes
    );
    assert_same_bytes("rate-limited", &std::fs::read(out).unwrap(), &f.live);
    (took, bytes, err)
}

/// Regression: the limiter's bucket started full with max(rate / workers,
/// read_chunk) bytes per worker, so a replay smaller than about a second of the
/// rate was not slowed at all (~2 MB at 4MiB/s took ~0.1 s instead of ~0.5 s).
#[test]
fn rate_limit_flag_holds_a_small_replay_to_the_rate() {
    let f = Fixture::new(BIGGER);
    let out = f.path("limited.jsonl");
    let args = ["-w", "2", "--rate-limit", "4MiB/s", "--progress", "none"];
    let (took, bytes, err) = timed_replay(&f, &f.job, &out, &args);
    assert!(bytes > 1.8e6, "reads about 2 MB: {err}");
    // A lower bound only: 70% of bytes / rate.
    let floor = Duration::from_secs_f64(0.7 * bytes / (4.0 * 1024.0 * 1024.0));
    assert!(
        took >= floor,
        "read {bytes} bytes in {took:?} with --rate-limit 4MiB/s, faster than {floor:?} \
         (does the limiter start with a free burst?): {err}"
    );
}

#[test]
fn rate_limit_flag_and_the_jobs_rate_limit_slow_the_replay_down() {
    let f = Fixture::new(BIGGER);
    // A lower bound only, and one that holds for a token bucket that starts full
    // with one second's worth (read_chunk is smaller than that): 70% of
    // (bytes − rate) / rate.
    let floor = |bytes: f64, rate: f64| Duration::from_secs_f64(0.7 * (bytes - rate) / rate);
    let small_chunk = "read_chunk = \"16KiB\"";
    let job = f.job_variant("chunked.toml", small_chunk);
    let (took, bytes, err) = timed_replay(
        &f,
        &job,
        &f.path("flag.jsonl"),
        &["-w", "2", "--rate-limit", "1MiB/s", "--progress", "none"],
    );
    let want = floor(bytes, 1024.0 * 1024.0);
    assert!(want >= Duration::from_millis(500), "too little data: {err}");
    assert!(
        took >= want,
        "--rate-limit 1MiB/s: {bytes} bytes in {took:?}, faster than {want:?}: {err}"
    );

    // Without the flag the job's own rate_limit applies.
    let limited = f.job_variant(
        "limited.toml",
        &format!("rate_limit = \"1MiB/s\"\n{small_chunk}"),
    );
    let (took, bytes, err) = timed_replay(
        &f,
        &limited,
        &f.path("job.jsonl"),
        &["-w", "2", "--progress", "none"],
    );
    let want = floor(bytes, 1024.0 * 1024.0);
    assert!(
        took >= want,
        "rate_limit = \"1MiB/s\": {bytes} bytes in {took:?}, faster than {want:?}: {err}"
    );
}

#[test]
fn ctrl_c_keeps_only_whole_windows_and_exits_130() {
    // Slow: a small burst, then 256 KiB/s over about 0.7 MB and 41 windows.
    let f = Fixture::with_job(THREE_HOSTS, r#"read_chunk = "16KiB""#);
    let (from, to) = ("2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z");
    let out = f.path("interrupted.jsonl");
    let mut child = replay_cmd(
        &f.job,
        from,
        to,
        &[
            "-w",
            "2",
            "--rate-limit",
            "256KiB/s",
            "--segment-bytes",
            "32768",
            "--progress",
            "none",
        ],
    )
    .arg("--output")
    .arg(&out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait for the first whole window, then Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read(&out).is_ok_and(|b| b.contains(&b'\n')) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("replay ended ({status:?}) before writing a window");
        }
        assert!(Instant::now() < deadline, "no window written within 20 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_bounded(&mut child, Duration::from_secs(20), "replay after SIGINT");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "exit after SIGINT: {err}");
    assert!(err.contains("interrupted"), "{err}");

    let got = windows(&std::fs::read(&out).unwrap());
    let live = windows(&f.live);
    assert!(!got.is_empty());
    assert!(
        got.len() < live.len(),
        "every window was written: the interrupt came too late to test anything"
    );
    // Each window written is whole and equals the live one; they are the range's
    // first windows, in order.
    for (i, (start, lines)) in got.iter().enumerate() {
        assert_eq!(*start, live[i].0, "window {i} is not the range's {i}th");
        assert!(
            *lines == live[i].1,
            "window {start} differs from the live one (partial?):\n--- replay\n{}--- live\n{}",
            String::from_utf8_lossy(lines),
            String::from_utf8_lossy(&live[i].1)
        );
    }
    // The summary's count matches the file.
    let said = err
        .lines()
        .find(|l| l.contains("interrupted"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "windows")?;
            words.get(i.checked_sub(1)?)?.parse::<usize>().ok()
        });
    assert_eq!(said, Some(got.len()), "windows written per stderr: {err}");
}

#[test]
fn replay_equals_live_on_awkward_input_and_tiny_segments() {
    // Disorder exactly at the bound (5 s), malformed and CRLF lines, a 5-minute
    // gap with no lines at all, and a live file whose last line is unterminated.
    let dir = tempfile::tempdir().unwrap();
    let t0 = secs(T0);
    // Only the file layout: 5 files per host, the 2 oldest gzipped.
    let spec = Spec {
        files: 5,
        gzipped: 2,
        ..THREE_HOSTS
    };
    for host in 1..=3usize {
        let mut rng = Rng(77 + host as u64);
        let mut lines = Vec::new();
        for s in 0..30 * 60i64 {
            if (600..900).contains(&s) {
                continue;
            }
            for _ in 0..rng.below(3) {
                let t = t0 + s - rng.below(6) as i64;
                lines.push(nginx_line(&mut rng, host, t));
            }
        }
        for i in (0..lines.len()).step_by(37) {
            lines[i] = "not a log line\n".into();
        }
        for i in (5..lines.len()).step_by(53) {
            lines[i] = lines[i].replace('\n', "\r\n");
        }
        lines.last_mut().unwrap().pop();
        for (i, chunk) in lines.chunks(lines.len().div_ceil(spec.files)).enumerate() {
            let path = dir
                .path()
                .join(format!("logs/web-{host}"))
                .join(file_name(&spec, i));
            write_file(&path, chunk, i < spec.gzipped);
        }
    }
    let job = dir.path().join("job.toml");
    std::fs::write(&job, job_toml("")).unwrap();
    let o = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--until-eof")
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert!(o.status.success(), "live run: {err}");
    assert_eq!(summary_count(&err, "late lines (dropped)"), 0, "{err}");
    assert!(
        summary_count(&err, "malformed lines (skipped)") > 0,
        "{err}"
    );
    let f = Fixture {
        job,
        log_bytes: 0,
        live: std::fs::read(dir.path().join("out/live.jsonl")).unwrap(),
        dir,
    };
    for (from, to) in [
        ("2026-11-20T09:00:00Z", "2026-11-20T11:00:00Z"),
        ("2026-11-20T10:09:00Z", "2026-11-20T10:16:00Z"),
        ("2026-11-20T09:59:00Z", "2026-11-20T10:01:00Z"),
        ("2026-11-20T10:29:00Z", "2026-11-20T10:31:00Z"),
    ] {
        let want = f.live_range(from, to);
        assert!(!want.is_empty());
        for w in ["1", "3"] {
            let out = f.path("x.jsonl");
            // Segments of a few lines each: cuts everywhere.
            let args = [
                "-w",
                w,
                "--segment-bytes",
                "300",
                "--progress",
                "none",
                "--overwrite",
            ];
            let err = replay_ok(&f.job, from, to, &out, &args);
            assert_same_bytes(
                &format!("{from} .. {to} -w {w}"),
                &std::fs::read(&out).unwrap(),
                &want,
            );
            assert_eq!(summary_count(&err, "late lines (dropped)"), 0, "{err}");
        }
    }
}

// ---- no clobbered file (issue 10 §4) ---------------------------------------------

#[test]
fn replay_output_onto_the_job_file_is_refused_and_the_job_kept() {
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let before = std::fs::read(&f.job).unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let o = replay_cmd(
            &f.job,
            from,
            to,
            &[&["--progress", "none"][..], extra].concat(),
        )
        .arg("--output")
        .arg(&f.job)
        .output()
        .unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("job file"), "{err}");
        assert_eq!(
            std::fs::read(&f.job).unwrap(),
            before,
            "the job file was overwritten"
        );
    }
}

#[test]
fn replay_does_not_clobber_an_existing_output_without_overwrite() {
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let out = f.path("notes.txt");
    std::fs::write(&out, "my notes\n").unwrap();
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--overwrite"), "hint: {err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my notes\n");
    replay_ok(
        &f.job,
        from,
        to,
        &out,
        &["--progress", "none", "--overwrite"],
    );
    assert_same_bytes(
        "overwritten",
        &std::fs::read(&out).unwrap(),
        &f.live_range(from, to),
    );
}

#[test]
fn replay_output_onto_the_live_output_is_refused_even_with_overwrite() {
    // The help promises --overwrite never replaces the job's own JSONL output;
    // --output naming it must not get around that.
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let live_path = f.path("out/live.jsonl");
    for output in [live_path.clone(), f.path("out/../out/live.jsonl")] {
        let o = replay_cmd(&f.job, from, to, &["--progress", "none", "--overwrite"])
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", output.display());
        assert!(err.contains("output"), "{err}");
        assert!(
            std::fs::read(&live_path).unwrap() == f.live,
            "the live output was replaced"
        );
    }
}

#[test]
fn replay_output_named_like_a_future_rotated_sibling_is_refused() {
    // `logs/web-1/access.log.5` does not exist yet, but the next rotations make it
    // an input of the job: validate refuses it as a sink path, and so must --output.
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let output = f.path("logs/web-1/access.log.5");
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("rotated sibling"), "{err}");
    assert!(!output.exists(), "written");
}
