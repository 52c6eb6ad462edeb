//! The prefetch bound, and partitions found after start.

use super::*;

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
    let source = KafkaSource {
        brokers: mock.bootstrap_servers(),
        topic: "t".into(),
        options: BTreeMap::new(),
        group_id: None,
    };
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
