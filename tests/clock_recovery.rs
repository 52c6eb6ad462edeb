//! Recovery stays exact with the outlier rule (issue 10 §2d): logs with lone lines
//! hours ahead, real gaps of minutes and late lines are read by a live run that is
//! killed with SIGKILL at random moments and restarted; the output must be the same
//! bytes as an uninterrupted `--until-eof` run's. A line waiting for confirmation is
//! part of the watermark state a checkpoint keeps.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const T0_MS: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z

fn job(dir: &Path, out: &str) -> String {
    format!(
        r#"
name = "clocks"
[source]
kind = "file"
include = ["{logs}/*/app.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)/app\.log' }}
poll_interval = "20ms"
read_chunk = "4KiB"
rate_limit = "48KiB/s"
[parse]
format = "logfmt"
timestamp = {{ field = "ts", format = "epoch_millis" }}
[window]
size = "1m"
max_out_of_orderness = "2s"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        logs = dir.join("logs").display(),
    )
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// About 3,000 lines: one a second with up to 2 s of disorder, and now and then a
/// lone line 1–3 h ahead (often the last of its minute, so the next line starts a
/// window while it waits), a gap of minutes, or a line beyond the bound.
fn host_log(rng: &mut Rng) -> String {
    let mut out = String::new();
    let mut t = T0_MS;
    for _ in 0..3_000 {
        t += 1_000;
        let ts = match rng.below(100) {
            0..=1 => t + 3_600_000 + rng.below(7_200_000) as i64,
            2 => {
                t += 120_000 + rng.below(600_000) as i64;
                t
            }
            3 => t - 3_000 - rng.below(60_000) as i64,
            _ if t % 60_000 >= 59_000 && rng.below(4) == 0 => t + 3_600_000,
            _ => t - rng.below(2_001) as i64,
        };
        let status = [200, 200, 200, 404, 500][rng.below(5) as usize];
        out.push_str(&format!("ts={ts} status={status}\n"));
    }
    out
}

fn tidemark(job: &Path, state: Option<&Path>, until_eof: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.arg("run")
        .arg(job)
        .args(["-w", "2"])
        .env("TIDEMARK_LOG", "error");
    if let Some(state) = state {
        c.args(["--checkpoint-interval", "50ms", "--state-dir"])
            .arg(state);
    }
    if until_eof {
        c.arg("--until-eof");
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

#[test]
fn outliers_are_judged_alike_after_sigkill_and_restart() {
    let seed = std::env::var("CLOCK_RECOVERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    eprintln!("seed {seed} (set CLOCK_RECOVERY_SEED to repeat another)");
    let mut rng = Rng(seed);
    let d = tempfile::tempdir().unwrap();
    for host in ["web-1", "web-2"] {
        let dir = d.path().join("logs").join(host);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.log"), host_log(&mut rng)).unwrap();
    }
    let reference = d.path().join("reference.toml");
    std::fs::write(&reference, job(d.path(), "out/reference.jsonl")).unwrap();
    let status = tidemark(&reference, None, true).status().unwrap();
    assert!(status.success());
    let want = std::fs::read(d.path().join("out/reference.jsonl")).unwrap();

    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/live.jsonl")).unwrap();
    let state = d.path().join("state");
    for kill in 0..3 {
        let mut child = tidemark(&job_path, Some(&state), false).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(700 + rng.below(1_500)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("killed run {kill}");
    }
    let status = tidemark(&job_path, Some(&state), true).status().unwrap();
    assert!(status.success());
    let got = std::fs::read(d.path().join("out/live.jsonl")).unwrap();
    assert!(
        got == want,
        "seed {seed}: output after kills differs from an uninterrupted run ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

#[test]
fn lines_after_a_batch_that_ended_on_an_outlier_are_not_lost_silently() {
    // A batch run (`--until-eof` with a state folder) whose last line is stamped
    // hours ahead: end of input writes every window, the outlier's too, so the
    // committed frontier is hours ahead. The next batch's lines belong to windows
    // already written: they were dropped without a word and the run exited 0.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("logs").join("web-1");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("app.log");
    let line = |ms: i64| format!("ts={ms} status=200\n");
    let mut first: String = (0..30).map(|s| line(T0_MS + s * 1_000)).collect();
    first.push_str(&line(T0_MS + 3 * 3_600_000));
    std::fs::write(&log, first).unwrap();
    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/batch.jsonl")).unwrap();
    let state = d.path().join("state");
    let status = tidemark(&job_path, Some(&state), true).status().unwrap();
    assert!(status.success(), "first batch: {status:?}");

    let next: String = (31..90).map(|s| line(T0_MS + s * 1_000)).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(next.as_bytes())
        .unwrap();
    let out = tidemark(&job_path, Some(&state), true)
        .env("TIDEMARK_LOG", "warn")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "second batch: {stderr}");
    assert!(stderr.contains("late_after_written"), "{stderr}");
    assert!(
        stderr.contains("late after written (new lines of windows an earlier run already wrote; not in the output): 59"),
        "every new line is counted (end of input wrote every window up to the outlier's): {stderr}"
    );
}
