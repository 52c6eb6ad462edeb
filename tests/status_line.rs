//! A live `tidemark run` prints a one-line status every `--status-interval`
//! (issue 12 §3): lines/s, how far the output is complete and its lag, late and
//! malformed counts; `--no-status` turns it off; a finite run never prints it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

/// The demo's data and job in `dir`, the job closing idle windows after 1 s so
/// that a live run completes every window of this old data; the finished
/// output's length (what a live run must reach).
fn demo(dir: &Path) -> (PathBuf, PathBuf, usize) {
    let out = tidemark()
        .args(["demo", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("status:"),
        "a finite run prints no status: {err}"
    );
    let job = dir.join("nginx.toml");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("idle_timeout = \"30s\"", "idle_timeout = \"1s\"");
    std::fs::write(&job, text).unwrap();
    let out_file = dir.join("out/nginx.jsonl");
    let len = std::fs::read(&out_file).unwrap().len();
    std::fs::remove_file(&out_file).unwrap();
    (job, out_file, len)
}

/// Starts a live run of `job` with `flags`; its stderr lines arrive on the channel.
fn live(job: &Path, flags: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = tidemark()
        .arg("run")
        .arg(job)
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_live_run_prints_its_status_every_interval() {
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = demo(d.path());
    let (child, lines) = live(&job, &["--status-interval", "100ms"]);
    // Generous: only a machine stalled for a minute misses it. Waits for a line
    // after the first windows closed, so it says how far the output is.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains("output complete to") => break Some(l),
            Ok(l) => seen.push(l),
            Err(_) => break None,
        }
    };
    stop(child);
    let Some(line) = found else {
        panic!("no status line with the output's progress: {seen:#?}");
    };
    assert!(line.starts_with("status: "), "{line}");
    assert!(line.contains(" lines/s; "), "{line}");
    assert!(line.contains("(lag "), "{line}");
    assert!(line.ends_with("late 0; malformed 0"), "{line}");
}

#[test]
fn no_status_turns_the_line_off() {
    let d = tempfile::tempdir().unwrap();
    let (job, out_file, len) = demo(d.path());
    let (child, lines) = live(&job, &["--no-status", "--status-interval", "50ms"]);
    // The output complete takes over a second (idle windows close after 1 s):
    // many 50 ms intervals, had the line been on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&out_file).map(|b| b.len()).unwrap_or(0) < len {
        assert!(Instant::now() < deadline, "the live run never completed");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(child);
    // Every line, up to the end of its stderr.
    let printed: Vec<String> = lines.iter().collect();
    assert!(
        printed.iter().all(|l| !l.starts_with("status: ")),
        "{printed:#?}"
    );
}
