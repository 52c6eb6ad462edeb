//! The poll loop's offset check and caught-up rule, against rdkafka's MockCluster;
//! the prefetch bound, and partitions found after start.

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use super::client::PREFETCH_PER_JOB_KIB;
use super::*;
use tidemark_kafka::{client_config, Role};

const TOPIC: &str = "t";

fn source(brokers: &str) -> KafkaSource {
    KafkaSource {
        brokers: brokers.to_string(),
        topic: TOPIC.to_string(),
        options: Default::default(),
        group_id: None,
        heartbeat_grace: Duration::from_secs(60),
        stream_retention: Duration::from_secs(86_400),
        broker_timeout: Duration::from_secs(300),
    }
}

fn produce(brokers: &str, n: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in 0..n {
        let payload = format!("line {i}");
        producer
            .send(
                BaseRecord::<(), _>::to(TOPIC)
                    .payload(&payload)
                    .partition(0),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// What polling gives until `want` records or jumps back were seen (generous
/// deadline): offsets taken, and (offset, first) of records read again.
fn poll_until(reader: &mut Reader, want: usize) -> (Vec<i64>, Vec<(i64, bool)>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut taken, mut again) = (Vec::new(), Vec::new());
    while taken.len() + again.len() < want {
        assert!(Instant::now() < deadline, "{taken:?} {again:?}");
        match reader.poll() {
            Polled::Record(r) => taken.push(r.offset()),
            Polled::Again { offset, first, .. } => again.push((offset, first)),
            Polled::Nothing => std::thread::sleep(Duration::from_millis(10)),
            Polled::Skip | Polled::Error(_) => {}
        }
    }
    (taken, again)
}

/// Review R14k: on an out-of-range offset `auto.offset.reset = earliest` restarts
/// a partition from its first kept record; an agent's records were dropped by
/// sequence, other shippers' taken again (counted twice). Records below the
/// partition's next offset are now skipped and told apart.
#[test]
fn a_jump_back_to_earliest_mid_run_double_counts_non_agent_records() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 10);
    let mut reader =
        Reader::connect(&source(&brokers), "j", 0, 1, true, &Default::default()).unwrap();
    let (taken, again) = poll_until(&mut reader, 10);
    assert_eq!((taken, again), ((0..10).collect(), vec![]));
    // What the broker's reset does: reading starts again at the first record.
    reader
        .consumer
        .seek(TOPIC, 0, Offset::Beginning, Duration::from_secs(10))
        .unwrap();
    produce(&brokers, 2);
    let (taken, again) = poll_until(&mut reader, 12);
    assert_eq!(taken, vec![10, 11], "{again:?}");
    assert_eq!(
        again,
        (0..10).map(|o| (o, o == 0)).collect::<Vec<_>>(),
        "records below the next offset are read again, the first one told"
    );
    assert_eq!(reader.positions().collect::<Vec<_>>(), vec![(0, 12)]);
}

/// Review R15k: a finite run read a partition until its next offset reached the
/// high watermark it had at start. A shipper writing with Kafka transactions
/// (Kafka Connect exactly-once, Flink, Kafka Streams EOS) leaves a commit marker
/// at the last offset of each transaction; no record is delivered there, so the
/// next offset stayed one short of the end for ever: the run never finished and,
/// since broker_timeout, failed "are they down?" on a healthy broker. Now, at the
/// partition's end, the next offset becomes the consumer's position (librdkafka
/// moves it past markers: they are consumed, never returned).
///
/// tansu 0.6.0 refuses EndTxn and MockCluster writes no markers, so the marker is
/// simulated: the last record (offset 9) is taken as a marker leaves the reader —
/// its next offset stays at 9 — while the consumer's position moves past it as it
/// does past a marker. Then an end one past the last record without a marker: the
/// run does not finish, and says which partition stands where.
#[test]
fn a_partition_ending_in_a_transaction_marker_finishes() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers, 10);
    let read_to_eof = |reader: &mut Reader, marker_at: Option<i64>| {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut taken = 0;
        while !reader.at_eof(0) {
            assert!(Instant::now() < deadline, "no partition end");
            let offset = match reader.poll() {
                Polled::Record(r) => Some(r.offset()),
                Polled::Nothing => {
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
                _ => None,
            };
            match offset {
                Some(o) if Some(o) == marker_at => {
                    reader.next.insert(0, o);
                }
                Some(_) => taken += 1,
                None => {}
            }
        }
        taken
    };
    let mut reader =
        Reader::connect(&source(&brokers), "j", 0, 1, false, &Default::default()).unwrap();
    assert_eq!(reader.ends, Some([(0, 10)].into()));
    assert_eq!(read_to_eof(&mut reader, Some(9)), 9);
    assert!(
        reader.finished(),
        "the partition is at its end, every record read; next {:?}, ends {:?}",
        reader.next,
        reader.ends
    );
    assert_eq!(reader.stuck_below_end(), None);
    // An end the brokers never reach: not finished, and named.
    let mut reader =
        Reader::connect(&source(&brokers), "j", 0, 1, false, &Default::default()).unwrap();
    reader.ends = Some([(0, 11)].into());
    assert_eq!(read_to_eof(&mut reader, None), 10);
    assert!(!reader.finished());
    assert_eq!(reader.stuck_below_end(), Some((0, 10, 11)));
}

/// Regression (kafka_cluster_e2e): a partition that gets records faster than the
/// broker's fetch wait may never have a partition-EOF event; read up to the end
/// it had at connect, it is caught up all the same.
#[test]
fn a_partition_read_to_its_end_at_connect_is_caught_up_without_an_eof_event() {
    let ends = BTreeMap::from([(1, 40), (3, 0)]);
    let eof = BTreeSet::new();
    // Partition 1 still has its backlog; partition 3 was empty.
    assert!(!caught_up(&BTreeMap::from([(1, 39), (3, 0)]), &eof, &ends));
    assert!(caught_up(&BTreeMap::from([(1, 40), (3, 0)]), &eof, &ends));
    // Records written since count for nothing here: the end at connect does.
    assert!(caught_up(&BTreeMap::from([(1, 57), (3, 2)]), &eof, &ends));
    // An EOF event still counts.
    let eof = BTreeSet::from([1]);
    assert!(caught_up(&BTreeMap::from([(1, 12), (3, 0)]), &eof, &ends));
}

fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get(settings: &[(&'static str, String)], name: &str) -> Option<u64> {
    settings
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn a_jobs_consumers_share_its_prefetch_bound() {
    let none = options(&[]);
    let kib = |n| get(&prefetch_settings(&none, n), "queued.max.messages.kbytes").unwrap();
    assert_eq!(kib(1), 64 * 1024);
    assert_eq!(kib(4), 16 * 1024);
    assert_eq!(kib(16), 4 * 1024);
    // Never below what one fetch takes.
    assert_eq!(kib(1000), 1024);
    assert!((1..=64).all(|n| kib(n) * n as u64 <= PREFETCH_PER_JOB_KIB));
}

#[test]
fn the_users_prefetch_options_are_held_to_the_bound() {
    let lower = options(&[("queued.max.messages.kbytes", "2048")]);
    assert_eq!(
        get(&prefetch_settings(&lower, 4), "queued.max.messages.kbytes"),
        Some(2048)
    );
    let higher = options(&[
        ("queued.max.messages.kbytes", "1048576"),
        ("fetch.max.bytes", "104857600"),
    ]);
    let s = prefetch_settings(&higher, 4);
    assert_eq!(get(&s, "queued.max.messages.kbytes"), Some(16 * 1024));
    assert_eq!(get(&s, "fetch.max.bytes"), Some(16 * 1024 * 1024));
}

#[test]
fn a_new_partition_goes_to_its_worker_by_the_same_rule() {
    assert_eq!(new_partitions([0, 2], 6, 0, 2), vec![4]);
    assert_eq!(new_partitions([1], 6, 1, 2), vec![3, 5]);
    assert_eq!(new_partitions([0, 1, 2], 3, 0, 1), Vec::<i32>::new());
}

/// librdkafka's mock cluster (like tansu 0.6, which has no CreatePartitions) cannot
/// grow a topic: the reader is made to read only partition 0 of a 3-partition
/// topic, as if 1 and 2 were added after it started.
#[test]
fn partitions_found_later_are_read_from_their_first_record() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 3, 1).unwrap();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    for p in 0..3 {
        for i in 0..2 {
            let payload = format!("p{p} r{i}");
            producer
                .send(BaseRecord::<(), _>::to("t").partition(p).payload(&payload))
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let source = source(&mock.bootstrap_servers());
    let mut reader = Reader::connect(&source, "j", 0, 1, true, &BTreeMap::new()).unwrap();
    let mut only_first = TopicPartitionList::new();
    only_first
        .add_partition_offset("t", 0, Offset::Beginning)
        .unwrap();
    reader.consumer.assign(&only_first).unwrap();
    reader.next.retain(|p, _| *p == 0);
    let read = |reader: &mut Reader| {
        let mut got = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !reader.caught_up() {
            if let Polled::Record(r) = reader.poll() {
                got.insert(String::from_utf8_lossy(r.payload()).into_owned());
            }
        }
        got
    };
    assert_eq!(read(&mut reader).len(), 2, "partition 0 only");
    // Not time yet: nothing looked for.
    assert!(reader.look_for_new_partitions().is_empty());
    reader.metadata_at -= METADATA_EVERY;
    assert_eq!(reader.look_for_new_partitions(), vec![1, 2]);
    let got = read(&mut reader);
    let want: BTreeSet<String> = ["p1 r0", "p1 r1", "p2 r0", "p2 r1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn librdkafka_takes_the_settings_a_consumer_gets() {
    let job_options = options(&[("fetch.max.bytes", "104857600")]);
    let mut config = client_config(Role::Consumer, "127.0.0.1:1", &job_options).unwrap();
    config.set("group.id", "g");
    for (name, value) in prefetch_settings(&job_options, 8) {
        config.set(name, value);
    }
    assert_eq!(config.get("queued.max.messages.kbytes"), Some("8192"));
    let consumer: Result<BaseConsumer, _> = config.create();
    assert!(consumer.is_ok(), "{:?}", consumer.err());
}
