//! Shared by tests/agent*.rs: a real broker, an agent child process (`tidemark
//! agent`), log writers with rotation, and a consumer that reads what the agents sent
//! in tidemark's wire format.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use tidemark_kafka::testing::Broker;
use tidemark_kafka::wire::{self, AgentRecord};
use tidemark_kafka::{client_config, Role};

pub const TOPIC: &str = "logs";
pub const PARTITIONS: i32 = 3;
/// Generous: a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// A record as the agent wrote it, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    Line {
        partition: i32,
        host: String,
        group: String,
        epoch: u64,
        seq: u64,
        file: String,
        line: String,
    },
    Heartbeat {
        partition: i32,
        group: String,
        epoch: u64,
        seq: u64,
    },
}

/// Reads every partition of the topic from the beginning, keeping up with new records.
pub struct Reader {
    consumer: BaseConsumer,
    pub records: Vec<Rec>,
}

impl Reader {
    pub fn new(broker: &Broker) -> Reader {
        let consumer: BaseConsumer = client_config(
            Role::Consumer,
            &broker.bootstrap(),
            // A broker that just restarted can answer a fetch "offset out of range";
            // the consumer role resets to the earliest record then (not librdkafka's
            // default, latest, which would skip every record).
            &[("group.id".to_string(), "tidemark-agent-test".to_string())].into(),
        )
        .unwrap()
        .create()
        .unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            assignment
                .add_partition_offset(TOPIC, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        Reader {
            consumer,
            records: Vec::new(),
        }
    }

    /// Reads for up to `wait`.
    pub fn poll(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let Some(result) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            // Shown, not swallowed: a consumer error is the first clue when records
            // stop arriving. (A partition read to its end is reported as an "error".)
            let m = match result {
                Ok(m) => m,
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => continue,
                Err(e) => {
                    eprintln!("reader: {e}");
                    continue;
                }
            };
            let headers: Vec<(&str, Option<&[u8]>)> = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
                .unwrap_or_default();
            let rec = match wire::decode(headers, m.payload().unwrap_or_default()).unwrap() {
                AgentRecord::Line {
                    group,
                    seq,
                    file,
                    line,
                } => Rec::Line {
                    partition: m.partition(),
                    host: group.host.to_string(),
                    group: group.group.to_string(),
                    epoch: group.epoch,
                    seq,
                    file: file.to_string(),
                    line: String::from_utf8(line.to_vec()).unwrap(),
                },
                AgentRecord::Heartbeat { group, seq, .. } => Rec::Heartbeat {
                    partition: m.partition(),
                    group: group.group.to_string(),
                    epoch: group.epoch,
                    seq,
                },
                AgentRecord::Foreign { .. } => panic!("a record without tm-v"),
            };
            self.records.push(rec);
        }
    }

    /// Reads until `done(records)` or the deadline (then panics with `what`).
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&[Rec]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.records) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.poll(Duration::from_millis(300));
        }
    }

    /// Per group, its lines as a consumer takes them: per (epoch, seq) the first
    /// copy (a resend must carry the same line: checked), in sequence order, with
    /// no gap from 1.
    pub fn lines_by_group(&self) -> BTreeMap<String, Vec<String>> {
        let mut by: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
        let mut epochs: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.records {
            if let Rec::Line {
                group,
                epoch,
                seq,
                line,
                ..
            } = r
            {
                let e = *epochs.entry(group.clone()).or_insert(*epoch);
                assert_eq!(e, *epoch, "{group}: the epoch changed");
                let seqs = by.entry(group.clone()).or_default();
                match seqs.get(seq) {
                    Some(first) => {
                        assert_eq!(first, line, "{group}: seq {seq} resent with another line")
                    }
                    None => {
                        seqs.insert(*seq, line.clone());
                    }
                }
            }
        }
        by.into_iter()
            .map(|(group, seqs)| {
                for (i, seq) in seqs.keys().enumerate() {
                    assert_eq!(*seq, i as u64 + 1, "{group}: a gap before seq {seq}");
                }
                (group, seqs.into_values().collect())
            })
            .collect()
    }

    /// How many line records were received in all (resends included).
    pub fn line_records(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Rec::Line { .. }))
            .count()
    }
}

/// The agent's folder: its config, state and logs.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::Builder::new()
                .prefix("tidemark-agent-test.")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn logs(&self) -> PathBuf {
        let d = self.dir.path().join("logs");
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes the agent file; `extra` goes into [agent].
    pub fn config(&self, broker: &Broker, extra: &str) -> PathBuf {
        let path = self.dir.path().join("agent.toml");
        let text = format!(
            "[agent]\nhost = \"web-1\"\nstate_dir = \"state\"\nbrokers = \"{}\"\ntopic = \"{TOPIC}\"\n\
             metrics_addr = \"127.0.0.1:0\"\n{extra}\n\n[source]\nkind = \"file\"\n\
             include = [\"logs/*.log\"]\npoll_interval = \"50ms\"\nrotated_tail_wait = \"200ms\"\n",
            broker.bootstrap()
        );
        fs::write(&path, text).unwrap();
        path
    }
}

/// A running `tidemark agent`.
pub struct Agent {
    child: Option<Child>,
    pub stderr: PathBuf,
    pub metrics: Option<String>,
}

impl Agent {
    pub fn start(config: &Path) -> Agent {
        let dir = config.parent().unwrap();
        let n = fs::read_dir(dir).unwrap().count();
        let stderr = dir.join(format!("agent-{n}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .arg("agent")
            .arg(config)
            .env("TIDEMARK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut agent = Agent {
            child: Some(child),
            stderr,
            metrics: None,
        };
        let deadline = Instant::now() + DEADLINE;
        while agent.metrics.is_none() {
            assert!(
                Instant::now() < deadline,
                "the agent never served /metrics:\n{}",
                agent.log()
            );
            agent.exited_early();
            agent.metrics = agent
                .log()
                .lines()
                .find_map(|l| l.strip_prefix("metrics: serving ").map(str::to_string));
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    fn exited_early(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("the agent exited ({status}):\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A gauge or counter from /metrics.
    pub fn metric(&mut self, name: &str) -> i64 {
        self.exited_early();
        let url = self.metrics.clone().unwrap();
        let body = ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let prefix = format!("tidemark_agent_{name}{{");
        body.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for it to exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        c.wait().unwrap().code()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A log file the test writes, remembering every line in order.
pub struct Log {
    pub path: PathBuf,
    pub name: String,
    pub lines: Vec<String>,
}

impl Log {
    pub fn new(dir: &Path, name: &str) -> Log {
        let path = dir.join(format!("{name}.log"));
        File::create(&path).unwrap();
        Log {
            path,
            name: name.to_string(),
            lines: Vec::new(),
        }
    }

    /// Appends `n` numbered lines.
    pub fn write(&mut self, n: usize) {
        let mut f = OpenOptions::new().append(true).open(&self.path).unwrap();
        let mut buf = String::new();
        for _ in 0..n {
            let line = format!(
                "{} line {} {}",
                self.name,
                self.lines.len() + 1,
                "x".repeat(40)
            );
            buf.push_str(&line);
            buf.push('\n');
            self.lines.push(line);
        }
        f.write_all(buf.as_bytes()).unwrap();
    }

    /// logrotate's default: rename to NAME.log.1 (older ones shift), new empty live file.
    pub fn rotate_rename(&mut self) {
        self.shift();
        fs::rename(&self.path, self.rotated(1)).unwrap();
        File::create(&self.path).unwrap();
    }

    /// logrotate's copytruncate: copy to NAME.log.1, truncate the live file in place.
    pub fn rotate_copytruncate(&mut self) {
        self.shift();
        fs::copy(&self.path, self.rotated(1)).unwrap();
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn rotated(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}.{n}", self.path.display()))
    }

    /// Renames NAME.log.N to N+1, keeping every rotated file: a rotation that deleted
    /// the oldest could delete lines the agent had not read yet (while the broker was
    /// down, reads pause), and those are lost for any reader — the file source counts
    /// and warns them; these tests check what is promised while the files are there.
    fn shift(&self) {
        for n in (1..100).rev() {
            if self.rotated(n).exists() {
                fs::rename(self.rotated(n), self.rotated(n + 1)).unwrap();
            }
        }
    }

    pub fn group(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

pub fn broker() -> Broker {
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    broker
}
