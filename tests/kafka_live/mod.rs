//! A live kafka job killed -9 (while it catches up a backlog, or after) and restarted
//! gives the output of an uninterrupted run (part of `tests/kafka_source.rs`).

mod sparse_host;

use super::kafka_common::*;
use super::wait_for_output;
use tidemark_kafka::testing::Broker;

#[test]
fn kill_9_of_a_live_kafka_job_then_restart_gives_the_uninterrupted_output() {
    live_kill_9_then_restart(1500, 40, 300);
}

/// The same with a larger backlog and the kill soon after the first windows were
/// checkpointed: usually while the first run is still catching up (paced, closing
/// windows as it reads; the test prints how far it had read).
#[test]
fn kill_9_of_a_live_kafka_job_catching_up_then_restart_gives_the_uninterrupted_output() {
    live_kill_9_then_restart(4000, 80, 30);
}

/// A live job over half of 3 hosts' `lines` lines (stamped from `minutes` ago) killed
/// within `kill_within_ms` of its first checkpointed output, the rest written while
/// it is down, restarted: its output must equal an uninterrupted run's.
fn live_kill_9_then_restart(lines: usize, minutes: i64, kill_within_ms: u64) {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let hosts = host_lines(3, lines, minutes, &mut rng);
    let half = lines / 2;
    let lives = write_files(dir.path(), &hosts);
    // Two workers, each with a stream: partition p goes to worker p mod 2, so the
    // hosts are named until their partitions' parities alternate (a worker without
    // a stream would hold windows for idle_timeout, as one without files does).
    let groups: Vec<_> = lives
        .iter()
        .enumerate()
        .map(|(i, live)| {
            (0..)
                .map(|k| group(&format!("web-{i}-{k}"), live, 0x100 + i as u64))
                .find(|g| tidemark_kafka::partition_for(&g.key(), PARTITIONS) % 2 == i as i32 % 2)
                .unwrap()
        })
        .collect();
    let broker = Broker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let agent = Agent::new(&broker);
    // Phase 1: half of each host's lines.
    for (g, (_, lines)) in groups.iter().zip(&hosts) {
        agent.lines(g, 1, &lines[..half]);
    }
    agent.flush();
    let state = dir.path().join("state");
    let job = kafka_job(dir.path(), &broker, "live.jsonl", "idle_timeout = \"2h\"");
    let out_file = dir.path().join("live.jsonl");
    let start = |overwrite: bool| {
        // Each run's log is kept beside the outputs (a failure keeps the directory).
        let log = std::fs::File::create(dir.path().join(if overwrite {
            "first.log"
        } else {
            "second.log"
        }))
        .unwrap();
        let mut c = tidemark();
        c.arg("run")
            .arg(&job)
            .arg("--state-dir")
            .arg(&state)
            .args(["--checkpoint-interval", "50ms", "-w", "2"])
            .env("TIDEMARK_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if overwrite {
            c.arg("--overwrite");
        }
        c.spawn().unwrap()
    };
    let mut first = start(true);
    // Killed once it has written windows and checkpointed them, at a random moment.
    // The checkpoint file alone does not say so: the first one is written at once
    // at start, before anything is read, and with the catch-up paced windows are
    // written while the backlog is read — a kill between the first output and the
    // next checkpoint left a checkpoint without streams (the restart then starts
    // over, correctly, but this test is about resuming from kafka positions).
    let checkpointed = || {
        let cp = std::fs::read(state.join("web/checkpoint")).unwrap_or_default();
        let cp = String::from_utf8_lossy(&cp);
        cp.contains("\"seen_to\"") && !cp.contains("\"committed_len\": 0,")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while std::fs::metadata(&out_file).map_or(true, |m| m.len() == 0) || !checkpointed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the live run wrote nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(rng.below(kill_within_ms)));
    first.kill().unwrap();
    first.wait().unwrap();
    // The restart resumes from the checkpoint's offsets and streams, not from the
    // start of the topic.
    let cp = std::fs::read(state.join("web/checkpoint")).unwrap();
    let cp = String::from_utf8_lossy(&cp);
    let read: i64 = cp
        .split("\"next_offset\": ")
        .skip(1)
        .filter_map(|t| {
            t.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<i64>()
                .ok()
        })
        .sum();
    eprintln!(
        "killed with {read} of {} records checkpointed as read",
        3 * half
    );
    assert!(
        cp.contains("\"kafka\"") && cp.contains("\"next_offset\"") && cp.contains("\"seen_to\""),
        "no kafka positions in the checkpoint: {cp}"
    );
    // Phase 2, while it is down: the rest, web-1's agent resending from line 700
    // (it restarted from an old checkpoint too), and every group at its end.
    agent.lines(&groups[0], half as u64 - 50, &hosts[0].1[half - 51..half]);
    for (g, (_, lines)) in groups.iter().zip(&hosts) {
        agent.lines(g, half as u64 + 1, &lines[half..]);
        agent.heartbeat(g, lines.len() as u64, now_ms());
    }
    agent.flush();
    // The uninterrupted run over the same records.
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
    let mut second = start(false);
    let got = wait_for_output(&out_file, want.len());
    let _ = second.kill();
    let _ = second.wait();
    if got != want {
        let diff = line_diff(&want, &got);
        let kept = dir.keep();
        panic!(
            "seed {seed}: after kill -9 and a restart the output differs from an uninterrupted run ({} vs {} bytes; outputs, logs and state kept in {}):\n{diff}",
            got.len(),
            want.len(),
            kept.display()
        );
    }
}

/// The lines only in `want` (`-`) and only in `got` (`+`), at most 40 of each.
fn line_diff(want: &[u8], got: &[u8]) -> String {
    use std::collections::BTreeSet;
    let lines = |b: &[u8]| -> BTreeSet<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (w, g) = (lines(want), lines(got));
    let mut out = String::new();
    for l in w.difference(&g).take(40) {
        out += &format!("- {l}\n");
    }
    for l in g.difference(&w).take(40) {
        out += &format!("+ {l}\n");
    }
    out
}
