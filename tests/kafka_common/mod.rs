//! Shared by the kafka source's tests: nginx lines of a few hosts with current
//! timestamps, the same job over files and over a topic, and a producer that writes
//! lines exactly as `tidemark agent` does (key `host/group`, the Java partitioner,
//! the wire module's headers, a per-group sequence).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tidemark_kafka::testing::Broker;
use tidemark_kafka::wire::{self, GroupId};
use tidemark_kafka::{client_config, partition_for, Role};

pub const TOPIC: &str = "logs";
pub const PARTITIONS: i32 = 4;

pub fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A small xorshift generator: the tests print their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn seed() -> u64 {
    let seed = std::env::var("TIDEMARK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    eprintln!("seed: {seed} (set TIDEMARK_TEST_SEED to repeat)");
    seed
}

/// One nginx line stamped `ms`.
pub fn nginx_line(ms: i64, rng: &mut Rng) -> String {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap();
    let status = [200, 200, 200, 301, 404, 500][rng.below(6) as usize];
    let method = ["GET", "GET", "POST"][rng.below(3) as usize];
    format!(
        "10.0.0.{} - - [{}] \"{method} /p{} HTTP/1.1\" {status} {} \"-\" \"t\" 0.{:03}",
        rng.below(250),
        t.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        rng.below(20),
        rng.below(5000),
        rng.below(1000)
    )
}

/// `lines` lines per host starting `minutes` ago, a second apart, with some
/// disorder and a few lines far behind (late): per host, in file order.
pub fn host_lines(
    hosts: usize,
    lines: usize,
    minutes: i64,
    rng: &mut Rng,
) -> Vec<(String, Vec<String>)> {
    let start = (now_ms() - minutes * 60_000) / 1000 * 1000;
    (1..=hosts)
        .map(|h| {
            let mut out = Vec::with_capacity(lines);
            for i in 0..lines {
                let mut ms = start + i as i64 * 1000;
                match rng.below(50) {
                    0 => ms -= 30_000, // far behind: late
                    1..=5 => ms -= rng.below(4000) as i64,
                    _ => {}
                }
                out.push(nginx_line(ms, rng));
            }
            (format!("web-{h}"), out)
        })
        .collect()
}

/// Writes each host's lines to `dir/logs/HOST/access.log`; returns the live paths.
pub fn write_files(dir: &Path, hosts: &[(String, Vec<String>)]) -> Vec<PathBuf> {
    hosts
        .iter()
        .map(|(host, lines)| {
            let folder = dir.join("logs").join(host);
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join("access.log");
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect()
}

const METRICS: &str = r#"
[parse]
format = "nginx"

[window]
size = "1m"
max_out_of_orderness = "5s"
IDLE

[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status", "method"]

[[metric]]
name = "http_response_bytes_total"
kind = "sum"
field = "body_bytes_sent"
labels = ["status"]

[[metric]]
name = "http_request_duration_seconds"
kind = "histogram"
field = "request_time"

[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"

[[rule]]
record = "job:http_request_duration_seconds:p99_1m"
expr = "histogram_quantile(0.99, http_request_duration_seconds)"

[[sink]]
kind = "jsonl"
path = "OUT"
series = "all"
"#;

/// The nginx job after its `[source]`: parse, window (`idle` is its idle_timeout line, or
/// empty for the default), metrics, rules and a jsonl sink writing `out`.
pub fn rest(out: &str, idle: &str) -> String {
    METRICS.replace("OUT", out).replace("IDLE", idle)
}

/// The job over files under `dir/logs/`, writing `out`.
pub fn file_job(dir: &Path, out: &str) -> PathBuf {
    let text = format!(
        "name = \"web\"\n[source]\nkind = \"file\"\ninclude = [\"logs/*/access.log\"]\nhost = {{ path_regex = '/logs/(?P<host>[^/]+)/' }}\n{}",
        rest(out, "")
    );
    let path = dir.join("file.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The same job over the topic, writing `out`; `idle` goes in [window].
pub fn kafka_job(dir: &Path, broker: &Broker, out: &str, idle: &str) -> PathBuf {
    let text = format!(
        "name = \"web\"\n[source]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{TOPIC}\"\n{}",
        broker.bootstrap(),
        rest(out, idle)
    );
    let path = dir.join(format!("kafka-{out}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Produces records as `tidemark agent` does.
pub struct Agent {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl Agent {
    pub fn new(broker: &Broker) -> Agent {
        let producer = client_config(Role::SinkProducer, &broker.bootstrap(), &Default::default())
            .unwrap()
            .create()
            .unwrap();
        Agent { producer }
    }

    fn send(&self, group: &GroupId, headers: Vec<(&'static str, Vec<u8>)>, payload: &[u8]) {
        let key = group.key();
        let mut owned = OwnedHeaders::new();
        for (name, value) in &headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let record = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(payload)
            .partition(partition_for(&key, PARTITIONS))
            .timestamp(now_ms())
            .headers(owned);
        self.producer.send(record).map_err(|(e, _)| e).unwrap();
    }

    /// Lines `first..` of `group` (numbered from `first`).
    pub fn lines(&self, group: &GroupId, first: u64, lines: &[String]) {
        for (i, line) in lines.iter().enumerate() {
            let seq = first + i as u64;
            self.send(
                group,
                wire::line_headers(group, seq, "2049:77"),
                line.as_bytes(),
            );
        }
    }

    /// A heartbeat: every line up to `seq` sent, as of `at_ms`.
    pub fn heartbeat(&self, group: &GroupId, seq: u64, at_ms: i64) {
        self.send(group, wire::heartbeat_headers(group, seq, at_ms), b"");
    }

    /// Lines as another shipper writes them: no tidemark headers, the host in a
    /// `host` header (none when `host` is `None`), all to `partition`.
    pub fn foreign(&self, partition: i32, host: Option<&str>, lines: &[String]) {
        for line in lines {
            let mut record = BaseRecord::<(), [u8]>::to(TOPIC)
                .payload(line.as_bytes())
                .partition(partition)
                .timestamp(now_ms());
            if let Some(h) = host {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "host",
                    value: Some(h),
                }));
            }
            self.producer.send(record).map_err(|(e, _)| e).unwrap();
        }
    }

    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(120)).unwrap();
    }
}

/// The group an agent on `host` names the file at `live`.
pub fn group(host: &str, live: &Path, epoch: u64) -> GroupId {
    GroupId {
        host: host.to_string(),
        group: live.to_string_lossy().into_owned(),
        epoch,
    }
}

pub fn run_until_eof(job: &Path, workers: usize) -> Output {
    let out = run_until_eof_any_exit(job, workers);
    assert!(
        out.status.success(),
        "run {} failed ({}): {}",
        job.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `run JOB --until-eof`, whatever its exit status.
pub fn run_until_eof_any_exit(job: &Path, workers: usize) -> Output {
    tidemark()
        .arg("run")
        .arg(job)
        .args(["--until-eof", "--overwrite", "-w", &workers.to_string()])
        .output()
        .unwrap()
}
