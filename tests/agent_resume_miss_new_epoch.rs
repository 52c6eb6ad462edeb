//! Regression tests for review R14k's finding: after a `kill -9` that lands between
//! the broker's acknowledgement of lines and the checkpoint recording them, the
//! broker holds sequence numbers the checkpoint does not name. If the restarted
//! agent's files do not continue where the checkpoint was (a resume miss, a
//! truncation), the lines it reads then must not take those numbers again — a
//! consumer would drop them as resends: they go under a new epoch, checkpointed
//! before any of them is sent. Also: an agent that lost its state dir numbers
//! everything in a new epoch.

mod agent_support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::time::Duration;

use agent_support::*;

/// The consumer's rule (engine/src/kafka_source/sequence.rs): per group, a line is
/// taken if its epoch is new or its seq is above the last taken.
fn taken_lines(records: &[Rec]) -> Vec<String> {
    let mut last: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for r in records {
        if let Rec::Line {
            group,
            epoch,
            seq,
            line,
            ..
        } = r
        {
            let take = match last.get(group) {
                Some((e, s)) => *e != *epoch || *seq > *s,
                None => true,
            };
            if take {
                last.insert(group.clone(), (*epoch, *seq));
                out.push(line.clone());
            }
        }
    }
    out
}

/// The state a `kill -9` leaves when it lands after the broker acknowledged lines
/// 11..=20 but before the once-a-second checkpoint recorded them (the checkpoint
/// says seq 10; the broker holds 1..=20). While the agent is down the live file is
/// replaced (logrotate with `rotate 0`, or a copytruncate whose copy was compressed
/// and moved away): the resume misses and the tailer reads the new file from its
/// start. The agent numbers the new file's lines 11, 12, … — numbers the broker
/// already holds for other lines — and every consumer drops them as resends.
#[test]
fn rev14k_a_resume_miss_after_acked_but_uncheckpointed_lines_loses_new_lines_as_resends() {
    // (R14k's test as written; it failed before the new epoch.)
    a_resume_miss_after_acked_but_uncheckpointed_lines()
}

fn a_resume_miss_after_acked_but_uncheckpointed_lines() {
    let broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    a.write(10);
    let config = setup.config(&broker, "");
    let state = setup.dir.path().join("state").join("agent-checkpoint.json");
    let saved = setup.dir.path().join("checkpoint-at-10.json");

    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("lines 1..=10", |r| taken_lines(r).len() >= 10);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    // The checkpoint with every line up to 10 acknowledged.
    fs::copy(&state, &saved).unwrap();

    let mut agent = Agent::start(&config);
    a.write(10);
    reader.until("lines 11..=20", |r| taken_lines(r).len() >= 20);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    // kill -9 between the acknowledgement of 11..=20 and the checkpoint's write.
    fs::copy(&saved, &state).unwrap();

    // While down: the live file is replaced by a new one (old inode kept alive so
    // it cannot be reused), ten new lines in it.
    let _keep = File::open(&a.path).unwrap();
    fs::remove_file(&a.path).unwrap();
    let old = std::mem::take(&mut a.lines);
    File::create(&a.path).unwrap();
    a.lines = Vec::new();
    // New content (the Log numbers lines from its own list: prefix them).
    a.name = "a-new".to_string();
    a.write(10);

    let mut agent = Agent::start(&config);
    let sent_before = reader.line_records();
    reader.until("the new file's 10 lines on the broker", |r| {
        r.iter().filter(|x| matches!(x, Rec::Line { .. })).count() >= sent_before + 10
    });
    reader.poll(Duration::from_millis(500));
    let mut want = old.clone();
    want.extend(a.lines.iter().cloned());
    let got = taken_lines(&reader.records);
    let _ = agent.stop();
    assert!(
        got == want,
        "a consumer takes {} lines of the {} written; missing: {:?}\nrecords: {:?}",
        got.len(),
        want.len(),
        want.iter().filter(|l| !got.contains(l)).collect::<Vec<_>>(),
        reader.records.iter().rev().take(12).collect::<Vec<_>>()
    );
}

/// Ships `a.log`'s first 10 lines and saves that checkpoint, ships 10 more, then
/// puts the saved checkpoint back: the state a `kill -9` leaves when it lands
/// after the broker acknowledged lines 11..=20 and before the checkpoint recorded
/// them. Returns the agent file, the reader (every record so far) and the log.
fn acked_but_uncheckpointed(
    setup: &Setup,
    broker: &tidemark_kafka::testing::Broker,
    source_extra: &str,
) -> (std::path::PathBuf, Reader, Log) {
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    a.write(10);
    let config = setup.config(broker, "");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("{text}{source_extra}\n")).unwrap();
    let state = setup.dir.path().join("state").join("agent-checkpoint.json");
    let saved = setup.dir.path().join("checkpoint-at-10.json");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(broker);
    reader.until("lines 1..=10", |r| taken_lines(r).len() >= 10);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    fs::copy(&state, &saved).unwrap();
    let mut agent = Agent::start(&config);
    a.write(10);
    reader.until("lines 11..=20", |r| taken_lines(r).len() >= 20);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    fs::copy(&saved, &state).unwrap();
    (config, reader, a)
}

fn epochs_of(records: &[Rec]) -> Vec<u64> {
    let mut epochs: Vec<u64> = Vec::new();
    for r in records {
        if let Rec::Line { epoch, .. } = r {
            if epochs.last() != Some(epoch) {
                epochs.push(*epoch);
            }
        }
    }
    epochs
}

/// The live file truncated in place while the agent was down (a copytruncate whose
/// copy was compressed and moved away), then written again: its first line as
/// before (so it is still the checkpointed file, by identity) and three new ones,
/// fewer bytes than the checkpointed offset. The file source reads it again from 0
/// (counted as a truncation); the consumer takes all four lines — the first one a
/// second time, as the file source's guarantee says — and none is dropped as a
/// resend of 11..=14.
#[test]
fn a_truncation_while_down_after_acked_but_uncheckpointed_lines_takes_a_new_epoch() {
    let broker = broker();
    let setup = Setup::new();
    // A fingerprint shorter than a line: the rewritten file is still "the same"
    // file, truncated (not a different one at the same inode).
    let (config, mut reader, mut a) =
        acked_but_uncheckpointed(&setup, &broker, "fingerprint_bytes = \"16B\"");
    let first = a.lines[0].clone();
    let old = std::mem::take(&mut a.lines);
    let new: Vec<String> = (1..=3).map(|i| format!("a-new line {i}")).collect();
    let mut body = format!("{first}\n");
    for l in &new {
        body.push_str(l);
        body.push('\n');
    }
    // In place: same inode, shorter than the checkpointed offset.
    let f = fs::OpenOptions::new().write(true).open(&a.path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    fs::OpenOptions::new()
        .append(true)
        .open(&a.path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();

    let mut agent = Agent::start(&config);
    let sent_before = reader.line_records();
    reader.until("the rewritten file's 4 lines on the broker", |r| {
        r.iter().filter(|x| matches!(x, Rec::Line { .. })).count() >= sent_before + 4
    });
    reader.poll(Duration::from_millis(500));
    let mut want = old.clone();
    want.push(first);
    want.extend(new);
    let got = taken_lines(&reader.records);
    assert_eq!(agent.metric("truncations_total"), 1, "{}", agent.log());
    assert_eq!(agent.metric("new_epochs_total"), 1, "{}", agent.log());
    let _ = agent.stop();
    assert_eq!(
        got,
        want,
        "records: {:?}",
        reader.records.iter().rev().take(8).collect::<Vec<_>>()
    );
    assert_eq!(epochs_of(&reader.records).len(), 2, "one new epoch");
}

/// An exact resume (the files as they were) keeps the epoch: lines 11..=20 are
/// sent again under their numbers and every consumer drops the copies.
#[test]
fn an_exact_resume_after_acked_but_uncheckpointed_lines_keeps_the_epoch() {
    let broker = broker();
    let setup = Setup::new();
    let (config, mut reader, mut a) = acked_but_uncheckpointed(&setup, &broker, "");
    a.write(5);
    let mut agent = Agent::start(&config);
    let sent_before = reader.line_records();
    reader.until("lines 11..=25 sent again / anew", |r| {
        r.iter().filter(|x| matches!(x, Rec::Line { .. })).count() >= sent_before + 15
    });
    reader.poll(Duration::from_millis(500));
    assert_eq!(agent.metric("new_epochs_total"), 0, "{}", agent.log());
    let _ = agent.stop();
    assert_eq!(taken_lines(&reader.records), a.lines);
    assert_eq!(epochs_of(&reader.records).len(), 1);
    // And the lines_by_group check: every seq resent with its own line.
    assert_eq!(reader.lines_by_group()[&a.group()], a.lines);
}

/// An agent whose state folder was lost, while the topic holds its old records:
/// every group is new, so it draws a new epoch and numbers from 1 again. A
/// consumer takes every line again (they are sent again: documented) and drops
/// none.
#[test]
fn an_agent_that_lost_its_state_numbers_everything_in_a_new_epoch() {
    let broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    a.write(10);
    let config = setup.config(&broker, "");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("lines 1..=10", |r| taken_lines(r).len() >= 10);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    fs::remove_dir_all(setup.dir.path().join("state")).unwrap();
    let first = a.lines.clone();
    a.write(5);
    let mut agent = Agent::start(&config);
    reader.until("every line again", |r| {
        r.iter().filter(|x| matches!(x, Rec::Line { .. })).count() >= 25
    });
    reader.poll(Duration::from_millis(500));
    let _ = agent.stop();
    let epochs = epochs_of(&reader.records);
    assert_eq!(epochs.len(), 2, "{:?}", reader.records);
    assert_ne!(epochs[0], epochs[1]);
    let seqs: Vec<u64> = reader
        .records
        .iter()
        .filter_map(|r| match r {
            Rec::Line { epoch, seq, .. } if *epoch == epochs[1] => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, (1..=15).collect::<Vec<u64>>());
    let mut want = first;
    want.extend(a.lines.iter().cloned());
    assert_eq!(taken_lines(&reader.records), want);
}

/// A truncation without a copy while the agent runs: the lines after it go under a
/// new epoch (the agent cannot tell whether the broker holds numbers beyond its
/// checkpoint), and a consumer takes every line.
#[test]
fn a_truncation_while_running_takes_a_new_epoch_and_loses_nothing() {
    let broker = broker();
    let setup = Setup::new();
    let logs = setup.logs();
    let mut a = Log::new(&logs, "a");
    a.write(10);
    let config = setup.config(&broker, "");
    let mut agent = Agent::start(&config);
    let mut reader = Reader::new(&broker);
    reader.until("lines 1..=10", |r| taken_lines(r).len() >= 10);
    let mut want = std::mem::take(&mut a.lines);
    fs::OpenOptions::new()
        .write(true)
        .open(&a.path)
        .unwrap()
        .set_len(0)
        .unwrap();
    // Noticed, but no line after it yet: no epoch drawn (it starts at that line).
    let deadline = std::time::Instant::now() + DEADLINE;
    while agent.metric("truncations_total") < 1 {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(agent.metric("new_epochs_total"), 0, "{}", agent.log());
    a.name = "a-after".to_string();
    a.write(5);
    want.extend(a.lines.iter().cloned());
    reader.until("the 5 lines after the truncation", |r| {
        taken_lines(r).len() >= 15
    });
    reader.poll(Duration::from_millis(500));
    assert_eq!(agent.metric("new_epochs_total"), 1, "{}", agent.log());
    assert_eq!(agent.metric("truncations_total"), 1);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
    assert_eq!(taken_lines(&reader.records), want);
    assert_eq!(epochs_of(&reader.records).len(), 2);
    assert!(
        agent.log().contains("new epoch"),
        "the new epoch is warned:\n{}",
        agent.log()
    );
}

/// A restart after `kill -9` under a changed `[filter]`: the lines after the
/// checkpoint would take other numbers than the copies on the broker (line 13
/// would be 12, …, and the new lines would reuse numbers of old ones). They go
/// under a new epoch instead: the consumer takes every new line (and the resent
/// ones again, as documented), drops none.
#[test]
fn a_changed_filter_after_acked_but_uncheckpointed_lines_takes_a_new_epoch() {
    let broker = broker();
    let setup = Setup::new();
    let (config, mut reader, mut a) = acked_but_uncheckpointed(&setup, &broker, "");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        format!("{text}\n[filter]\nexclude = [\"a line 12 \"]\n"),
    )
    .unwrap();
    let old = a.lines.len();
    a.write(5);
    let new: Vec<String> = a.lines[old..].to_vec();
    let mut agent = Agent::start(&config);
    let sent_before = reader.line_records();
    // 11, 13..=20 again, and 21..=25.
    reader.until("the resent and new lines", |r| {
        r.iter().filter(|x| matches!(x, Rec::Line { .. })).count() >= sent_before + 14
    });
    reader.poll(Duration::from_millis(500));
    let new_epochs = agent.metric("new_epochs_total");
    let _ = agent.stop();
    let got = taken_lines(&reader.records);
    for line in &new {
        assert!(got.contains(line), "{line} was dropped; taken: {got:?}");
    }
    assert_eq!(&got[..20], &a.lines[..20]);
    assert_eq!(epochs_of(&reader.records).len(), 2);
    assert_eq!(new_epochs, 1, "{}", agent.log());
}
