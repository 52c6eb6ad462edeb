//! Which partition a key goes to, exactly as Java Kafka clients choose it.
//!
//! Written here rather than left to librdkafka's `murmur2_random` partitioner because the
//! agent picks the partition itself, before producing: a file group's partition must be
//! known (and stable) without a round trip, and a test must be able to check it. The
//! algorithm is Kafka's `Utils.murmur2` (seed `0x9747b28c`), then `toPositive(hash) %
//! partitions` as the Java `DefaultPartitioner` does, so Java consumers and tools agree.

/// Kafka's 32-bit murmur2 hash of `data`, as a Java `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    // Java's switch falls through from the highest remaining byte down.
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition (of `partitions`, which must be > 0) that a Java producer's default
/// partitioner gives a record keyed `key`.
///
/// # Panics
/// If `partitions` is 0: a topic always has at least one partition, so callers pass the
/// count from the broker's metadata.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_own_test_vectors() {
        // Apache Kafka's UtilsTest.testMurmur2: the Java implementation's results.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for n in 1..=64 {
            for key in [&b""[..], b"web-1/nginx", b"\xff\xfe"] {
                let p = partition_for(key, n);
                assert!((0..n).contains(&p));
                assert_eq!(p, partition_for(key, n));
            }
        }
    }
}

#[cfg(test)]
mod librdkafka_agrees {
    //! librdkafka's `murmur2_random` partitioner is documented as Java-compatible: check
    //! ours against it through an in-process mock cluster (a unit test; the end-to-end
    //! tests use a real broker).
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, ThreadedProducer};
    use rdkafka::producer::{DeliveryResult, Producer, ProducerContext};
    use rdkafka::{ClientContext, Message};
    use std::sync::{mpsc, Mutex};

    use super::partition_for;

    struct Reports(Mutex<mpsc::Sender<(Vec<u8>, i32)>>);
    impl ClientContext for Reports {}
    impl ProducerContext for Reports {
        type DeliveryOpaque = ();
        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            let message = result.as_ref().expect("delivered");
            let key = message.key().unwrap_or_default().to_vec();
            let _ = self.0.lock().unwrap().send((key, message.partition()));
        }
    }

    #[test]
    fn partition_for_matches_librdkafkas_murmur2_partitioner() {
        let cluster = MockCluster::new(1).expect("a mock cluster");
        cluster.create_topic("t", 7, 1).expect("a topic");
        let (tx, rx) = mpsc::channel();
        let producer: ThreadedProducer<Reports> = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("partitioner", "murmur2_random")
            .create_with_context(Reports(Mutex::new(tx)))
            .expect("a producer");
        let keys: Vec<String> = (0..200)
            .map(|i| format!("host-{i}//var/log/app-{}.log", i % 13))
            .collect();
        for key in &keys {
            producer
                .send(
                    BaseRecord::<_, [u8]>::to("t")
                        .key(key.as_bytes())
                        .payload(b"x"),
                )
                .map_err(|(e, _)| e)
                .expect("queued");
        }
        producer.flush(Duration::from_secs(30)).expect("flushed");
        for _ in &keys {
            let (key, partition) = rx.recv_timeout(Duration::from_secs(30)).expect("a report");
            assert_eq!(
                partition,
                partition_for(&key, 7),
                "{}",
                String::from_utf8_lossy(&key)
            );
        }
    }
}
