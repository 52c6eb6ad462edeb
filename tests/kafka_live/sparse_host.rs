//! A live job's discovery pass sees each partition only up to its end at connect: a
//! sparse host's later lines must still count as an uninterrupted run counts them
//! (review R16b; part of `tests/kafka_source.rs`).

use crate::kafka_common::*;
use tidemark_kafka::partition_for;
use tidemark_kafka::testing::Broker;

/// Review R16b: a LIVE run's discovery pass reads each partition only to
/// the end it had at connect. A sparse host with one line in that range (its clock
/// waits for a second line) is bounded at that line's window, so windows before it
/// close while another host's backlog is caught up. Its next line — written after
/// connect, 2 s earlier, the minute before, within max_out_of_orderness — is counted
/// by an uninterrupted run (no watermark passed it). The live output must equal
/// `--until-eof` over the same records.
///
/// Here the sparse host's line is 15 minutes into the other host's backlog: its
/// partition is paced until the other host passes it, so its stream is made with
/// the worker's floor at its bound (the pass's bound of a stream not read yet,
/// merge 5874100): its second line is counted late. (Fails with and without merge
/// f81725f's `fresh` bound.)
#[test]
fn rev16b_a_live_sparse_hosts_second_line_after_connect_goes_to_a_closed_window() {
    live_sparse_host(15, false);
}

/// The same with the sparse host's line at the start of the backlog, on its own
/// partition: the other host's first records usually move the frontier to the
/// sparse host's bound before its partition is read (the bound of a stream not read
/// yet, merge 5874100): its stream is made with its floor there, its second line
/// counted late. (Fails with and without merge f81725f's `fresh` bound.)
#[test]
fn rev16b_a_live_sparse_host_at_the_backlogs_start_loses_its_second_line() {
    live_sparse_host(0, false);
}

/// The same with the sparse host's line first in the other host's partition: its
/// stream is made before any window closes (floor 0) and bounded by the pass as
/// `fresh` (merge f81725f, `Stream::bounded_by`): windows before its line close
/// while the other host is read, then its second line is counted in one of them
/// and emitted below the source's capability.
#[test]
fn rev16b_a_live_fresh_stream_first_in_its_partition_then_a_line_before_it() {
    live_sparse_host(0, true);
}

fn live_sparse_host(s_at_min: i64, same_partition: bool) {
    use tidemark_kafka::wire::GroupId;
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let gid = |host: &str| GroupId {
        host: host.to_string(),
        group: "/var/log/nginx/access.log".to_string(),
        epoch: 0x51,
    };
    let a = gid("web-a");
    let s = (0..)
        .map(|k| gid(&format!("web-s{k}")))
        .find(|g| {
            (partition_for(&g.key(), PARTITIONS) == partition_for(&a.key(), PARTITIONS))
                == same_partition
        })
        .unwrap();
    let start = (now_ms() - 60 * 60_000) / 60_000 * 60_000;
    let a_lines: Vec<String> = (0..6000)
        .map(|i| nginx_line(start + i * 500, &mut rng))
        .collect();
    let s_first = start + s_at_min * 60_000 + 1_000;
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    agent.lines(&s, 1, &[nginx_line(s_first, &mut rng)]);
    agent.flush();
    agent.lines(&a, 1, &a_lines);
    agent.flush();
    let job = kafka_job(dir.path(), &broker, "live.jsonl", "idle_timeout = \"2h\"");
    let log = dir.path().join("live.log");
    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--overwrite", "-w", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Caught up (the backlog is a few seconds' reading): two status lines, 10 s apart.
    let out = dir.path().join("live.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("status:")
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no status lines");
        assert!(live.try_wait().unwrap().is_none(), "the live run ended");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Written after connect: its second line (the minute before), then both hosts
    // at their end.
    agent.lines(&s, 2, &[nginx_line(s_first - 2_000, &mut rng)]);
    agent.heartbeat(&a, a_lines.len() as u64, now_ms());
    agent.heartbeat(&s, 2, now_ms());
    agent.flush();
    run_until_eof(
        &kafka_job(
            dir.path(),
            &broker,
            "reference.jsonl",
            "idle_timeout = \"2h\"",
        ),
        1,
    );
    let want = std::fs::read(dir.path().join("reference.jsonl")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let got = loop {
        let got = std::fs::read(&out).unwrap_or_default();
        let ended = live.try_wait().unwrap().is_some();
        if got.len() >= want.len() || ended || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let status = live.try_wait().unwrap();
    let _ = live.kill();
    let _ = live.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let panics: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("Attempted"))
        .collect();
    if got != want {
        let kept = dir.keep();
        panic!(
            "the live output differs from --until-eof over the same records ({} vs {} bytes; live run exited: {status:?}; {panics:?}; kept in {})",
            got.len(),
            want.len(),
            kept.display()
        );
    }
}
