//! A `tidemark cluster` member process for black-box tests, driven by `tidemark job`.

#![allow(dead_code)]

pub mod api;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary, logging at info, with no API token from the environment.
pub fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "info")
        .env_remove("TIDEMARK_API_TOKEN");
    c
}

pub struct Member {
    pub child: Child,
    pub api: String,
    pub log: PathBuf,
    /// Its state folder, which holds its API token (`tidemark job --state-dir`).
    pub state: PathBuf,
}

/// The folder a test's members may write sinks in: `out` next to their state
/// folders (created).
pub fn out_dir(state: &Path) -> PathBuf {
    let out = state.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

impl Member {
    /// Starts `tidemark cluster -w 2` on 127.0.0.1 (a free port) with `extra`
    /// arguments, and waits until its API is up. Jobs may read anything in the
    /// folder that holds `state` (unless `extra` has an `--allow-root`) and write
    /// in [`out_dir`].
    pub fn start(state: &Path, log: &Path, extra: &[&str]) -> Member {
        let dir = state.parent().unwrap().to_str().unwrap().to_string();
        let out = out_dir(state).to_str().unwrap().to_string();
        let mut args = vec!["--output-root", &out];
        if !extra.contains(&"--allow-root") {
            args.extend(["--allow-root", &dir]);
        }
        args.extend_from_slice(extra);
        Member::start_with(state, log, &args, &[], true)
    }

    /// Starts a member with exactly `extra` arguments (the cluster needs at least
    /// an `--allow-root`) and environment variables; `serves_api`: process 0
    /// (wait for its API), else wait for the member to start.
    pub fn start_with(
        state: &Path,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        serves_api: bool,
    ) -> Member {
        let err = std::fs::File::create(log).unwrap();
        let child = tidemark()
            .args(["cluster", "-w", "2", "--api", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let mut m = Member {
            child,
            api: String::new(),
            log: log.to_path_buf(),
            state: state.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = m.log();
            if serves_api {
                if let Some(rest) = text.split("control API on http://").nth(1) {
                    m.api = rest.split(';').next().unwrap().to_string();
                    return m;
                }
            } else if text.contains("tidemark cluster: member ") {
                return m;
            }
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("the member exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "the member did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the member to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the member to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the member did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tidemark job ARGS` against this member, with the token from its state folder.
    pub fn job(&self, args: &[&str]) -> Output {
        tidemark()
            .arg("job")
            .args(args)
            .args(["--api", &self.api, "--state-dir"])
            .arg(&self.state)
            .output()
            .unwrap()
    }

    /// The address other members connect to, as the member reported it (said
    /// before the member waits for them, so it is in the log once it started).
    pub fn peer(&self) -> String {
        let log = self.log();
        let Some(rest) = log
            .split("tidemark cluster: peers connect to member ")
            .nth(1)
        else {
            panic!("the member did not say its peer address:\n{log}");
        };
        let line = rest.lines().next().unwrap_or("");
        line.rsplit(" on ").next().unwrap_or("").to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's stdout and stderr, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// 2026-11-20T10:00:00Z
pub const T0: i64 = 1_795_168_800;

/// One nginx access-log line at `t`.
pub fn line(t: i64, status: u16, bytes: u64) -> String {
    let ts = jiff::Timestamp::from_second(t).unwrap();
    format!(
        "10.0.0.1 - - [{}] \"GET /x HTTP/1.1\" {status} {bytes} \"-\" \"t\" 0.{:03}\n",
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        bytes % 1000
    )
}

/// Appends `secs` seconds of lines (one every 2 s) from `from` to `dir/access.log`.
pub fn append_host(dir: &Path, from: i64, secs: i64) {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("access.log"))
        .unwrap();
    let mut text = String::new();
    for s in (0..secs).step_by(2) {
        let t = from + s;
        text.push_str(&line(
            t,
            [200, 404, 500][(t % 3) as usize],
            (t * 7 % 5000) as u64,
        ));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// What `tidemark run --until-eof` writes for `toml` (with its sink moved).
pub fn expected(dir: &Path, toml: &str, out: &Path) -> Vec<u8> {
    let reference = dir.join(format!("reference-{}.jsonl", rand_suffix()));
    let text = toml.replace(&out.display().to_string(), &reference.display().to_string());
    let job = dir.join(format!("reference-{}.toml", rand_suffix()));
    std::fs::write(&job, text).unwrap();
    let o = tidemark()
        .args(["run", "--until-eof"])
        .arg(&job)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(&reference).unwrap()
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Waits until `path` holds exactly `want`.
pub fn wait_for_output(path: &Path, want: &[u8], member: &Member) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(
            got.len() <= want.len() && want.starts_with(&got),
            "{} is not a prefix of the expected output:\n--- got\n{}\n--- want\n{}\n--- member log\n{}",
            path.display(),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            member.log()
        );
        assert!(
            Instant::now() < deadline,
            "{} did not reach the expected output; member log:\n{}",
            path.display(),
            member.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a JSON Lines output whose window starts before `minute` (from T0).
pub fn windows_before(output: &[u8], minute: i64) -> Vec<u8> {
    let limit = jiff::Timestamp::from_second(T0 + minute * 60).unwrap();
    let mut out = Vec::new();
    for l in output.split_inclusive(|&b| b == b'\n') {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        let start: jiff::Timestamp = v["start"].as_str().unwrap().parse().unwrap();
        if start < limit {
            out.extend_from_slice(l);
        }
    }
    out
}

/// Runs `tidemark cluster ARGS` on `state` that should exit on its own (it is
/// killed after 15 s: `None`); its exit code and log.
pub fn cluster_exit(args: &[&str], state: &Path) -> (Option<i32>, String) {
    let log = state.with_extension("log");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let err = std::fs::File::create(&log).unwrap();
    let mut child = tidemark()
        .args(["cluster", "--api", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .args(args)
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(&log).unwrap_or_default())
}
