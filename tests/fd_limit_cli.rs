//! `tidemark run` under a low limit on open files (issue 10): the job keeps within
//! what the limit leaves (its `max_open_files` lowered), closing idle files, and
//! reads every line instead of waiting on EMFILE.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write_logs(dir: &Path, files: usize) -> u64 {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut lines = 0;
    for i in 0..files {
        let mut text = String::new();
        for s in 0..4 {
            text.push_str(&format!(
                "10.0.0.1 - - [20/Nov/2026:10:{s:02}:{:02} +0000] \"GET /x HTTP/1.1\" 200 1 \"-\" \"t\" 0.001\n",
                i % 60
            ));
            lines += 1;
        }
        std::fs::write(dir.join(format!("logs/f{i:04}.log")), text).unwrap();
    }
    lines
}

/// The sum of the `value`s in a JSON Lines output (counts of `reqs`).
fn total(out: &Path) -> u64 {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["value"].as_u64())
        .sum()
}

#[test]
fn a_live_run_over_more_files_than_the_file_limit_reads_every_line() {
    let d = tempfile::tempdir().unwrap();
    let want = write_logs(d.path(), 300);
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        r#"name = "many"
[source]
kind = "file"
include = ["logs/*.log"]
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
size = "1m"
idle_timeout = "1s"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "hosts"
"#,
    )
    .unwrap();
    let err = d.path().join("stderr.log");
    let mut child = Command::new("/usr/bin/prlimit")
        .arg("--nofile=64:64")
        .arg(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .env("TIDEMARK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let out = d.path().join("out.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&out) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&err).unwrap();
    assert_eq!(total(&out), want, "every line counted once:\n{log}");
    assert!(!log.contains("Too many open files"), "{log}");
}
