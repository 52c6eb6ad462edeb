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

/// What a generated line is meant to be; [`host_log`] builds a stream in which the
/// outlier rule's decision for each line is certain (see
/// `judge_agrees_with_how_the_stream_was_built`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Within the disorder bound of the lines before it.
    Normal,
    /// A lone line 1–3 h ahead: the next (normal) line rejects it.
    Outlier,
    /// A real jump of minutes: the next (normal) line confirms it.
    Gap,
    /// Further behind than the disorder bound allows: dropped as late.
    Late,
}

/// About 3,000 lines: one a second with up to 2 s of disorder, and now and then a
/// lone line 1–3 h ahead (often the last of its minute, so the next line starts a
/// window while it waits), a gap of minutes, or a line beyond the bound. A line
/// that is not normal is always followed by a normal one, and the first two and
/// the last lines are normal, so each line's fate is certain: an outlier is always
/// rejected, a gap always confirmed, a late line always late (the largest time
/// before it is at least 3 s above it plus the 2 s bound).
fn host_log(rng: &mut Rng) -> Vec<(i64, u16, Role)> {
    let mut out = Vec::new();
    let mut t = T0_MS;
    let n = 3_000;
    let mut prev = Role::Normal;
    for i in 0..n {
        t += 1_000;
        let free = prev == Role::Normal && i >= 2 && i < n - 1;
        let (ts, role) = match rng.below(100) {
            0..=1 if free => (t + 3_600_000 + rng.below(7_200_000) as i64, Role::Outlier),
            2 if free => {
                t += 120_000 + rng.below(600_000) as i64;
                (t, Role::Gap)
            }
            3 if free => (t - 10_000 - rng.below(60_000) as i64, Role::Late),
            _ if free && t % 60_000 >= 59_000 && rng.below(4) == 0 => {
                (t + 3_600_000, Role::Outlier)
            }
            _ => (t - rng.below(2_001) as i64, Role::Normal),
        };
        prev = role;
        let status = [200, 200, 200, 404, 500][rng.below(5) as usize];
        out.push((ts, status, role));
    }
    out
}

fn text(lines: &[(i64, u16, Role)]) -> String {
    lines
        .iter()
        .map(|(ts, status, _)| format!("ts={ts} status={status}\n"))
        .collect()
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
    // The judge, an uninterrupted `--until-eof` run, reads the whole logs in a
    // folder of its own; the live runs read logs that grow while they are killed.
    let judge = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for host in ["web-1", "web-2"] {
        let all = text(&host_log(&mut rng));
        for root in [judge.path(), d.path()] {
            std::fs::create_dir_all(root.join("logs").join(host)).unwrap();
        }
        std::fs::write(judge.path().join("logs").join(host).join("app.log"), &all).unwrap();
        logs.push((d.path().join("logs").join(host).join("app.log"), all));
    }
    let reference = judge.path().join("reference.toml");
    std::fs::write(&reference, job(judge.path(), "out/reference.jsonl")).unwrap();
    let status = tidemark(&reference, None, true).status().unwrap();
    assert!(status.success());
    let want = std::fs::read(judge.path().join("out/reference.jsonl")).unwrap();

    // A third of each log at first, the rest appended in uneven pieces (cut
    // anywhere, even inside a line) between and during the killed runs.
    let mut written: Vec<usize> = logs.iter().map(|(_, all)| all.len() / 3).collect();
    for ((path, all), n) in logs.iter().zip(&written) {
        std::fs::write(path, &all.as_bytes()[..*n]).unwrap();
    }
    let append_some = |rng: &mut Rng, written: &mut [usize]| {
        for ((path, all), n) in logs.iter().zip(written.iter_mut()) {
            let more = (rng.below(all.len() as u64 / 4) as usize).min(all.len() - *n);
            std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .unwrap()
                .write_all(&all.as_bytes()[*n..*n + more])
                .unwrap();
            *n += more;
        }
    };
    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/live.jsonl")).unwrap();
    let state = d.path().join("state");
    for kill in 0..3 {
        let mut child = tidemark(&job_path, Some(&state), false).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
        append_some(&mut rng, &mut written);
        std::thread::sleep(Duration::from_millis(300 + rng.below(800)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        eprintln!("killed run {kill}");
        append_some(&mut rng, &mut written);
    }
    for ((path, all), n) in logs.iter().zip(&written) {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(&all.as_bytes()[*n..])
            .unwrap();
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

#[test]
fn judge_agrees_with_how_the_stream_was_built() {
    // The kill test trusts an uninterrupted run as its judge. Check that judge
    // against what the generator meant each line to be: every line but the late
    // ones counts once, in the window of its own time (outliers too), and the
    // stats count exactly the outliers and the late lines built in.
    let seed = std::env::var("CLOCK_RECOVERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    eprintln!("seed {seed} (set CLOCK_RECOVERY_SEED to repeat another)");
    let mut rng = Rng(seed);
    let d = tempfile::tempdir().unwrap();
    let mut want = std::collections::BTreeMap::<(i64, String), u64>::new();
    let (mut outliers, mut late) = (0, 0);
    for host in ["web-1", "web-2"] {
        let lines = host_log(&mut rng);
        for (ts, status, role) in &lines {
            match role {
                Role::Late => late += 1,
                Role::Outlier => outliers += 1,
                Role::Normal | Role::Gap => {}
            }
            if *role != Role::Late {
                *want
                    .entry((ts.div_euclid(60_000) * 60_000, status.to_string()))
                    .or_default() += 1;
            }
        }
        let dir = d.path().join("logs").join(host);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.log"), text(&lines)).unwrap();
    }
    assert!(
        outliers > 20 && late > 20,
        "{outliers} outliers, {late} late"
    );
    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/judge.jsonl")).unwrap();
    let out = tidemark(&job_path, None, true)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let count = |label: &str| -> u64 {
        stderr
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|rest| rest.rsplit(": ").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(count("late lines (dropped)"), late, "{stderr}");
    assert_eq!(count("outlier lines"), outliers, "{stderr}");
    let mut got = std::collections::BTreeMap::<(i64, String), u64>::new();
    let jsonl = std::fs::read_to_string(d.path().join("out/judge.jsonl")).unwrap();
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["record"] != "status:reqs" {
            continue;
        }
        let start: jiff::Timestamp = v["start"].as_str().unwrap().parse().unwrap();
        let status = v["labels"]["status"].as_str().unwrap().to_string();
        let n = v["value"].as_u64().unwrap();
        *got.entry((start.as_millisecond(), status)).or_default() += n;
    }
    assert_eq!(got.len(), want.len(), "series per window");
    for (key, n) in &want {
        assert_eq!(got.get(key), Some(n), "window and status {key:?}");
    }
}

#[test]
fn an_outlier_does_not_hold_the_resume_point_back() {
    // A line stamped three hours ahead starts a window that stays open until the
    // host's time gets there. Its position was that window's resume mark, so every
    // checkpoint for those three hours resumed at it: a restart re-read all since.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("logs").join("web-1");
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = String::new();
    let mut outlier_at = 0;
    for s in 0..1_200i64 {
        if s == 30 {
            outlier_at = log.len() as u64;
            log.push_str(&format!(
                "ts={} status=500\n",
                T0_MS + s * 1_000 + 3 * 3_600_000
            ));
        } else {
            log.push_str(&format!("ts={} status=200\n", T0_MS + s * 1_000));
        }
    }
    std::fs::write(dir.join("app.log"), &log).unwrap();
    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/live.jsonl")).unwrap();
    let state = d.path().join("state");
    let mut child = tidemark(&job_path, Some(&state), false).spawn().unwrap();
    // Generous: the property is where the checkpoint resumes once it got there.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut resume = None;
    while std::time::Instant::now() < deadline && resume.is_none() {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(bytes) = std::fs::read(state.join("clocks/checkpoint")) else {
            continue;
        };
        let Ok(cp) = serde_json::from_slice::<serde_json::Value>(&bytes[24.min(bytes.len())..])
        else {
            continue;
        };
        if cp["frontier_ms"].as_i64().unwrap_or(i64::MIN) >= T0_MS + 10 * 60_000 {
            resume = cp["groups"][0]["resume"]["offset"].as_u64();
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resume = resume.expect("a checkpoint past 10:10 within 120 s");
    assert!(
        resume > outlier_at,
        "the resume point ({resume}) is held back at the outlier ({outlier_at})"
    );
}
