//! The issue's end-to-end path for tests/kafka_cluster_e2e.rs: hosts whose logs rotate
//! (rename and copytruncate, every rotated file kept), one `tidemark agent` process per
//! host, a real broker (tansu), a 2-process `tidemark cluster` running a `kind = "kafka"`
//! job submitted through the API, and the oracle: `tidemark run --until-eof` of the same
//! job over the same files.
//!
//! Lines are stamped with the wall clock when written, at most [`DISORDER_MS`] behind it:
//! an agent's heartbeat says "every line up to N, as of wall time T", and the kafka source
//! moves the group's watermark to `T - max_out_of_orderness`, so a line stamped further
//! behind than that would be late in the cluster and not in the oracle (which has no
//! heartbeats). Stamped so, no line is late on either side and both close every window.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark_kafka::partition_for;
use tidemark_kafka::testing::Broker;

use crate::agent_support::{Agent, Log};
use crate::kafka_common::{nginx_line, now_ms, rest, Rng};
use crate::member::{out_dir, text, tidemark};
use crate::two_members::{self, Cluster, TOKEN};

pub const TOPIC: &str = "logs";
/// Both members have 2 workers: partition `p` is read by global worker `p mod 4`, so
/// each worker reads one partition and member 1 reads partitions 2 and 3.
pub const PARTITIONS: i32 = 4;
/// How far behind the wall clock a line may be stamped (see the module's doc).
pub const DISORDER_MS: u64 = 2000;
/// Generous: a loaded 2-core machine (at a load average of 16 the windows come out
/// within a minute of the writers' stop; a partition that never looked caught up held
/// every window for 4–5 minutes, the bug this deadline catches).
pub const DEADLINE: Duration = Duration::from_secs(240);
/// The job's name (its output is `out/JOB.jsonl`).
pub const JOB: &str = "e2e";

/// The job's idle timeout, far longer than the test: only heartbeats can close a quiet
/// host's windows. (The rest of the job is `kafka_common::rest`'s, shared by the kafka
/// job and the oracle's file job.)
const IDLE: &str = "idle_timeout = \"2h\"";

/// The seed: `E2E_SEED`, else the clock; printed.
pub fn seed() -> u64 {
    let seed = std::env::var("E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    eprintln!("kafka cluster e2e seed: {seed} (re-run with E2E_SEED={seed})");
    seed
}

/// One host: its folder (agent file, state, logs), its log files and its agent.
pub struct Host {
    pub name: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub logs: Vec<Log>,
    pub agent: Option<Agent>,
}

impl Host {
    /// Appends `n` lines stamped now (up to [`DISORDER_MS`] behind) to its `i`th file.
    pub fn write(&mut self, i: usize, n: usize, rng: &mut Rng) {
        let log = &mut self.logs[i];
        let mut text = String::new();
        for _ in 0..n {
            let ms = now_ms() - rng.below(DISORDER_MS) as i64;
            let line = nginx_line(ms, rng);
            text.push_str(&line);
            text.push('\n');
            log.lines.push(line);
        }
        OpenOptions::new()
            .append(true)
            .open(&log.path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    pub fn lines(&self) -> usize {
        self.logs.iter().map(|l| l.lines.len()).sum()
    }

    pub fn start_agent(&mut self) {
        self.agent = Some(Agent::start(&self.config));
    }

    /// `kill -9` of its agent.
    pub fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill();
        }
    }

    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("the host's agent runs")
    }

    /// Every agent log of this host (one per start), for a failure's message.
    pub fn agent_logs(&self) -> String {
        let mut out = String::new();
        let mut names: Vec<PathBuf> = fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "stderr"))
            .collect();
        names.sort();
        for p in names {
            let log = fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// The whole set-up: folder, broker, hosts, the cluster and its job.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub broker: Broker,
    pub hosts: Vec<Host>,
    pub cluster: Option<Cluster>,
    /// Cluster starts so far (each member's log is named by it).
    starts: u32,
    pub seed: u64,
}

impl World {
    /// A broker with the topic, and `hosts` hosts with `files` log files each, named
    /// so that every partition holds some file group (a worker with no stream would
    /// follow the wall clock minus the 2 h idle timeout and hold every window).
    pub fn new(hosts: usize, files: usize, heartbeat: &str, seed: u64) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("tidemark-kafka-e2e.")
            .tempdir()
            .unwrap();
        let d = tmp.path().to_path_buf();
        fs::write(d.join("token"), TOKEN).unwrap();
        let broker = Broker::start();
        broker.create_topic(TOPIC, PARTITIONS);
        let mut covered = [false; PARTITIONS as usize];
        let mut out = Vec::new();
        let mut candidate = 0usize;
        for h in 1..=hosts {
            let name = format!("web-{h}");
            let dir = d.join("hosts").join(&name);
            let logs_dir = dir.join("logs");
            fs::create_dir_all(&logs_dir).unwrap();
            let mut logs = Vec::new();
            for _ in 0..files {
                // The first name that lands on a partition not covered yet (any once
                // all are).
                let file = loop {
                    let file = format!("app-{candidate}");
                    candidate += 1;
                    let key = format!("{name}/{}/{file}.log", logs_dir.display());
                    let p = partition_for(key.as_bytes(), PARTITIONS) as usize;
                    if !covered[p] || covered.iter().all(|c| *c) {
                        covered[p] = true;
                        break file;
                    }
                };
                logs.push(Log::new(&logs_dir, &file));
            }
            let config = dir.join("agent.toml");
            fs::write(
                &config,
                format!(
                    "[agent]\nhost = \"{name}\"\nstate_dir = \"state\"\nbrokers = \"{}\"\n\
                     topic = \"{TOPIC}\"\nmetrics_addr = \"127.0.0.1:0\"\n\
                     heartbeat_interval = \"{heartbeat}\"\nmax_in_flight = 2000\n\n\
                     [source]\nkind = \"file\"\ninclude = [\"logs/*.log\"]\n\
                     poll_interval = \"50ms\"\nrotated_tail_wait = \"200ms\"\n",
                    broker.bootstrap()
                ),
            )
            .unwrap();
            out.push(Host {
                name,
                dir,
                config,
                logs,
                agent: None,
            });
        }
        assert!(
            covered.iter().all(|c| *c),
            "{hosts}x{files} groups cannot cover {PARTITIONS} partitions"
        );
        World {
            tmp,
            broker,
            hosts: out,
            cluster: None,
            starts: 0,
            seed,
        }
    }

    pub fn d(&self) -> &Path {
        self.tmp.path()
    }

    /// The cluster's output file.
    pub fn out(&self) -> PathBuf {
        out_dir(&self.d().join("state-0")).join(format!("{JOB}.jsonl"))
    }

    /// The kafka job as submitted.
    fn kafka_job(&self) -> PathBuf {
        let text = format!(
            "name = \"{JOB}\"\n[source]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{TOPIC}\"\n{}",
            self.broker.bootstrap(),
            rest(&self.out().display().to_string(), IDLE)
        );
        let path = self.d().join("kafka-job.toml");
        fs::write(&path, text).unwrap();
        path
    }

    /// The oracle: the same job over every host's files, `run --until-eof`.
    pub fn oracle(&self) -> Vec<u8> {
        let out = self.d().join("oracle.jsonl");
        let toml = format!(
            "name = \"{JOB}\"\n[source]\nkind = \"file\"\ninclude = [\"{}/hosts/*/logs/*.log\"]\n\
             host = {{ path_regex = '/hosts/(?P<host>web-[0-9]+)/logs/' }}\n{}",
            self.d().display(),
            rest(&out.display().to_string(), IDLE)
        );
        let job = self.d().join("oracle.toml");
        fs::write(&job, toml).unwrap();
        let o = tidemark()
            .env("TIDEMARK_LOG", "warn")
            .arg("run")
            .arg(&job)
            .args(["--until-eof", "--overwrite"])
            .output()
            .unwrap();
        assert!(o.status.success(), "the oracle run failed: {}", text(&o));
        let want = fs::read(&out).unwrap();
        // Every host's lines are in it (the quiet one's too).
        let want_text = String::from_utf8_lossy(&want);
        for h in &self.hosts {
            assert!(
                want_text.contains(&format!("\"{}\"", h.name)),
                "the oracle has no series of {}",
                h.name
            );
        }
        want
    }

    /// Starts every host's agent and waits until the broker acknowledged every line
    /// written so far (so every group is on the topic before the job reads it: a group
    /// first seen later could carry lines of windows already closed).
    pub fn start_agents(&mut self) {
        for h in &mut self.hosts {
            h.start_agent();
        }
        let deadline = Instant::now() + DEADLINE;
        for h in &mut self.hosts {
            let (lines, files) = (h.lines() as i64, h.logs.len() as i64);
            loop {
                let a = h.agent();
                if a.metric("groups") == files && a.metric("lines_acked_total") >= lines {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}'s agent did not ship its first lines:\n{}",
                    h.name,
                    h.agent_logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts both members (member 0 first) and waits until they are connected.
    pub fn start_cluster(&mut self) {
        self.starts += 1;
        // Submitted jobs may connect only to the brokers the members allow.
        let broker = self.broker.bootstrap();
        self.cluster = Some(two_members::start_with(
            self.d(),
            &format!("s{}", self.starts),
            &["--allow-kafka-brokers", &broker],
        ));
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("the cluster runs")
    }

    /// Submits the kafka job through the API (`tidemark job submit`).
    pub fn submit(&self) {
        let o = self
            .cluster()
            .job(&["submit", self.kafka_job().to_str().unwrap()]);
        assert!(o.status.success(), "submit: {}", text(&o));
    }

    /// `kill -9` of member `victim`; the other exits with an error on its own (it
    /// lost a peer); then both are started again and resume the job.
    pub fn kill_member(&mut self, victim: u64) {
        let mut c = self.cluster.take().expect("the cluster runs");
        let (dead, survivor) = if victim == 0 {
            (&mut c.zero, &mut c.one)
        } else {
            (&mut c.one, &mut c.zero)
        };
        let _ = dead.child.kill();
        let _ = dead.child.wait();
        let s = survivor.wait_exit(Duration::from_secs(60));
        assert!(
            !s.success(),
            "the member that lost its peer should fail: {s}\n{}",
            c.logs()
        );
        drop(c);
    }

    /// Whether the cluster has written any window yet.
    pub fn output_is_empty(&self) -> bool {
        fs::metadata(self.out()).map_or(true, |m| m.len() == 0)
    }

    /// Member `m`'s own checkpoint of the job (empty if none).
    pub fn member_checkpoint(&self, m: usize) -> String {
        let path = self
            .d()
            .join(format!("state-{m}"))
            .join("jobs")
            .join(JOB)
            .join("checkpoint");
        // A binary header, then JSON.
        String::from_utf8_lossy(&fs::read(path).unwrap_or_default()).into_owned()
    }

    /// With `E2E_KEEP=DIR`, copies the test's folder (logs, states, outputs) to DIR
    /// before a failure's panic, for a post-mortem.
    pub fn keep(&self) {
        if let Some(to) = std::env::var_os("E2E_KEEP") {
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(self.d())
                .arg(&to)
                .status();
            eprintln!("kept {} in {}", self.d().display(), to.to_string_lossy());
        }
    }

    /// Waits (generously) until `ok()`, else fails saying `what` with the members' logs.
    pub fn wait_until(&self, what: &str, mut ok: impl FnMut(&World) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !ok(self) {
            if Instant::now() >= deadline {
                self.keep();
            }
            assert!(
                Instant::now() < deadline,
                "seed {}: {what}\n{}",
                self.seed,
                self.cluster
                    .as_ref()
                    .map_or(String::new(), |c| tail(&c.logs(), 80))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the cluster's output is `want`; fails at once if it holds anything
    /// that is not a prefix of it (a wrong or repeated window).
    pub fn wait_for_output(&self, want: &[u8]) {
        let out = self.out();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let got = fs::read(&out).unwrap_or_default();
            if got == want {
                return;
            }
            let prefix = got.len() <= want.len() && want.starts_with(&got);
            if !prefix || Instant::now() > deadline {
                self.keep();
                let at = got
                    .iter()
                    .zip(want)
                    .position(|(a, b)| a != b)
                    .unwrap_or(got.len().min(want.len()));
                let line = |b: &[u8]| -> String {
                    let start = b[..at.min(b.len())]
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |i| i + 1);
                    let end = b[start..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(b.len(), |i| start + i);
                    String::from_utf8_lossy(&b[start..end]).into_owned()
                };
                panic!(
                    "seed {}: the cluster's output {} the oracle's ({} vs {} bytes); first \
                     difference at byte {at}:\n--- cluster\n{}\n--- oracle\n{}\n{}\n{}\n--- broker\n{}",
                    self.seed,
                    if prefix {
                        "did not reach"
                    } else {
                        "is not a prefix of"
                    },
                    got.len(),
                    want.len(),
                    line(&got),
                    line(want),
                    self.cluster.as_ref().map_or(String::new(), |c| tail(
                        &c.logs(),
                        120
                    )),
                    self.hosts
                        .iter()
                        .map(Host::agent_logs)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    tail(&self.broker.log(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One round of writing: each of the first `active` hosts appends up to 7 lines to
    /// each of its files, and now and then rotates one (rename or copytruncate, every
    /// rotated file kept); then a pause of 100–400 ms.
    ///
    /// Few lines: tansu 0.6.0 answers a fetch with one query per record for its headers,
    /// each a scan of every header it stores (no index), on one storage thread; an
    /// agent's record has 7 headers, so a fetch costs records × the topic's size, and a
    /// topic of ~10k agent records makes fetches time out (60 s) on a loaded machine.
    pub fn write_round(&mut self, rng: &mut Rng, active: usize) {
        for h in self.hosts.iter_mut().take(active) {
            for i in 0..h.logs.len() {
                h.write(i, rng.below(8) as usize, rng);
                match rng.below(12) {
                    0 => h.logs[i].rotate_rename(),
                    1 => h.logs[i].rotate_copytruncate(),
                    _ => continue,
                }
                h.write(i, rng.below(4) as usize, rng);
            }
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
    }
}

/// Whether the wall clock is in the last seconds of a minute (from second 45 to 55): the
/// writers stop then, so that the last lines are stamped just before a window's end and
/// heartbeats close it a few seconds later rather than up to a minute later.
pub fn near_a_minutes_end() -> bool {
    (45..55).contains(&(now_ms() / 1000 % 60))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
