//! A real Kafka-compatible broker (tansu, `TIDEMARK_TANSU`; or with `--mock` librdkafka's
//! mock cluster) for benchmarks: started on
//! a free port with `--topic` created (`--partitions`), its bootstrap address printed
//! on stdout, stopped when stdin closes.
//!
//!   exec 3< <(kafka-test-broker --topic logs --partitions 3)
//!   read -r BOOTSTRAP <&3
use std::io::Read;

use clap::Parser;
use tidemark_kafka::testing::Broker;

#[derive(Parser)]
struct Args {
    /// The topic to create.
    #[arg(long, default_value = "logs")]
    topic: String,
    /// Its partitions.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// librdkafka's in-memory mock cluster instead of tansu: for benchmarks whose
    /// input tansu (SQLite) serves too slowly (benches/kafka_backlog.sh).
    #[arg(long)]
    mock: bool,
}

fn main() {
    let args = Args::parse();
    if args.mock {
        let mock = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
        mock.create_topic(&args.topic, args.partitions, 1)
            .expect("creating the topic");
        println!("{}", mock.bootstrap_servers());
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        drop(mock);
        return;
    }
    let broker = Broker::start();
    broker.create_topic(&args.topic, args.partitions);
    println!("{}", broker.bootstrap());
    // Until whoever started us closes our stdin (or exits).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(broker);
}
