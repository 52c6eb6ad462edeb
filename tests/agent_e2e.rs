//! `tidemark agent` against a real broker (tansu): files under rename and
//! copytruncate rotation arrive exactly once per (group, seq), in order, on the
//! partition `partition_for(key)` gives, with the right headers; idle groups send
//! heartbeats; `kill -9` of the agent while lines are in flight loses and duplicates
//! nothing (once resends are dropped by sequence); a broker stopped mid-run loses
//! nothing while the agent's lines in flight stay within the bound.
mod agent_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agent_support::*;
use tidemark_kafka::partition_for;

fn key(group: &str) -> Vec<u8> {
    format!("web-1/{group}").into_bytes()
}

fn want(logs: &[&Log]) -> BTreeMap<String, Vec<String>> {
    logs.iter().map(|l| (l.group(), l.lines.clone())).collect()
}

#[test]
fn rotated_files_arrive_exactly_once_in_order_with_headers_and_heartbeats() {
    let broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    let mut b = Log::new(&logs, "b");
    a.write(300);
    b.write(300);
    let config = setup.config(&broker, "heartbeat_interval = \"500ms\"");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("the first lines", |r| r.len() >= 100);
    a.write(100);
    a.rotate_rename();
    a.write(150);
    b.write(100);
    b.rotate_copytruncate();
    b.write(150);
    let total = a.lines.len() + b.lines.len();
    reader.until("every line", |r| {
        r.iter().filter(|r| matches!(r, Rec::Line { .. })).count() >= total
    });
    // Both groups idle: each sends a heartbeat saying all its lines were sent.
    let (na, nb) = (a.lines.len() as u64, b.lines.len() as u64);
    let (ga, gb) = (a.group(), b.group());
    reader.until("a heartbeat of each group at its last line", |r| {
        let beats: BTreeSet<(&str, u64)> = r
            .iter()
            .filter_map(|r| match r {
                Rec::Heartbeat { group, seq, .. } => Some((group.as_str(), *seq)),
                _ => None,
            })
            .collect();
        beats.contains(&(ga.as_str(), na)) && beats.contains(&(gb.as_str(), nb))
    });
    reader.poll(Duration::from_millis(500));
    assert_eq!(
        reader.line_records(),
        total,
        "a line sent twice without a restart"
    );
    // In order: each group's records follow each other on its partition seq by seq.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &reader.records {
        if let Rec::Line { group, seq, .. } = r {
            let prev = last.insert(group, *seq).unwrap_or(0);
            assert_eq!(*seq, prev + 1, "{group}: seq {seq} after {prev}");
        }
    }
    assert_eq!(reader.lines_by_group(), want(&[&a, &b]));
    for r in &reader.records {
        let (partition, group) = match r {
            Rec::Line {
                partition,
                host,
                group,
                file,
                ..
            } => {
                assert_eq!(host, "web-1");
                assert!(file.split(':').count() == 3, "tm-file {file:?}");
                (partition, group)
            }
            Rec::Heartbeat {
                partition, group, ..
            } => (partition, group),
        };
        assert_eq!(
            *partition,
            partition_for(&key(group), PARTITIONS),
            "{group}"
        );
    }
    assert_eq!(agent.metric("rotations_total"), 1);
    assert_eq!(agent.metric("copytruncates_total"), 1);
    assert_eq!(agent.metric("lines_acked_total"), total as i64);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}

#[test]
fn kill_9_with_lines_in_flight_loses_and_duplicates_nothing() {
    let mut broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    let mut b = Log::new(&logs, "b");
    a.write(200);
    b.write(200);
    let config = setup.config(&broker, "");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("the first lines", |r| r.len() >= 400);
    // The broker away: new lines are read and sent, but not acknowledged. A
    // checkpoint that moved before the acknowledgement would lose them at the kill.
    broker.stop();
    a.write(300);
    a.rotate_rename();
    a.write(100);
    b.write(300);
    let deadline = std::time::Instant::now() + DEADLINE;
    // Every new line read and in flight (none can be acknowledged).
    while agent.metric("in_flight") < 700 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Longer than the checkpoint interval (1 s): an agent that checkpointed lines
    // before the broker acknowledged them has done so by now.
    std::thread::sleep(Duration::from_secs(3));
    agent.kill();
    broker.restart();
    b.write(100);
    b.rotate_copytruncate();
    b.write(50);
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    let total = a.lines.len() + b.lines.len();
    reader.until("every line", |r| distinct_lines(r) >= total);
    reader.poll(Duration::from_millis(500));
    // Resends dropped by (group, seq), each checked to carry the same line.
    assert_eq!(reader.lines_by_group(), want(&[&a, &b]));
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}

fn distinct_lines(records: &[Rec]) -> usize {
    records
        .iter()
        .filter_map(|r| match r {
            Rec::Line { group, seq, .. } => Some((group.clone(), *seq)),
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .len()
}

#[test]
fn a_broker_stopped_mid_run_loses_nothing_and_in_flight_stays_bounded() {
    let mut broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    a.write(100);
    let config = setup.config(&broker, "max_in_flight = 50");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("the first lines", |r| distinct_lines(r) >= 100);
    broker.stop();
    a.write(1000);
    // Reading pauses at the bound: the agent waits with 50 lines in flight.
    let deadline = std::time::Instant::now() + DEADLINE;
    while agent.metric("in_flight") < 50 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.metric("in_flight_pauses_total") > 0);
    assert!(
        agent.metric("lines_read_total") < 1100,
        "reading did not pause at max_in_flight"
    );
    broker.restart();
    reader.until("every line", |r| distinct_lines(r) >= a.lines.len());
    assert_eq!(reader.lines_by_group(), want(&[&a]));
    assert!(agent.metric("in_flight_max") <= 50);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}

/// Waits for a metric to reach `want` (the generous deadline; the property itself
/// is checked after).
fn wait_metric(agent: &mut Agent, name: &str, want: i64) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while agent.metric(name) < want {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {want}:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The groups the checkpoint names.
fn checkpointed_groups(setup: &Setup) -> BTreeSet<String> {
    let path = setup.dir.path().join("state").join("agent-checkpoint.json");
    let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    cp["groups"].as_object().unwrap().keys().cloned().collect()
}

/// `group_retention`: a group none of whose files exists any more is forgotten
/// after it (its state and checkpoint entry; counted), while a group with files
/// stays; the same live path written again later is a new group, numbered from 1
/// in a new epoch, and a consumer takes its lines. A checkpoint entry whose files
/// went while the agent was stopped is dropped after the retention too.
#[test]
fn groups_whose_files_are_gone_are_pruned_and_a_later_file_starts_a_new_epoch() {
    let broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    let mut b = Log::new(&logs, "b");
    a.write(5);
    b.write(5);
    let config = setup.config(&broker, "group_retention = \"1s\"");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("both groups' lines", |r| {
        r.iter().filter(|r| matches!(r, Rec::Line { .. })).count() >= 10
    });
    let epoch_of = |records: &[Rec], group: &str| -> Vec<(u64, u64)> {
        records
            .iter()
            .filter_map(|r| match r {
                Rec::Line {
                    group: g,
                    epoch,
                    seq,
                    ..
                } if g == group => Some((*epoch, *seq)),
                _ => None,
            })
            .collect()
    };
    let first = epoch_of(&reader.records, &a.group());
    assert_eq!(
        first.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    std::fs::remove_file(&a.path).unwrap();
    wait_metric(&mut agent, "groups_pruned_total", 1);
    assert_eq!(agent.metric("groups"), 1, "{}", agent.log());
    assert_eq!(
        checkpointed_groups(&setup),
        BTreeSet::from([b.group()]),
        "{}",
        agent.log()
    );
    assert!(agent.log().contains("forgotten"), "{}", agent.log());

    // The same live path again: a new group.
    let old = std::mem::take(&mut a.lines);
    std::fs::File::create(&a.path).unwrap();
    a.name = "a-again".to_string();
    a.write(3);
    reader.until("the new a's lines", |r| {
        epoch_of(r, &a.group()).len() >= old.len() + 3
    });
    let again = epoch_of(&reader.records, &a.group())[old.len()..].to_vec();
    assert_eq!(again.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    assert_ne!(again[0].0, first[0].0, "a new epoch");
    assert_eq!(agent.metric("groups_pruned_total"), 1, "b stays");
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());

    // b's files go while the agent is stopped: its entry is dropped after the
    // retention.
    std::fs::remove_file(&b.path).unwrap();
    let mut agent = Agent::start(&config);
    wait_metric(&mut agent, "groups_pruned_total", 1);
    assert_eq!(
        checkpointed_groups(&setup),
        BTreeSet::from([a.group()]),
        "{}",
        agent.log()
    );
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}
