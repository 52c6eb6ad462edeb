//! `tidemark replay`, black-box: progress lines, the rate limit (the flag and the
//! job's), and Ctrl-C keeping only whole windows.

mod replay_fixture;

use replay_fixture::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
