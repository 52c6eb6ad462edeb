//! The loop against librdkafka's in-process mock cluster (the end-to-end tests in
//! tests/agent_e2e.rs use a real broker).

use std::io::Write;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::{Message, Offset, TopicPartitionList};
use tidemark_jobs::env::Env;
use tidemark_kafka::wire::{self, AgentRecord};

use super::*;

fn agent(dir: &std::path::Path, brokers: &str, filter: &str) -> Agent {
    let text = format!(
        "[agent]\nhost = \"h\"\nstate_dir = \"state\"\nbrokers = \"{brokers}\"\ntopic = \"t\"\n\
         heartbeat_interval = \"200ms\"\n[source]\nkind = \"file\"\ninclude = [\"*.log\"]\n\
         poll_interval = \"20ms\"\n{filter}"
    );
    crate::validate::from_str(&text, "agent.toml", dir, &Env::process()).unwrap()
}

/// (seq, line) of every line record, and the highest heartbeat seq.
fn consume(brokers: &str, want: usize) -> (Vec<(u64, String)>, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "t")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("t", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut lines, mut beat) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while (lines.len() < want || beat < want as u64) && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let headers: Vec<(&str, Option<&[u8]>)> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        match wire::decode(headers, m.payload().unwrap_or_default()).unwrap() {
            AgentRecord::Line { seq, line, .. } => {
                lines.push((seq, String::from_utf8(line.to_vec()).unwrap()))
            }
            AgentRecord::Heartbeat { seq, .. } => beat = beat.max(seq),
            AgentRecord::Foreign { .. } => panic!("foreign record"),
        }
    }
    (lines, beat)
}

#[test]
fn lines_go_out_numbered_filtered_and_checkpointed_and_a_heartbeat_follows() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("a.log")).unwrap();
    for i in 1..=30 {
        let level = if i % 3 == 0 { "DEBUG" } else { "INFO" };
        writeln!(f, "{level} line {i}").unwrap();
    }
    let a = agent(dir.path(), &brokers, "[filter]\nexclude = [\"DEBUG\"]\n");
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let thread = {
        let (stop, stats, a) = (stop.clone(), stats.clone(), a.clone());
        std::thread::spawn(move || run(&a, &stop, stats))
    };
    let (lines, beat) = consume(&brokers, 20);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(thread.join().unwrap().unwrap(), Outcome::Drained);
    let want: Vec<(u64, String)> = (1..=30)
        .filter(|i| i % 3 != 0)
        .enumerate()
        .map(|(k, i)| (k as u64 + 1, format!("INFO line {i}")))
        .collect();
    assert_eq!(lines, want, "filtered lines take no sequence number");
    assert_eq!(beat, 20);
    assert_eq!(stats.lines_filtered.load(Ordering::Relaxed), 10);
    // The checkpoint: every line acknowledged, the position at the file's end.
    let state = StateDir::open(&a.state_dir).unwrap();
    let cp = state.load("h", "t").unwrap();
    let g = cp.groups.values().next().unwrap();
    assert_eq!(g.seq, 20);
    let size = std::fs::metadata(dir.path().join("a.log")).unwrap().len();
    assert_eq!(g.position.as_ref().map(|p| p.offset), Some(size));
}

#[test]
fn an_idle_turn_waits_a_poll_interval_not_a_millisecond() {
    let ms = Duration::from_millis;
    // Every group at its end, no rate limit (hint zero): one poll interval.
    assert_eq!(idle_wait(false, false, Duration::ZERO, ms(250)), ms(250));
    // The rate limit stopped reading: until it allows a byte, at most a poll interval.
    assert_eq!(idle_wait(false, false, ms(30), ms(250)), ms(30));
    assert_eq!(idle_wait(false, false, ms(900), ms(250)), ms(250));
    // More to read: no wait; paused at the in-flight bound: a short one.
    assert_eq!(
        idle_wait(true, false, Duration::ZERO, ms(250)),
        Duration::ZERO
    );
    assert_eq!(idle_wait(false, true, Duration::ZERO, ms(250)), ms(20));
}

/// A heartbeat carries the wall time of the read that found its group at its end,
/// not the time it is sent: lines written between the two were not in that read,
/// and a later stamp would let the cluster's watermark pass them.
#[test]
fn a_heartbeat_is_stamped_with_the_time_of_the_read_not_of_sending() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("t", 2, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "INFO line 1\nINFO line 2\n").unwrap();
    let a = agent(dir.path(), &brokers, "");
    let mut ship = Shipper::new(&a, Arc::new(Stats::default())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ship.groups.is_empty() && Instant::now() < deadline {
        ship.discover().unwrap();
    }
    ship.read(Instant::now()).unwrap();
    let read_done = wall_ms();
    while ship.in_flight > 0 && Instant::now() < deadline {
        ship.take_reports(Duration::from_millis(50)).unwrap();
    }
    // The read is what saw the end; no read follows before the heartbeat (as when
    // reading is paused), and sending comes strictly later.
    std::thread::sleep(Duration::from_millis(30));
    let sending = wall_ms();
    assert!(sending > read_done);
    // Past heartbeat_interval since the lines were sent.
    ship.heartbeats(Instant::now() + Duration::from_secs(1))
        .unwrap();
    assert_eq!(ship.stats.heartbeats_sent.load(Ordering::Relaxed), 1);
    while ship.in_flight > 0 && Instant::now() < deadline {
        ship.take_reports(Duration::from_millis(50)).unwrap();
    }
    let at = heartbeat_at(&brokers);
    assert!(
        at <= read_done,
        "heartbeat stamped {at}, the read ended at {read_done} (sending at {sending})"
    );
}

/// The `tm-at` of the first heartbeat in the topic.
fn heartbeat_at(brokers: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "t")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("t", p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let headers: Vec<(&str, Option<&[u8]>)> = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        if let AgentRecord::Heartbeat { at_ms, .. } =
            wire::decode(headers, m.payload().unwrap_or_default()).unwrap()
        {
            return at_ms;
        }
    }
    panic!("no heartbeat in the topic");
}
