//! Produces gen-nginx-logs output (`DIR/web-N/access.log`) to a topic as `tidemark
//! agent` records (one agent group per host: key `host/group`, the Java partitioner,
//! the wire headers with a sequence per group), so a `kind = "kafka"` job can read a
//! backlog of many agents (benches/kafka_backlog.sh). `--order interleaved` sends the
//! hosts' lines round-robin, as live agents would have; `--order hosts` one host's
//! whole file after another (an agent uploading its backlog after the others).
//! Prints the records sent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tidemark_kafka::wire::{self, GroupId};
use tidemark_kafka::{client_config, partition_for, Role};

#[derive(Clone, Copy, ValueEnum)]
enum Order {
    Interleaved,
    Hosts,
}

#[derive(Parser)]
struct Args {
    /// gen-nginx-logs' output folder.
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    brokers: String,
    #[arg(long, default_value = "logs")]
    topic: String,
    /// The topic's partitions (for the partitioner).
    #[arg(long)]
    partitions: i32,
    #[arg(long, value_enum, default_value = "interleaved")]
    order: Order,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut hosts = Vec::new();
    for entry in std::fs::read_dir(&args.dir).context("reading --dir")? {
        let path = entry?.path().join("access.log");
        let host = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let group = GroupId {
            host,
            group: path.to_string_lossy().into_owned(),
            epoch: 0xbac1,
        };
        hosts.push((group, lines));
    }
    hosts.sort_by(|a, b| a.0.host.cmp(&b.0.host));
    let options = [
        ("linger.ms", "20"),
        ("batch.num.messages", "10000"),
        ("queue.buffering.max.messages", "200000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let producer: BaseProducer =
        client_config(Role::SinkProducer, &args.brokers, &options)?.create()?;
    let longest = hosts.iter().map(|h| h.1.len()).max().unwrap_or(0);
    let order: Vec<(usize, usize)> = match args.order {
        Order::Interleaved => (0..longest)
            .flat_map(|i| (0..hosts.len()).map(move |h| (h, i)))
            .filter(|&(h, i)| i < hosts[h].1.len())
            .collect(),
        Order::Hosts => (0..hosts.len())
            .flat_map(|h| (0..hosts[h].1.len()).map(move |i| (h, i)))
            .collect(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut sent = 0u64;
    for (h, i) in order {
        let (group, lines) = &hosts[h];
        let key = group.key();
        let mut headers = OwnedHeaders::new();
        let seq = i as u64 + 1;
        for (name, value) in wire::line_headers(group, seq, "1:1") {
            headers = headers.insert(Header {
                key: name,
                value: Some(&value),
            });
        }
        let mut record = BaseRecord::to(&args.topic)
            .key(&key)
            .payload(lines[i].as_bytes())
            .partition(partition_for(&key, args.partitions))
            .timestamp(now)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => bail!("sending: {e}"),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(600))?;
    println!("{sent}");
    Ok(())
}
