//! A minimal remote-write receiver for the remote-write benchmark
//! (benches/remote_write.sh): it reads every request whole and answers 204
//! without decoding it (so its own cost stays out of tidemark's), counting
//! requests and bytes. With `--down-after`/`--down-for` it plays a receiver
//! that goes down for a while: it answers 503 in that span, counted from its
//! first request.
//!
//! rw-receiver --port-file /tmp/port --stats /tmp/stats [--down-after 15 --down-for 60]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;

/// Answer remote-write requests with 204 (or 503 while "down"), counting them.
#[derive(Parser, Debug)]
#[command(name = "rw-receiver")]
struct Args {
    /// Where to write the port it listens on (127.0.0.1, picked by the OS).
    #[arg(long)]
    port_file: PathBuf,
    /// Where to keep its counters (rewritten after every request):
    /// `requests N`, `bytes N`, `refused N`, `state up|down`.
    #[arg(long)]
    stats: PathBuf,
    /// Seconds after the first request at which it goes down.
    #[arg(long)]
    down_after: Option<u64>,
    /// Seconds it stays down.
    #[arg(long, default_value_t = 0)]
    down_for: u64,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
    refused: AtomicU64,
    first: OnceLock<Instant>,
}

fn main() -> anyhow::Result<()> {
    let a = Arc::new(Args::parse());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    std::fs::write(&a.port_file, listener.local_addr()?.port().to_string())?;
    let counts = Arc::new(Counts::default());
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (a, counts) = (a.clone(), counts.clone());
        std::thread::spawn(move || serve(conn, &a, &counts));
    }
    Ok(())
}

fn is_down(a: &Args, counts: &Counts, now: Instant) -> bool {
    let Some(after) = a.down_after else {
        return false;
    };
    let since = now.duration_since(*counts.first.get_or_init(|| now));
    since >= Duration::from_secs(after) && since < Duration::from_secs(after + a.down_for)
}

fn serve(conn: TcpStream, a: &Args, counts: &Counts) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut input = BufReader::new(conn);
    while let Some(len) = read_request(&mut input) {
        let down = is_down(a, counts, Instant::now());
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(len, Ordering::Relaxed);
        let answer: &[u8] = if down {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown"
        } else {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        };
        let stats = format!(
            "requests {}\nbytes {}\nrefused {}\nstate {}\n",
            counts.requests.load(Ordering::Relaxed),
            counts.bytes.load(Ordering::Relaxed),
            counts.refused.load(Ordering::Relaxed),
            if down { "down" } else { "up" }
        );
        let tmp = a.stats.with_extension("tmp");
        if std::fs::write(&tmp, stats).is_ok() {
            let _ = std::fs::rename(&tmp, &a.stats);
        }
        if out.write_all(answer).is_err() {
            return;
        }
    }
}

/// Reads one request whole; returns its body's length, `None` at the end of
/// the connection.
fn read_request(input: &mut BufReader<TcpStream>) -> Option<u64> {
    let mut line = String::new();
    if input.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let (mut len, mut chunked) = (None, false);
    loop {
        let mut h = String::new();
        if input.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            len = v.parse::<u64>().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    if let Some(n) = len {
        std::io::copy(&mut input.by_ref().take(n), &mut std::io::sink()).ok()?;
        return Some(n);
    }
    if !chunked {
        return Some(0);
    }
    let mut total = 0;
    loop {
        let mut size = String::new();
        input.read_line(&mut size).ok()?;
        let size = u64::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        std::io::copy(&mut input.by_ref().take(size + 2), &mut std::io::sink()).ok()?;
        total += size;
        if size == 0 {
            break;
        }
    }
    Some(total)
}
