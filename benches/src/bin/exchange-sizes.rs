//! How many bytes a cluster sends between processes per window, measured rather than
//! guessed: the bincode size (what timely's exchange writes for each record; see
//! docs/scaling.md) of the records of the nginx example job's stages, built from one
//! generated host-minute (`tidemark_sources::sample`, as gen-nginx-logs writes it) at
//! several rates, plus the sizes of single records by accumulator kind.
//!
//! cargo run --release -p tidemark-bench --bin exchange-sizes [-- --host-chars 9 --path-chars 36]
//!
//! Prints markdown on stdout.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;
use serde::Serialize;
use tidemark_engine::acc::{Acc, ExactSum, Hist};
use tidemark_engine::series::{HostPartial, MergedSeries, RuleInput, RuleValue};
use tidemark_engine::{Labels, Origin, Series, Value};
use tidemark_sources::sample::{for_each_line, SampleSpec};

#[derive(Parser, Debug)]
#[command(name = "exchange-sizes")]
struct Args {
    /// Lines per host per minute of the generated host-minutes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
    rates: Vec<u32>,
    /// Length of a host name (10,000 hosts: "web-10000" is 9).
    #[arg(long, default_value_t = 9)]
    host_chars: usize,
    /// Length of a file group's live path.
    #[arg(long, default_value_t = 36)]
    path_chars: usize,
}

/// Bytes bincode writes for `v` (timely's exchange encodes each record so).
fn size<T: Serialize>(v: &T) -> Result<u64> {
    Ok(bincode::serialized_size(v)?)
}

/// A series key: the host, then each label value, each as a little-endian u32
/// length and its bytes (`tidemark_engine::key::SeriesKey`).
fn key(parts: &[&str]) -> Box<[u8]> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(&(p.len() as u32).to_le_bytes());
        b.extend_from_slice(p.as_bytes());
    }
    b.into()
}

fn partial(metric: u32, key: Box<[u8]>, group: &Arc<str>, acc: Acc) -> HostPartial {
    HostPartial {
        metric,
        seq: 0,
        limited: false,
        key: key.into_vec().into(),
        group: group.clone(),
        acc,
    }
}

fn merged(p: &HostPartial) -> MergedSeries {
    MergedSeries {
        metric: p.metric,
        limited: p.limited,
        key: p.key.clone(),
        acc: p.acc.clone(),
    }
}

/// One host-window of the nginx job at `rate` lines per minute: its partials (one
/// file group per host), as the source stage sends them to the host merge.
fn host_window(rate: u32, host: &str, group: &Arc<str>) -> Result<Vec<HostPartial>> {
    let spec = SampleSpec {
        hosts: 1,
        minutes: 1,
        lines_per_minute: rate,
        rotations: 0,
        gzip_from: 0,
        ..SampleSpec::default()
    };
    let mut reqs: BTreeMap<(u16, &'static str), u64> = BTreeMap::new();
    let mut bytes: BTreeMap<u16, (ExactSum, u64)> = BTreeMap::new();
    let mut hist = Hist::new();
    let mut err = None;
    for_each_line(&spec, |l| {
        *reqs.entry((l.status, l.method)).or_default() += 1;
        let b = bytes.entry(l.status).or_default();
        if let Err(e) = b.0.add(l.body_bytes as f64) {
            err = Some(e);
        }
        b.1 += 1;
        if let Err(e) = hist.record(f64::from(l.request_time_ms) / 1000.0) {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        anyhow::bail!("a generated value was refused: {e}");
    }
    let mut out = Vec::new();
    for ((status, method), n) in reqs {
        let k = key(&[host, &status.to_string(), method]);
        out.push(partial(0, k, group, Acc::Count(n)));
    }
    for (status, (sum, lines)) in bytes {
        let k = key(&[host, &status.to_string()]);
        out.push(partial(1, k, group, Acc::Sum { sum, lines }));
    }
    out.push(partial(2, key(&[host]), group, Acc::Hist(Box::new(hist))));
    Ok(out)
}

fn total<T: Serialize>(xs: &[T]) -> Result<u64> {
    xs.iter().map(size).sum()
}

fn main() -> Result<()> {
    let a = Args::parse();
    let host = "w".repeat(a.host_chars);
    let group: Arc<str> = Arc::from("p".repeat(a.path_chars));
    println!(
        "# Exchange sizes (bincode), host name {} bytes, group path {} bytes",
        a.host_chars, a.path_chars
    );
    println!();
    println!("## One record");
    println!();
    println!("| record | bincode bytes |");
    println!("|---|---:|");
    let k2 = key(&[&host, "200", "GET"]);
    let one = |acc: Acc| partial(0, k2.clone(), &group, acc);
    let mut sum = ExactSum::default();
    sum.add(1234.0).map_err(anyhow::Error::msg)?;
    let rows: Vec<(&str, HostPartial)> = vec![
        (
            "HostPartial, counter (key: host + 2 label values)",
            one(Acc::Count(17)),
        ),
        ("HostPartial, sum", one(Acc::Sum { sum, lines: 17 })),
        (
            "HostPartial, gauge",
            one(Acc::Gauge {
                t: 1,
                v: 2.5,
                lines: 17,
            }),
        ),
    ];
    for (name, p) in &rows {
        println!("| {name} | {} |", size(p)?);
    }
    for n in [1u32, 10, 64, 65, 1000, 100_000] {
        let mut h = Hist::new();
        // Latencies spread from 1 ms to ~10 s, so that `n` values fill many buckets.
        for i in 0..n {
            h.record(0.001 * 1.01f64.powi((i % 900) as i32))
                .map_err(anyhow::Error::msg)?;
        }
        println!(
            "| HostPartial, histogram of {n} value(s) over 1 ms..8 s | {} |",
            size(&one(Acc::Hist(Box::new(h))))?
        );
    }
    let p = one(Acc::Count(17));
    println!("| MergedSeries, counter | {} |", size(&merged(&p))?);
    let ri = RuleInput {
        rule: 0,
        ord: 0,
        out_labels: Labels::from_pairs(&[("status", "200")]),
        value: RuleValue::Num { n: 1, folded: 17.0 },
    };
    println!(
        "| RuleInput, number, output labels {{status=\"200\"}} | {} |",
        size(&ri)?
    );
    let rec = Series {
        record: Arc::from("status:http_requests:sum1m"),
        labels: Labels::from_pairs(&[("status", "200")]),
        value: Value::Int(17),
        origin: Origin::Rule,
    };
    println!(
        "| Series (a rule's output record), {{status=\"200\"}} | {} |",
        size(&rec)?
    );
    println!();
    println!("## One host-window of the nginx example job (gen-nginx-logs' traffic, one file group per host)");
    println!();
    // Rule inputs are not per host: worker 0 folds them into one per rule
    // output series and window (R, see docs/scaling.md).
    println!("| lines/min | partials (counter, sum, histogram) | HostPartial bytes | MergedSeries bytes | bytes per host-window, all stages | histogram partial bytes |");
    println!("|---:|---|---:|---:|---:|---:|");
    for rate in &a.rates {
        let parts = host_window(*rate, &host, &group)?;
        let merged: Vec<MergedSeries> = parts.iter().map(merged).collect();
        let kinds = |m: u32| parts.iter().filter(|p| p.metric == m).count();
        let (pb, mb) = (total(&parts)?, total(&merged)?);
        let hist = parts.last().map(size).transpose()?.unwrap_or(0);
        println!(
            "| {rate} | {} ({}, {}, {}) | {pb} | {mb} | {} | {hist} |",
            parts.len(),
            kinds(0),
            kinds(1),
            kinds(2),
            pb + mb
        );
    }
    Ok(())
}
