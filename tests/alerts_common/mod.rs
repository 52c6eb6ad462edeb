//! What the alerts' CLI tests share: a job with two alerts, two hosts' logs
//! with bursts and gaps, running `tidemark run --until-eof`, and comparing
//! transcripts.
#![allow(dead_code)] // each test file uses its own part

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// 2026-11-20T10:00:00Z.
pub const T0: i64 = 1_795_168_800;
pub const MINUTES: i64 = 150;

pub fn job(dir: &Path, out: &str, rate_limit: &str) -> String {
    format!(
        r#"
name = "alerting"
[source]
kind = "file"
include = ["{logs}/*.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)\.log' }}
{rate_limit}
[parse]
format = "json"
[window]
size = "1m"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "latency"
kind = "gauge"
field = "ms"
[[rule]]
record = "status:reqs:sum1m"
expr = "sum by (status) (reqs)"
[[alert]]
name = "HighErrorRate"
expr = 'status:reqs:sum1m{{status=~"5.."}} > 20'
for = "2m"
keep_firing_for = "1m"
resolve_below = 12
labels = {{ severity = "page" }}
annotations = {{ summary = "{{{{ $labels.status }}}} errors at {{{{ $value }}}}/min" }}
[[alert]]
name = "SlowHost"
expr = 'latency > 300'
average_over = "3m"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "rules"
alerts = true
"#,
        logs = dir.join("logs").display(),
    )
}

/// A deterministic pseudo-random sequence (xorshift), seeded.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Two hosts' logs: per minute some 200s and a varying number of 503s (bursts
/// that fire and resolve the error alert), a latency gauge, and stretches of
/// minutes with no line at all (gap windows, in which alerts resolve).
pub fn write_logs(dir: &Path, seed: u64) {
    let mut rng = Rng(seed | 1);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    for host in ["a", "b"] {
        let mut text = String::new();
        for m in 0..MINUTES {
            if (40..46).contains(&m) || (100..103).contains(&m) {
                continue;
            }
            let burst = (m / 10) % 3 == 1;
            let errors = if burst {
                8 + rng.below(10)
            } else {
                rng.below(6)
            };
            let ok = 60 + rng.below(40);
            let slow = (m / 7) % 4 == 2;
            for i in 0..(ok + errors) {
                let t = T0 + m * 60 + (i * 59 / (ok + errors)) as i64;
                let ts = jiff::Timestamp::from_second(t).unwrap();
                let status = if i % 7 == 3 && i / 7 < errors {
                    "503"
                } else {
                    "200"
                };
                let ms = if slow {
                    250 + rng.below(200)
                } else {
                    20 + rng.below(100)
                };
                writeln!(
                    text,
                    r#"{{"time":"{ts}","status":"{status}","ms":{ms},"host":"{host}"}}"#
                )
                .unwrap();
            }
        }
        std::fs::write(dir.join(format!("logs/{host}.log")), text).unwrap();
    }
}

pub fn tidemark_run(job: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.arg("run")
        .arg(job)
        .args(["--until-eof", "-w", "2", "--checkpoint-interval", "20ms"])
        .arg("--state-dir")
        .arg(state)
        .env("TIDEMARK_LOG", "warn")
        .stdout(Stdio::null());
    c
}

pub fn ok(what: &str, o: Output) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn checkpoint_id(state: &Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(state.join("alerting").join("checkpoint")).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

/// Waits (generous deadline; the loop ends at the event) until `done`, or
/// returns false if the child exited first.
pub fn wait_until(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

pub fn assert_same(what: &str, got: &str, want: &str) {
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        let show = |s: &str| {
            s.lines()
                .skip(first.saturating_sub(2))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{what}: the output differs from the uninterrupted run's at line {}\n--- got\n{}\n--- want\n{}",
            first + 1,
            show(got),
            show(want)
        );
    }
}
