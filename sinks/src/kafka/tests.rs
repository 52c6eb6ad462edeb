//! The sink against librdkafka's in-process mock cluster (unit tests; the end-to-end
//! tests in tests/kafka_sink.rs run a real broker).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::{Message, Offset, TopicPartitionList};
use tidemark_engine::{ClosedWindow, Labels, Origin, Series, Value};
use tidemark_jobs::{KafkaSinkConfig, SeriesChoice};

use super::*;
use crate::format::jsonl_record;

const JOB: &str = "web";
const TOPIC: &str = "out";
/// A recent minute: brokers drop records stamped long ago by retention.
const T0: i64 = 1_764_892_800_000;

fn cfg(brokers: &str) -> KafkaSinkConfig {
    KafkaSinkConfig {
        brokers: brokers.to_string(),
        topic: TOPIC.to_string(),
        options: BTreeMap::new(),
        queue_capacity: 1000,
    }
}

/// Window `i` (a minute from T0) with `n` series, values depending on both.
fn window(i: i64, n: usize) -> ClosedWindow {
    let series = (0..n)
        .map(|k| Series {
            record: Arc::from("status:hits"),
            labels: Labels::from_pairs(&[("path", &format!("/p{k:03}"))]),
            value: Value::Int((i * 1000) as u64 + k as u64),
            origin: Origin::Rule,
        })
        .collect();
    ClosedWindow {
        start_ms: T0 + i * 60_000,
        end_ms: T0 + (i + 1) * 60_000,
        series,
    }
}

/// Waits (bounded) until the opening thread is done.
fn until_ready(sink: &KafkaSink) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sink.ready() {
        assert!(Instant::now() < deadline, "the sink never became ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One record read from the topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    window: String,
    partition: i32,
    key: String,
    value: String,
    job: String,
}

/// Every record of the topic, partition by partition, in offset order.
fn read_topic(brokers: &str, partitions: i32) -> Vec<Got> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.partition.eof", "true")
        .set("group.id", "t")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut got = Vec::new();
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize {
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
                got.push(Got {
                    window: header(record::header::WINDOW),
                    partition: m.partition(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    job: header(record::header::JOB),
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

#[test]
fn records_are_the_jsonl_lines_keyed_by_series_in_the_java_partition() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, JOB, None).unwrap();
    until_ready(&sink);
    let windows: Vec<_> = (0..3).map(|i| window(i, 20)).collect();
    for w in &windows {
        sink.write_window(w).unwrap();
    }
    sink.sync(T0 + 3 * 60_000).unwrap();
    assert!(sink.settled());
    let got = read_topic(&brokers, 3);
    assert_eq!(got.len(), 60);
    let mut want = Vec::new();
    for w in &windows {
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        for s in &w.series {
            let mut line = String::new();
            jsonl_record(w, s, &start, &end, &mut line);
            let mut key = String::new();
            record::key(s, &mut key);
            want.push(Got {
                window: w.start_ms.to_string(),
                partition: partition_for(key.as_bytes(), 3),
                key,
                value: line.trim_end_matches('\n').to_string(),
                job: JOB.to_string(),
            });
        }
    }
    let mut sorted = got.clone();
    sorted.sort();
    want.sort();
    assert_eq!(sorted, want);
    // In each partition, the windows come in order.
    for p in 0..3 {
        let windows: Vec<_> = got
            .iter()
            .filter(|g| g.partition == p)
            .map(|g| g.window.clone())
            .collect();
        let mut ordered = windows.clone();
        ordered.sort();
        assert_eq!(windows, ordered, "partition {p}");
    }
    let m = sink.meter().unwrap();
    assert_eq!(m.records_written.load(Ordering::Relaxed), 60);
    assert_eq!(m.queue_records.load(Ordering::Relaxed), 0);
}

/// Sends window `w`'s first `n` records as the sink would: what a crash after
/// `n` deliveries of the window leaves.
fn write_part(brokers: &str, w: &ClosedWindow, n: usize) {
    let mut sink = KafkaSink::open(&cfg(brokers), SeriesChoice::All, JOB, None).unwrap();
    until_ready(&sink);
    let part = ClosedWindow {
        series: w.series[..n].to_vec(),
        ..w.clone()
    };
    sink.write_window(&part).unwrap();
    sink.sync(w.start_ms).unwrap();
}

/// (window, key) → copies in the topic, of this job.
fn copies(got: &[Got]) -> BTreeMap<(String, String), usize> {
    let mut c = BTreeMap::new();
    for g in got.iter().filter(|g| g.job == JOB) {
        *c.entry((g.window.clone(), g.key.clone())).or_default() += 1;
    }
    c
}

fn resume_after_a_crash(read_back: bool) -> BTreeMap<(String, String), usize> {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let windows: Vec<_> = (0..5).map(|i| window(i, 30)).collect();
    // Run 1: windows 0 and 1 committed (checkpoint at the start of window 2),
    // then window 2 whole and 13 records of window 3 before the crash.
    {
        let mut sink = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, JOB, None).unwrap();
        until_ready(&sink);
        for w in &windows[..3] {
            sink.write_window(w).unwrap();
        }
        sink.sync(windows[3].start_ms).unwrap();
    }
    write_part(&brokers, &windows[3], 13);
    // Another job's records of the same series and windows are not ours.
    {
        let mut other = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, "other", None).unwrap();
        until_ready(&other);
        other.write_window(&windows[2]).unwrap();
        other.sync(windows[3].start_ms).unwrap();
    }
    // Run 2 resumes from the checkpoint: windows 2, 3 and 4 are handed over again.
    let frontier = windows[2].start_ms;
    let resume_from = read_back.then_some(frontier);
    let mut sink = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, JOB, resume_from).unwrap();
    until_ready(&sink);
    for w in &windows[2..] {
        sink.write_window(w).unwrap();
    }
    sink.sync(windows[4].end_ms).unwrap();
    if read_back {
        let skipped = sink.meter().unwrap().resent_held.load(Ordering::Relaxed);
        assert_eq!(skipped, 30 + 13, "window 2 whole and 13 of window 3");
    }
    copies(&read_topic(&brokers, 3))
}

#[test]
fn a_resume_sends_only_what_the_topic_does_not_hold() {
    let c = resume_after_a_crash(true);
    assert_eq!(c.len(), 5 * 30, "every (window, series) is there");
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
}

#[test]
fn without_the_read_back_a_resume_writes_windows_twice() {
    // The same run without reading back: shows the test above can fail.
    let c = resume_after_a_crash(false);
    let twice = c.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 30 + 13);
}

#[test]
fn a_missing_topic_fails_the_job_naming_it() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, JOB, None).unwrap();
    until_ready(&sink);
    // Before any window: the checkpoint's sync hears of it.
    let err = sink.sync(T0).unwrap_err().to_string();
    assert!(err.contains("the topic out does not exist"), "{err}");
    // And it stays failed.
    assert!(sink.ready());
    let again = sink.write_window(&window(1, 1)).unwrap_err().to_string();
    assert!(again.contains("the topic out does not exist"), "{again}");
    assert!(sink.sync(T0).is_err());
    // And a window hears of it as well.
    let mut sink = KafkaSink::open(&cfg(&brokers), SeriesChoice::All, JOB, None).unwrap();
    until_ready(&sink);
    let err = sink.write_window(&window(0, 1)).unwrap_err().to_string();
    assert!(err.contains("the topic out does not exist"), "{err}");
}

#[test]
fn not_ready_until_the_broker_answers_and_a_stop_ends_the_wait() {
    // Nothing listens on this port: the sink waits for a broker, never fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sink = KafkaSink::open(
        &cfg(&format!("127.0.0.1:{port}")),
        SeriesChoice::All,
        JOB,
        Some(T0),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    sink.watch_stop(stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!sink.ready());
    assert!(
        sink.meter().unwrap().is_backlogged(),
        "reads pause meanwhile"
    );
    // Nothing was handed over: a sync has nothing to wait for.
    sink.sync(T0).unwrap();
    stop.store(true, Ordering::Relaxed);
    let err = sink.write_window(&window(0, 1)).unwrap_err().to_string();
    assert!(err.contains("the job stopped"), "{err}");
}

#[test]
fn present_records_are_taken_once_and_forgotten_by_window() {
    let mut p = readback::Present::default();
    p.insert(60, b"a".to_vec());
    p.insert(60, b"a".to_vec());
    p.insert(120, b"b".to_vec());
    assert_eq!(p.found, 2);
    assert!(p.take(60, b"a"));
    assert!(!p.take(60, b"a"));
    assert_eq!(p.forget_before(120), 0);
    assert!(!p.is_empty());
    assert_eq!(p.forget_before(180), 1);
    assert!(p.is_empty());
}

#[test]
fn a_broker_away_holds_records_pauses_the_job_and_a_stop_ends_the_wait() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut sink = KafkaSink::open(
        &KafkaSinkConfig {
            queue_capacity: 10,
            ..cfg(&brokers)
        },
        SeriesChoice::All,
        JOB,
        None,
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    sink.watch_stop(stop.clone());
    until_ready(&sink);
    let meter = sink.meter().unwrap();
    cluster.broker_down(1).unwrap();
    sink.write_window(&window(0, 15)).unwrap();
    // Held, never given up: not ready, not settled, reads paused.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!sink.ready() && !sink.settled());
    assert!(meter.is_backlogged());
    assert_eq!(meter.queue_records.load(Ordering::Relaxed), 15);
    // The broker returns: everything is delivered, the job goes on.
    cluster.broker_up(1).unwrap();
    sink.sync(T0 + 60_000).unwrap();
    assert!(sink.ready() && sink.settled() && !meter.is_backlogged());
    assert_eq!(meter.records_written.load(Ordering::Relaxed), 15);
    // Away again, and the job stops: the forced sync gives up, saying so.
    cluster.broker_down(1).unwrap();
    sink.write_window(&window(1, 3)).unwrap();
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let err = sink.sync(T0 + 120_000).unwrap_err().to_string();
    stopper.join().unwrap();
    assert!(err.contains("had not acknowledged 3 record(s)"), "{err}");
    drop(sink);
    cluster.broker_up(1).unwrap();
    assert_eq!(read_topic(&brokers, 3).len(), 15);
}
