//! `[source] kind = "kafka"` end to end against a real broker (tansu): the same lines
//! read from files and from agent records give byte-identical output; resends are
//! dropped; lost lines are counted.

mod kafka_common;
mod kafka_live;

use std::time::Duration;

use kafka_common::*;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tidemark_kafka::testing::Broker;
use tidemark_kafka::{client_config, partition_for, Role};

#[test]
fn agent_records_give_the_files_output_byte_for_byte() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(3, 1500, 40, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    let files_out = run_until_eof(&file_job(dir.path(), "files.jsonl"), 2);
    let _ = files_out;
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    assert!(
        want.len() > 10_000,
        "the file run wrote {} bytes",
        want.len()
    );

    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for ((host, lines), live) in hosts.iter().zip(&lives) {
        agent.lines(&group(host, live, 0xfeed), 1, lines);
    }
    agent.flush();
    for workers in [1, 3] {
        let job = kafka_job(dir.path(), &broker, "kafka.jsonl", "");
        let out = run_until_eof(&job, workers);
        let got = std::fs::read(dir.path().join("kafka.jsonl")).unwrap();
        assert!(
            got == want,
            "-w {workers}: the kafka job's output differs from the files' ({} vs {} bytes); stderr:\n{}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A summary figure from a run's stderr (`NAME: N`).
fn figure(stderr: &[u8], name: &str) -> u64 {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(": ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

#[test]
fn resends_are_dropped_and_lost_lines_counted() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let mut hosts = host_lines(3, 1200, 40, &mut rng);
    // web-2 loses ten lines on the way: the files' run reads it without them.
    let web2 = hosts[1].1.clone();
    hosts[1].1 = [&web2[..99], &web2[109..]].concat();
    let lives = write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();

    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    let g1 = group(&hosts[0].0, &lives[0], 1);
    let lines1 = &hosts[0].1;
    // web-1's agent restarts from a checkpoint at line 600: 600..=900 come again.
    agent.lines(&g1, 1, &lines1[..900]);
    agent.lines(&g1, 600, &lines1[599..]);
    let g2 = group(&hosts[1].0, &lives[1], 2);
    agent.lines(&g2, 1, &web2[..99]);
    agent.lines(&g2, 110, &web2[109..]);
    agent.lines(&group(&hosts[2].0, &lives[2], 3), 1, &hosts[2].1);
    agent.flush();
    let out = run_until_eof_any_exit(&kafka_job(dir.path(), &broker, "kafka.jsonl", ""), 2);
    // Lines known lost make the finite run incomplete (exit 3), not a success.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(dir.path().join("kafka.jsonl")).unwrap();
    assert!(
        got == want,
        "resent or lost lines changed the output; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(figure(&out.stderr, "kafka resent lines (dropped)"), 301);
    assert_eq!(figure(&out.stderr, "kafka lost lines (never arrived)"), 10);
}

#[test]
fn heartbeats_close_a_quiet_groups_windows_without_the_idle_timeout() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(2, 300, 20, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    // The files' run closes every window at the end of input: the windows a live
    // run must close too once the agents say their groups are at their end.
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
    // idle_timeout far longer than the test: only heartbeats can close windows.
    let job = kafka_job(dir.path(), &broker, "live.jsonl", "idle_timeout = \"2h\"");
    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--overwrite")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = wait_for_output(&dir.path().join("live.jsonl"), want.len());
    let _ = live.kill();
    let _ = live.wait();
    assert!(
        got == want,
        "the live run's windows differ from the files' ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

/// Waits (generously) until `path` holds `len` bytes; returns what it holds.
fn wait_for_output(path: &std::path::Path, len: usize) -> Vec<u8> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if got.len() >= len || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn other_shippers_lines_take_their_host_from_a_header_with_a_watermark_per_partition() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(3, 800, 30, &mut rng);
    write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    // One host per partition, as a shipper keyed by host would write them: a
    // partition's watermark is then its host's, as a file group's is.
    for (p, (host, lines)) in hosts.iter().enumerate() {
        agent.foreign(p as i32, Some(host), lines);
    }
    // A record without the host header cannot be placed: skipped and counted.
    agent.foreign(3, None, &hosts[0].1[..1]);
    agent.flush();
    let out = run_until_eof_any_exit(&kafka_job(dir.path(), &broker, "kafka.jsonl", ""), 2);
    // The skipped record makes the finite run incomplete (exit 3).
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(dir.path().join("kafka.jsonl")).unwrap();
    assert!(
        got == want,
        "plain records' output differs from the files' ({} vs {} bytes); stderr:\n{}",
        got.len(),
        want.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(figure(&out.stderr, "kafka bad records (skipped)"), 1);
}

#[test]
fn a_finite_run_of_a_missing_topic_fails_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    broker.create_topic(TOPIC, 1);
    let job = kafka_job(dir.path(), &broker, "out.jsonl", "");
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(
        &job,
        text.replace("topic = \"logs\"", "topic = \"no-such-topic\""),
    )
    .unwrap();
    let out = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a run without its input succeeded: {err}"
    );
    assert!(
        err.contains("no-such-topic") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_quiet_partition_of_plain_records_stops_holding_windows_after_idle_timeout() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(2, 300, 20, &mut rng);
    write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for (p, (host, lines)) in hosts.iter().enumerate() {
        agent.foreign(p as i32, Some(host), lines);
    }
    agent.flush();
    // No heartbeats from another shipper: once caught up, each partition's stream
    // is idle, and after idle_timeout its watermark follows the wall clock.
    let job = kafka_job(dir.path(), &broker, "live.jsonl", "idle_timeout = \"2s\"");
    let mut live = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--overwrite")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let got = wait_for_output(&dir.path().join("live.jsonl"), want.len());
    let _ = live.kill();
    let _ = live.wait();
    assert!(
        got == want,
        "the live run's windows differ from the files' ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

/// A record that claims to be an agent's (`tm-v = 1`) with a bad `tm-kind`.
fn bad_record(broker: &Broker, key: &[u8]) {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config(Role::SinkProducer, &broker.bootstrap(), &Default::default())
            .unwrap()
            .create()
            .unwrap();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "tm-v",
            value: Some("1"),
        })
        .insert(Header {
            key: "tm-kind",
            value: Some("lien"),
        });
    producer
        .send(
            BaseRecord::to(TOPIC)
                .key(key)
                .payload("a line nobody will count")
                .partition(partition_for(key, PARTITIONS))
                .timestamp(now_ms())
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Regression (review R14k): a finite run that knows lines never arrived (a sequence
/// gap) or skipped a record it could not read exited 0, as if its output were complete.
#[test]
fn a_finite_run_that_knows_lines_are_missing_exits_incomplete() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(1, 300, 20, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    let g = group(&hosts[0].0, &lives[0], 7);
    let lines = &hosts[0].1;
    // Lines 100..=109 never arrive.
    agent.lines(&g, 1, &lines[..99]);
    agent.lines(&g, 110, &lines[109..]);
    agent.flush();
    bad_record(&broker, &g.key());
    let out = run_until_eof_any_exit(&kafka_job(dir.path(), &broker, "kafka.jsonl", ""), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kafka lost lines (never arrived): 10")
            && stderr.contains("kafka bad records (skipped): 1"),
        "{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "10 lines known lost and 1 record skipped: the finite run must exit 3 (incomplete)"
    );
    assert!(
        stderr.contains("incomplete: 10 line(s) never arrived"),
        "{stderr}"
    );
}

/// A backlog uploaded one host after another (an agent that ships hours of a host's
/// lines after other hosts' records in its partition): windows close while it is read,
/// paced by event time across partitions, yet a host found late in its partition is
/// not late — the discovery pass knew it — so the output is the files' byte for byte.
#[test]
fn a_backlog_uploaded_host_after_host_gives_the_files_output_byte_for_byte() {
    let mut rng = Rng::new(seed());
    let dir = tempfile::tempdir().unwrap();
    // Eight hosts in four partitions: some share one.
    let hosts = host_lines(8, 600, 30, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    assert!(
        want.len() > 10_000,
        "the file run wrote {} bytes",
        want.len()
    );

    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for ((host, lines), live) in hosts.iter().zip(&lives) {
        agent.lines(&group(host, live, 0xbac), 1, lines);
        agent.flush();
    }
    for workers in [1, 2] {
        let job = kafka_job(dir.path(), &broker, "kafka.jsonl", "");
        let out = run_until_eof(&job, workers);
        let got = std::fs::read(dir.path().join("kafka.jsonl")).unwrap();
        assert!(
            got == want,
            "-w {workers}: the kafka job's output differs from the files' ({} vs {} bytes); stderr:\n{}",
            got.len(),
            want.len(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Review R15p (scratch): a finite, paced run of a backlog uploaded host after host,
/// killed -9 mid-backlog (after it wrote windows and checkpointed) and restarted
/// with its state dir, gives the files' output byte for byte.
#[test]
fn rev15p_kill_9_of_a_paced_finite_run_then_restart_gives_the_files_output() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(8, 600, 30, &mut rng);
    let lives = write_files(dir.path(), &hosts);
    run_until_eof(&file_job(dir.path(), "files.jsonl"), 1);
    let want = std::fs::read(dir.path().join("files.jsonl")).unwrap();
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    for ((host, lines), live) in hosts.iter().zip(&lives) {
        agent.lines(&group(host, live, 0xbac), 1, lines);
        agent.flush();
    }
    let workers = 1 + rng.below(2);
    let state = dir.path().join("state");
    let job = kafka_job(dir.path(), &broker, "kafka.jsonl", "");
    let out_file = dir.path().join("kafka.jsonl");
    let start = |overwrite: bool| {
        let mut c = tidemark();
        c.arg("run")
            .arg(&job)
            .arg("--state-dir")
            .arg(&state)
            .args(["--until-eof", "--checkpoint-interval", "20ms", "-w"])
            .arg(workers.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if overwrite {
            c.arg("--overwrite");
        }
        c.spawn().unwrap()
    };
    let mut killed = 0;
    let mut overwrite = true;
    for _ in 0..3 {
        let mut run = start(overwrite);
        overwrite = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut done = false;
        let t0 = std::time::Instant::now();
        let wait = std::time::Duration::from_millis(200 + rng.below(2500));
        while t0.elapsed() < wait || !state.join("web/checkpoint").exists() {
            if run.try_wait().unwrap().is_some() {
                done = true;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "seed {seed}: nothing written"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if done {
            break;
        }
        run.kill().unwrap();
        run.wait().unwrap();
        killed += 1;
    }
    let last = start(false).wait_with_output().unwrap();
    let got = std::fs::read(&out_file).unwrap();
    eprintln!("seed {seed}: -w {workers}, killed {killed} time(s)");
    assert!(
        last.status.success() && got == want,
        "seed {seed} -w {workers}, killed {killed}: after kill -9 and a restart the output differs from the files' ({} vs {} bytes, exit {}); stderr:\n{}",
        got.len(),
        want.len(),
        last.status,
        String::from_utf8_lossy(&last.stderr)
    );
}

/// Review R15p (scratch): once every stream a worker's pass found has been read to
/// its last record, the source takes its windows' first open one as "none"
/// (`WindowTime::MAX`) and drops its capability — though records remain to read
/// (here: records not from an agent without a host header, which make no stream).
/// They are never read (not counted in kafka_bad_records, so the finite run's exit
/// status misses them), and the worker never releases its slot on the job's pacing
/// board: the other worker, further ahead than the bound, stays paused for ever.
#[test]
fn rev15p_records_after_every_streams_last_are_read_and_the_other_worker_finishes() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    // Host "a" with 5 minutes of lines, host "b" with 100 (its pass ends after a's
    // worker read a's lines): in partitions of workers 0 and 1 (partition p goes to
    // worker p mod 2).
    let mut short = host_lines(1, 300, 100, &mut rng);
    let long = host_lines(1, 6000, 100, &mut rng);
    short[0].0 = "a".into();
    let lives = write_files(dir.path(), &short);
    let live_b = write_files(dir.path(), &[("b0".to_string(), long[0].1.clone())]);
    let pick = |prefix: &str, live: &std::path::Path, parity: i32| {
        (0..)
            .map(|k| group(&format!("{prefix}{k}"), live, 7))
            .find(|g| partition_for(&g.key(), PARTITIONS) % 2 == parity)
            .unwrap()
    };
    let ga = pick("a", &lives[0], 0);
    let gb = pick("b", &live_b[0], 1);
    let pa = partition_for(&ga.key(), PARTITIONS);
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    agent.lines(&ga, 1, &short[0].1);
    agent.lines(&gb, 1, &long[0].1);
    agent.flush();
    // After a's last record in its partition: more records than one activation
    // takes, none of them a stream's.
    let bad: Vec<String> = (0..4100).map(|i| format!("no host header {i}")).collect();
    agent.foreign(pa, None, &bad);
    agent.flush();
    let job = kafka_job(dir.path(), &broker, "kafka.jsonl", "");
    let mut run = tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite", "-w", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while run.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            let out = run.wait_with_output().unwrap();
            panic!(
                "seed {seed}: the finite run did not end in 150 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = run.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            figure(&out.stderr, "kafka bad records (skipped)")
        ),
        (Some(3), 4100),
        "seed {seed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
