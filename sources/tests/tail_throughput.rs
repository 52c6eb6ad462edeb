//! Throughput of the tailer's hot path against the static `GroupReader` it replaces
//! (same buffer strategy: `memchr` over a 64 KiB buffer, no per-line allocation).
//! Run: `cargo test --release -p tidemark-sources --test tail_throughput -- --ignored --nocapture`

use std::io::Write;
use std::time::Instant;

use tidemark_sources::file::{FileGroup, GroupReader};
use tidemark_sources::tail::{ReadStatus, TailOptions, Tailer};

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn tailer_keeps_pace_with_the_static_reader() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("access.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&live).unwrap());
    let line = b"203.0.113.9 - - [20/Nov/2026:10:01:02 +0000] \"GET /api/v1/items?id=42 HTTP/1.1\" 200 5120 \"-\" \"curl/8.5\" 0.012\n";
    let n = 2_000_000;
    for _ in 0..n {
        f.write_all(line).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let bytes = (line.len() * n) as f64;
    let mut best = [f64::MAX; 2];
    for _ in 0..5 {
        let group = FileGroup {
            live: live.clone(),
            rotated: vec![],
        };
        let mut r = GroupReader::new(&group, false, 256 * 1024);
        let (mut lines, mut sum) = (0u64, 0u64);
        let t = Instant::now();
        while r.read_some(1 << 20, |_, l| {
            lines += 1;
            sum += l.len() as u64;
        }) == ReadStatus::More
        {}
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        assert_eq!(lines, n as u64);

        let opts = TailOptions {
            follow: false,
            ..TailOptions::default()
        };
        let mut tl = Tailer::new(live.clone(), opts, None);
        let (mut lines2, mut sum2) = (0u64, 0u64);
        let now = Instant::now();
        let t = Instant::now();
        while tl.read_some(1 << 20, now, |m, l| {
            lines2 += 1;
            sum2 += l.len() as u64 + (m.position.offset & 1);
        }) == ReadStatus::More
        {}
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        assert_eq!(lines2, n as u64);
        assert!(sum2 >= sum);
    }
    let mb = |s: f64| bytes / s / 1e6;
    println!(
        "GroupReader {:.0} MB/s, Tailer {:.0} MB/s ({:.2}x)",
        mb(best[0]),
        mb(best[1]),
        best[1] / best[0]
    );
}
