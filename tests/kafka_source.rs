//! `[source] kind = "kafka"` end to end against a real broker (tansu): the same lines
//! read from files and from agent records give byte-identical output; resends are
//! dropped; lost lines are counted.

mod kafka_common;

use kafka_common::*;
use tidemark_kafka::testing::Broker;

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
