//! Parser-only cost: parses every line of a log file with the nginx example job's
//! fields (status, method, body_bytes_sent, request_time) and reads each field back
//! as the aggregation does, `ROUNDS` times (default 5); prints ns per line.
//!
//! ```sh
//! cargo run --release -p tidemark-sources --example parse_file -- access.log
//! valgrind --tool=callgrind target/release/examples/parse_file access.log 1  # Ir per line
//! ```
//!
//! The file is read into memory first, so the figure is the parser's alone.

use std::time::Instant;
use tidemark_jobs::{Format, Parse, TimeFormat, NGINX_TIME_FORMAT};
use tidemark_sources::parse::LineParser;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: parse_file FILE [ROUNDS]")?;
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let data = std::fs::read(&path)?;
    let lines: Vec<&[u8]> = data
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let cfg = Parse {
        format: Format::Nginx,
        timestamp_field: "time_local".into(),
        timestamp_format: TimeFormat::Strftime(NGINX_TIME_FORMAT.into()),
    };
    let fields: Vec<String> = [
        "status",
        "method",
        "status",
        "body_bytes_sent",
        "request_time",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = LineParser::new(&cfg, &fields)?;
    let (mut ok, mut bytes, mut sum) = (0u64, 0u64, 0i64);
    let start = Instant::now();
    for _ in 0..rounds {
        for line in &lines {
            if let Ok(parsed) = p.parse(line) {
                ok += 1;
                sum = sum.wrapping_add(parsed.event_ms());
                for slot in 0..fields.len() {
                    bytes += parsed.field(slot).map_or(0, |f| f.len() as u64);
                }
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (rounds * lines.len()).max(1) as f64;
    println!(
        "{} lines x {rounds}: {ns:.1} ns/line ({ok} parsed, {bytes} field bytes, checksum {sum})",
        lines.len()
    );
    Ok(())
}
