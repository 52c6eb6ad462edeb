//! Helpers shared by the file_edges tests: the binary (without the
//! capabilities that bypass file permissions), a job over a few hosts, its
//! output, and what a running process has open.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `tidemark`, unable to read files whose permissions say so, even as root.
pub fn tidemark() -> Command {
    let bin = env!("CARGO_BIN_EXE_tidemark");
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-dac_override,-dac_read_search", "--", bin]);
        c
    } else {
        Command::new(bin)
    };
    c.env("TIDEMARK_LOG", "warn");
    c
}

/// Makes `path` unreadable for [`tidemark`], and checks that it is.
pub fn make_unreadable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let probe = if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        Command::new("setpriv")
            .args(["--bounding-set=-dac_override,-dac_read_search", "--", "cat"])
            .arg(path)
            .output()
    } else {
        Command::new("cat").arg(path).output()
    };
    let probe = probe.expect("run setpriv/cat (util-linux) to probe the permission");
    assert!(
        !probe.status.success(),
        "{} is still readable: this test needs a way to make a file unreadable",
        path.display()
    );
}

pub fn make_readable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// `n` JSON lines one second apart from 2026-01-01T00:MM:00Z, minute `minute`.
pub fn lines(minute: u32, n: u32) -> String {
    (0..n)
        .map(|s| format!("{{\"time\":\"2026-01-01T00:{minute:02}:{s:02}Z\",\"status\":\"200\"}}\n"))
        .collect()
}

/// A folder with `logs/HOST/app.log` for each host (3 minutes of 10 lines), a
/// job reading `logs/*/app.log` into `out.jsonl`, per-host series.
pub fn setup(hosts: &[&str], idle_timeout: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    // tempfile makes the folder 0700: fine, tidemark runs as its owner.
    for h in hosts {
        let dir = d.path().join("logs").join(h);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("app.log"),
            lines(0, 10) + &lines(1, 10) + &lines(2, 10),
        )
        .unwrap();
    }
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"name = "edges"
[source]
kind = "file"
include = ["logs/*/app.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)/' }}
poll_interval = "50ms"
[parse]
format = "json"
[window]
size = "1m"
idle_timeout = "{idle_timeout}"
[[metric]]
name = "requests"
kind = "counter"
labels = ["status"]
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "hosts"
"#
        ),
    )
    .unwrap();
    (d, job)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn tidemark")
}

/// Per-host request counts in `out.jsonl`: (window start, host, value).
pub fn counts(out: &Path) -> Vec<(String, String, u64)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut v: Vec<(String, String, u64)> = text
        .lines()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                j["start"].as_str().unwrap().to_string(),
                j["labels"]["host"].as_str().unwrap().to_string(),
                j["value"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn stop(child: Child) -> Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

/// Runs `cmd` to its end, or kills it after a generous deadline (a reader
/// blocked on a FIFO never ends by itself).
pub fn run_with_deadline(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "tidemark did not finish: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The read offsets of the files process `pid` has open at `path` (by the
/// name the kernel gives an open file: its current one).
pub fn open_offsets(pid: u32, path: &Path) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path))
        .filter_map(|fd| {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                    .ok()?;
            let pos = info.lines().find_map(|l| l.strip_prefix("pos:"))?;
            pos.trim().parse().ok()
        })
        .collect()
}
