//! The kafka sink end to end against a real broker (tansu, issue 14 item 3): the
//! topic holds the jsonl sink's lines, keyed by series in the Java partition;
//! after `kill -9` and restarts every (series, window) is in the topic exactly
//! once; a broker down at the start or mid-run makes the job wait, not fail or
//! drop.

mod rw_e2e;
mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use rw_e2e::{finish, seed, spawn_run, stderr, wait_until, write_logs, Rng};
use tidemark_kafka::partition_for;
use tidemark_kafka::testing::Broker;

const TOPIC: &str = "rollups";
const PARTITIONS: i32 = 3;

/// One record of the topic.
#[derive(Debug, Clone)]
struct Rec {
    partition: i32,
    key: String,
    value: String,
    job: String,
    window: i64,
}

fn write_job(dir: &Path, brokers: &str, source_extra: &str) -> std::path::PathBuf {
    let text = format!(
        r#"name = "ks"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = {{ path_regex = '/(?P<host>[^/]+)/access\.log$' }}
{source_extra}
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "http_request_duration_seconds"
kind = "histogram"
field = "request_time"
[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"
[[sink]]
kind = "jsonl"
path = "out/ks.jsonl"
series = "all"
[[sink]]
kind = "kafka"
brokers = "{brokers}"
topic = "{TOPIC}"
series = "all"
"#
    );
    let path = dir.join("ks.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every record of the topic, partition by partition, in offset order.
fn read_topic(broker: &Broker) -> Vec<Rec> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.partition.eof", "true")
        .set("group.id", "kafka-sink-test")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut got = Vec::new();
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while at_end.len() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "the topic was not read to its end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let header = |name: &str| {
                    m.headers()
                        .and_then(|h| h.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                got.push(Rec {
                    partition: m.partition(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    job: header("tm-job"),
                    window: header("tm-window").parse().unwrap_or(i64::MIN),
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    got
}

fn jsonl_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The window start of a jsonl line, in ms.
fn window_of(line: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["start"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

/// The series key a record of `line` carries: its record and labels.
fn key_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    format!("{{\"record\":{},\"labels\":{}}}", v["record"], v["labels"])
}

/// The topic holds exactly the jsonl lines, each once; keys, partitions and
/// headers as documented; in each partition the windows come in order.
fn assert_topic_is_the_jsonl(records: &[Rec], lines: &[String], context: &str) {
    assert!(!lines.is_empty(), "{context}: no output");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        assert_eq!(r.job, "ks", "{context}");
        assert_eq!(r.window, window_of(&r.value), "{context}: {}", r.value);
        // serde_json prints object keys sorted, as tidemark's labels are.
        assert_eq!(r.key, key_of(&r.value), "{context}");
        assert_eq!(
            r.partition,
            partition_for(r.key.as_bytes(), PARTITIONS),
            "{context}: {}",
            r.key
        );
        *counts.entry(&r.value).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{context}: written more than once: {twice:?}"
    );
    let topic: BTreeSet<&str> = counts.keys().copied().collect();
    let file: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    let missing: Vec<_> = file.difference(&topic).take(5).collect();
    let extra: Vec<_> = topic.difference(&file).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: missing {missing:?}, extra {extra:?}"
    );
    for p in 0..PARTITIONS {
        let w: Vec<i64> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.window)
            .collect();
        assert!(
            w.windows(2).all(|x| x[0] <= x[1]),
            "{context}: partition {p}"
        );
    }
}

#[test]
fn the_topic_holds_the_jsonl_lines_keyed_by_series() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("kafka sink lines"), 20);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let job = write_job(d.path(), &broker.bootstrap(), "");
    let out = finish(spawn_run(&job, &[]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines = jsonl_lines(&d.path().join("out/ks.jsonl"));
    let records = read_topic(&broker);
    assert_eq!(records.len(), lines.len());
    assert_topic_is_the_jsonl(&records, &lines, "one run");
    // In window order, the values are the file's lines: within a window, each
    // partition keeps the file's order.
    let mut by_window: Vec<&Rec> = records.iter().collect();
    by_window.sort_by_key(|r| r.window);
    let position: BTreeMap<&str, usize> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    for p in 0..PARTITIONS {
        let pos: Vec<usize> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| position[r.value.as_str()])
            .collect();
        assert!(pos.windows(2).all(|x| x[0] < x[1]), "partition {p}");
    }
    assert!(by_window.windows(2).all(|x| x[0].window <= x[1].window));
}

#[test]
fn kill_9_and_restarts_leave_every_window_in_the_topic_once() {
    let d = tempfile::tempdir().unwrap();
    let seed = seed("kafka sink kill -9");
    let mut rng = Rng(seed ^ 0x5eed);
    write_logs(d.path(), seed, 120);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    // Paced (a whole run takes about a minute), so that the kills come mid-stream.
    let job = write_job(
        d.path(),
        &broker.bootstrap(),
        "rate_limit = \"30KiB/s\"\nread_chunk = \"8KiB\"",
    );
    let state = d.path().join("state");
    let args = [
        "--state-dir",
        state.to_str().unwrap(),
        // Long enough that a kill usually finds windows written past the
        // last checkpoint: what the restart must not write again.
        "--checkpoint-interval",
        "4s",
    ];
    let mut past_checkpoint = 0;
    for round in 0..3 {
        let before = read_topic(&broker).len();
        let mut child = spawn_run(&job, &args);
        // Records past what the topic held, then a random moment.
        wait_until(&mut child, "new records in the topic", || {
            read_topic(&broker).len() > before + 20
        });
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let frontier = tidemark_engine::checkpoint::CheckpointStore::open(&state.join("ks"), "ks")
            .unwrap()
            .load()
            .unwrap()
            .map_or(i64::MIN, |c| c.frontier_ms);
        let records = read_topic(&broker);
        let past = records.iter().filter(|r| r.window >= frontier).count();
        eprintln!(
            "kill {round}: {} records in the topic, {past} past the checkpoint",
            records.len()
        );
        past_checkpoint += past;
    }
    assert!(
        past_checkpoint > 0,
        "no kill left records past the checkpoint: the read-back was not exercised"
    );
    let out = finish(spawn_run(&job, &args));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines = jsonl_lines(&d.path().join("out/ks.jsonl"));
    assert_topic_is_the_jsonl(&read_topic(&broker), &lines, "after kill -9 and restarts");
}

#[test]
fn a_broker_down_at_the_start_and_mid_run_makes_the_job_wait() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("kafka sink broker down"), 120);
    let mut broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    // Paced: a whole run takes about a minute.
    let job = write_job(
        d.path(),
        &broker.bootstrap(),
        "rate_limit = \"30KiB/s\"\nread_chunk = \"8KiB\"",
    );
    broker.stop();
    let mut child = spawn_run(&job, &[]);
    // Down at the start: the job waits.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended while the broker was down at its start"
    );
    broker.restart();
    wait_until(&mut child, "records in the topic", || {
        read_topic(&broker).len() > 20
    });
    // Down mid-run: the job waits again.
    broker.stop();
    std::thread::sleep(Duration::from_secs(6));
    if child.try_wait().unwrap().is_some() {
        let out = finish(child);
        panic!(
            "the job ended ({}) while the broker was down mid-run:\n{}",
            out.status,
            stderr(&out)
        );
    }
    broker.restart();
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines = jsonl_lines(&d.path().join("out/ks.jsonl"));
    assert_topic_is_the_jsonl(&read_topic(&broker), &lines, "through a broker down");
}

#[test]
fn a_replay_never_writes_to_the_live_topic() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("kafka sink replay"), 10);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let job = write_job(d.path(), &broker.bootstrap(), "");
    let (from, to) = rw_e2e::time_range();
    let ts = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
    let out_path = d.path().join("replay.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("replay")
        .arg(&job)
        .args(["--from", &ts(from), "--to", &ts(to), "--output"])
        .arg(&out_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("not writing to the job's kafka sink (topic rollups)"),
        "{err}"
    );
    assert!(!jsonl_lines(&out_path).is_empty());
    assert!(
        read_topic(&broker).is_empty(),
        "the replay wrote to the topic"
    );
}
