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

/// `host` writes two lines a minute for `minutes` minutes into `logs/h{host}.log`.
fn write_host(dir: &Path, host: usize, minutes: usize) -> u64 {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let mut text = String::new();
    for m in 0..minutes {
        for s in [10, 40] {
            text.push_str(&format!(
                "10.0.0.1 - - [20/Nov/2026:10:{m:02}:{s:02} +0000] \"GET /x HTTP/1.1\" 200 1 \"-\" \"t\" 0.001\n"
            ));
        }
    }
    std::fs::write(dir.join(format!("logs/h{host:04}.log")), text).unwrap();
    (2 * minutes) as u64
}

/// `tidemark run --until-eof` under a limit of `nofile` open files, of a job with
/// `source_extra` in its `[source]` over `dir/logs`: its exit summary's
/// "reopened" count, and the lines counted.
fn reopens_of_a_finite_run(dir: &Path, nofile: u32, source_extra: &str) -> (u64, u64) {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            "name = \"fleet\"\n[source]\nkind = \"file\"\ninclude = [\"logs/*.log\"]\n\
             {source_extra}\n[parse]\nformat = \"nginx\"\n[window]\nsize = \"1m\"\n\
             [[metric]]\nname = \"reqs\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\nseries = \"hosts\"\n"
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("out.jsonl"));
    let o = Command::new("/usr/bin/prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "-w", "1"])
        .current_dir(dir)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let reopened = err
        .lines()
        .find_map(|l| l.split("reopened: ").nth(1))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reopened count in the summary:\n{err}"));
    (reopened, total(&dir.join("out.jsonl")))
}

/// Issue 13 (2,000 hosts): a job run alone whose job file leaves
/// `max_open_files` unset may keep open what the limit on open files leaves, so
/// a fleet of more groups than the old default of 256 is read without pacing
/// closing and reopening files mid-read. A lower limit, or a job that sets the
/// key, still bounds it.
#[test]
fn a_job_run_alone_keeps_every_group_open_when_the_limit_allows() {
    let d = tempfile::tempdir().unwrap();
    let want: u64 = (0..300).map(|h| write_host(d.path(), h, 30)).sum();
    // 2,048 less the reserve (64 and 1/8) leaves 1,728: more than 300 groups.
    let (reopened, lines) = reopens_of_a_finite_run(d.path(), 2048, "");
    assert_eq!(lines, want);
    assert_eq!(
        reopened, 0,
        "the default kept fewer files open than there are groups"
    );
    // 200 leaves 111: pacing closes files mid-read and opens them again.
    let (reopened, lines) = reopens_of_a_finite_run(d.path(), 200, "");
    assert_eq!(lines, want);
    assert!(
        reopened > 0,
        "111 descriptors for 300 groups, yet nothing reopened"
    );
    // A job file's own value holds under a large limit.
    let (reopened, lines) = reopens_of_a_finite_run(d.path(), 2048, "max_open_files = 64");
    assert_eq!(lines, want);
    assert!(
        reopened > 0,
        "64 descriptors for 300 groups, yet nothing reopened"
    );
}
