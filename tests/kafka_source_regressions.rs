//! Regressions of review R14k's findings about the kafka source, against a real
//! broker (tansu): each test is named after the bug it keeps fixed.

mod kafka_common;

use kafka_common::*;
use tidemark_kafka::testing::Broker;

fn run_finite(job: &std::path::Path) -> std::process::Output {
    tidemark()
        .arg("run")
        .arg(job)
        .args(["--until-eof", "--overwrite", "-w", "1"])
        .output()
        .unwrap()
}

/// The heartbeat rule raised a group's watermark to `tm-at − max_out_of_orderness`
/// (wall time of the agent). Lines written to the file after the agent found it at
/// its end, but stamped earlier than that (a buffered access log — nginx `buffer=`
/// / `flush=`, a syslog relay, an app that flushes every 30 s — or an agent clock
/// ahead of the writer's), were then late and not counted — while `run --until-eof`
/// over the same file counts them (its watermark follows the lines' own times).
/// Now a heartbeat leaves `heartbeat_grace` (default 1m).
#[test]
fn a_heartbeat_makes_lines_written_later_than_their_stamp_late() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let base = (now_ms() - 10 * 60_000) / 60_000 * 60_000;
    let lines: Vec<String> = (0..240)
        .map(|i| nginx_line(base + i * 1000, &mut rng))
        .collect();
    let hosts = vec![("web-1".to_string(), lines.clone())];
    let lives = write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();

    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    let g = group("web-1", &lives[0], 1);
    // Lines 1..=120 written and sent; the logger holds the next ones in its buffer
    // for 30 s; the agent, at the file's end, sends a heartbeat; then the buffer is
    // flushed and the lines follow.
    agent.lines(&g, 1, &lines[..120]);
    agent.heartbeat(&g, 120, base + 119_000 + 30_000);
    agent.lines(&g, 121, &lines[120..]);
    agent.flush();
    let out = run_finite(&kafka_job(dir.path(), &broker, "kafka.jsonl", ""));
    assert!(out.status.success());
    let got = std::fs::read(dir.path().join("kafka.jsonl")).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        got == want,
        "the kafka run's output differs from the file run's ({} vs {} bytes); stderr:\n{stderr}",
        got.len(),
        want.len()
    );
}

/// librdkafka reports each partition's end as an error event, and rdkafka's default
/// context printed every one as an ERROR line: a clean finite run over four
/// partitions printed a screen of errors. The source handles the end itself.
#[test]
fn partition_eof_is_printed_as_an_error() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(2, 200, 10, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for (i, ((host, lines), live)) in hosts.iter().zip(&lives).enumerate() {
        agent.lines(&group(host, live, i as u64 + 1), 1, lines);
    }
    agent.flush();
    let out = run_finite(&kafka_job(dir.path(), &broker, "kafka.jsonl", ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Partition EOF") && !stderr.contains("ERROR"),
        "a partition's end is not an error:\n{stderr}"
    );
}

/// A finite run whose brokers died mid-run retried for ever. Now, after
/// `broker_timeout` without a record or a partition's end, it fails naming them.
#[test]
fn a_finite_run_whose_broker_dies_mid_run_retries_for_ever() {
    use std::io::{BufRead, BufReader};
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(4, 5000, 60, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    let mut broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for (i, ((host, lines), live)) in hosts.iter().zip(&lives).enumerate() {
        agent.lines(&group(host, live, i as u64 + 1), 1, lines);
    }
    agent.flush();
    drop(agent);
    // Small fetches, so the run is still reading when the broker dies.
    let job = kafka_job(dir.path(), &broker, "kafka.jsonl", "");
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "topic = \"logs\"\n",
        "topic = \"logs\"\nbroker_timeout = \"3s\"\n[source.options]\n\"max.partition.fetch.bytes\" = \"512\"\n",
    );
    std::fs::write(&job, text).unwrap();
    let mut run = tidemark()
        .env("TIDEMARK_LOG", "info")
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite", "-w", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(run.stderr.take().unwrap());
    let mut said = String::new();
    // Once it has its partitions, the broker dies (SIGKILL).
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the run ended before it read: {said}"
        );
        said.push_str(&line);
        if line.contains("reads partitions") {
            break;
        }
    }
    broker.stop();
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        rest
    });
    // Generous: a fixed run gives up 3 s after the last record.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!(
                "the finite run still retries 240 s after its broker died (broker_timeout = 3s)"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    said.push_str(&rest.join().unwrap());
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("broker_timeout") && said.contains(&broker.bootstrap()),
        "the error names the brokers and the setting:\n{said}"
    );
    assert!(
        !said.contains("kafka records:") || !said.contains(&format!("kafka records: {}", 4 * 5000)),
        "the run read everything before the broker died: this test shows nothing:\n{said}"
    );
}

/// Streams were never forgotten: a (host, group) that stopped sending long ago
/// stayed in memory and in every checkpoint for ever. Now one past
/// `stream_retention` that holds nothing leaves the checkpoint, and the output is
/// still the files' (nothing it held is lost).
#[test]
fn streams_are_never_pruned() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(2, 300, 20, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for (i, ((host, lines), live)) in hosts.iter().zip(&lives).enumerate() {
        let g = group(host, live, i as u64 + 1);
        agent.lines(&g, 1, lines);
        agent.heartbeat(&g, lines.len() as u64, now_ms());
    }
    agent.flush();
    // A short idle_timeout: once the streams are gone the worker follows the wall
    // clock, its frontier moves, and checkpoints are written.
    let job = kafka_job(dir.path(), &broker, "live.jsonl", "idle_timeout = \"5s\"");
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "topic = \"logs\"\n",
        "topic = \"logs\"\nstream_retention = \"2s\"\n",
    );
    std::fs::write(&job, text).unwrap();
    let state = dir.path().join("state");
    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--overwrite")
        .arg("--state-dir")
        .arg(&state)
        .args(["--checkpoint-interval", "50ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = dir.path().join("live.jsonl");
    let checkpoint = state.join("web/checkpoint");
    let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
    // Generous: every window written, then both streams (windows all in the sinks,
    // no record for 2 s) leave the checkpoint.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut seen_streams = false;
    let forgotten = loop {
        let cp = String::from_utf8_lossy(&read(&checkpoint)).into_owned();
        seen_streams |= cp.contains("\"web-1\"");
        if seen_streams
            && read(&out).len() >= want.len()
            && !cp.contains("\"web-1\"")
            && !cp.contains("\"web-2\"")
        {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = live.kill();
    let _ = live.wait();
    let cp = String::from_utf8_lossy(&read(&checkpoint)).into_owned();
    assert!(seen_streams, "the streams never were in a checkpoint: {cp}");
    assert!(
        forgotten,
        "streams past stream_retention (2s) holding nothing stay in the checkpoint: {cp}"
    );
    assert!(read(&out) == want, "the output differs from the files'");
}
