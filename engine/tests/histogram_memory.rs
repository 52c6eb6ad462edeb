//! Memory of histogram series (issue 10 §5 follow-up). Every histogram series
//! held a dense hdrhistogram, a count per bucket up to its largest value (about
//! 14 KB for values up to a few seconds), however few values it saw: 30k
//! histogram series of one window cost 733 MiB. A histogram is now sparse until
//! it has many buckets. Measured as the growth of this process's resident memory
//! while it holds the series (the only test in this binary, so nothing else
//! allocates meanwhile).

use tidemark_engine::acc::{Acc, Hist};

const SERIES: usize = 5_000;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn histogram_series_with_few_values_do_not_each_hold_dense_counts() {
    let mut series: Vec<Acc> = Vec::with_capacity(SERIES);
    let before = resident_bytes();
    for i in 0..SERIES {
        // Three request times, in seconds, as a series of a busy window might see.
        let mut h = Hist::new();
        for v in [0.012, 0.2 + i as f64 * 1e-4, 1.5] {
            h.record(v).unwrap();
        }
        series.push(Acc::Hist(Box::new(h)));
    }
    let after = resident_bytes();
    let per_series = after.saturating_sub(before) / SERIES as u64;
    eprintln!(
        "{SERIES} histogram series of 3 values: {} KiB resident, {per_series} bytes per series",
        after.saturating_sub(before) / 1024
    );
    assert_eq!(
        series.iter().map(Acc::lines).sum::<u64>(),
        3 * SERIES as u64
    );
    // Dense counts cost ~14 KB each; sparse ones ~100 bytes plus allocator slack.
    assert!(
        per_series < 1024,
        "{per_series} bytes per histogram series of 3 values"
    );
}
